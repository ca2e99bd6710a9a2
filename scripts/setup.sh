#!/usr/bin/env bash
# Set up a development machine (Debian/Ubuntu): system packages, a virtualenv
# in .venv, jobrunner and every plugin distribution in plugins/.
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v beanstalkd >/dev/null 2>&1 || need+=(beanstalkd)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)  # checks the example units
[ -x /usr/sbin/varnishd ] || command -v varnishd >/dev/null 2>&1 || need+=(varnish)  # examples/varnish
python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "${JOBRUNNER_BROWSER_TESTS:-1}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
fi
# promtool (in Debian's prometheus package, ~100 MB) checks the worker's metric names.
if [ "${JOBRUNNER_PROMTOOL_TESTS:-1}" = 1 ]; then
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Debian's small nginx build where it exists (nginx-light), the full one elsewhere.
  for i in "${!need[@]}"; do
    if [ "${need[i]}" = nginx ] && apt-cache show nginx-light >/dev/null 2>&1; then
      need[i]=nginx-light
    fi
  done
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian package starts a system beanstalkd on port 11300; our scripts and
# tests start their own on free ports, so that one is not needed (nor harmful).

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating virtualenv .venv"
  python3 -m venv .venv
fi
# pip's and setuptools' chatter goes to a log; it is shown when something fails.
log=.venv/setup.log
pip_install() {
  if ! .venv/bin/python -m pip install -q "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip install failed (log: $log)" >&2
    exit 1
  fi
}
pip_install --upgrade pip
plugins=()
for dir in plugins/*/ examples/plugin-template/; do
  [ -f "$dir/setup.cfg" ] || continue
  # Extras: test, and realdata (the real demand data the plugins' validation tests
  # and the example portal's browser test use).
  extras=$(grep -oE '^(test|realdata) *=' "$dir/setup.cfg" | tr -d ' =' | paste -sd, - || true)
  if [ -n "$extras" ]; then plugins+=(-e "${dir%/}[$extras]"); else plugins+=(-e "${dir%/}"); fi
done
# The distribution was called "jobrunner" before 0.2 (a name that belongs to
# another project on the package index); an old editable install would register
# every entry point twice.
if .venv/bin/python -m pip show -q jobrunner >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall -y -q jobrunner >"$log" 2>&1 || true
fi
echo "setup: installing jobrunner, the plugins and the plugin template into .venv"
pip_install -e ".[worker,serve,dashboard,status,timeseries,test,dev,docs]" "${plugins[@]}"
