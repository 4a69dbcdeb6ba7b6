"""Run a command in a conda / mamba / micromamba environment on any host, conda on PATH or not.

Batch jobs and non-interactive ssh sessions skip ~/.bashrc, so ``conda`` is rarely on PATH where
a task runs. :func:`run_prefix` is an argv prefix that finds the package manager on the host the
task runs on (the configured ``conda_root``, ``CONDA_EXE`` / ``MAMBA_EXE``, PATH, the usual install
folders), then ``exec``s ``<it> run -n ENV <command...>``; with none there it exits 127 with a
message naming everything it searched. The command's words reach it as ``"$@"``: no shell ever
parses a parameter value. Standard library only (imported by the runner on compute nodes).
"""

from __future__ import annotations

MISSING_MARK = "hsm-snake: cannot activate conda_env"
FIND_ONLY = "--hsm-find-only"
"""As the command after :func:`run_prefix`: print the package manager found and exit (``validate``)."""

_USUAL_INSTALLS = (
    "$HOME/miniforge3",
    "$HOME/miniconda3",
    "$HOME/anaconda3",
    "$HOME/mambaforge",
    "$HOME/.miniconda3",
    "$HOME/micromamba",
    "/opt/conda",
    "/opt/miniforge3",
    "/opt/miniconda3",
    "/opt/anaconda3",
)
_USUAL_BINARIES = (
    "$HOME/.local/bin/micromamba",
    "$HOME/bin/micromamba",
    "/usr/local/bin/micromamba",
    "/usr/bin/micromamba",
)

_FIND_AND_RUN = f"""
env_name=$1 root=$2
shift 2
case $root in '~') root=$HOME ;; '~/'*) root=$HOME/${{root#'~/'}} ;; esac
found= searched=
try() {{
  for c in "$@"; do
    [ -n "$found" ] && return
    [ -n "$c" ] || continue
    searched="$searched${{searched:+, }}$c"
    if [ -f "$c" ] && [ -x "$c" ]; then found=$c; fi
  done
}}
in_folders() {{
  for d in "$@"; do try "$d/bin/conda" "$d/condabin/conda" "$d/bin/mamba" "$d/bin/micromamba"; done
}}
[ -n "$root" ] && in_folders "$root"
try "${{CONDA_EXE:-}}" "${{MAMBA_EXE:-}}"
for name in conda mamba micromamba; do
  [ -n "$found" ] || try "$(command -v "$name" 2>/dev/null)"
done
searched="$searched${{searched:+, }}conda/mamba/micromamba on PATH"
in_folders {" ".join(f'"{folder}"' for folder in _USUAL_INSTALLS)}
try {" ".join(f'"{binary}"' for binary in _USUAL_BINARIES)}
if [ -z "$found" ]; then
  echo "{MISSING_MARK} '$env_name' on $(hostname): no conda, mamba or micromamba found;" \\
    "searched: $searched. Set conda_root to the installation folder (paths.conda_root," \\
    "or a remote's conda_root), or export CONDA_EXE." >&2
  exit 127
fi
if [ "${{1:-}}" = {FIND_ONLY} ]; then echo "$found"; exit 0; fi
case $env_name in */*) which=-p ;; *) which=-n ;; esac
case ${{found##*/}} in
  conda) exec "$found" run --no-capture-output "$which" "$env_name" "$@" ;;
esac
if [ -n "$root" ]; then exec "$found" run -r "$root" "$which" "$env_name" "$@"; fi
exec "$found" run "$which" "$env_name" "$@"
"""

_NAME = "hsm-conda"


def run_prefix(env: str, root: str | None = None) -> list[str]:
    """The argv prefix running what follows it in environment ``env`` (a name, or a path with a /)."""
    return ["sh", "-c", _FIND_AND_RUN, _NAME, env, root or ""]


def describe(argv: list[str]) -> str | None:
    """A short name for a :func:`run_prefix` argv (for messages), None for any other argv."""
    if len(argv) >= 6 and argv[:2] == ["sh", "-c"] and argv[3] == _NAME:
        rest = " ".join(argv[6:])
        root = f" (conda_root {argv[5]})" if argv[5] else ""
        return f"conda_env {argv[4]}{root}" + (f": {rest}" if rest else "")
    return None


def readable(argv: list[str]) -> list[str]:
    """``argv`` with a :func:`run_prefix` shown as the ``conda run -n ENV`` it amounts to (display only)."""
    if describe(argv) is None:
        return argv
    return ["conda", "run", "-p" if "/" in argv[4] else "-n", argv[4], *argv[6:]]


def missing_here(prefix_argv: list[str], timeout_s: float = 20) -> str | None:
    """Why a :func:`run_prefix` finds no package manager on this machine (None: one is there)."""
    import subprocess

    try:
        done = subprocess.run(
            [*prefix_argv[:6], FIND_ONLY], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not look for conda: {exc}"
    return None if done.returncode == 0 else done.stderr.strip()
