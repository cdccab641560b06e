#!/usr/bin/env bash
# Runs every test against real servers: installs what is missing (infra/install.sh), publishes the
# cloudarchive binary where user postgres can execute it, and runs `dotnet test` on the solution.
# Env: CLOUDARCHIVE_TEST_DIR (default /tmp/cloudarchive-test): binary, clusters and stores of the run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
export CLOUDARCHIVE_TEST_DIR=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

"$HERE/install.sh"

mkdir -p "$CLOUDARCHIVE_TEST_DIR"
chmod 0755 "$CLOUDARCHIVE_TEST_DIR"
echo "== publishing cloudarchive (NativeAOT) to $CLOUDARCHIVE_TEST_DIR/bin"
dotnet publish "$REPO/src/CloudArchive.Cli" -c Release -o "$CLOUDARCHIVE_TEST_DIR/bin" --nologo -v quiet
chmod -R a+rX "$CLOUDARCHIVE_TEST_DIR/bin"
export CLOUDARCHIVE_TEST_BIN="$CLOUDARCHIVE_TEST_DIR/bin/cloudarchive"

echo "== dotnet test"
dotnet test "$REPO/CloudArchive.sln" -c Release --nologo --logger "console;verbosity=normal"
