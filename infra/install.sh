#!/usr/bin/env bash
# Idempotent installer (Debian 12, as root) for what CloudArchive's tests and demo need:
# PostgreSQL 15 (server, client, pgbench), zstd, curl, openssl (the test servers' certificate), uuidgen, runuser, ps, man, perl's prove and IPC::Run (PostgreSQL's
# own recovery tests, pg-recovery-tests.sh), Ceph mon/osd/radosgw
# (S3 test server, see s3-start.sh), Patroni and etcd (the HA cluster of patroni-cluster.sh), Node.js/npm if missing, Azurite (Azure blob test server,
# see azurite-start.sh) under /opt/cloudarchive-test/azurite, and the npm package kubernetes-models (the Kubernetes
# API schemas the tests validate deploy/kubernetes against) under /opt/cloudarchive-test/kubernetes-models. Checks that .NET >= 10 is on PATH.
# Re-execs itself with sudo when not root. apt is skipped when every package is already installed.
# Usage: install.sh [--demo]   --demo: only what the demo needs (PostgreSQL 15, zstd), no test servers.
# Env: CI=true  also smoke-runs every installed tool (--version) so a broken install fails here.
set -euo pipefail

AZURITE_VERSION=3.37.0
AZURITE_PREFIX=/opt/cloudarchive-test/azurite
# The Kubernetes API schemas (npm kubernetes-models, pinned with its lock file in the tests); KubernetesManifestTests reads them here
K8S_MODELS_PREFIX=/opt/cloudarchive-test/kubernetes-models
K8S_MODELS_LOCK=$(cd "$(dirname "$0")/.." && pwd)/tests/CloudArchive.IntegrationTests/kubernetes
# pgbench for PG15 is shipped in postgresql-15 itself (`dpkg -S pgbench`); runuser is in util-linux, script (a terminal for the
# progress tests) in bsdutils, which Debian installs everywhere: listed so a trimmed image still gets it; man-db for the package
# test's `man` (packaging/build-deb.sh itself needs only dpkg-deb, gzip and awk, which every Debian has)
APT_PKGS=(postgresql-15 postgresql-client-15 zstd libzstd1 curl openssl uuid-runtime ceph-mon ceph-osd radosgw procps util-linux bsdutils
  python3-prometheus-client strace man-db patroni etcd-server perl libipc-run-perl)
DEMO=0
[ "${1:-}" = --demo ] && { DEMO=1; APT_PKGS=(postgresql-15 postgresql-client-15 zstd libzstd1 procps util-linux); }

step() { echo "install: $*"; }
die() { echo "install: ERROR: $*" >&2; exit 1; }

# .NET first, as the calling user (whose PATH builds the project). Debian has no .NET package.
command -v dotnet >/dev/null || die "dotnet not found: install the .NET 10 SDK from Microsoft (Debian does not package .NET)"
ver=$(dotnet --version 2>&1) || die "'dotnet --version' failed: $(echo "$ver" | head -n 1)"
[ "${ver%%.*}" -ge 10 ] 2>/dev/null || die "dotnet $ver found, .NET SDK >= 10 required (install it from Microsoft; Debian does not package .NET)"
step ".NET SDK $ver ok"

if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "must run as root (sudo not available)"
  step "not root: re-running with sudo"
  exec sudo --preserve-env=CI -- "$0" "$@"
fi

missing=()
for p in "${APT_PKGS[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
done
if [ "$DEMO" = 0 ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  step "apt packages already installed, skipping apt"
else
  step "apt-get update (missing: ${missing[*]})"
  apt-get update -qq
  step "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$DEMO" = 1 ]; then
  [ -x /usr/lib/postgresql/15/bin/postgres ] || die "missing after install: postgresql-15"
  step "demo tools present"; exit 0
fi

# Azurite from npm into a fixed, world-readable prefix
az_pkg=$AZURITE_PREFIX/node_modules/azurite/package.json
have=$(node -p "require('$az_pkg').version" 2>/dev/null || true)
if [ "$have" = "$AZURITE_VERSION" ]; then
  step "azurite $AZURITE_VERSION already in $AZURITE_PREFIX"
else
  step "npm install azurite@$AZURITE_VERSION into $AZURITE_PREFIX${have:+ (had $have)}"
  mkdir -p "$AZURITE_PREFIX"
  (umask 022 && npm install --prefix "$AZURITE_PREFIX" --no-audit --no-fund --loglevel=error \
     "azurite@$AZURITE_VERSION" >/dev/null)
  chmod -R a+rX /opt/cloudarchive-test
fi

# kubernetes-models from npm, exactly the lock file's versions
if cmp -s "$K8S_MODELS_LOCK/package-lock.json" "$K8S_MODELS_PREFIX/package-lock.json" && [ -d "$K8S_MODELS_PREFIX/node_modules/kubernetes-models" ]; then
  step "kubernetes-models already in $K8S_MODELS_PREFIX"
else
  step "npm ci kubernetes-models into $K8S_MODELS_PREFIX"
  mkdir -p "$K8S_MODELS_PREFIX"
  cp "$K8S_MODELS_LOCK/package.json" "$K8S_MODELS_LOCK/package-lock.json" "$K8S_MODELS_PREFIX/"
  (umask 022 && cd "$K8S_MODELS_PREFIX" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  chmod -R a+rX /opt/cloudarchive-test
fi

# Verify (always: cheap); with CI=true also run each tool once
need=(/usr/lib/postgresql/15/bin/postgres /usr/lib/postgresql/15/bin/initdb /usr/lib/postgresql/15/bin/pg_ctl
      /usr/lib/postgresql/15/bin/pgbench /usr/bin/psql /usr/bin/zstd /usr/bin/curl /usr/bin/openssl /usr/bin/uuidgen
      /usr/bin/ceph-mon /usr/bin/ceph-osd /usr/bin/radosgw /usr/bin/radosgw-admin /usr/bin/monmaptool
      /usr/bin/ceph /usr/bin/patroni /usr/bin/patronictl /usr/bin/etcd "$AZURITE_PREFIX/node_modules/.bin/azurite-blob")
[ -f "$K8S_MODELS_PREFIX/node_modules/kubernetes-models/package.json" ] || die "missing after install: kubernetes-models in $K8S_MODELS_PREFIX"
for f in "${need[@]}"; do [ -x "$f" ] || die "missing after install: $f"; done
command -v runuser >/dev/null || die "missing after install: runuser"
command -v man >/dev/null || die "missing after install: man (man-db)"
command -v prove >/dev/null && perl -MIPC::Run -e 1 2>/dev/null || die "missing after install: perl's prove and IPC::Run (libipc-run-perl)"
if [ "${CI:-}" = true ]; then
  for f in /usr/lib/postgresql/15/bin/{postgres,pgbench} /usr/bin/{zstd,curl,ceph-mon,ceph-osd,radosgw,patroni,etcd}; do
    "$f" --version >/dev/null 2>&1 || die "$f --version failed"
  done
  openssl version >/dev/null 2>&1 || die "openssl version failed"
  "$AZURITE_PREFIX/node_modules/.bin/azurite-blob" --version >/dev/null 2>&1 || die "azurite-blob does not run with node $(node --version)"
fi
step "all tools present (node $(node --version), azurite $AZURITE_VERSION)"
