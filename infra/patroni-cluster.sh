#!/usr/bin/env bash
# A throwaway Patroni HA cluster on 127.0.0.1 for the tests: one etcd (Debian's etcd-server) and three Patroni members
# (node1, node2, node3) running Debian's PostgreSQL 15, every port a free one, everything in DIR. Installed by
# infra/install.sh (Debian's patroni and etcd-server). PostgreSQL refuses root: when run as root, etcd and Patroni run as
# user postgres.
#   patroni-cluster.sh start DIR [--archive-command CMD] [--restore-command CMD] [--replica-method CMD [--replica-method-option KEY=VALUE]...]
#       writes DIR/etcd and DIR/nodeN/patroni.yml, starts etcd and the three members (Patroni bootstraps one, the others
#       follow it) and writes DIR/cluster.env (ETCD_PORT, nodeN_API_PORT, nodeN_PG_PORT); it does not wait for roles.
#       --archive-command: archive_command (with archive_mode = on) in the DCS configuration;
#       --restore-command: restore_command in each member's recovery_conf;
#       --replica-method: a replica creation method "cloudarchive" running this command, listed before basebackup;
#       --replica-method-option: a key of that method (Patroni passes it to the command as --KEY=VALUE).
#   patroni-cluster.sh start-member DIR NAME   start one member again (an empty data directory: Patroni creates a replica)
#   patroni-cluster.sh kill-member DIR NAME    SIGKILL its Patroni and its postmaster together (a lost host)
#   patroni-cluster.sh ctl DIR ARG...          patronictl with node1's configuration
#   patroni-cluster.sh stop DIR                kill every member (Patroni first, then an immediate shutdown) and etcd
# Each member's Patroni log (PostgreSQL's and archive_command's output too) is DIR/nodeN/patroni.log; the socket is in DIR/nodeN.
# Env: PG_BIN (default /usr/lib/postgresql/15/bin): the members' server binaries (Patroni's bin_dir).
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
MEMBERS=(node1 node2 node3)

die() { echo "patroni-cluster: $*" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# In the background as postgres; PIDFILE gets the program's own pid (runuser's $! would be runuser's).
as_pg_bg() {
  local pidfile=$1 log=$2
  shift 2
  as_pg sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$log" 2>&1 &
}
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
wait_gone() {
  for _ in $(seq 300); do
    local any=0
    for p in "$@"; do alive "$p" && any=1; done
    [ "$any" = 0 ] && return 0
    sleep 0.1
  done
  die "processes $* still running after 30 s"
}
# A YAML single-quoted scalar.
q() { printf "'%s'" "${1//\'/\'\'}"; }
free_ports() {
  python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}
member_dir() {
  local dir=$1 name=$2
  [ -f "$dir/$name/patroni.yml" ] || die "no member $name in $dir"
  echo "$dir/$name"
}
start_member() {
  local m
  m=$(member_dir "$1" "$2")
  as_pg_bg "$m/patroni.pid" "$m/patroni.log" patroni "$m/patroni.yml"
}
postmaster_pid() { head -n 1 "$1/data/postmaster.pid" 2>/dev/null || true; }

cmd=${1:-}; shift || true
case "$cmd" in
  start)
    dir=${1:?start DIR}; shift
    archive_command='' restore_command='' replica_method='' method_options=''
    while [ $# -gt 0 ]; do
      case "$1" in
        --archive-command) archive_command=$2 ;;
        --restore-command) restore_command=$2 ;;
        --replica-method) replica_method=$2 ;;
        --replica-method-option) method_options+="
    ${2%%=*}: $(q "${2#*=}")" ;;
        *) die "unknown option $1" ;;
      esac
      shift 2
    done
    for p in patroni patronictl etcd python3 curl; do
      command -v "$p" >/dev/null || die "$p not found: run infra/install.sh (Debian's patroni and etcd-server)"
    done
    [ -x "$PG_BIN/postgres" ] || die "no PostgreSQL in $PG_BIN"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    read -r etcd_port etcd_peer p1 a1 p2 a2 p3 a3 <<<"$(free_ports 8)"
    pg_ports=("$p1" "$p2" "$p3") api_ports=("$a1" "$a2" "$a3")
    as_pg mkdir -p "$dir/etcd"
    echo "ETCD_PORT=$etcd_port" >"$dir/cluster.env"
    as_pg_bg "$dir/etcd/etcd.pid" "$dir/etcd/etcd.log" etcd --name etcd --data-dir "$dir/etcd/data" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
      --initial-cluster "etcd=http://127.0.0.1:$etcd_peer"
    for _ in $(seq 300); do
      curl -fsS -m 1 "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
      sleep 0.1
    done
    curl -fsS -m 1 "http://127.0.0.1:$etcd_port/health" >/dev/null || { tail -n 20 "$dir/etcd/etcd.log" >&2; die "etcd did not start"; }

    methods='[basebackup]' method_conf=''
    if [ -n "$replica_method" ]; then
      methods='[cloudarchive, basebackup]'
      method_conf="  cloudarchive:
    command: $(q "$replica_method")$method_options
    keep_data: false
    no_params: false"
    fi
    for i in 0 1 2; do
      name=${MEMBERS[$i]} m=$dir/${MEMBERS[$i]}
      as_pg mkdir -p "$m"
      as_pg chmod 0700 "$m"
      cat >"$m/patroni.yml.tmp" <<YAML
