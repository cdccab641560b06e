#!/usr/bin/env bash
# Stop the Azurite that azurite-start.sh started: only the pid in its pid file, and only if
# /proc/PID/cmdline shows it is our azurite blob server (SIGTERM, SIGKILL after 5 s); then delete
# the data dir and azure.env. Not running -> exits 0.
# Env: CLOUDARCHIVE_TEST_DIR (default /tmp/cloudarchive-test; data in its azurite/),
#      KEEP=1 keeps the data dir (blobs, log) for post-mortems.
set -euo pipefail

BASE=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}
DIR=$BASE/azurite
running() { [ -n "$(tr -d '\0' 2>/dev/null <"/proc/$1/cmdline")" ]; }  # gone or zombie -> false
stopped=0
if [ -f "$DIR/azurite.pid" ]; then
  pid=$(cat "$DIR/azurite.pid")
  cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)
  if [[ $cmd == *azurite/dist/src/blob/main.js* && $cmd == *" --location $DIR "* ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -KILL "$pid" 2>/dev/null
    for _ in $(seq 1 50); do running "$pid" || break; sleep 0.1; done
    running "$pid" && { echo "azurite-stop: ERROR: pid $pid still alive" >&2; exit 1; }
    stopped=1
  fi
  rm -f "$DIR/azurite.pid"
fi
rm -f "$BASE/azure.env"
[ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
echo "azurite-stop: stopped $stopped process(es)" >&2
