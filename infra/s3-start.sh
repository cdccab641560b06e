#!/usr/bin/env bash
# Start a throwaway S3 test server: single-node Ceph (1 mon + 1 memstore OSD, no mgr) + radosgw on
# 127.0.0.1, serving http on RGW_PORT and https on RGW_TLS_PORT (the certificate of tls-cert.sh), an S3 user
# with fixed test keys and the bucket cloudarchive-test; self-check over https, the certificate verified, that a
# PUT with If-None-Match: * on an existing key gets 412. Progress goes to stderr; the export lines for the tests
# (the https endpoint and CLOUDARCHIVE_TEST_CA_FILE, the CA bundle that trusts it) go to stdout and to
# $CLOUDARCHIVE_TEST_DIR/s3.env (so: eval "$(infra/s3-start.sh)").
# Already running -> prints them and exits 0. Stop with s3-stop.sh. Needs infra/install.sh first.
# Env: CLOUDARCHIVE_TEST_DIR (default /tmp/cloudarchive-test; cluster in its rgw/), RGW_PORT (7480),
#      RGW_TLS_PORT (7443), MON_PORT (3300), MEMSTORE_BYTES (4 GiB: OSD capacity, held in RAM; a full
#      memstore hangs PUTs)
set -euo pipefail

BASE=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}
DIR=$BASE/rgw
RGW_PORT=${RGW_PORT:-7480}
RGW_TLS_PORT=${RGW_TLS_PORT:-7443}
MON_PORT=${MON_PORT:-3300}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-4294967296}
ACCESS_KEY=TESTACCESSKEY0000001                      # fixed throwaway test keys
SECRET_KEY=testsecretkey000000000000000000000000001
BUCKET=cloudarchive-test
ENDPOINT=https://127.0.0.1:$RGW_TLS_PORT
HERE=$(cd "$(dirname "$0")" && pwd)
TLS=$(CLOUDARCHIVE_TEST_DIR="$BASE" "$HERE/tls-cert.sh")
export CEPH_CONF=$DIR/ceph.conf

t0=$(date +%s%N) started=0
log() { printf 's3-start: [%5d ms] %s\n' $(( ($(date +%s%N) - t0) / 1000000 )) "$*" >&2; }
die() {
  for f in "$DIR"/log/*.log; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 10 "$f" >&2; }; done
  echo "s3-start: ERROR: $*" >&2
  # kill what this run started, keep the logs
  [ "$started" = 1 ] && KEEP=1 CLOUDARCHIVE_TEST_DIR="$BASE" "$HERE/s3-stop.sh" >/dev/null 2>&1
  exit 1
}
alive() {  # pid file names a live ceph daemon (zombies and reused pids fail the cmdline check)
  [ -f "$DIR/run/$1.pid" ] && { tr '\0' ' ' <"/proc/$(cat "$DIR/run/$1.pid")/cmdline"; } 2>/dev/null \
    | grep -qE '^([^ ]*/)?(ceph-mon|ceph-osd|radosgw) '
}
port_busy() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# up: answers over https with the certificate in $TLS (one that fails verification is not "up")
s3_up() { curl -s --cacert "$TLS/cert.pem" -o /dev/null -m 2 -w '%{http_code}' "$ENDPOINT/" 2>/dev/null | grep -qE '^(200|403)$'; }
# curl 7.88 signs the SHA-256 of the body unless told otherwise, but RGW assumes UNSIGNED-PAYLOAD
# when the x-amz-content-sha256 header is absent (-> 403 SignatureDoesNotMatch): send it explicitly
s3() {
  curl -sS -m 10 --cacert "$TLS/cert.pem" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}
make_bucket() {
  local code; code=$(s3 -X PUT -o /dev/null -w '%{http_code}' "$ENDPOINT/$BUCKET") || true
  [ "$code" = 200 ] || die "create bucket $BUCKET: HTTP $code"
}
print_env() {
  cat > "$BASE/s3.env.tmp" <<EOF
export CLOUDARCHIVE_TEST_S3_ENDPOINT=$ENDPOINT
export CLOUDARCHIVE_TEST_S3_BUCKET=$BUCKET
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export CLOUDARCHIVE_TEST_CA_FILE=$TLS/cert.pem
export CLOUDARCHIVE_TEST_TLS_KEY_FILE=$TLS/key.pem
EOF
  mv "$BASE/s3.env.tmp" "$BASE/s3.env"
  cat "$BASE/s3.env"
}

if alive mon.a && alive osd.0 && alive client.rgw.a && s3_up; then
  make_bucket
  log "already running: $ENDPOINT"
  print_env; exit 0
