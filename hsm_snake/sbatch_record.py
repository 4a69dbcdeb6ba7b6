"""Every sbatch call of a sweep, kept under ``scripts/job_scripts/`` for reproducibility.

snakemake-executor-plugin-slurm builds its sbatch command lines itself and logs them only at
debug level. For a Slurm run, hsm-snake puts a pass-through ``sbatch`` first on the engine's
PATH (``<sweep>/.hsm/bin/sbatch``): it runs the real sbatch with the same arguments and input,
passes its answer and exit status back unchanged, and writes the call (plus the script fed on
stdin, if any) to ``scripts/job_scripts/sbatch-<UTC time>-<pid>.sh`` as a shell script that
would submit the same job again. It refuses (exit 1, nothing submitted) the one job script
snakemake-executor-plugin-slurm 2.8 gets wrong: see BROKEN_ARRAY_SCRIPT.

The shim is ``python -m hsm_snake.sbatch_record REAL_SBATCH RECORD_DIR ARGS...``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from hsm_snake.paths import SweepPaths
from hsm_snake.records import write_text_atomic

STDIN_END = "HSM_SBATCH_STDIN"


def shim_dir(paths: SweepPaths) -> Path:
    return paths.root / ".hsm" / "bin"


def record_dir(paths: SweepPaths) -> Path:
    return paths.root / "scripts" / "job_scripts"


def recording_env(paths: SweepPaths) -> dict[str, str]:
    """Install the shim and return the engine's PATH with it first ({} when there is no sbatch)."""
    own = shim_dir(paths)
    search_path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != own)
    real = shutil.which("sbatch", path=search_path)
    if real is None:
        return {}  # the Slurm plugin reports the missing sbatch itself
    own.mkdir(parents=True, exist_ok=True)
    shim = own / "sbatch"
    write_text_atomic(
        shim,
        "#!/bin/sh\n# hsm-snake: records each sbatch call of this sweep, then runs the real sbatch.\n"
        + shlex.join(["exec", sys.executable, "-m", "hsm_snake.sbatch_record", real, str(record_dir(paths))])
        + ' "$@"\n',
    )
    shim.chmod(0o755)
    return {"PATH": os.pathsep.join([str(own), search_path])}


def render_record(args: list[str], stdin: bytes, answer: str, code: int, when: datetime) -> str:
    lines = [
        "#!/bin/sh",
        f"# sbatch call made by Snakemake's Slurm executor at {when.isoformat(timespec='seconds')}",
        *[f"# sbatch answered (exit {code}): {line}" for line in answer.strip().splitlines()[:5] or ["(nothing)"]],
    ]
    call = shlex.join(["sbatch", *args])
    text = stdin.decode("utf-8", errors="replace")
    if text:
        lines += [f"{call} <<'{STDIN_END}'", text.rstrip("\n"), STDIN_END]
    else:
        lines.append(call)
    return "\n".join(lines) + "\n"


# snakemake-executor-plugin-slurm 2.8's fallback for an array too big for one argument: a script
# with the elements' commands on a line of their own, which runs the first task in every element.
BROKEN_ARRAY_SCRIPT = b"\n--slurm-jobstep-array-execs\n"
REFUSAL = (b"hsm-snake: refused an sbatch array script that would run the array's first task in every "
           b"element (snakemake-executor-plugin-slurm 2.8, arrays over ~80 tasks); lower slurm.max_array_size\n")


def main(argv: list[str]) -> int:
    real, into, *args = argv
    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    if BROKEN_ARRAY_SCRIPT in stdin:
        done = subprocess.CompletedProcess(args, 1, b"", REFUSAL)
    else:
        done = subprocess.run([real, *args], input=stdin, capture_output=True, check=False)
    sys.stdout.buffer.write(done.stdout)
    sys.stderr.buffer.write(done.stderr)
    when = datetime.now(UTC)
    record = Path(into) / f"sbatch-{when.strftime('%Y%m%dT%H%M%S.%f')}-{os.getpid()}.sh"
    answer = (done.stdout or done.stderr).decode("utf-8", errors="replace")
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, render_record(args, stdin, answer, done.returncode, when))
    except OSError as exc:
        # Never fail a submission over its record; the plugin shows stderr only on failure.
        print(f"hsm-snake: could not keep the sbatch call in {record}: {exc}", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
