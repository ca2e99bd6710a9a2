#!/usr/bin/env bash
# Bring the example portal up on this machine with one command:
#   beanstalkd                    127.0.0.1:$BEANSTALK_PORT (default 11400)
#   inputs server (sensor data)   http://127.0.0.1:$INPUTS_PORT/   (jobrunner serve, default 8001)
#   results server (the worker's) http://127.0.0.1:$RESULTS_PORT/  (jobrunner serve, default 8002)
#   worker with the plugins       jobrunner work --base-url http://127.0.0.1:$RESULTS_PORT/
#   the portal                    http://127.0.0.1:$PORTAL_PORT/   (default 8000)
# Open the portal in a browser; Ctrl-C stops everything.
#
# It runs scripts/setup.sh first (system packages, .venv, jobrunner and the
# plugins); JOBRUNNER_SKIP_SETUP=1 skips that, PYTHON picks another interpreter.
# Files (sensor inputs, results, logs) go to $PORTAL_WORKDIR (a new temporary
# directory by default), kept after exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "${JOBRUNNER_SKIP_SETUP:-0}" = 1 ] || scripts/setup.sh
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
BEANSTALK_PORT=${BEANSTALK_PORT:-11400}
INPUTS_PORT=${INPUTS_PORT:-8001}
RESULTS_PORT=${RESULTS_PORT:-8002}
PORTAL_PORT=${PORTAL_PORT:-8000}
WORK=${PORTAL_WORKDIR:-$(mktemp -d -t jobrunner-portal-XXXXXX)}
mkdir -p "$WORK/inputs" "$WORK/results" "$WORK/binlog"
BEANSTALKD=$(command -v beanstalkd || echo /usr/bin/beanstalkd)

pids=()
stop() {
  trap - EXIT
  echo
  echo "portal: stopping"
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  wait || true
  echo "portal: stopped; files and logs are in $WORK"
}
trap stop EXIT
# Ctrl-C or SIGTERM: exit, and the EXIT trap stops everything. Every service runs
# in the background (where a script's children ignore SIGINT), so the script
# itself always takes the signal at once, even during start-up.
trap 'exit 130' INT TERM

start() { # start NAME COMMAND...: run in the background, output to $WORK/NAME.log
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  pids+=($!)
}

wait_port() {
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1 &
    wait $!
  done
  echo "portal: nothing listens on port $1; see the logs in $WORK" >&2
  exit 1
}

# Browsers load the sensor data and the results from the portal's pages: both
# servers allow the portal's origin (by IP address and by name).
cors=(--cors-origin "http://127.0.0.1:$PORTAL_PORT" --cors-origin "http://localhost:$PORTAL_PORT")

for inputs in sensors households; do
  start "$inputs" "$PYTHON" "examples/portal/$inputs.py" --inputs-dir "$WORK/inputs"
  if ! wait "${pids[-1]}"; then
    cat "$WORK/$inputs.log" >&2
    exit 1
  fi
  unset 'pids[-1]'
done
start beanstalkd "$BEANSTALKD" -l 127.0.0.1 -p "$BEANSTALK_PORT" -b "$WORK/binlog"
start inputs "$PYTHON" -m jobrunner serve --results-dir "$WORK/inputs" --port "$INPUTS_PORT" "${cors[@]}"
start results "$PYTHON" -m jobrunner serve --results-dir "$WORK/results" --port "$RESULTS_PORT" "${cors[@]}"
wait_port "$BEANSTALK_PORT"
start worker "$PYTHON" -m jobrunner work --beanstalk "127.0.0.1:$BEANSTALK_PORT" \
  --results-dir "$WORK/results" --base-url "http://127.0.0.1:$RESULTS_PORT/" \
  --allow-host 127.0.0.1 --concurrency 2
start portal "$PYTHON" examples/portal/portal.py --port "$PORTAL_PORT" \
  --beanstalk "127.0.0.1:$BEANSTALK_PORT" \
  --inputs-url "http://127.0.0.1:$INPUTS_PORT/" --results-url "http://127.0.0.1:$RESULTS_PORT/"
wait_port "$INPUTS_PORT"
wait_port "$RESULTS_PORT"
wait_port "$PORTAL_PORT"

echo "portal: open http://127.0.0.1:$PORTAL_PORT/   (Ctrl-C stops everything)"
echo "portal: results from http://127.0.0.1:$RESULTS_PORT/, sensor data from http://127.0.0.1:$INPUTS_PORT/"
echo "portal: logs in $WORK/*.log"
# Run until Ctrl-C, or until one of the services ends on its own.
wait -n "${pids[@]}" || true
echo "portal: a service stopped; see the logs in $WORK" >&2
exit 1
