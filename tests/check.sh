#!/usr/bin/env bash
# What CI checks after installing: formatting, lint, then the test command it is given (README:
# `bash tests/check.sh pytest -q`) under coverage, every Python process the tests start measured
# (the engine, the runner, cluster jobs), and the total against [tool.coverage.report] fail_under.
set -uo pipefail
[ "${1:-}" = pytest ] || { echo "usage: bash tests/check.sh pytest [PYTEST ARGS]"; exit 2; }
cd "$(dirname "$0")/.."
if ! { ruff format --check --quiet . && ruff check --quiet .; }; then
    echo "ruff: formatting or lint errors (fix: ruff format . && ruff check --fix .)"
    exit 1
fi
export HSM_COVERAGE_DIR="$PWD"
rm -f .coverage .coverage.*
coverage run -m "$@"
status=$?
coverage combine -q 2>/dev/null
# What is left are the data files of processes the tests killed with SIGKILL mid-write.
left=$(find . -maxdepth 1 -name '.coverage.*' | wc -l)
rm -f .coverage.*
[ "$left" -gt 0 ] && echo "coverage: skipped $left unreadable data file(s) of killed processes"
echo "least covered files:"
coverage report --sort=cover | sed -n '3,14p'
total=$(coverage report --format=total)
echo "coverage: ${total}% of lines (subprocesses included)"
if ! coverage report --format=total > /dev/null; then
    echo "coverage: ${total}% is below fail_under in pyproject.toml"
    [ "$status" -eq 0 ] && status=2
fi
exit "$status"
