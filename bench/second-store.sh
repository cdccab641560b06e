#!/usr/bin/env bash
# What a second store costs wal-push (#35): 24 real WAL segments, one wal-push process per segment, zstd 1, as user
# postgres, against one store and against the same store with a second one (--store-2-mode required), twice each.
#   bench/second-store.sh SEGMENT_DIR     (a directory of at least 24 archived segments; run as root)
# Env: CLOUDARCHIVE_BIN (default: the integration tests' published binary), CLOUDARCHIVE_TEST_DIR (the S3 and Azurite
#      test servers' env files, from infra/s3-start.sh and infra/azurite-start.sh)
set -euo pipefail
SRC=${1:?usage: bench/second-store.sh SEGMENT_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}
set -a; . "$T/s3.env"; . "$T/azure.env"; set +a
BIN=${CLOUDARCHIVE_BIN:-$T/bin-main/cloudarchive}; W=/tmp/cloudarchive-bench/second-store; rm -rf "$W"; RUN=two-$(date +%s)
mkdir -p $W/segs; ls "$SRC" | grep -E '^[0-9A-F]{24}$' | head -24 > $W/list
while read -r s; do cp "$SRC/$s" $W/segs/; done < $W/list
chown -R postgres: $W
"$ROOT/infra/azure-container.sh" "$RUN" >/dev/null
cat > $W/s3.env <<E
CLOUDARCHIVE_S3_ENDPOINT=$CLOUDARCHIVE_TEST_S3_ENDPOINT
CLOUDARCHIVE_S3_REGION=us-east-1
CLOUDARCHIVE_S3_CA_FILE=$CLOUDARCHIVE_TEST_CA_FILE
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
E
cat > $W/az.env <<E
AZURE_STORAGE_CONNECTION_STRING=$CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING
CLOUDARCHIVE_AZURE_CA_FILE=$CLOUDARCHIVE_TEST_CA_FILE
E
chown postgres: $W/*.env; chmod 600 $W/*.env
row() {  # LABEL STORE1_URL STORE1_ENVFILE [STORE2_URL STORE2_ENVFILE]
  local label=$1 s1=$2 e1=$3 s2=${4:-} e2=${5:-} c2=()
  if [ -n "$s2" ]; then cp $e2 $W/two-$label.env; echo "CLOUDARCHIVE_STORE=$s2" >> $W/two-$label.env; chown postgres: $W/two-$label.env; chmod 600 $W/two-$label.env; c2=(--store-2-config $W/two-$label.env); fi
  [ "${s1#file://}" != "$s1" ] && mkdir -p "${s1#file://}" && chown postgres: "${s1#file://}"
  runuser -u postgres -- env $(cat $e1 2>/dev/null | xargs) $BIN store-init --store $s1 >/dev/null
  if [ -n "$s2" ] && [ "${s2#file://}" != "$s2" ]; then mkdir -p "${s2#file://}"; chown postgres: "${s2#file://}"; fi
  sync; sleep 1
  local t0 t1; t0=$(date +%s.%N)
  while read -r s; do runuser -u postgres -- env $(cat $e1 2>/dev/null | xargs) $BIN wal-push $W/segs/$s --store $s1 --compress-level 1 "${c2[@]}"; done < $W/list
  t1=$(date +%s.%N)
  awk -v a=$t0 -v b=$t1 -v l="$label" 'BEGIN { printf "%-28s %.1f ms/segment\n", l, (b - a) * 1000 / 24 }'
}
touch $W/none.env; chown postgres: $W/none.env
for i in 1 2; do
  row s3-alone "s3://$CLOUDARCHIVE_TEST_S3_BUCKET/$RUN-$i/a" $W/s3.env
  row s3+azure "s3://$CLOUDARCHIVE_TEST_S3_BUCKET/$RUN-$i/b" $W/s3.env "azure://$RUN/b$i" $W/az.env
  row local-alone "file://$W/st-$i/a" $W/none.env
  row local+s3 "file://$W/st-$i/b" $W/none.env "s3://$CLOUDARCHIVE_TEST_S3_BUCKET/$RUN-$i/c" $W/s3.env
done
