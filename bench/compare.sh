#!/usr/bin/env bash
# Side-by-side benchmark: CloudArchive against pgBackRest (Debian's package), same WAL segments, same
# kind of store (a local directory on the same disk), zstd level 1. Prints one table with the ratio
# CloudArchive/pgBackRest measured in this run. Run as root on Debian 12 (PostgreSQL runs as postgres).
#   bench/compare.sh
# Env: CLOUDARCHIVE_BIN  published binary (default: publish to /tmp/cloudarchive-bench/bin)
#      BENCH_DIR  work directory (default /tmp/cloudarchive-bench/compare; wiped at start)
#      SEGMENTS   WAL segments per measurement (default 80)   SCALE  pgbench scale (default 15)
#      BENCH_PORT cluster port (default 55480)
#      PGBACKREST pgBackRest binary (default: Debian's pgbackrest; e.g. a 2.59.1 build, which uses the
#                 libraries Debian's package installs); its version heads the table
#      CLOUDARCHIVE_COMMIT  what to call the binary in the table (default: this checkout's HEAD)
#      STORE=s3   both tools use the S3 test server (Ceph RGW from infra/s3-start.sh) over HTTPS with the
#                 certificate verified: CloudArchive --s3-ca-file, pgBackRest repo1-storage-ca-file (default: local)
#      STORE=azure  both tools use Azurite (infra/azurite-start.sh) over HTTPS, certificate verified:
#                 CloudArchive --azure-ca-file, pgBackRest repo1-type=azure with repo1-azure-uri-style=path and
#                 repo1-storage-ca-file (a container per run: infra/azure-container.sh)
#      BENCH=incr incremental backups instead (#19): a cluster of SCALE (default 270, about 4 GiB), a full
#                 backup by each tool, 1 % of pgbench_accounts' rows updated in runs of 1,000 spread over the
#                 table, then an incremental (pgBackRest --type=incr; block incremental, repo1-bundle=y
#                 repo1-block=y, when its version has it: 2.46+), a full restore and a delta restore of the
#                 incremental onto the restored full backup (pgBackRest restore --delta)
#      BENCH=scale recovery time at scale (#34), local stores: for each size in SIZES (GiB, default "1 4 16") a pgbench
#                 cluster of that size (PG_MAJOR, default 18: incrementals from WAL summaries need 17+; other majors
#                 than 15 come from infra/pg-versions.sh), then with a cold page cache: a full backup by each tool and
#                 the backup floor (the data directory's files read and compressed by zstd -1, JOBS processes at a
#                 time, written and synced; on S3 also a floor with the upload: each batch's output PUT by curl); a full
#                 restore by each tool and the restore floor (CloudArchive's bundles decompressed by zstd -d, JOBS at a
#                 time, into files on the same file system, synced). At CHAIN_SIZE (default 4) also: 7 incrementals,
#                 each after 1 % of pgbench_accounts' rows changed, the restore of that chain and its floor (every
#                 bundle of the chain decompressed into files, synced), and a full backup of the same data and its restore. JOBS (default: the cores) is --jobs / process-max.
#      ENCRYPT=1  both tools encrypt: CloudArchive with a key from key-generate (AES-256-GCM), pgBackRest with
#                 repo1-cipher-type=aes-256-cbc and a passphrase
# Every timed command runs as user postgres; RSS is /usr/bin/time's %M (largest single process) and,
# for backup/restore, also the sum over the command's process session sampled every 100 ms.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(dirname "$HERE")
W=${BENCH_DIR:-/tmp/cloudarchive-bench/compare}
BENCH=${BENCH:-wal}
N=${SEGMENTS:-80}; SCALE=${SCALE:-$([ "$BENCH" = incr ] && echo 270 || echo 15)}; PORT=${BENCH_PORT:-55480}
PG_BIN=/usr/lib/postgresql/15/bin; PGDIR=$W/pg; SEGS=$W/segs
CLIENT_BIN=/usr/lib/postgresql/15/bin   # psql and pgbench (Debian's 15 speak to every major)
declare -A R    # results: R[key]=value
log() { echo "compare: $*" >&2; }
die() { echo "compare: ERROR: $*" >&2; exit 1; }
as_pg() { (cd "$W" && runuser -u postgres -- env PATH="$PG_BIN:$CLIENT_BIN:$PATH" "$@"); }
sql() { as_pg psql -X -q -At -h "$PGDIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "$1"; }
PGBACKREST=${PGBACKREST:-pgbackrest}
ENCRYPT=${ENCRYPT:-0}
STORE=${STORE:-local}
RUN=bench-$(date +%s)   # a fresh prefix in a cloud store for every run
GEN=""                  # and, in BENCH=scale, for every cluster size (a cluster's new system id refuses another's repo)
pgbr() { as_pg "$PGBACKREST" --config="$W/pgbackrest.conf" --stanza=bench "$@"; }
ca() { as_pg "$BIN" "$@"; }
fresh_dir() { rm -rf "$1"; mkdir -p "$1"; chown postgres: "$1"; chmod 700 "$1"; }

cleanup() {
  pkill -f -- "wal-agent --spool-dir $W/" 2>/dev/null || true
  [ -f "$PGDIR/data/postmaster.pid" ] && "$ROOT/infra/pg-cluster.sh" stop "$PGDIR" immediate 2>/dev/null || true
}

install_tools() {
  local need=()
  command -v pgbackrest >/dev/null || need+=(pgbackrest)  # also for the libraries a newer build in PGBACKREST uses
  command -v zstd >/dev/null || need+=(zstd)
  [ -x "$CLIENT_BIN/pgbench" ] || need+=(postgresql-15)
  if [ ${#need[@]} -gt 0 ]; then
    log "apt-get install ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if [ -z "${CLOUDARCHIVE_BIN:-}" ]; then
    log "publishing cloudarchive (NativeAOT) to /tmp/cloudarchive-bench/bin"
    timeout 900 dotnet publish "$ROOT/src/CloudArchive.Cli" -c Release -o /tmp/cloudarchive-bench/bin >/dev/null
    BIN=/tmp/cloudarchive-bench/bin/cloudarchive
  else BIN=$CLOUDARCHIVE_BIN; fi
  chmod a+rx "$BIN" "$(dirname "$BIN")"
  R[pgbr_version]=$("$PGBACKREST" version); R[ca_commit]=${CLOUDARCHIVE_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD)}
  if [ -n "${CLOUDARCHIVE_BIN:-}" ]; then R[ca_commit]+=" (binary given: $BIN)"
  elif [ -n "$(git -C "$ROOT" status --porcelain -- src)" ]; then R[ca_commit]+="+uncommitted changes"; fi
}

start_cluster() {
  fresh_dir "$W"; mkdir -p "$SEGS"; chown postgres: "$SEGS"
  "$ROOT/infra/pg-cluster.sh" init "$PGDIR" "$PORT"
  cat >>"$PGDIR/data/postgresql.conf" <<CONF
archive_mode = on
archive_command = 'test ! -f $SEGS/%f && cp %p $SEGS/%f'
max_wal_size = 4GB
${SUMMARIZE_CONF:-}
CONF
  "$ROOT/infra/pg-cluster.sh" start "$PGDIR"
}

write_pgbr_conf() {
  cat >"$W/pgbackrest.conf" <<CONF
[global]
log-path=$W/pgbr-log
lock-path=$W/pgbr-lock
spool-path=$W/pgbr-spool
log-level-console=warn
log-level-file=off
compress-type=zst
compress-level=1
process-max=2
start-fast=y
archive-timeout=120
repo1-retention-full=9999
[bench]
pg1-path=$PGDIR/data
pg1-port=$PORT
pg1-socket-path=$PGDIR
pg1-user=postgres
CONF
  if [ "$ENCRYPT" = 1 ]; then
    # pgBackRest's own repository encryption; the passphrase is a bench throwaway.
    sed -i "/^\[global\]/a repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=$(head -c 24 /dev/urandom | base64)" "$W/pgbackrest.conf"
    as_pg "$BIN" key-generate "$W/ca.key" >/dev/null
    export CLOUDARCHIVE_ENCRYPTION_KEY_FILE=$W/ca.key
    CA_KEY_ARG="--encryption-key-file $W/ca.key"
  fi
  if [ "$STORE" = azure ]; then
    local field; field() { printf '%s' "$CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING" | tr ';' '\n' | sed -n "s/^$1=//p"; }
    local blob; blob=$(field BlobEndpoint); blob=${blob#https://}; blob=${blob%%/*}
    cat >>"$W/pgbackrest.conf" <<CONF
repo1-type=azure
repo1-azure-container=$RUN
repo1-azure-account=$(field AccountName)
repo1-azure-key=$(field AccountKey)
repo1-azure-host=${blob%:*}
repo1-storage-port=${blob##*:}
repo1-azure-uri-style=path
repo1-storage-ca-file=$CLOUDARCHIVE_TEST_CA_FILE
repo1-storage-verify-tls=y
CONF
  fi
  if [ "$STORE" = s3 ]; then
    local hostport=${CLOUDARCHIVE_TEST_S3_ENDPOINT#https://}
    cat >>"$W/pgbackrest.conf" <<CONF
repo1-type=s3
repo1-s3-bucket=$CLOUDARCHIVE_TEST_S3_BUCKET
repo1-s3-endpoint=${hostport%:*}
repo1-storage-port=${hostport##*:}
repo1-s3-region=us-east-1
repo1-s3-uri-style=path
repo1-s3-key=$AWS_ACCESS_KEY_ID
repo1-s3-key-secret=$AWS_SECRET_ACCESS_KEY
repo1-storage-ca-file=$CLOUDARCHIVE_TEST_CA_FILE
repo1-storage-verify-tls=y
CONF
  fi
  chmod 644 "$W/pgbackrest.conf"
  for d in pgbr-log pgbr-lock pgbr-spool; do fresh_dir "$W/$d"; done
}

# A fresh pgBackRest repository (stanza-create needs the running cluster) / a fresh CloudArchive store
pgbr_repo() { [ "$STORE" = local ] && fresh_dir "$W/$1"; pgbr --repo1-path="$(repo "$1")" stanza-create >/dev/null || die "pgBackRest stanza-create in $(repo "$1") failed"; }
ca_store() {  # NAME: a fresh CloudArchive store URL, initialised (store-init)
  local url
  case $STORE in
    local) fresh_dir "$W/$1"; url="file://$W/$1" ;;
    s3) url="s3://$CLOUDARCHIVE_TEST_S3_BUCKET/$RUN/$1$GEN" ;;
    azure) url="azure://$RUN/$1$GEN" ;;
  esac
  as_pg "$BIN" store-init --store "$url" >/dev/null || die "store-init $url failed"
  echo "$url"
}
repo() { if [ "$STORE" = local ]; then echo "$W/$1"; else echo "/$RUN/$1$GEN"; fi; }  # NAME: a pgBackRest repo1-path
stored_mib() {  # DIR: MiB under a local store's directory; "-" for a cloud store
  if [ "$STORE" = local ]; then du -sm "$1" | cut -f1; else echo "-"; fi
}
ca_wal_count() { ca status --json --store "$1" | python3 -c 'import json,sys; print(sum(t["segments"] for t in json.load(sys.stdin)["timelines"]))'; }
pgbr_wal_count() { pgbr --repo1-path="$1" repo-ls --recurse --filter='[0-9A-F]{24}-.*\.zst$' archive | wc -l; }

# Azurite over HTTPS (started when it is not running), for both tools; the run's own container.
use_azure() {
  [ -f "${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}/azure.env" ] && pgrep -f "azurite/dist/src/blob/main.js" >/dev/null \
    || "$ROOT/infra/azurite-start.sh" >/dev/null || die "cannot start Azurite"
  set -a; . "${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}/azure.env"; set +a
  export AZURE_STORAGE_CONNECTION_STRING=$CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING CLOUDARCHIVE_AZURE_CA_FILE=$CLOUDARCHIVE_TEST_CA_FILE
  chmod a+r "$CLOUDARCHIVE_TEST_CA_FILE"
  "$ROOT/infra/azure-container.sh" "$RUN" || die "cannot create the container $RUN"
}

# The S3 test server over HTTPS (started when it is not running), for both tools.
use_s3() {
  [ -f "${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}/s3.env" ] && pgrep -x radosgw >/dev/null \
    || "$ROOT/infra/s3-start.sh" >/dev/null || die "cannot start the S3 test server"
  set -a; . "${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}/s3.env"; set +a
  export CLOUDARCHIVE_S3_ENDPOINT=$CLOUDARCHIVE_TEST_S3_ENDPOINT CLOUDARCHIVE_S3_REGION=us-east-1 \
    CLOUDARCHIVE_S3_CA_FILE=$CLOUDARCHIVE_TEST_CA_FILE
  chmod a+r "$CLOUDARCHIVE_TEST_CA_FILE"
}

# Real WAL: pgbench (load, then 15 s of its OLTP mix) and a table of text drawn from a 2,000-word
# vocabulary with a Zipf-like frequency (compresses about like prose), until N+1 segments are archived.
make_wal() {
  log "generating WAL: pgbench -i -s $SCALE, pgbench -T 15, text table (until $N segments)"
  as_pg pgbench -q -i -s "$SCALE" -h "$PGDIR" -p "$PORT" -U postgres postgres >/dev/null 2>&1
  as_pg pgbench -T 15 -c 2 -j 2 -h "$PGDIR" -p "$PORT" -U postgres postgres >/dev/null 2>&1
  sql "create table words as select i, translate(substr(md5(i::text), 1, 2 + i % 8), '0123456789', 'etaoinsrhl') w
         from generate_series(1, 2000) i;
       create table notes (id bigserial primary key, at timestamptz, body text)"
  local i
  for i in $(seq 1 40); do
    [ "$(segment_count)" -gt "$N" ] && break
    sql "with v as (select array_agg(w order by i) a from words)
         insert into notes (at, body) select now() - g * interval '7 s', 'note ' || g || ': ' ||
           array_to_string(array(select a[floor(power(2000, random()))::int] from generate_series(1, 12 + g % 50)), ' ')
         from v, generate_series(1, 300000) g"
    sql "select pg_switch_wal()" >/dev/null
    wait_archived 120
  done
  [ "$(segment_count)" -gt "$N" ] || die "only $(segment_count) segments after 40 batches"
  ls "$SEGS" | grep -E '^[0-9A-F]{24}$' | sort | head -n "$N" >"$W/segments.list"
  R[input_mib]=$(( N * 16 ))
}
segment_count() { ls "$SEGS" | grep -cE '^[0-9A-F]{24}$' || true; }

wait_archived() {  # until pg_wal/archive_status has no .ready file, at most $1 seconds
  local t
  for t in $(seq 1 $(( $1 * 5 ))); do
    [ -z "$(ls "$PGDIR/data/pg_wal/archive_status" | grep '\.ready$' || true)" ] && return 0
    sleep 0.2
  done
  die "archiver still has .ready files after $1 s (see $PGDIR/server.log)"
}

# One process per segment, sequentially, as user postgres, the way archive_command/restore_command run.
# seg_loop RSSFILE LIST CMD...: @SEG@ in CMD is replaced by each segment name. Prints wall seconds.
seg_loop() {
  local rss=$1 list=$2 name t0 t1; shift 2
  : >"$rss"; t0=$(date +%s.%N)
  while read -r name; do
    /usr/bin/time -f %M -a -o "$rss" "${@//@SEG@/$name}" || { echo "failed on $name: $*" >&2; return 1; }
  done <"$list"
  t1=$(date +%s.%N); echo "$t0 $t1" | awk '{printf "%.3f\n", $2 - $1}'
}
# Every measurement starts with nothing left to write back: otherwise the second tool measured pays for
# the first one's gigabytes (a restore right after the other tool's restore ran 1.7x slower).
# Backups and restores also start with the same memory: the page cache emptied (root only), so neither tool pays for
# reclaiming the pages the other one or an earlier row filled (a local restore took 1.0-1.2 s after a cache drop,
# 1.7-2.9 s without, hand-run), and both read their input from disk, as a restore at 3 a.m. does. The WAL rows keep
# their segments in the cache, as PostgreSQL's archiver finds a segment it has just written.
settle() { sync; disk_idle; if [ "${1:-}" = cold ] && [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi; sleep 1; }
# Waits (at most 60 s) until the work directory's disk has been still for a second: on a file system mounted with
# `discard`, removing the last row's 16 GiB restore queues discards that would otherwise run during the next row.
disk_idle() {
  local src dev now prev="" i
  src=$(findmnt -no SOURCE --target "$W" 2>/dev/null) || return 0
  dev=$(lsblk -no PKNAME "$src" 2>/dev/null | head -n 1); [ -n "$dev" ] || dev=$(basename "$src")
  [ -r "/sys/block/$dev/stat" ] || return 0
  for i in $(seq 60); do
    now=$(cat "/sys/block/$dev/stat"); [ "$now" = "$prev" ] && return 0; prev=$now; sleep 1
  done
}
# CPU time (clock ticks) the store's own server has used so far: its share of every measurement, the same for both
# tools, and a floor neither tool can go below on these shared cores. 0 for a local directory.
server_cpu() {
  local pids t=0 p
  case $STORE in
    s3) pids="$(pgrep -x radosgw) $(pgrep -x ceph-osd) $(pgrep -x ceph-mon)" ;;
    azure) pids=$(pgrep -f "azurite/dist/src/blob/main.js") ;;
    *) pids="" ;;
  esac
  for p in $pids; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
ticks_ms() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t * 1000 / hz }'; }

timed_loop() {  # KEY CMD...: runs seg_loop as postgres (bounded), fills R[KEY_s] and R[KEY_rss] (MiB)
  local key=$1 c0; shift
  settle; c0=$(server_cpu)
  R[${key}_s]=$(as_pg timeout 1800 bash -c "$(declare -f seg_loop); seg_loop \"\$@\"" _ \
                "$W/$key.rss" "$W/segments.list" "$@") || die "$key: a command failed or timed out"
  R[${key}_srv]=$(( $(ticks_ms $(( $(server_cpu) - c0 ))) / N ))  # ms per segment
  R[${key}_rss]=$(sort -n "$W/$key.rss" | tail -n 1 | awk '{printf "%.0f", $1 / 1024}')
  log "$key: ${R[${key}_s]} s for $N segments, peak RSS ${R[${key}_rss]} MiB; load $(cut -d" " -f1 /proc/loadavg)"
}

# One command as postgres in its own session (bounded), with its wall time, its largest process's
# peak RSS (/usr/bin/time) and the peak of the sum over its session's processes (sampled every 100 ms).
run_sampled() {  # KEY CMD...  fills R[KEY_s], R[KEY_rss], R[KEY_sum] (MiB)
  local key=$1 pid cur peak=0 t0 t1 c0; shift
  settle cold; c0=$(server_cpu)
  t0=$(date +%s.%N)
  (cd "$W" && exec setsid timeout 1800 runuser -u postgres -- env PATH="$PG_BIN:$CLIENT_BIN:$PATH" \
     /usr/bin/time -f %M -o "$W/$key.rss" "$@" >"$W/$key.out" 2>"$W/$key.err") & pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    # (ps exits 1 once the session is gone: that must not end the script under pipefail)
    cur=$({ ps -o rss=,comm= --sid "$pid" || true; } | awk '$2 != "runuser" && $2 != "time" && $2 != "timeout" { s += $1 } END { print s + 0 }')
    [ "$cur" -gt "$peak" ] && peak=$cur
    sleep 0.1
  done
  wait "$pid" || { tail -5 "$W/$key.err" >&2; die "$key failed: $* (exit $?)"; }
  t1=$(date +%s.%N)
  R[${key}_srv]=$(awk -v ms="$(ticks_ms $(( $(server_cpu) - c0 )))" 'BEGIN { printf "%.1f", ms / 1000 }')  # s
  R[${key}_s]=$(echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}')
  R[${key}_rss]=$(awk '{v = $1} END {printf "%.0f", v / 1024}' "$W/$key.rss")
  R[${key}_sum]=$(( peak / 1024 )); [ "${R[${key}_sum]}" -ge "${R[${key}_rss]}" ] || R[${key}_sum]=${R[${key}_rss]}
  log "$key: ${R[${key}_s]} s, peak RSS ${R[${key}_rss]} MiB (largest process), ${R[${key}_sum]} MiB (all); load $(cut -d" " -f1 /proc/loadavg)"
}

PGBR=("$PGBACKREST" --config="$W/pgbackrest.conf" --stanza=bench)

bench_wal_push() {
  CA_WAL=$(ca_store ca-wal); pgbr_repo pgbr-wal
  timed_loop pgbr_push "${PGBR[@]}" --repo1-path="$(repo pgbr-wal)" archive-push "$SEGS/@SEG@"
  timed_loop ca_push "$BIN" wal-push "$SEGS/@SEG@" --store "$CA_WAL" --compress-level 1
  # The same through the cluster's agent (--agent): the first process starts it, the others hand it their segment.
  local agent_store; agent_store=$(ca_store ca-wal-agent)
  fresh_dir "$W/agent-push"
  timed_loop ca_push_agent "$BIN" wal-push "$SEGS/@SEG@" --store "$agent_store" --compress-level 1 --agent --spool-dir "$W/agent-push"
  R[pgbr_push_stored]=$(stored_mib "$W/pgbr-wal/archive"); R[ca_push_stored]=$(stored_mib "$W/ca-wal")
}

# Async push on a burst of N .ready segments: pgBackRest archive-async with process-max 2, CloudArchive
# --async (one worker, one segment per core). Each tool gets a stand-in data directory holding the cluster's
# pg_control and the segments marked ready (pgBackRest wants pg_wal inside pg1-path), and each command runs
# through "as-archiver", which marks the segment .done on success as PostgreSQL's archiver does.
burst_dir() {  # DIR
  local b=$1/pg_wal name
  fresh_dir "$1"; mkdir -p "$b/archive_status" "$1/global"
  cp "$PGDIR/data/global/pg_control" "$1/global/"
  while read -r name; do cp -l "$SEGS/$name" "$b/$name"; touch "$b/archive_status/$name.ready"; done <"$W/segments.list"
  chown -R postgres: "$1"
}
bench_async_push() {
  cat >"$W/as-archiver" <<'SH'
#!/bin/bash
seg=$1; shift
"$@" || exit
mv "$(dirname "$seg")/archive_status/$(basename "$seg").ready" "$(dirname "$seg")/archive_status/$(basename "$seg").done"
SH
  chmod 755 "$W/as-archiver"
  burst_dir "$W/burst-pgbr"; fresh_dir "$W/pgbr-spool"; pgbr_repo pgbr-async
  timed_loop pgbr_async "$W/as-archiver" "$W/burst-pgbr/pg_wal/@SEG@" "${PGBR[@]}" --repo1-path="$(repo pgbr-async)" \
    --pg1-path="$W/burst-pgbr" --archive-async --process-max=2 archive-push "$W/burst-pgbr/pg_wal/@SEG@"
  [ "$(pgbr_wal_count "$(repo pgbr-async)")" -eq "$N" ] || die "async push: not every segment is in the pgBackRest repository"
  local store; store=$(ca_store ca-async); burst_dir "$W/burst-ca"
  timed_loop ca_async "$W/as-archiver" "$W/burst-ca/pg_wal/@SEG@" "$BIN" wal-push "$W/burst-ca/pg_wal/@SEG@" \
    --store "$store" --compress-level 1 --async
  [ "$(ca_wal_count "$store")" -eq "$N" ] || die "async push: not every segment is in the CloudArchive store"
  while pgrep -f -- "wal-push-worker" >/dev/null; do sleep 0.2; done  # the idle worker exits before the next measurement
}

bench_wal_fetch() {  # from the stores bench_wal_push filled; every fetched file is compared with its original
  local d name
  for d in fetch-pgbr fetch-ca fetch-pgbr-async fetch-ca-prefetch; do fresh_dir "$W/$d"; done
  fresh_dir "$W/pgbr-spool"; fresh_dir "$W/ca-spool"
  timed_loop pgbr_fetch "${PGBR[@]}" --repo1-path="$(repo pgbr-wal)" archive-get @SEG@ "$W/fetch-pgbr/@SEG@"
  timed_loop ca_fetch "$BIN" wal-fetch @SEG@ "$W/fetch-ca/@SEG@" --store "$CA_WAL"
  fresh_dir "$W/fetch-ca-agent"; fresh_dir "$W/agent-fetch"
  timed_loop ca_fetch_agent "$BIN" wal-fetch @SEG@ "$W/fetch-ca-agent/@SEG@" --store "$CA_WAL" --agent --spool-dir "$W/agent-fetch"
  timed_loop pgbr_prefetch "${PGBR[@]}" --repo1-path="$(repo pgbr-wal)" --archive-async --process-max=2 \
    archive-get @SEG@ "$W/fetch-pgbr-async/@SEG@"
  # The prefetch worker runs detached: its RSS is not in the loop's peak (that is the foreground's).
  timed_loop ca_prefetch "$BIN" wal-fetch @SEG@ "$W/fetch-ca-prefetch/@SEG@" --store "$CA_WAL" \
    --prefetch 8 --spool-dir "$W/ca-spool"
  for d in fetch-pgbr fetch-ca fetch-ca-agent fetch-pgbr-async fetch-ca-prefetch; do
    while read -r name; do cmp -s "$SEGS/$name" "$W/$d/$name" || die "$d: $name differs from the original"; done <"$W/segments.list"
  done
}

bench_limits() {  # zstd -1 and a plain copy of the same segments, one process per segment (no fsync)
  fresh_dir "$W/lim-zstd"; fresh_dir "$W/lim-zstd2"; fresh_dir "$W/lim-cp"
  local t0 t1
  settle; t0=$(date +%s.%N)  # zstd -1 on both cores: two processes at a time (the async push target)
  as_pg xargs -P 2 -I @ zstd -1 -q -f "$SEGS/@" -o "$W/lim-zstd2/@.zst" <"$W/segments.list" || die "zstd -1 on 2 cores failed"
  t1=$(date +%s.%N); R[zstd2_s]=$(echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}')
  log "zstd2: ${R[zstd2_s]} s for $N segments, two at a time"
  timed_loop zstd zstd -1 -q -f "$SEGS/@SEG@" -o "$W/lim-zstd/@SEG@.zst"
  timed_loop cp cp "$SEGS/@SEG@" "$W/lim-cp/@SEG@"
  R[zstd_stored]=$(du -sm "$W/lim-zstd" | cut -f1)
  [ "$STORE" = s3 ] || return 0
  # The store's own floor: curl PUTs zstd's output (unsigned payload over TLS, verified), then GETs it, one
  # process per segment; what remains of a tool's time per segment is its own.
  local url="$CLOUDARCHIVE_TEST_S3_ENDPOINT/$CLOUDARCHIVE_TEST_S3_BUCKET/$RUN/lim-curl" auth
  curl_s3_setup
  read -r -a auth <<<"$CURL_S3_AUTH"
  timed_loop curl_put curl "${auth[@]}" -T "$W/lim-zstd/@SEG@.zst" "$url/@SEG@"
  timed_loop curl_get curl "${auth[@]}" -o /dev/null "$url/@SEG@"
}

# curl's options for the S3 test server (over TLS, certificate verified, unsigned payload), in CURL_S3_AUTH (no space in
# any of them: it is split into words where used). The keys go in a curl config file only postgres can read, not on a
# command line that ps shows.
curl_s3_setup() {
  (umask 077; printf 'user = "%s:%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$W/curl-s3.conf")
  chown postgres: "$W/curl-s3.conf"
  CURL_S3_AUTH="--fail -s --cacert $CLOUDARCHIVE_TEST_CA_FILE --aws-sigv4 aws:amz:us-east-1:s3 -K $W/curl-s3.conf -H x-amz-content-sha256:UNSIGNED-PAYLOAD"
}
# The keys under PREFIX (of this run) in the S3 test bucket, one per line.
s3_keys() {  # PREFIX
  local url="$CLOUDARCHIVE_TEST_S3_ENDPOINT/$CLOUDARCHIVE_TEST_S3_BUCKET"
  # (the prefix's slashes encoded: curl's --aws-sigv4 signs an unencoded one that RGW then refuses)
  # shellcheck disable=SC2086
  curl $CURL_S3_AUTH "$url?list-type=2&prefix=${1//\//%2F}" | grep -oE "<Key>[^<]*</Key>" | sed -e 's/<Key>//' -e 's/<\/Key>//'
}

# Base backups of the cluster: archive_command now pushes every segment to both tools' backup stores,
# since each tool's backup waits for its own stop segment to be archived.
prepare_backups() {
  CA_BACKUP=$(ca_store ca-backup); pgbr_repo pgbr-backup
  # Both tools archive each segment at the same time, so each backup waits for its own tool's push of its last
  # segment, not for the other's too (until session 13 they ran one after the other, pgBackRest first).
  # (named so that archive_command contains "pgbackrest", which pgBackRest's backup checks)
  cat >"$W/archive-pgbackrest-and-cloudarchive.sh" <<SH
#!/bin/sh
${PGBR[*]} --repo1-path=$(repo pgbr-backup) archive-push "\$1" & p=\$!
$BIN wal-push "\$1" --store $CA_BACKUP --compress-level 1 ${CA_KEY_ARG:-}; c=\$?
wait \$p && [ \$c = 0 ]
SH
  chmod 755 "$W/archive-pgbackrest-and-cloudarchive.sh"
  sql "alter system set archive_command = '$W/archive-pgbackrest-and-cloudarchive.sh %p'"
  sql "select pg_reload_conf()" >/dev/null; sql "select pg_switch_wal()" >/dev/null; sleep 1; wait_archived 300
  R[pgdata_mib]=$(du -sm --exclude=pg_wal "$PGDIR/data" | cut -f1)
  log "data directory: ${R[pgdata_mib]} MiB (without pg_wal)"
}

bench_backup() {
  sql "checkpoint"
  run_sampled pgbr_backup "${PGBR[@]}" --repo1-path="$(repo pgbr-backup)" backup --type=full
  sql "checkpoint"
  run_sampled ca_backup env PGHOST="$PGDIR" PGPORT="$PORT" PGUSER=postgres \
    "$BIN" backup-push --store "$CA_BACKUP" --compress-level 1 --jobs 2
  R[pgbr_backup_stored]=$(stored_mib "$W/pgbr-backup/backup"); R[ca_backup_stored]=$(stored_mib "$W/ca-backup")
}

bench_restore() {  # into empty directories; neither restored cluster is started
  fresh_dir "$W/restore-pgbr"; fresh_dir "$W/restore-ca"
  run_sampled pgbr_restore "${PGBR[@]}" --repo1-path="$(repo pgbr-backup)" --pg1-path="$W/restore-pgbr" restore
  run_sampled ca_restore "$BIN" restore --to "$W/restore-ca" --store "$CA_BACKUP" --jobs 2
  R[pgbr_restore_mib]=$(du -sm --exclude=pg_wal "$W/restore-pgbr" | cut -f1); R[ca_restore_mib]=$(du -sm --exclude=pg_wal "$W/restore-ca" | cut -f1)
}

# ---- the table
ms_per_seg() { awk -v s="$1" -v n="$N" 'BEGIN { printf "%.1f", s * 1000 / n }'; }
seg_per_s() { awk -v n="$N" -v s="$1" 'BEGIN { printf "%.1f", n / s }'; }
mib_per_s() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.0f", m / s }'; }
row() {  # LABEL CLOUDARCHIVE PGBACKREST TARGET
  local ratio
  ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "-" }')
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$ratio" "$4"
}

print_table() {
  local seg_mib=${R[input_mib]} na="n/a (not implemented)"
  echo
  echo "CloudArchive ${R[ca_commit]} vs ${R[pgbr_version]}: $N segments ($seg_mib MiB), data directory ${R[pgdata_mib]} MiB, zstd 1, $(case $STORE in s3) echo "S3 stores: Ceph RGW on 127.0.0.1 over HTTPS, certificate verified by both tools (CloudArchive --s3-ca-file, pgBackRest repo1-storage-ca-file)" ;; azure) echo "Azure stores: Azurite on 127.0.0.1 over HTTPS, certificate verified by both tools (CloudArchive --azure-ca-file, pgBackRest repo1-storage-ca-file, repo1-azure-uri-style=path)" ;; *) echo "local directory stores on one disk" ;; esac)$([ "$ENCRYPT" = 1 ] && echo "; ENCRYPTED: CloudArchive AES-256-GCM (key file), pgBackRest aes-256-cbc (repo1-cipher-type)")"
  echo
  echo "| measurement | CloudArchive | pgBackRest | ratio CA/pgBR | target |"
  echo "| --- | --- | --- | --- | --- |"
  row "wal-push, one process per segment: ms/segment" "$(ms_per_seg "${R[ca_push_s]}")" "$(ms_per_seg "${R[pgbr_push_s]}")" "≤ 0.5"
  row "wal-push --agent, one process per segment: ms/segment" "$(ms_per_seg "${R[ca_push_agent_s]}")" "$(ms_per_seg "${R[pgbr_push_s]}")" "≤ 0.5"
  row "wal-push: store server CPU, ms/segment (plain / --agent)" "${R[ca_push_srv]} / ${R[ca_push_agent_srv]}" "${R[pgbr_push_srv]}" ""
  row "wal-push: MiB/s" "$(mib_per_s "$seg_mib" "${R[ca_push_s]}")" "$(mib_per_s "$seg_mib" "${R[pgbr_push_s]}")" ""
  row "wal-push: peak RSS MiB" "${R[ca_push_rss]}" "${R[pgbr_push_rss]}" "CA ≤ 64 MiB"
  row "wal-push: stored MiB (of $seg_mib)" "${R[ca_push_stored]}" "${R[pgbr_push_stored]}" ""
  row "async push of a burst of $N .ready segments: segments/s" "$(seg_per_s "${R[ca_async_s]}")" "$(seg_per_s "${R[pgbr_async_s]}")" ""
  row "async push: peak RSS MiB (archive_command; CloudArchive's worker is not sampled)" "${R[ca_async_rss]}" "${R[pgbr_async_rss]}" ""
  row "wal-fetch, one process per segment: ms/segment" "$(ms_per_seg "${R[ca_fetch_s]}")" "$(ms_per_seg "${R[pgbr_fetch_s]}")" "≤ 0.5"
  row "wal-fetch --agent, one process per segment: ms/segment" "$(ms_per_seg "${R[ca_fetch_agent_s]}")" "$(ms_per_seg "${R[pgbr_fetch_s]}")" "≤ 0.5"
  row "wal-fetch: store server CPU, ms/segment (plain / --agent)" "${R[ca_fetch_srv]} / ${R[ca_fetch_agent_srv]}" "${R[pgbr_fetch_srv]}" ""
  row "wal-fetch: peak RSS MiB" "${R[ca_fetch_rss]}" "${R[pgbr_fetch_rss]}" ""
  row "wal-fetch with prefetch: ms/segment" "$(ms_per_seg "${R[ca_prefetch_s]}")" "$(ms_per_seg "${R[pgbr_prefetch_s]}")" ""
  row "wal-fetch with prefetch: peak RSS MiB (foreground process)" "${R[ca_prefetch_rss]}" "${R[pgbr_prefetch_rss]}" ""
  row "full backup: MiB/s (${R[pgdata_mib]} MiB in ${R[ca_backup_s]} s / ${R[pgbr_backup_s]} s)" \
      "$(mib_per_s "${R[pgdata_mib]}" "${R[ca_backup_s]}")" "$(mib_per_s "${R[pgdata_mib]}" "${R[pgbr_backup_s]}")" "≥ 1.5"
  row "full backup: peak RSS MiB, largest process / all processes" "${R[ca_backup_rss]} / ${R[ca_backup_sum]}" "${R[pgbr_backup_rss]} / ${R[pgbr_backup_sum]}" "CA ≤ 150 MiB"
  row "full backup: store server CPU, s" "${R[ca_backup_srv]}" "${R[pgbr_backup_srv]}" ""
  row "full backup: stored MiB" "${R[ca_backup_stored]}" "${R[pgbr_backup_stored]}" ""
  row "restore: MiB/s (in ${R[ca_restore_s]} s / ${R[pgbr_restore_s]} s)" \
      "$(mib_per_s "${R[pgdata_mib]}" "${R[ca_restore_s]}")" "$(mib_per_s "${R[pgdata_mib]}" "${R[pgbr_restore_s]}")" "≥ 1.5"
  row "restore: store server CPU, s" "${R[ca_restore_srv]}" "${R[pgbr_restore_srv]}" ""
  row "restore: peak RSS MiB, largest process / all processes" "${R[ca_restore_rss]} / ${R[ca_restore_sum]}" "${R[pgbr_restore_rss]} / ${R[pgbr_restore_sum]}" "CA ≤ 150 MiB"
  echo
  echo "| limit, same segments, one process per segment, no fsync | ms/segment | MiB/s | peak RSS MiB |"
  echo "| --- | --- | --- | --- |"
  echo "| \`zstd -1\` ($seg_mib → ${R[zstd_stored]} MiB) | $(ms_per_seg "${R[zstd_s]}") | $(mib_per_s "$seg_mib" "${R[zstd_s]}") | ${R[zstd_rss]} |"
  echo "| \`cp\` | $(ms_per_seg "${R[cp_s]}") | $(mib_per_s "$seg_mib" "${R[cp_s]}") | ${R[cp_rss]} |"
  if [ "$STORE" = s3 ]; then
    echo "| \`curl\` PUT of zstd's output (store server CPU ${R[curl_put_srv]} ms/segment) | $(ms_per_seg "${R[curl_put_s]}") | $(mib_per_s "$seg_mib" "${R[curl_put_s]}") | ${R[curl_put_rss]} |"
    echo "| \`curl\` GET of it (store server CPU ${R[curl_get_srv]} ms/segment) | $(ms_per_seg "${R[curl_get_s]}") | $(mib_per_s "$seg_mib" "${R[curl_get_s]}") | ${R[curl_get_rss]} |"
  fi
  echo
  echo "zstd -1 on 2 cores (two processes at a time): $(seg_per_s "${R[zstd2_s]}") segments/s; CloudArchive's async push reaches" \
       "$(awk -v a="${R[ca_async_s]}" -v z="${R[zstd2_s]}" 'BEGIN { printf "%.2f", z / a }')× of it (target ≥ 0.8)."
  # What the cores give in parallel bounds every per-segment figure: 2.00 would be two whole cores.
  echo "Two zstd -1 processes at a time get $(awk -v one="${R[zstd_s]}" -v two="${R[zstd2_s]}" 'BEGIN { printf "%.2f", one / two }')×" \
       "the throughput of one at a time on this machine."
}

# ---- BENCH=incr: full, then incremental after 1 % of the largest table's rows changed, full and delta restores
# A version of pgBackRest with block incremental (2.46+) gets it: the figures compare like with like.
pgbr_block() { printf '%s\n' "2.46" "$(echo "${R[pgbr_version]}" | awk '{print $2}')" | sort -V -C; }

bench_incremental() {
  sql "alter system set archive_command = '/bin/true'" >/dev/null; sql "select pg_reload_conf()" >/dev/null
  log "pgbench -i -s $SCALE (about $((SCALE * 15)) MiB)"
  as_pg pgbench -i -q -s "$SCALE" -h "$PGDIR" -p "$PORT" postgres >/dev/null 2>&1 || die "pgbench -i failed"
  pgbr_block && sed -i "/^\[global\]/a repo1-bundle=y\nrepo1-block=y" "$W/pgbackrest.conf"
  prepare_backups
  sql "checkpoint"
  run_sampled pgbr_full "${PGBR[@]}" --repo1-path="$(repo pgbr-backup)" backup --type=full
  sql "checkpoint"
  run_sampled ca_full env PGHOST="$PGDIR" PGPORT="$PORT" PGUSER=postgres "$BIN" backup-push --type full --store "$CA_BACKUP" --compress-level 1 --jobs 2
  # 1 % of the rows, in runs of 1,000 (about 16 pages) every 100,000: spread over the whole table and its index.
  local changed
  changed=$(sql "with u as (update pgbench_accounts set abalance = abalance + 1 where (aid / 1000) % 100 = 7 returning 1) select count(*) from u")
  R[incr_rows]=$changed; R[incr_of]=$((SCALE * 100000))
  log "updated $changed of ${R[incr_of]} rows of pgbench_accounts"
  sql "select pg_switch_wal()" >/dev/null; sql "checkpoint"
  run_sampled pgbr_incr "${PGBR[@]}" --repo1-path="$(repo pgbr-backup)" backup --type=incr
  sql "checkpoint"
  run_sampled ca_incr env PGHOST="$PGDIR" PGPORT="$PORT" PGUSER=postgres "$BIN" backup-push --type incr --store "$CA_BACKUP" --compress-level 1 --jobs 2
  local pgbr_full pgbr_incr ca_full ca_incr
  pgbr_full=$(pgbr --repo1-path="$(repo pgbr-backup)" info --output=json | python3 -c 'import json,sys; b=json.load(sys.stdin)[0]["backup"]; print(b[0]["label"], b[-1]["label"], b[0]["info"]["repository"]["delta"], b[-1]["info"]["repository"]["delta"])')
  read -r pgbr_full pgbr_incr R[pgbr_full_bytes] R[pgbr_incr_bytes] <<<"$pgbr_full"
  ca_full=$(ca backup-list --json --store "$CA_BACKUP" | python3 -c 'import json,sys; b=json.load(sys.stdin); print(b[-1]["id"], b[0]["id"], b[-1]["storedSize"], b[0]["storedSize"])')
  read -r ca_full ca_incr R[ca_full_bytes] R[ca_incr_bytes] <<<"$ca_full"
  sql "select pg_switch_wal()" >/dev/null; sleep 1; wait_archived 300
  "$ROOT/infra/pg-cluster.sh" stop "$PGDIR" fast >/dev/null
  R[pgdata_mib]=$(du -sm --exclude=pg_wal "$PGDIR/data" | cut -f1)

  # The full backup restored (the "previous state"), then the incremental onto it with --delta.
  fresh_dir "$W/restore-pgbr"; fresh_dir "$W/restore-ca"
  run_sampled pgbr_restore "${PGBR[@]}" --repo1-path="$(repo pgbr-backup)" --pg1-path="$W/restore-pgbr" --set="$pgbr_full" restore
  run_sampled ca_restore "$BIN" restore --to "$W/restore-ca" --backup "$ca_full" --store "$CA_BACKUP" --jobs 2
  run_sampled pgbr_delta "${PGBR[@]}" --repo1-path="$(repo pgbr-backup)" --pg1-path="$W/restore-pgbr" --set="$pgbr_incr" --delta restore
  run_sampled ca_delta "$BIN" restore --delta --to "$W/restore-ca" --backup "$ca_incr" --store "$CA_BACKUP" --jobs 2
  grep '^delta:' "$W/ca_delta.out" >&2 || true
  R[ca_delta_line]=$(grep '^delta:' "$W/ca_delta.out" || true)
}

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f %%", 100 * a / b; else print "-" }'; }
print_incr_table() {
  echo
  echo "CloudArchive ${R[ca_commit]} vs ${R[pgbr_version]}$(pgbr_block && echo " (block incremental: repo1-bundle=y repo1-block=y)"): pgbench scale $SCALE, data directory ${R[pgdata_mib]} MiB; ${R[incr_rows]} of ${R[incr_of]} pgbench_accounts rows updated (1 %, runs of 1,000 every 100,000); zstd 1, process-max 2 / --jobs 2; $(case $STORE in s3) echo "S3 stores (Ceph RGW over HTTPS, certificate verified by both tools)" ;; azure) echo "Azure stores (Azurite over HTTPS, certificate verified by both tools)" ;; *) echo "local directory stores on one disk" ;; esac)"
  echo
  echo "| measurement | CloudArchive | pgBackRest | ratio CA/pgBR | target |"
  echo "| --- | --- | --- | --- | --- |"
  row "full backup: s" "${R[ca_full_s]}" "${R[pgbr_full_s]}" ""
  row "full backup: stored bytes" "${R[ca_full_bytes]}" "${R[pgbr_full_bytes]}" ""
  row "incremental: s" "${R[ca_incr_s]}" "${R[pgbr_incr_s]}" "< 1"
  row "incremental: stored bytes" "${R[ca_incr_bytes]}" "${R[pgbr_incr_bytes]}" "< 1"
  row "incremental: stored, % of its full backup" "$(pct "${R[ca_incr_bytes]}" "${R[ca_full_bytes]}")" "$(pct "${R[pgbr_incr_bytes]}" "${R[pgbr_full_bytes]}")" "CA ≤ 5 %"
  row "incremental: time, % of its full backup" "$(pct "${R[ca_incr_s]}" "${R[ca_full_s]}")" "$(pct "${R[pgbr_incr_s]}" "${R[pgbr_full_s]}")" "CA ≤ 30 %"
  row "incremental: peak RSS MiB, largest process / all processes" "${R[ca_incr_rss]} / ${R[ca_incr_sum]}" "${R[pgbr_incr_rss]} / ${R[pgbr_incr_sum]}" "CA ≤ 150 MiB"
  row "full restore: s" "${R[ca_restore_s]}" "${R[pgbr_restore_s]}" ""
  row "delta restore of the incremental onto the restored full: s" "${R[ca_delta_s]}" "${R[pgbr_delta_s]}" "< 1"
  row "delta restore: time, % of its full restore" "$(pct "${R[ca_delta_s]}" "${R[ca_restore_s]}")" "$(pct "${R[pgbr_delta_s]}" "${R[pgbr_restore_s]}")" "CA ≤ 30 %"
  row "delta restore: peak RSS MiB, largest process / all processes" "${R[ca_delta_rss]} / ${R[ca_delta_sum]}" "${R[pgbr_delta_rss]} / ${R[pgbr_delta_sum]}" "CA ≤ 150 MiB"
  echo
  echo "CloudArchive's delta summary: ${R[ca_delta_line]}"
}

# ---- BENCH=scale (#34): backups and restores at several cluster sizes, each tool beside the floor of this machine
JOBS=${JOBS:-$(nproc)}
use_major() {  # PG_MAJOR: the server binaries (15: Debian's; others: infra/pg-versions.sh)
  local major=${PG_MAJOR:-18}
  if [ "$major" != 15 ]; then
    PG_BIN=$("$ROOT/infra/pg-versions.sh" "$major" | sed -n "s/^export CLOUDARCHIVE_TEST_PG${major}_BIN=//p")
    [ -x "$PG_BIN/postgres" ] || die "no PostgreSQL $major server binaries (infra/pg-versions.sh $major)"
  fi
  if [ "$major" -ge 17 ]; then SUMMARIZE_CONF="summarize_wal = on"; fi   # what incrementals from WAL summaries need
  export PG_BIN
}
# The restore floor: a CloudArchive backup's bundles in a local store (each file: "CAOBJ1\n", a 4-byte little-endian
# header length, a JSON header, then the zstd stream) decompressed by zstd into files under DIR, JOBS at a time,
# then DIR's file system synced: the same bytes written, with no tool in the way.
restore_floor() {  # BUNDLE_DIR DIR
  local extract='f=$1; h=$(od -An -t u4 -j 7 -N 4 "$f" | tr -d " "); tail -c +$((h + 12)) "$f" | zstd -dc -q > "$2/$(basename "$f" .zst)"'
  ls "$1"/*.tar.zst | xargs -P "$JOBS" -I{} bash -c "$extract" _ {} "$2" && sync -f "$2"
}
# On S3 the floor GETs the same bundle objects with curl (over TLS, certificate verified), JOBS at a time, into zstd -d.
restore_floor_s3() {  # BACKUP_ID DIR
  local url="$CLOUDARCHIVE_TEST_S3_ENDPOINT/$CLOUDARCHIVE_TEST_S3_BUCKET"
  s3_keys "$RUN/ca-backup$GEN/backups/$1/data/" | grep '\.tar\.zst$' >"$W/floor-keys"
  [ -s "$W/floor-keys" ] || die "no bundles of backup $1 listed in the S3 store"
  # shellcheck disable=SC2016
  xargs -P "$JOBS" -I{} bash -c 'curl $1 "$2/$3" | zstd -dc -q > "$4/$(basename "$3" .zst)"' _ "$CURL_S3_AUTH" "$url" {} "$2" <"$W/floor-keys" && sync -f "$2"
}
# The backup floor: every file of the data directory (without pg_wal) read and compressed by zstd -1, one zstd per
# batch of files, JOBS at a time, into DIR, then synced. (tar into zstd -T<JOBS> took 11.3 s for 4 GiB here, twice a
# backup by either tool: tar's single reader and the pipe, not the cores, set its pace.)
backup_floor() {  # DIR
  (cd "$PGDIR/data" && data_files | xargs -0 -P "$JOBS" -n 16 sh -c 'zstd -1 -q -c "$@" > "$0/$$.zst"' "$1") && sync -f "$1"
}
# The files a backup reads, NUL-separated, from the data directory (the working directory): all but pg_wal and the pid file.
data_files() { find . -path ./pg_wal -prune -o -type f ! -name postmaster.pid -print0; }
# On S3 the backup floor also uploads: each batch's zstd output, written to a file in DIR (not synced), is PUT by curl
# (over TLS, certificate verified) and removed, JOBS batches at a time; the keys are read from the curl config file.
backup_floor_s3() {  # DIR
  local url="$CLOUDARCHIVE_TEST_S3_ENDPOINT/$CLOUDARCHIVE_TEST_S3_BUCKET/$RUN/floor-up$GEN"
  # shellcheck disable=SC2016
  (cd "$PGDIR/data" && data_files |
    xargs -0 -P "$JOBS" -n 16 sh -c 'f="$0/$$.zst" a=$1 u=$2; shift 2; zstd -1 -q -c "$@" > "$f" && curl $a -T "$f" "$u/$$.zst" && rm -f "$f"' "$1" "$CURL_S3_AUTH" "$url")
}
ca_newest() { ca backup-list --json --store "$CA_BACKUP" | python3 -c 'import json,sys; b=json.load(sys.stdin); print(b[0]["id"], b[0]["storedSize"])'; }
pgbr_newest() { pgbr --repo1-path="$(repo pgbr-backup)" info --output=json | python3 -c 'import json,sys; b=json.load(sys.stdin)[0]["backup"][-1]; print(b["label"], b["info"]["repository"]["delta"])'; }
restore_both() {  # KEY [CA_BACKUP_ID] [PGBR_SET]: cold restores by both tools of their newest backup (or the ones given) into empty directories, removed after
  local key=$1
  fresh_dir "$W/restore-pgbr"; run_sampled "pgbr_$key" "${PGBR[@]}" --repo1-path="$(repo pgbr-backup)" --pg1-path="$W/restore-pgbr" restore ${3:+--set="$3"}
  rm -rf "$W/restore-pgbr"
  fresh_dir "$W/restore-ca"; run_sampled "ca_$key" "$BIN" restore --to "$W/restore-ca" --store "$CA_BACKUP" --jobs "$JOBS" ${2:+--backup "$2"}
  R[ca_${key}_mib]=$(du -sm --exclude=pg_wal "$W/restore-ca" | cut -f1); rm -rf "$W/restore-ca"
}
median_of() {  # KEY N: R[KEY_s] the median of R[KEY_1_s] .. R[KEY_N_s], R[KEY_rss] their largest peak, R[KEY_runs] every time
  local key=$1 n=$2 i
  R[${key}_runs]=$(for i in $(seq "$n"); do echo "${R[${key}_${i}_s]}"; done | paste -sd, | sed 's/,/, /g')
  R[${key}_s]=$(for i in $(seq "$n"); do echo "${R[${key}_${i}_s]}"; done | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  R[${key}_rss]=$(for i in $(seq "$n"); do echo "${R[${key}_${i}_rss]}"; done | sort -n | tail -n 1)
}
change_rows() {  # I: 1 % of pgbench_accounts' rows, in runs of 1,000 every 100,000 (slice I of 100), then a checkpoint
  R[incr_rows]=$(sql "with u as (update pgbench_accounts set abalance = abalance + 1 where (aid / 1000) % 100 = $1 returning 1) select count(*) from u")
  sql "select pg_switch_wal()" >/dev/null; sql "checkpoint"
}

bench_size() {  # GIB
  local g=$1 scale=$(( $1 * 68 )) id bytes
  GEN=-g$g
  start_cluster; write_pgbr_conf
  if [ "$STORE" = s3 ]; then curl_s3_setup; fi
  pgbr_block && sed -i "/^\[global\]/a repo1-bundle=y\nrepo1-block=y" "$W/pgbackrest.conf"
  sed -i "s/^process-max=.*/process-max=$JOBS/" "$W/pgbackrest.conf"
  sql "alter system set archive_command = '/bin/true'" >/dev/null; sql "select pg_reload_conf()" >/dev/null
  log "$g GiB: pgbench -i -s $scale"
  as_pg pgbench -i -q -s "$scale" -h "$PGDIR" -p "$PORT" postgres >/dev/null 2>&1 || die "pgbench -i failed"
  prepare_backups; R[g${g}_mib]=${R[pgdata_mib]}
  sql "checkpoint"
  fresh_dir "$W/floor"; run_sampled floor_backup bash -c "$(declare -f backup_floor data_files); PGDIR=$PGDIR JOBS=$JOBS backup_floor $W/floor"
  rm -rf "$W/floor"
  if [ "$STORE" = s3 ]; then
    fresh_dir "$W/floor"
    run_sampled floor_backup_s3 bash -c "$(declare -f backup_floor_s3 data_files); RUN=$RUN GEN=$GEN PGDIR=$PGDIR JOBS=$JOBS CURL_S3_AUTH='$CURL_S3_AUTH' CLOUDARCHIVE_TEST_S3_ENDPOINT=$CLOUDARCHIVE_TEST_S3_ENDPOINT CLOUDARCHIVE_TEST_S3_BUCKET=$CLOUDARCHIVE_TEST_S3_BUCKET backup_floor_s3 $W/floor"
    rm -rf "$W/floor"
    # Its objects deleted again, untimed: the test RGW holds every object in memory until it stops.
    # shellcheck disable=SC2086
    s3_keys "$RUN/floor-up$GEN/" | xargs -r -P "$JOBS" -I{} curl $CURL_S3_AUTH -X DELETE "$CLOUDARCHIVE_TEST_S3_ENDPOINT/$CLOUDARCHIVE_TEST_S3_BUCKET/{}"
    [ -z "$(s3_keys "$RUN/floor-up$GEN/")" ] || die "the upload floor's objects were not all deleted"
  fi
  run_sampled pgbr_full "${PGBR[@]}" --repo1-path="$(repo pgbr-backup)" backup --type=full
  sql "checkpoint"
  run_sampled ca_full env PGHOST="$PGDIR" PGPORT="$PORT" PGUSER=postgres "$BIN" backup-push --type full --store "$CA_BACKUP" --compress-level 1 --jobs "$JOBS"
  read -r id bytes <<<"$(ca_newest)"; R[ca_full_bytes]=$bytes; R[ca_full_id]=$id
  read -r _ bytes <<<"$(pgbr_newest)"; R[pgbr_full_bytes]=$bytes
  fresh_dir "$W/floor"
  if [ "$STORE" = s3 ]; then
    run_sampled floor_restore bash -c "$(declare -f restore_floor_s3 s3_keys die log); W=$W RUN=$RUN GEN=$GEN JOBS=$JOBS CURL_S3_AUTH='$CURL_S3_AUTH' CLOUDARCHIVE_TEST_S3_ENDPOINT=$CLOUDARCHIVE_TEST_S3_ENDPOINT CLOUDARCHIVE_TEST_S3_BUCKET=$CLOUDARCHIVE_TEST_S3_BUCKET restore_floor_s3 $id $W/floor"
  elif [ "$STORE" = local ]; then
    run_sampled floor_restore bash -c "$(declare -f restore_floor); JOBS=$JOBS restore_floor $W/ca-backup/backups/$id/data $W/floor"
  fi
  rm -rf "$W/floor"
  restore_both restore
  for k in floor_backup floor_backup_s3 pgbr_full ca_full floor_restore pgbr_restore ca_restore; do
    R[g${g}_${k}_s]=${R[${k}_s]:-}; R[g${g}_${k}_rss]=${R[${k}_rss]:-}; R[g${g}_${k}_sum]=${R[${k}_sum]:-}
  done
  R[g${g}_ca_full_bytes]=${R[ca_full_bytes]}; R[g${g}_pgbr_full_bytes]=${R[pgbr_full_bytes]}
  [ "$g" = "${CHAIN_SIZE:-4}" ] && bench_chain "$g"
  "$ROOT/infra/pg-cluster.sh" stop "$PGDIR" fast >/dev/null
}

floor_incr_sql() {  # the floor of a backup as a psql script (PG_MAJOR 15+: pg_backup_*; older: pg_*_backup)
  if [ "${PG_MAJOR:-18}" -ge 15 ]; then
    echo "select pg_backup_start('floor', true);"
    echo "select pg_walfile_name(lsn) as seg from pg_backup_stop(false) \\gset"
  else
    echo "select pg_start_backup('floor', true, false);"
    echo "select pg_walfile_name(lsn) as seg from pg_stop_backup(false, false) \\gset"
  fi
  echo "set bench.seg = :'seg';"
  echo "do \$\$ begin loop perform pg_stat_clear_snapshot();"
  echo "  exit when coalesce((select last_archived_wal from pg_stat_archiver), '') >= current_setting('bench.seg'); perform pg_sleep(0.005);"
  echo "end loop; end \$\$;"
}

bench_chain() {  # GIB: a full plus 7 incrementals, each after 1 % of the rows changed; the chain restored; a full of the same data restored
  local g=$1 i id bytes
  for i in 1 2 3 4 5 6 7; do
    change_rows "$i"
    run_sampled pgbr_incr "${PGBR[@]}" --repo1-path="$(repo pgbr-backup)" backup --type=incr
    sql "checkpoint"
    # The floor of any backup of this cluster, whatever reads it: the server's own start (a fast checkpoint) and
    # stop (the WAL switch), then waiting until archive_command has archived the last segment (pg_stat_archiver
    # polled every 5 ms: pg_backup_stop's own wait looks once a second), in one session.
    floor_incr_sql >"$W/floor-incr.sql"
    run_sampled floor_incr psql -X -q -At -h "$PGDIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -f "$W/floor-incr.sql"
    R[c${i}_floor_s]=${R[floor_incr_s]}
    sql "checkpoint"
    run_sampled ca_incr env PGHOST="$PGDIR" PGPORT="$PORT" PGUSER=postgres "$BIN" backup-push --type incr --store "$CA_BACKUP" --compress-level 1 --jobs "$JOBS" --log-level info
    read -r _ bytes <<<"$(ca_newest)"; R[c${i}_ca_bytes]=$bytes; R[c${i}_ca_s]=${R[ca_incr_s]}; R[c${i}_ca_rss]=${R[ca_incr_rss]}
    read -r _ bytes <<<"$(pgbr_newest)"; R[c${i}_pgbr_bytes]=$bytes; R[c${i}_pgbr_s]=${R[pgbr_incr_s]}
    R[c${i}_ca_line]=$(grep -h "WAL summaries" "$W/ca_incr.err" | head -1 || true)
    R[c${i}_ca_own]=$(grep -oE "stored as [0-9.]+ [KMG]iB in [0-9.]+ s" "$W/ca_incr.out" | grep -oE "[0-9.]+ s$" || true)
    R[c${i}_ca_stages]=$(grep -ho "seconds by stage: .*" "$W/ca_incr.err" | head -1 | sed 's/^seconds by stage: //' || true)
  done
  R[chain_rows]=${R[incr_rows]}
  local ca_chain pgbr_chain ca_full2 pgbr_full2 r
  read -r ca_chain _ <<<"$(ca_newest)"; read -r pgbr_chain _ <<<"$(pgbr_newest)"
  if [ "$STORE" = local ]; then
    # The chain's floor: every bundle of its 8 backups (the full and the 7 incrementals: the newest 8 in the store)
    # decompressed into files, one backup after another, then synced: all a chain restore must decompress, and more
    # writes than it makes (it writes each block once).
    fresh_dir "$W/floor"
    run_sampled floor_chain bash -c "$(declare -f restore_floor); JOBS=$JOBS; for b in \$(ls $W/ca-backup/backups | tail -8); do mkdir \"$W/floor/\$b\"; restore_floor \"$W/ca-backup/backups/\$b/data\" \"$W/floor/\$b\" || exit 1; done"
    rm -rf "$W/floor"
  fi
  sql "checkpoint"
  run_sampled pgbr_full2 "${PGBR[@]}" --repo1-path="$(repo pgbr-backup)" backup --type=full
  sql "checkpoint"
  run_sampled ca_full2 env PGHOST="$PGDIR" PGPORT="$PORT" PGUSER=postgres "$BIN" backup-push --type full --store "$CA_BACKUP" --compress-level 1 --jobs "$JOBS"
  read -r ca_full2 _ <<<"$(ca_newest)"; read -r pgbr_full2 _ <<<"$(pgbr_newest)"
  if [ "$STORE" = local ]; then  # the floor of the full of the same data (the first table's is of the cluster before the changes)
    fresh_dir "$W/floor"
    run_sampled floor_full2 bash -c "$(declare -f restore_floor); JOBS=$JOBS restore_floor $W/ca-backup/backups/$ca_full2/data $W/floor"
    rm -rf "$W/floor"
  fi
  # Three rounds, the chain and the full of the same data by each tool in turn: one restore on this VM's disk varies by
  # up to a third from one run to the next (a chain at 4 GiB: 4.85-6.77 s), so the table gives each one's median.
  for r in 1 2 3; do
    restore_both "chain_restore_$r" "$ca_chain" "$pgbr_chain"
    restore_both "full2_restore_$r" "$ca_full2" "$pgbr_full2"
  done
  for k in ca_chain_restore pgbr_chain_restore ca_full2_restore pgbr_full2_restore; do median_of "$k" 3; done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "-" }'; }
print_scale_table() {
  local g
  echo
  echo "CloudArchive ${R[ca_commit]} vs ${R[pgbr_version]}$(pgbr_block && echo " (repo1-bundle=y repo1-block=y)"): PostgreSQL ${PG_MAJOR:-18}, pgbench clusters, zstd 1," \
       "--jobs $JOBS / process-max $JOBS, $(case $STORE in s3) echo "S3 stores (Ceph RGW on 127.0.0.1 over HTTPS, certificate verified by both tools; restore floor: curl GETs of the bundles into zstd -d; backup floor with the upload: each batch of files compressed by zstd -1 into a file, then PUT by curl)" ;; azure) echo "Azure stores (Azurite on 127.0.0.1 over HTTPS, certificate verified by both tools; no restore floor: curl cannot sign Azure requests)" ;; *) echo "local directory stores on one disk" ;; esac)," \
       "page cache emptied before every row; $(nproc) cores," \
       "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -r)"
  echo
  echo "| cluster | what | floor s | CloudArchive s | pgBackRest s | CA / floor | pgBR / floor | CA / pgBR | peak RSS MiB CA / pgBR (largest process) |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for g in $SIZES; do
    printf '| %s GiB (%s MiB) | full backup | %s | %s | %s | %s | %s | %s | %s / %s |\n' "$g" "${R[g${g}_mib]}" "${R[g${g}_floor_backup_s]}" "${R[g${g}_ca_full_s]}" "${R[g${g}_pgbr_full_s]}" \
      "$(ratio "${R[g${g}_ca_full_s]}" "${R[g${g}_floor_backup_s]}")" "$(ratio "${R[g${g}_pgbr_full_s]}" "${R[g${g}_floor_backup_s]}")" \
      "$(ratio "${R[g${g}_ca_full_s]}" "${R[g${g}_pgbr_full_s]}")" "${R[g${g}_ca_full_rss]}" "${R[g${g}_pgbr_full_rss]}"
    [ -n "${R[g${g}_floor_backup_s3_s]:-}" ] &&
      printf '| %s GiB | full backup, floor with the upload | %s | %s | %s | %s | %s | %s | %s / %s |\n' "$g" "${R[g${g}_floor_backup_s3_s]}" "${R[g${g}_ca_full_s]}" "${R[g${g}_pgbr_full_s]}" \
        "$(ratio "${R[g${g}_ca_full_s]}" "${R[g${g}_floor_backup_s3_s]}")" "$(ratio "${R[g${g}_pgbr_full_s]}" "${R[g${g}_floor_backup_s3_s]}")" \
        "$(ratio "${R[g${g}_ca_full_s]}" "${R[g${g}_pgbr_full_s]}")" "${R[g${g}_ca_full_rss]}" "${R[g${g}_pgbr_full_rss]}"
    printf '| %s GiB | full restore | %s | %s | %s | %s | %s | %s | %s / %s |\n' "$g" "${R[g${g}_floor_restore_s]}" "${R[g${g}_ca_restore_s]}" "${R[g${g}_pgbr_restore_s]}" \
      "$(ratio "${R[g${g}_ca_restore_s]}" "${R[g${g}_floor_restore_s]}")" "$(ratio "${R[g${g}_pgbr_restore_s]}" "${R[g${g}_floor_restore_s]}")" \
      "$(ratio "${R[g${g}_ca_restore_s]}" "${R[g${g}_pgbr_restore_s]}")" "${R[g${g}_ca_restore_rss]}" "${R[g${g}_pgbr_restore_rss]}"
  done
  echo
  echo "Stored by the full backups (bytes, CA / pgBR): $(for g in $SIZES; do printf '%s GiB %s / %s; ' "$g" "${R[g${g}_ca_full_bytes]}" "${R[g${g}_pgbr_full_bytes]}"; done)"
  local c=${CHAIN_SIZE:-4}
  [ -n "${R[c1_ca_s]:-}" ] || return 0
  echo
  echo "A chain at $c GiB: 7 incrementals, each after ${R[chain_rows]} rows of pgbench_accounts changed (1 %); the full backup it starts from took ${R[g${c}_ca_full_s]} s (CA) / ${R[g${c}_pgbr_full_s]} s (pgBR)"
  echo
  echo "| incremental | floor s (start + stop) | CA s | pgBR s | CA / pgBR | floor, % of CA's full | CA s, % of its full | CA above the floor, % of its full | pgBR s, % of its full | CA bytes | pgBR bytes | CA peak RSS MiB | CA's own line: files read and stored in |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for i in 1 2 3 4 5 6 7; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$i" "${R[c${i}_floor_s]}" "${R[c${i}_ca_s]}" "${R[c${i}_pgbr_s]}" "$(ratio "${R[c${i}_ca_s]}" "${R[c${i}_pgbr_s]}")" \
      "$(pct "${R[c${i}_floor_s]}" "${R[g${c}_ca_full_s]}")" "$(pct "${R[c${i}_ca_s]}" "${R[g${c}_ca_full_s]}")" \
      "$(pct "$(awk -v a="${R[c${i}_ca_s]}" -v f="${R[c${i}_floor_s]}" 'BEGIN { printf "%.3f", a - f }')" "${R[g${c}_ca_full_s]}")" \
      "$(pct "${R[c${i}_pgbr_s]}" "${R[g${c}_pgbr_full_s]}")" "${R[c${i}_ca_bytes]}" "${R[c${i}_pgbr_bytes]}" "${R[c${i}_ca_rss]}" "${R[c${i}_ca_own]}"
  done
  echo
  echo "CloudArchive's incrementals, seconds by stage (its --log-level info line; process start and exit not included):"
  echo
  for i in 1 2 3 4 5 6 7; do echo "- $i: ${R[c${i}_ca_stages]:--}"; done
  echo
  echo "The floor: the server's own pg_backup_start (a fast checkpoint) and pg_backup_stop (the WAL switch, and waiting until archive_command archived the last segment), in one psql session, cold, with no tool reading anything."
  echo
  echo "| restore at $c GiB (median of 3) | CA s | pgBR s | CA / pgBR | peak RSS MiB CA / pgBR | floor s | CA / floor | CA's 3 runs s | pgBR's 3 runs s |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  echo "| the chain (full + 7 incrementals) | ${R[ca_chain_restore_s]} | ${R[pgbr_chain_restore_s]} | $(ratio "${R[ca_chain_restore_s]}" "${R[pgbr_chain_restore_s]}") | ${R[ca_chain_restore_rss]} / ${R[pgbr_chain_restore_rss]} | ${R[floor_chain_s]:--} | $(ratio "${R[ca_chain_restore_s]}" "${R[floor_chain_s]:-}") | ${R[ca_chain_restore_runs]} | ${R[pgbr_chain_restore_runs]} |"
  echo "| a full backup of the same data | ${R[ca_full2_restore_s]} | ${R[pgbr_full2_restore_s]} | $(ratio "${R[ca_full2_restore_s]}" "${R[pgbr_full2_restore_s]}") | ${R[ca_full2_restore_rss]} / ${R[pgbr_full2_restore_rss]} | ${R[floor_full2_s]:--} | $(ratio "${R[ca_full2_restore_s]}" "${R[floor_full2_s]:-}") | ${R[ca_full2_restore_runs]} | ${R[pgbr_full2_restore_runs]} |"
  echo "| chain / full | $(ratio "${R[ca_chain_restore_s]}" "${R[ca_full2_restore_s]}") | $(ratio "${R[pgbr_chain_restore_s]}" "${R[pgbr_full2_restore_s]}") | | | $(ratio "${R[floor_chain_s]:-}" "${R[floor_full2_s]:-}") | | | |"
  echo
  echo "The chain's floor: every bundle of its 8 backups decompressed by zstd into files and synced (all a chain restore decompresses; more bytes written than it writes). The full's floor: the bundles of the full of the same data, the same way."
  echo
  echo "Both tools' times include waiting for the backup's last WAL segment to be archived (one archive_command runs both tools' archiving at once)."
  echo "CloudArchive's first incremental said: ${R[c1_ca_line]:-(no line about WAL summaries)}"
}

main() {
  [ "$(id -u)" = 0 ] || die "run as root (PostgreSQL and both tools run as user postgres)"
  trap cleanup EXIT
  install_tools
  [ "$STORE" = s3 ] && use_s3
  [ "$STORE" = azure ] && use_azure
  if [ "$BENCH" = scale ]; then
    SIZES=${SIZES:-1 4 16}; use_major
    for g in $SIZES; do bench_size "$g"; done
    print_scale_table
    return
  fi
  if [ "$BENCH" = incr ]; then
    start_cluster; write_pgbr_conf; bench_incremental; print_incr_table
    return
  fi
  start_cluster; write_pgbr_conf; make_wal
  if pgrep -f "dotnet test" >/dev/null; then log "note: a 'dotnet test' run is using the CPU at the same time"; fi
  bench_wal_push; bench_async_push; bench_wal_fetch; bench_limits
  prepare_backups; bench_backup; bench_restore
  print_table
}
main "$@"
