#!/usr/bin/env bash
# Set up everything (scripts/setup.sh) and run the whole test suite: lint,
# jobrunner's unit and integration tests (real beanstalkd, HTTP servers,
# worker processes, rsync) and each plugin distribution's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "test: ruff"
ruff check jobrunner tests plugins examples bench
echo "test: pytest"
pytest_args=(tests)
for dir in plugins/*/ examples/plugin-template/; do
  [ -d "$dir/tests" ] && pytest_args+=("$dir/tests")
done
python -m pytest -p no:cacheprovider "${pytest_args[@]}" "$@"
