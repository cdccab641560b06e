#!/usr/bin/env bash
# A Patroni replica creation method: makes the member's data directory a standby from the CloudArchive store
# (`cloudarchive restore --standby`) instead of copying it from the leader. In Patroni's configuration:
#   postgresql:
#     create_replica_methods: [cloudarchive, basebackup]
#     cloudarchive:
#       command: /path/to/patroni-restore-replica.sh
#       config: /etc/cloudarchive/cloudarchive.env     # optional: passed on as --config
#       binary: /usr/bin/cloudarchive                  # optional: default `cloudarchive` on PATH
#       keep_data: false
#       no_params: false
# Patroni runs it as the PostgreSQL user with --scope=... --datadir=... --role=replica --connstring=... (and every other
# key of the method as --key=value); it runs
#   cloudarchive restore --to DATADIR --standby --primary-conninfo CONNSTRING [--config FILE]
# and exits with restore's code: non-zero (no backup yet, store unreachable) makes Patroni try basebackup next.
# restore refuses a data directory that is not empty, so this never writes over one.
set -euo pipefail

die() { echo "patroni-restore-replica: $*" >&2; exit 2; }
binary=cloudarchive datadir='' connstring='' role='' config=''
for arg in "$@"; do
  case "$arg" in
    --datadir=*) datadir=${arg#*=} ;;
    --connstring=*) connstring=${arg#*=} ;;
    --role=*) role=${arg#*=} ;;
    --config=*) config=${arg#*=} ;;
    --binary=*) binary=${arg#*=} ;;
    # Patroni's own: the cluster's name and the method's switches (passed on unless no_params is true)
    --scope=* | --keep_data=* | --no_params=* | --no_master=* | --no_leader=*) ;;
    *) die "unknown argument '${arg%%=*}' (Patroni passes each key of the method's configuration as --key=value)" ;;
  esac
done
[ "$role" = replica ] || die "--role=replica expected, got '$role'"
case "$datadir" in
  /*) ;;
  *) die "--datadir must be an absolute path, got '$datadir'" ;;
esac
args=(restore --to "$datadir" --standby)
# Patroni passes an empty --connstring when there is no member to clone from (a method marked no_leader).
[ -n "$connstring" ] && args+=(--primary-conninfo "$connstring")
[ -n "$config" ] && args+=(--config "$config")
echo "patroni-restore-replica: restoring $datadir from the store as a standby"
exec "$binary" "${args[@]}"
