#!/usr/bin/env bash
# Sets up .venv with the project and its test extras, then runs the test suite.
# Arguments go to pytest (e.g. scripts/test.sh -k sync, scripts/test.sh -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
exec .venv/bin/python -m pytest "$@"
