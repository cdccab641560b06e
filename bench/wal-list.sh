#!/usr/bin/env bash
# wal-list on a large archive: writes manifest records for N segments (default 100,000, one gap) through
# the real store code, then times `cloudarchive wal-list` (3 runs, wall time and peak RSS).
# Usage: bench/wal-list.sh [STORE_URL] [N]   (default file:///tmp/cloudarchive-bench/wal-list-100k)
# Needs a published binary in $CLOUDARCHIVE_BIN (default /tmp/cloudarchive-test/bin/cloudarchive).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
STORE=${1:-file:///tmp/cloudarchive-bench/wal-list-100k}
N=${2:-100000}
BIN=${CLOUDARCHIVE_BIN:-/tmp/cloudarchive-test/bin/cloudarchive}
[ -x "$BIN" ] || { echo "wal-list.sh: no binary at $BIN (dotnet publish src/CloudArchive.Cli -c Release -o DIR)" >&2; exit 2; }
case "$STORE" in file://*) rm -rf "${STORE#file://}"; mkdir -p "${STORE#file://}";; esac
dotnet run -c Release --project "$HERE/CloudArchive.Bench" -- populate-wal-manifest "$STORE" "$N"
for _ in 1 2 3; do
  /usr/bin/time -f "wal-list of $N segments: %e s wall, %M KiB peak RSS" "$BIN" wal-list --store "$STORE" >/dev/null
done
