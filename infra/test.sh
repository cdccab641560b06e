#!/usr/bin/env bash
# Runs every test against real servers: installs what is missing (infra/install.sh, and the other PostgreSQL
# majors' server binaries with infra/pg-versions.sh), starts the S3
# server (Ceph RGW) and Azurite on 127.0.0.1, publishes the cloudarchive binary where user postgres can
# execute it, runs `dotnet test` on the solution, and stops the servers again.
# Env: CLOUDARCHIVE_TEST_DIR (default /tmp/cloudarchive-test): binary, clusters and stores of the run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
export CLOUDARCHIVE_TEST_DIR=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# The tests choose each cluster's server binaries (Debian's 15 unless a test names another major); a PG_BIN left in
# the caller's environment would make infra/pg-cluster.sh start every "15" cluster with other binaries.
unset PG_BIN

"$HERE/install.sh"

mkdir -p "$CLOUDARCHIVE_TEST_DIR"
chmod 0755 "$CLOUDARCHIVE_TEST_DIR"
# The server binaries of every other major (12 for the refusal test, 13, 14, 16, 17, 18): the version matrix
# finds them through CLOUDARCHIVE_TEST_PGnn_BIN and fails without them.
echo "== PostgreSQL server binaries of the version matrix"
"$HERE/pg-versions.sh" >/dev/null
set -a
. "$CLOUDARCHIVE_TEST_DIR/pg-versions.env"
set +a
# PostgreSQL's own recovery tests (PostgresRecoveryTests) come from the source of Debian's postgresql-15; without them
# those tests fail, and the rest still run.
echo "== PostgreSQL 15's recovery tests (TAP), from its Debian source"
"$HERE/pg-recovery-tests.sh" prepare || echo "== PostgreSQL 15's recovery tests could not be prepared: PostgresRecoveryTests will fail"
echo "== publishing cloudarchive (NativeAOT) to $CLOUDARCHIVE_TEST_DIR/bin"
dotnet publish "$REPO/src/CloudArchive.Cli" -c Release -o "$CLOUDARCHIVE_TEST_DIR/bin" --nologo -v quiet
chmod -R a+rX "$CLOUDARCHIVE_TEST_DIR/bin"
export CLOUDARCHIVE_TEST_BIN="$CLOUDARCHIVE_TEST_DIR/bin/cloudarchive"

echo "== starting the S3 and Azure test servers"
trap '"$HERE/s3-stop.sh" >/dev/null 2>&1 || true; "$HERE/azurite-stop.sh" >/dev/null 2>&1 || true' EXIT
"$HERE/s3-start.sh" >/dev/null
"$HERE/azurite-start.sh" >/dev/null
set -a
. "$CLOUDARCHIVE_TEST_DIR/s3.env"
. "$CLOUDARCHIVE_TEST_DIR/azure.env"
set +a

echo "== dotnet test"
log="$CLOUDARCHIVE_TEST_DIR/dotnet-test.log"
set +e
dotnet test "$REPO/CloudArchive.sln" -c Release --nologo --logger "console;verbosity=normal" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# A failure scrolls far up among a thousand passes: each failed test's name and first lines of its message
# and stack are repeated here, just above the closing line, where a CI log's tail shows them.
awk '/^  Failed / {n=0; on=1; print "== failed: " substr($0, 10); next}
     /^  (Passed|Skipped) |^\[xUnit|^(Test Run|Total tests)/ {on=0}
     on && n < 40 {print; n++}' "$log"
# One closing line over every test project: "N passed, N failed, N skipped".
awk '/^ +Passed: +[0-9]+$/ {p+=$2} /^ +Failed: +[0-9]+$/ {f+=$2} /^ +Skipped: +[0-9]+$/ {s+=$2}
     END {printf "%d passed, %d failed, %d skipped\n", p, f, s}' "$log"
exit "$status"
