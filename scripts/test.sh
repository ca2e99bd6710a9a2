#!/usr/bin/env bash
# Set up everything (scripts/setup.sh) and run the tests:
#  1. the whole suite in .venv — jobrunner's unit and integration tests (real
#     beanstalkd, HTTP servers, worker processes, rsync, headless Chromium) and
#     each plugin distribution's tests;
#  2. the fast suite (unit tests, the plugins' tests without real data) on every
#     other Python 3.10-3.13 found (pyenv's, or python3.X on PATH), through tox;
#  3. builds the core's and every plugin's sdist and wheel and checks them
#     (twine check, check-wheel-contents);
#  4. ruff and mypy.
# Under CI (CI=true, as .ci/run sets it) a missing Python 3.10-3.13 is a failure;
# elsewhere it is reported and skipped. Extra arguments go to the whole-suite pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
SUPPORTED=(3.10 3.11 3.12 3.13)
in_ci=false
case "${CI:-}" in 1 | true | yes | TRUE | True) in_ci=true ;; esac

pytest_args=(tests)
for dir in plugins/*/ examples/plugin-template/; do
  [ -d "$dir/tests" ] && pytest_args+=("${dir%/}/tests")
done
status=0
venv_version=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
echo "test: whole suite on Python $venv_version (.venv)"
python -m pytest -p no:cacheprovider --durations=10 "${pytest_args[@]}" "$@" || status=1

# An interpreter for version $1: pyenv's newest patch release, else python$1 on PATH.
find_python() {
  local candidate
  for candidate in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/python"$1" 2>/dev/null | sort -V -r) \
    $(command -v "python$1" 2>/dev/null || true); do
    if "$candidate" -c 'import sys' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}
envs=() found=() missing=()
for version in "${SUPPORTED[@]}"; do
  [ "$version" = "$venv_version" ] && continue
  if interpreter=$(find_python "$version"); then
    envs+=("py${version/./}-fast")
    found+=("$interpreter")
  else
    missing+=("$version")
  fi
done
if [ ${#envs[@]} -gt 0 ]; then
  echo "test: fast suite on ${envs[*]} (tox)"
  # tox keeps its environments in .tox and reinstalls only when tox.ini changes.
  python -m tox run-parallel -q --parallel-no-spinner --skip-missing-interpreters false \
    -e "$(IFS=,; echo "${envs[*]}")" --discover "${found[@]}" || status=1
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "test: Python ${missing[*]} not found (install them with pyenv to test there)"
  $in_ci && { echo "test: CI tests every supported Python: failing" >&2; status=1; }
fi

echo "test: build every distribution; twine check, check-wheel-contents"
dist=$(mktemp -d)
for dir in . plugins/*/ examples/plugin-template/; do
  [ -f "$dir/setup.cfg" ] || continue
  if ! python -m build --no-isolation -o "$dist" "$dir" >"$dist/build.log" 2>&1; then
    cat "$dist/build.log" >&2
    status=1
  fi
done
twine check --strict "$dist"/*.whl "$dist"/*.tar.gz || status=1
check-wheel-contents "$dist"/*.whl || status=1
rm -rf "$dist"

echo "test: ruff check"
ruff check jobrunner tests plugins examples bench scripts docs || status=1
echo "test: mypy"
mypy jobrunner || status=1
exit $status
