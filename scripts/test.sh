#!/usr/bin/env bash
# Sets up .venv with the project and its test extras, then runs the test suite in two phases:
#   1. every test not marked `serial`, on several pytest-xdist workers (ALERTS_TEST_WORKERS,
#      default 3; on 2 cores this phase keeps both busy, and 4 workers were slower than 3);
#   2. the tests marked `serial` (wall-clock bounds, racing processes, server-wide settings),
#      alone in one process, so nothing else competes with them for the machine.
# Arguments go to pytest in both phases (e.g. scripts/test.sh -k sync, scripts/test.sh -m slow);
# a phase that selects no test is skipped quietly. The exit code is non-zero if either phase
# failed. ALERTS_TEST_WORKERS=0 runs everything in one process, in collection order (the phases'
# order does not apply then, nor does `serial` isolate anything).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

workers=${ALERTS_TEST_WORKERS:-3}
if [ "$workers" = 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi

no_tests=5  # pytest's exit code when a phase selects nothing
parallel=0
.venv/bin/python -m pytest -n "$workers" --dist worksteal --phase parallel "$@" || parallel=$?
echo "== serial phase: tests marked serial, one at a time =="
serial=0
.venv/bin/python -m pytest -p no:xdist --phase serial "$@" || serial=$?

if [ "$parallel" = "$no_tests" ] && [ "$serial" = "$no_tests" ]; then
    exit "$no_tests"
fi
[ "$parallel" = "$no_tests" ] && parallel=0
[ "$serial" = "$no_tests" ] && serial=0
if [ "$parallel" != 0 ]; then
    echo "the parallel phase failed (exit code $parallel)" >&2
    exit "$parallel"
fi
exit "$serial"
