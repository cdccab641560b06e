#!/usr/bin/env bash
# Start a throwaway Azure blob test server: Azurite (blob service only, from infra/install.sh's
# /opt/cloudarchive-test/azurite) on 127.0.0.1, in the background with a pid file, fresh data dir,
# serving https only (the certificate of tls-cert.sh). Progress goes to stderr; the export lines for
# the tests (the connection string and CLOUDARCHIVE_TEST_CA_FILE, the CA bundle that trusts the server)
# go to stdout and to $CLOUDARCHIVE_TEST_DIR/azure.env (so: eval "$(infra/azurite-start.sh)").
# Already running -> prints them and exits 0. Stop with azurite-stop.sh.
# Env: CLOUDARCHIVE_TEST_DIR (default /tmp/cloudarchive-test; data, log, pid in its azurite/),
#      AZURITE_PORT (10000)
set -euo pipefail

BASE=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}
DIR=$BASE/azurite
PORT=${AZURITE_PORT:-10000}
MAIN=/opt/cloudarchive-test/azurite/node_modules/azurite/dist/src/blob/main.js
# the well-known Azurite development account (public, documented by Microsoft)
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
CONN="DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=$KEY;BlobEndpoint=https://127.0.0.1:$PORT/devstoreaccount1;"
TLS=$(CLOUDARCHIVE_TEST_DIR="$BASE" "$(dirname "$0")/tls-cert.sh")

t0=$(date +%s%N) started=0
log() { printf 'azurite-start: [%5d ms] %s\n' $(( ($(date +%s%N) - t0) / 1000000 )) "$*" >&2; }
die() {
  [ -s "$DIR/azurite.log" ] && { echo "--- $DIR/azurite.log" >&2; tail -n 20 "$DIR/azurite.log" >&2; }
  echo "azurite-start: ERROR: $*" >&2
  # kill what this run started, keep the log
  [ "$started" = 1 ] && KEEP=1 CLOUDARCHIVE_TEST_DIR="$BASE" "$(dirname "$0")/azurite-stop.sh" >/dev/null 2>&1
  exit 1
}
ours() {  # pid file names a live azurite blob server on our data dir (not a zombie or reused pid)
  [ -f "$DIR/azurite.pid" ] && { tr '\0' ' ' <"/proc/$(cat "$DIR/azurite.pid")/cmdline"; } 2>/dev/null \
    | grep -qF "$MAIN --blobHost 127.0.0.1 --blobPort $PORT --location $DIR "
}
# up: answers over https with the certificate in $TLS (one that fails verification is 000, not "up")
up() { [ "$(curl -s --cacert "$TLS/cert.pem" -o /dev/null -m 2 -w '%{http_code}' "https://127.0.0.1:$PORT/devstoreaccount1?comp=list")" != 000 ]; }
print_env() {
  cat > "$BASE/azure.env.tmp" <<EOF
export CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING='$CONN'
export CLOUDARCHIVE_TEST_CA_FILE=$TLS/cert.pem
export CLOUDARCHIVE_TEST_TLS_KEY_FILE=$TLS/key.pem
EOF
  mv "$BASE/azure.env.tmp" "$BASE/azure.env"
  cat "$BASE/azure.env"
}

if ours && up; then
  log "already running: https://127.0.0.1:$PORT (pid $(cat "$DIR/azurite.pid"))"
  print_env; exit 0
fi
[ -f "$MAIN" ] || die "azurite not installed at $MAIN: run infra/install.sh"
# our own leftovers (pid file checked by azurite-stop.sh), then a fresh data dir
CLOUDARCHIVE_TEST_DIR="$BASE" "$(dirname "$0")/azurite-stop.sh" >/dev/null 2>&1 || true
timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null \
  && die "port $PORT already in use by a process we did not start"
mkdir -p "$DIR"

nohup node "$MAIN" --blobHost 127.0.0.1 --blobPort "$PORT" --location "$DIR" \
  --cert "$TLS/cert.pem" --key "$TLS/key.pem" --silent --disableTelemetry --skipApiVersionCheck </dev/null >>"$DIR/azurite.log" 2>&1 &
pid=$!
echo $pid > "$DIR/azurite.pid"
started=1
log "started pid $pid"
deadline=$((SECONDS + 30))
until up; do
  # alive, not "ours": until the forked shell has exec'd node, its command line is still bash's
  kill -0 "$pid" 2>/dev/null || die "azurite exited during start-up"
  [ $SECONDS -lt $deadline ] || die "azurite did not answer on 127.0.0.1:$PORT within 30 s"
  sleep 0.25
done
ours || die "what answers on 127.0.0.1:$PORT is not the azurite started here"
log "azurite up: https://127.0.0.1:$PORT/devstoreaccount1"
print_env
