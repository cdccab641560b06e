#!/usr/bin/env bash
# Throwaway PostgreSQL clusters (15 unless PG_BIN names another major's binaries) for the tests and the demo,
# in a directory of their own.
# PostgreSQL refuses to run as root: when run as root, every command runs as user postgres.
#   pg-cluster.sh init DIR PORT [ARG...]  initdb (with ARGs, e.g. --wal-segsize 1) into DIR/data; socket in DIR,
#                                       listens on 127.0.0.1:PORT
#   pg-cluster.sh start DIR             start (waits until it accepts connections or fails with the log)
#   pg-cluster.sh stop DIR [MODE]       stop (fast by default; immediate for a crash)
#   pg-cluster.sh as-postgres CMD ...   run any command as the cluster owner
# Env: PG_BIN (default /usr/lib/postgresql/15/bin): initdb, pg_ctl and postgres; client programs not found
#      there (psql, pgbench for the npm builds of infra/pg-versions.sh) come from PATH.
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- env PATH="$PG_BIN:$PATH" "$@"; else env PATH="$PG_BIN:$PATH" "$@"; fi
}

cmd=${1:-}; shift || true
case "$cmd" in
  init)
    dir=$1 port=$2
    shift 2
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_pg initdb -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 "$@" >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
# --- throwaway test cluster (infra/pg-cluster.sh)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 5
shared_buffers = 32MB
fsync = off
full_page_writes = on
log_line_prefix = '%m [%p] '
CONF
    ;;
  start)
    dir=$1
    as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 120 start >/dev/null \
      || { echo "pg-cluster: server in $dir did not start; last lines of its log:" >&2; tail -n 30 "$dir/server.log" >&2; exit 1; }
    ;;
  stop)
    dir=$1 mode=${2:-fast}
    as_pg pg_ctl -D "$dir/data" -m "$mode" -w -t 120 stop >/dev/null
    ;;
  as-postgres)
    as_pg "$@"
    ;;
  *)
    echo "usage: pg-cluster.sh init DIR PORT [INITDB_ARG...] | start DIR | stop DIR [fast|immediate] | as-postgres CMD..." >&2
    exit 2
    ;;
esac
