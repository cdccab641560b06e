#!/usr/bin/env bash
# The test servers' TLS certificate: a self-signed certificate for 127.0.0.1 (an IP and a DNS SAN: some clients
# check only DNS names) and its key, in $CLOUDARCHIVE_TEST_DIR/tls/. RGW and Azurite serve it; the tests trust it
# as their only CA (cert.pem is its own CA bundle). Kept while it is valid for another 2 days, else made anew
# (a server still running with the old one fails its start script's check and is restarted).
# Prints the directory. Env: CLOUDARCHIVE_TEST_DIR (default /tmp/cloudarchive-test).
set -euo pipefail

BASE=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}
DIR=$BASE/tls
if [ -s "$DIR/cert.pem" ] && [ -s "$DIR/key.pem" ] && openssl x509 -checkend 172800 -noout -in "$DIR/cert.pem" >/dev/null 2>&1; then
  echo "$DIR"; exit 0
fi
mkdir -p "$DIR"
chmod 0755 "$BASE" "$DIR"  # archive_command runs as postgres, the CronJob tests as nobody: both read cert.pem
tmp=$(mktemp -d "$DIR/new.XXXXXX")
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1,DNS:127.0.0.1" -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null \
  || { rm -rf "$tmp"; echo "tls-cert: ERROR: openssl could not make a certificate" >&2; exit 1; }
chmod 0600 "$tmp/key.pem"
chmod 0644 "$tmp/cert.pem"
# key first: whoever sees the new certificate finds its key beside it
mv "$tmp/key.pem" "$DIR/key.pem"
mv "$tmp/cert.pem" "$DIR/cert.pem"
rmdir "$tmp"
echo "tls-cert: made $DIR/cert.pem (self-signed, 127.0.0.1, 30 days)" >&2
echo "$DIR"
