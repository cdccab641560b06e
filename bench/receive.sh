#!/usr/bin/env bash
# What wal-receive costs commits (#33): pgbench's throughput and latency with no receiver, an asynchronous one, and a
# synchronous one listed in synchronous_standby_names, on S3 (Ceph RGW) and Azure (Azurite) over HTTPS with the
# certificate verified, beside the store's own round trip (N conditional puts of an 8 KiB piece, one after another:
# the floor of a synchronous commit). archive_command runs in every row. Run as root on Debian 12, nothing else running.
#   bench/receive.sh
# Env: CLOUDARCHIVE_BIN  published binary (default: publish to /tmp/cloudarchive-bench/bin)
#      BENCH_DIR work directory (default /tmp/cloudarchive-bench/receive; wiped at start)
#      SECONDS_PER_ROW pgbench -T (default 30)   CLIENTS pgbench -c (default 4)   STORES (default "s3 azure")
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(dirname "$HERE")
W=${BENCH_DIR:-/tmp/cloudarchive-bench/receive}; T=${SECONDS_PER_ROW:-30}; C=${CLIENTS:-4}; PORT=55490
PG_BIN=/usr/lib/postgresql/15/bin; PGDIR=$W/pg; TEST_DIR=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}
log() { echo "receive: $*" >&2; }
as_pg() { (cd "$W" && runuser -u postgres -- env PATH="$PG_BIN:$PATH" "$@"); }
sql() { as_pg psql -X -q -At -h "$PGDIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "$1"; }
# Whatever way the run ends, no cluster or receiver is left behind (a left cluster would hold the port for the next run).
cleanup() { pkill -TERM -f "cloudarchive wal-receive --config $W/" 2>/dev/null || true
  [ -f "$PGDIR/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PGDIR" -m immediate stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
[ -d "$W" ] && cleanup
rm -rf "$W"; mkdir -p "$W"; chown postgres: "$W"
BIN=${CLOUDARCHIVE_BIN:-}
if [ -z "$BIN" ]; then
  dotnet publish "$ROOT/src/CloudArchive.Cli" -c Release -o /tmp/cloudarchive-bench/bin --nologo -v quiet >/dev/null
  BIN=/tmp/cloudarchive-bench/bin/cloudarchive; chmod -R a+rX /tmp/cloudarchive-bench/bin
fi
dotnet build "$HERE/CloudArchive.Bench" -c Release --nologo -v quiet >/dev/null
BENCHTOOL="dotnet $HERE/CloudArchive.Bench/bin/Release/net10.0/CloudArchive.Bench.dll"
set -a; . "$TEST_DIR/s3.env"; . "$TEST_DIR/azure.env"; set +a
chmod a+r "$CLOUDARCHIVE_TEST_CA_FILE"
RUN=receive$(date +%s)
"$ROOT/infra/azure-container.sh" "$RUN" >/dev/null
declare -A URL=([s3]="s3://$CLOUDARCHIVE_TEST_S3_BUCKET/$RUN" [azure]="azure://$RUN/archive")
echo "| store | receiver | tps | latency avg (ms) | store round trip median / p95 (ms) |"
echo "| --- | --- | --- | --- | --- |"
for kind in ${STORES:-s3 azure}; do
  CONF=$W/$kind.env
  { echo "CLOUDARCHIVE_STORE=${URL[$kind]}"
    if [ "$kind" = s3 ]; then echo "CLOUDARCHIVE_S3_ENDPOINT=$CLOUDARCHIVE_TEST_S3_ENDPOINT"; echo "CLOUDARCHIVE_S3_REGION=us-east-1"
      echo "CLOUDARCHIVE_S3_CA_FILE=$CLOUDARCHIVE_TEST_CA_FILE"; echo "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"; echo "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
    else echo "AZURE_STORAGE_CONNECTION_STRING=$CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING"; echo "CLOUDARCHIVE_AZURE_CA_FILE=$CLOUDARCHIVE_TEST_CA_FILE"; fi
  } > "$CONF"; chown postgres: "$CONF"; chmod 600 "$CONF"
  if [ "$kind" = s3 ]; then STORE_ENV=(CLOUDARCHIVE_S3_ENDPOINT="$CLOUDARCHIVE_TEST_S3_ENDPOINT" CLOUDARCHIVE_S3_REGION=us-east-1 CLOUDARCHIVE_S3_CA_FILE="$CLOUDARCHIVE_TEST_CA_FILE")
  else STORE_ENV=(AZURE_STORAGE_CONNECTION_STRING="$CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING" CLOUDARCHIVE_AZURE_CA_FILE="$CLOUDARCHIVE_TEST_CA_FILE"); fi
  rtt=$(env "${STORE_ENV[@]}" $BENCHTOOL put-latency "${URL[$kind]}" 200 | sed 's/.*median \([0-9.]*\) ms, p95 \([0-9.]*\) ms/\1 \/ \2/')
  cleanup; rm -rf "$PGDIR"; as_pg "$PG_BIN/initdb" -D "$PGDIR" -U postgres -A trust --no-sync >/dev/null
  cat >> "$PGDIR/postgresql.conf" <<CONF
port = $PORT
unix_socket_directories = '$PGDIR'
listen_addresses = ''
archive_mode = on
archive_command = '$BIN wal-push %p --config $CONF'
CONF
  as_pg "$PG_BIN/pg_ctl" -D "$PGDIR" -l "$W/server.log" -w start >/dev/null
  as_pg "$BIN" store-init --config "$CONF" >/dev/null
  as_pg pgbench -q -i -s 10 -h "$PGDIR" -p "$PORT" -U postgres postgres >/dev/null 2>&1
  for mode in none async sync; do
    pid=
    if [ "$mode" != none ]; then
      as_pg "$BIN" wal-receive --config "$CONF" --dbname "host=$PGDIR port=$PORT user=postgres" --create-slot --flush-interval 1 \
        $([ "$mode" = sync ] && echo --synchronous) > "$W/receiver-$kind-$mode.log" 2>&1 &
      pid=$!
      for _ in $(seq 100); do [ "$(sql "select count(*) from pg_stat_replication where flush_lsn is not null")" = 1 ] && break; sleep 0.2; done
    fi
    if [ "$mode" = sync ]; then sql "alter system set synchronous_standby_names = 'cloudarchive'" >/dev/null; sql "select pg_reload_conf()" >/dev/null; sleep 1
      [ "$(sql "select sync_state from pg_stat_replication")" = sync ] || { log "the receiver is not synchronous"; exit 1; }; fi
    out=$(as_pg pgbench -T "$T" -c "$C" -j 2 -h "$PGDIR" -p "$PORT" -U postgres postgres 2>&1)
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1); lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    echo "| $kind | $mode | $tps | $lat | $rtt |"
    if [ "$mode" = sync ]; then sql "alter system reset synchronous_standby_names" >/dev/null; sql "select pg_reload_conf()" >/dev/null; fi
    # SIGTERM to cloudarchive itself (runuser does not pass it on), then wait for it to store what it holds and exit.
    if [ -n "$pid" ]; then pkill -TERM -f "cloudarchive wal-receive --config $CONF" || true; wait "$pid" || true; fi
  done
  as_pg "$PG_BIN/pg_ctl" -D "$PGDIR" -m fast stop >/dev/null
done
