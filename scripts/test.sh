#!/usr/bin/env bash
# Set up everything (scripts/setup.sh) and run the whole test suite:
# jobrunner's unit and integration tests (real beanstalkd, HTTP servers,
# worker processes, rsync, headless Chromium), each plugin distribution's
# tests, then ruff. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
pytest_args=(tests)
for dir in plugins/*/ examples/plugin-template/; do
  [ -d "$dir/tests" ] && pytest_args+=("${dir%/}/tests")
done
status=0
python -m pytest -p no:cacheprovider "${pytest_args[@]}" "$@" || status=$?
echo "test: ruff check"
ruff check jobrunner tests plugins examples bench scripts || status=1
exit $status