fi
# otherwise tear down our own leftovers (pid files in $DIR only) and start from nothing
CLOUDARCHIVE_TEST_DIR="$BASE" "$HERE/s3-stop.sh" >/dev/null 2>&1 || true
for p in "$RGW_PORT" "$RGW_TLS_PORT" "$MON_PORT"; do
  port_busy "$p" && die "port $p already in use by a process we did not start"
done
mkdir -p "$DIR"/{mon,osd,log,run}
started=1

FSID=$(uuidgen)
cat > "$CEPH_CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = none
auth service required = none
auth client required = none
keyring = /dev/null
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
# no ceph-mgr is started: silence MGR_DOWN (raised after mon_mgr_mkfs_grace=120s)
mon mgr mkfs grace = 315360000
# start-up speed: the mon batches proposals every 1 s by default and each of
# radosgw's pool creations waits for one
paxos propose interval = 0.01
paxos min wait = 0.001

[mon.a]
mon data = $DIR/mon
mon data avail crit = 0
mon data avail warn = 0

[osd.0]
osd data = $DIR/osd
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd class load list = *
osd class default list = *

[client.rgw.a]
# radosgw hard-codes ms_mon_client_mode=secure, impossible with auth=none:
# it would hang 300 s on "get_initial_auth_request returned -13"
ms mon client mode = crc
# tcp_nodelay: over TLS, beast's answers otherwise wait ~40 ms each for a delayed ACK (Nagle); 45 -> 4 ms a request
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT ssl_endpoint=127.0.0.1:$RGW_TLS_PORT ssl_certificate=$TLS/cert.pem ssl_private_key=$TLS/key.pem tcp_nodelay=1
rgw dns name = 127.0.0.1
rgw thread pool size = 64
EOF
log "config: $CEPH_CONF"

# monitor
monmaptool --create --clobber --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon -i a --mkfs --monmap "$DIR/monmap" --keyring /dev/null >>"$DIR/log/mon-start.log" 2>&1 || die "mon mkfs failed"
ceph-mon -i a >>"$DIR/log/mon-start.log" 2>&1 || die "mon failed to start"
timeout 30 ceph -s --connect-timeout 20 >/dev/null 2>&1 || die "mon does not answer"
log "mon up"

# OSD on memstore (all data in the OSD's RAM, gone when it stops)
OSD_ID=$(timeout 30 ceph osd create 2>/dev/null) || die "ceph osd create failed"
[ "$OSD_ID" = 0 ] || die "unexpected OSD id '$OSD_ID'"
timeout 30 ceph osd crush add osd.0 1 root=default >/dev/null 2>&1 || die "crush add failed"
ceph-osd -i 0 --mkfs >>"$DIR/log/osd-start.log" 2>&1 || die "osd mkfs failed"
ceph-osd -i 0 >>"$DIR/log/osd-start.log" 2>&1 || die "osd failed to start"
osd_up() { timeout 10 ceph osd dump 2>/dev/null | grep -q '^osd.0 up'; }
deadline=$((SECONDS + 30))
until osd_up; do
  [ ! -f "$DIR/run/osd.0.pid" ] || alive osd.0 || die "ceph-osd exited during start-up"
  [ $SECONDS -lt $deadline ] || die "OSD did not come up within 30 s"
  sleep 0.25
done
log "osd up"

# S3 user (radosgw-admin also creates the .rgw.root / default.rgw.* pools)
timeout 60 radosgw-admin user create --uid=test --display-name="CloudArchive test" \
  --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null 2>>"$DIR/log/user-create.log" \
  || die "S3 user create failed"
log "user created"

# radosgw
radosgw -n client.rgw.a >>"$DIR/log/rgw-start.log" 2>&1 || die "radosgw failed to start"
deadline=$((SECONDS + 60))
until s3_up; do
  [ ! -f "$DIR/run/client.rgw.a.pid" ] || alive client.rgw.a || die "radosgw exited during start-up"
  [ $SECONDS -lt $deadline ] || die "radosgw did not answer on $ENDPOINT within 60 s"
  sleep 0.25
done
log "radosgw up: $ENDPOINT"

make_bucket
log "bucket $BUCKET created"

# self-check: a conditional PUT on an existing key must be refused and leave the content alone
key="$ENDPOINT/$BUCKET/_selfcheck/if-none-match"
c1=$(s3 -X PUT --data-binary first -o /dev/null -w '%{http_code}' "$key") || true
c2=$(s3 -X PUT --data-binary second -H 'If-None-Match: *' -o /dev/null -w '%{http_code}' "$key") || true
body=$(s3 "$key") || true
s3 -X DELETE -o /dev/null "$key" || true
if [ "$c1" != 200 ] || [ "$c2" != 412 ] || [ "$body" != first ]; then
  die "self-check failed: PUT=$c1, PUT If-None-Match:*=$c2 (want 412), content='$body' (want 'first')"
fi
log "self-check: PUT If-None-Match:* on existing key -> 412, content unchanged"

print_env
