#!/usr/bin/env bash
# Stop the S3 test server that s3-start.sh started: SIGKILL only the pids in its own pid files
# (after checking /proc/PID/cmdline names a ceph daemon), wait for them to exit, then delete the
# cluster dir and s3.env. SIGKILL because the cluster is throwaway (memstore) and radosgw 16.2
# lingers for seconds on SIGTERM. Not running -> exits 0.
# Env: CLOUDARCHIVE_TEST_DIR (default /tmp/cloudarchive-test; cluster in its rgw/),
#      KEEP=1 keeps the cluster dir (logs) for post-mortems.
set -euo pipefail

BASE=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}
DIR=$BASE/rgw
pids=()
running() { [ -n "$(tr -d '\0' 2>/dev/null <"/proc/$1/cmdline")" ]; }  # gone or zombie -> false
for name in client.rgw.a osd.0 mon.a; do
  pf=$DIR/run/$name.pid
  [ -f "$pf" ] || continue
  pid=$(cat "$pf")
  if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qE '^([^ ]*/)?(ceph-mon|ceph-osd|radosgw) '; then
    kill -KILL "$pid" 2>/dev/null && pids+=("$pid")
  fi
done
for _ in $(seq 1 100); do
  left=0; for p in "${pids[@]}"; do running "$p" && left=1; done
  [ "$left" = 0 ] && break; sleep 0.1
done
[ "$left" = 0 ] || { echo "s3-stop: ERROR: pids ${pids[*]} still alive after 10 s" >&2; exit 1; }
rm -f "$BASE/s3.env"
[ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
echo "s3-stop: stopped ${#pids[@]} daemon(s)" >&2
