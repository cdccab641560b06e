#!/usr/bin/env bash
# The main job end to end against the embedded default (a local directory store): a throwaway
# PostgreSQL 15 cluster archives its WAL with `cloudarchive wal-push`, is backed up with
# `cloudarchive backup-push`, writes data, is thrown away, and is recovered to a point in time with
# `cloudarchive restore` (which sets restore_command to `cloudarchive wal-fetch`).
# Env: CLOUDARCHIVE_DEMO_DIR (default /tmp/cloudarchive-demo; wiped at start).
#      DEMO_CLOUDARCHIVE_BIN: the cloudarchive to run, e.g. /usr/bin/cloudarchive from the package
#        (packaging/build-deb.sh); default: publish one from this repository into $DIR/bin.
#      DEMO_CLOUDARCHIVE_PORT (default 54321): the first cluster's port; the recovered one listens on the next.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
DIR=${CLOUDARCHIVE_DEMO_DIR:-/tmp/cloudarchive-demo}
PORT=${DEMO_CLOUDARCHIVE_PORT:-54321}
PG="$HERE/pg-cluster.sh"
say() { printf '\n== %s\n' "$*"; }

"$HERE/install.sh" --demo

"$PG" stop "$DIR/source" immediate >/dev/null 2>&1 || true
"$PG" stop "$DIR/restored" immediate >/dev/null 2>&1 || true
rm -rf "$DIR"; mkdir -p "$DIR"; chmod 0777 "$DIR"

if [ -n "${DEMO_CLOUDARCHIVE_BIN:-}" ]; then
  CA=$DEMO_CLOUDARCHIVE_BIN
  say "using $CA ($("$CA" --version))"
  "$PG" as-postgres test -x "$CA" || { echo "demo: FAILED: user postgres cannot execute $CA" >&2; exit 1; }
else
  say "publishing cloudarchive to $DIR/bin"
  DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet publish "$REPO/src/CloudArchive.Cli" -c Release -o "$DIR/bin" --nologo -v quiet
  chmod -R a+rX "$DIR/bin"
  CA="$DIR/bin/cloudarchive"
fi
export CLOUDARCHIVE_STORE="file://$DIR/store"
# As the cluster's user, like every command that writes to the store (root is refused): only store-init makes a store,
# no push into an unmarked directory (an unmounted volume) is taken.
"$PG" as-postgres "$CA" store-init

say "starting a PostgreSQL 15 cluster archiving to $CLOUDARCHIVE_STORE"
"$PG" init "$DIR/source" "$PORT"
cat >>"$DIR/source/data/postgresql.conf" <<CONF
archive_mode = on
archive_command = '$CA wal-push %p --store $CLOUDARCHIVE_STORE'
CONF
"$PG" start "$DIR/source"
sql() { "$PG" as-postgres psql -X -q -At -v ON_ERROR_STOP=1 -h "$1" -p "$2" -d postgres -c "$3"; }

sql "$DIR/source" "$PORT" "create table orders (id int primary key, item text, placed timestamptz default now())"
"$PG" as-postgres pgbench -h "$DIR/source" -p "$PORT" -i -q -s 2 postgres >/dev/null 2>&1

say "base backup with cloudarchive backup-push"
"$PG" as-postgres env PGHOST="$DIR/source" PGPORT="$PORT" "$CA" backup-push --store "$CLOUDARCHIVE_STORE"

sql "$DIR/source" "$PORT" "insert into orders (id, item) select g, 'wanted #' || g from generate_series(1, 1000) g"
target=$(sql "$DIR/source" "$PORT" "select now()")
echo "1000 wanted orders written; recovery target time: $target"
sleep 1.1
sql "$DIR/source" "$PORT" "insert into orders (id, item) select g, 'mistake #' || g from generate_series(1001, 1500) g; delete from orders where id <= 100"
echo "then a mistake: 500 unwanted orders added and 100 wanted ones deleted (now $(sql "$DIR/source" "$PORT" "select count(*) from orders") rows)"
sql "$DIR/source" "$PORT" "select pg_switch_wal()" >/dev/null
for _ in $(seq 1 300); do
  [ "$(sql "$DIR/source" "$PORT" "select count(*) from pg_ls_dir('pg_wal/archive_status') f where f like '%.ready'")" = 0 ] && break; sleep 0.1
done

say "the archive"
"$PG" as-postgres "$CA" status --store "$CLOUDARCHIVE_STORE"

say "throwing the cluster away"
"$PG" stop "$DIR/source"
rm -rf "$DIR/source/data"

say "restoring to $target"
mkdir -p "$DIR/restored" && chmod 0777 "$DIR/restored"
"$PG" as-postgres "$CA" restore --store "$CLOUDARCHIVE_STORE" --to "$DIR/restored/data" --target-time "$target" --target-action promote
cat >>"$DIR/restored/data/postgresql.conf" <<CONF
port = $((PORT + 1))
unix_socket_directories = '$DIR/restored'
archive_mode = off
CONF
"$PG" start "$DIR/restored"
for _ in $(seq 1 600); do
  [ "$(sql "$DIR/restored" "$((PORT + 1))" "select pg_is_in_recovery()")" = f ] && break; sleep 0.1
done
grep -E "restored log file|recovery stopping|consistent recovery state|selected new timeline" "$DIR/restored/server.log" | sed 's/^/  server log: /' | tail -n 8

rows=$(sql "$DIR/restored" "$((PORT + 1))" "select count(*) filter (where item like 'wanted%') || ' wanted, ' || count(*) filter (where item like 'mistake%') || ' mistaken' from orders")
echo
echo "recovered cluster has $rows orders (expected: 1000 wanted, 0 mistaken)"
"$PG" stop "$DIR/restored"
[ "$rows" = "1000 wanted, 0 mistaken" ] || { echo "demo: FAILED: recovered rows differ" >&2; exit 1; }
echo "demo: point-in-time recovery from $CLOUDARCHIVE_STORE succeeded (files in $DIR)"
