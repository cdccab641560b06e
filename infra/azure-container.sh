#!/usr/bin/env bash
# Create a blob container on the Azurite test server (idempotent): Shared Key signed with openssl, sent with curl,
# the server's certificate verified. Used by the benchmarks, which run no .NET code of their own.
#   infra/azure-container.sh NAME
# Env: CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING and CLOUDARCHIVE_TEST_CA_FILE (from $CLOUDARCHIVE_TEST_DIR/azure.env,
#      which infra/azurite-start.sh writes)
set -euo pipefail
name=${1:?usage: azure-container.sh NAME}
conn=${CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING:?source azure.env from the test directory first}
field() { printf '%s' "$conn" | tr ';' '\n' | sed -n "s/^$1=//p"; }
account=$(field AccountName); key=$(field AccountKey); endpoint=$(field BlobEndpoint)
date=$(LC_ALL=C TZ=GMT date '+%a, %d %b %Y %H:%M:%S GMT'); version=2021-08-06
# The Shared Key string to sign: the verb, eleven empty standard headers, the x-ms headers, the resource (Azurite
# puts the account in the path, so it appears twice).
sts=$(printf 'PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:%s\n/%s/%s/%s\nrestype:container' "$date" "$version" "$account" "$account" "$name")
hexkey=$(printf '%s' "$key" | base64 -d | od -An -tx1 | tr -d ' \n')
sig=$(printf '%s' "$sts" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | base64)
code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "${CLOUDARCHIVE_TEST_CA_FILE:?}" -X PUT -H "Content-Length: 0" \
  -H "x-ms-date: $date" -H "x-ms-version: $version" -H "Authorization: SharedKey $account:$sig" "$endpoint/$name?restype=container")
case $code in
  201) echo "azure-container: created $name" >&2 ;;
  409) echo "azure-container: $name exists" >&2 ;;
  *) echo "azure-container: ERROR: creating $name answered HTTP $code" >&2; exit 1 ;;
esac
