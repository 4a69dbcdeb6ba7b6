"""Every sbatch call of a sweep, kept under ``scripts/job_scripts/`` for reproducibility.

snakemake-executor-plugin-slurm builds its sbatch command lines itself and logs them only at
debug level. For a Slurm run, hsm-snake puts a pass-through ``sbatch`` first on the engine's
PATH (``<sweep>/.hsm/bin/sbatch``): it runs the real sbatch with the same arguments and input,
passes its answer and exit status back unchanged, and writes the call (plus the script fed on
stdin, if any) to ``scripts/job_scripts/sbatch-<UTC time>-<pid>.sh`` as a shell script that
would submit the same job again. It also repairs the one job script snakemake-executor-plugin-slurm
2.8 gets wrong (see one_command_per_element), and refuses it (exit 1, nothing submitted) when it
cannot.

The shim is ``python -m hsm_snake.executors.slurm.sbatch_record REAL_SBATCH RECORD_DIR ARGS...``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import write_text_atomic

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
        + shlex.join(
            ["exec", sys.executable, "-m", "hsm_snake.executors.slurm.sbatch_record", real, str(record_dir(paths))]
        )
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


# snakemake-executor-plugin-slurm 2.8 hands each array element its command through one argument,
# ``--slurm-jobstep-array-execs=<base64 JSON of index -> zlib'd command>``, holding every element's
# command (~2 KB each). Past the kernel's 128 KiB limit for one argument, or with
# ``--slurm-pass-command-as-script``, it submits a script instead that puts that option and its value
# on lines of their own: the command runs without them, and every element ran the array's first task.
ARRAY_EXECS = "--slurm-jobstep-array-execs"
BROKEN_ARRAY_SCRIPT = f"\n{ARRAY_EXECS}\n".encode()
REFUSAL = (
    b"hsm-snake: refused an sbatch array script that would run the array's first task in every "
    b"element (snakemake-executor-plugin-slurm 2.8) and could not be repaired; lower slurm.max_array_size\n"
)
ARRAY_RANGE = re.compile(r"--array=(\d+)-(\d+)$")


def array_range(args: list[str]) -> tuple[int, int] | None:
    for arg in args:
        found = ARRAY_RANGE.match(arg)
        if found:
            return int(found.group(1)), int(found.group(2))
    return None


def one_command_per_element(args: list[str], script: bytes) -> bytes | None:
    """The plugin's broken array script as a ``case`` on SLURM_ARRAY_TASK_ID that runs each
    element's own command; None when ``script`` is not that script.

    The first element runs the plain command, as in the plugin's ``--wrap`` form. The others run
    the command the plugin compressed for them, which its ``--wrap`` form has a first Snakemake
    (the jobstep) decompress and start: one Snakemake start (~2 s of CPU) less per element. ~1 KB
    per element: 1,000 elements are ~1 MB, under sbatch's default 4 MB.
    """
    lines = script.decode("utf-8", errors="replace").rstrip("\n").split("\n")
    bounds = array_range(args)
    if bounds is None or len(lines) != 4 or lines[0] != "#!/bin/sh" or lines[2] != ARRAY_EXECS:
        return None
    first, last = bounds
    # shlex.quote'd base64 (no quote inside): shlex.split would take ~30 s for 1,000 elements.
    payload = lines[3][1:-1] if len(lines[3]) > 1 and lines[3][0] == lines[3][-1] == "'" else lines[3]
    try:
        compressed = json.loads(base64.b64decode(payload, validate=True))
        if not isinstance(compressed, dict) or set(compressed) != {str(i) for i in range(first + 1, last + 1)}:
            return None
        commands = {int(i): zlib.decompress(bytes.fromhex(c)).decode("utf-8") for i, c in compressed.items()}
    except (ValueError, TypeError, binascii.Error, zlib.error):
        return None
    out = [
        "#!/bin/sh",
        "# snakemake-executor-plugin-slurm's array script, given by hsm-snake one command per element",
        "# (the plugin's own ran the first task in every element).",
        'case "$SLURM_ARRAY_TASK_ID" in',
        # ";;" on a line of its own: whatever a command line ends with cannot swallow it.
        f"{first}) {lines[1]}\n;;",
        *(f"{index}) {commands[index]}\n;;" for index in range(first + 1, last + 1)),
        '*) echo "hsm-snake: no task for array index $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;',
        "esac",
        "",
    ]
    return "\n".join(out).encode()


def main(argv: list[str]) -> int:
    real, into, *args = argv
    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    if BROKEN_ARRAY_SCRIPT in stdin:
        stdin = one_command_per_element(args, stdin) or stdin
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
