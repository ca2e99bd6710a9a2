#!/usr/bin/env bash
# Set up everything (scripts/setup.sh), then run the main job end to end on
# this machine: a real beanstalkd on loopback, a results server and an input
# server (`jobrunner serve`), a worker (`jobrunner work`), and one job
# submitted with `jobrunner submit`. Prints the result URL and the result.
# Everything it starts is stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec python scripts/demo.py "$@"