scope: cloudarchive-test
name: $name
restapi:
  listen: 127.0.0.1:${api_ports[$i]}
  connect_address: 127.0.0.1:${api_ports[$i]}
etcd3:
  hosts: 127.0.0.1:$etcd_port
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 5
    maximum_lag_on_failover: 1073741824
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: replica
        wal_log_hints: 'on'
        max_wal_senders: 10
        hot_standby: 'on'
        shared_buffers: 32MB
        fsync: 'off'
        archive_mode: '$([ -n "$archive_command" ] && echo on || echo off)'
        archive_command: $(q "${archive_command:-/bin/true}")
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
postgresql:
  listen: 127.0.0.1:${pg_ports[$i]}
  connect_address: 127.0.0.1:${pg_ports[$i]}
  data_dir: $m/data
  bin_dir: $PG_BIN
  pgpass: $m/pgpass
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
  parameters:
    unix_socket_directories: $(q "$m")
    log_line_prefix: '%m [%p] '
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
$([ -n "$restore_command" ] && printf '  recovery_conf:\n    restore_command: %s\n' "$(q "$restore_command")")
  create_replica_methods: $methods
$method_conf
  basebackup:
    checkpoint: fast
YAML
      [ "$(id -u)" = 0 ] && chown postgres: "$m/patroni.yml.tmp"
      mv "$m/patroni.yml.tmp" "$m/patroni.yml"
      printf '%s_API_PORT=%s\n%s_PG_PORT=%s\n' "$name" "${api_ports[$i]}" "$name" "${pg_ports[$i]}" >>"$dir/cluster.env"
    done
    for name in "${MEMBERS[@]}"; do start_member "$dir" "$name"; done
    ;;
  start-member)
    start_member "${1:?start-member DIR NAME}" "${2:?start-member DIR NAME}"
    ;;
  kill-member)
    m=$(member_dir "${1:?kill-member DIR NAME}" "${2:?kill-member DIR NAME}")
    patroni_pid=$(cat "$m/patroni.pid") pm=$(postmaster_pid "$m")
    # Together: a postmaster killed alone is restarted in place by its Patroni, which keeps the leader key.
    kill -KILL "$patroni_pid" $pm 2>/dev/null || true
    wait_gone "$patroni_pid" $pm
    ;;
  ctl)
    dir=${1:?ctl DIR ARG...}; shift
    as_pg patronictl -c "$(member_dir "$dir" node1)/patroni.yml" "$@"
    ;;
  stop)
    dir=${1:?stop DIR}
    pids=()
    for name in "${MEMBERS[@]}"; do
      m=$dir/$name
      [ -f "$m/patroni.pid" ] || continue
      p=$(cat "$m/patroni.pid")
      alive "$p" && kill -KILL "$p" 2>/dev/null || true
      pids+=("$p")
    done
    wait_gone "${pids[@]}"
    pids=()
    # Immediate shutdown (SIGQUIT), which removes the server's shared memory as SIGKILL would not.
    for name in "${MEMBERS[@]}"; do
      pm=$(postmaster_pid "$dir/$name")
      alive "$pm" && { kill -QUIT "$pm" 2>/dev/null || true; pids+=("$pm"); }
    done
    [ -f "$dir/etcd/etcd.pid" ] && { e=$(cat "$dir/etcd/etcd.pid"); alive "$e" && kill -TERM "$e" 2>/dev/null; pids+=("$e"); }
    [ ${#pids[@]} -eq 0 ] || wait_gone "${pids[@]}"
    ;;
  *)
    echo "usage: patroni-cluster.sh start DIR [--archive-command CMD] [--restore-command CMD] [--replica-method CMD [--replica-method-option KEY=VALUE]...] | start-member DIR NAME | kill-member DIR NAME | ctl DIR ARG... | stop DIR" >&2
    exit 2
    ;;
esac
