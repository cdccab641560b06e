#!/usr/bin/env bash
# PostgreSQL's own recovery tests (src/test/recovery, TAP) with cloudarchive as archive_command and restore_command,
# against Debian's PostgreSQL 15 (Debian 12, as root).
#
#   pg-recovery-tests.sh prepare      fetches the source of the installed postgresql-15 from the Debian archive (apt-get
#                                     source --download-only, with a private apt configuration made from the system's
#                                     own sources: the system's is not changed), unpacks its src/test/perl and
#                                     src/test/recovery into $CLOUDARCHIVE_TEST_DIR/pg15-recovery-tests, and makes the
#                                     substitution below. Idempotent: a prepared tree of the same version is kept.
#   pg-recovery-tests.sh run T.pl [NAME]
#                                     runs t/T.pl with prove as user postgres (cloudarchive: $CLOUDARCHIVE_TEST_BIN;
#                                     options added to every wal-push and wal-fetch: CLOUDARCHIVE_TEST_PUSH_OPTIONS and
#                                     CLOUDARCHIVE_TEST_FETCH_OPTIONS, e.g. "--async" and "--prefetch 4"), nodes and logs
#                                     under $CLOUDARCHIVE_TEST_DIR/work/recovery-tests/NAME (default T); exit 0 only
#                                     when every subtest passed. With CLOUDARCHIVE_TEST_STORE_BASE (a cloud store URL, e.g.
#                                     s3://bucket/recovery-tests/RUN) each archive directory's store is BASE/MD5 of the
#                                     directory's path instead, reached with the settings and credentials of the config
#                                     file CLOUDARCHIVE_CONFIG names (readable by postgres; the only caller variable
#                                     passed: no secret on a command line or in the tests' environment).
#
# The substitution, in the unpacked copy only (PostgreSQL's code is not part of this repository):
# - PostgreSQL::Test::Cluster's enable_archiving sets archive_command to `cloudarchive wal-push %p --store file://DIR`
#   and enable_restoring sets restore_command to `cloudarchive wal-fetch %f %p --store file://DIR` (DIR: the archive
#   directory the tests' `cp` used; or the store under CLOUDARCHIVE_TEST_STORE_BASE named after DIR), each after
#   `cloudarchive store-init` of that store (which keeps a store it finds).
# - 002_archiving.pl waits for 00000002.history by asking the store (wal-fetch), not by pg_stat_file of a plain file.
# A substitution that does not apply (another PostgreSQL release changed the lines) stops prepare with an error.
# Tests that read or write plain files in the archive directory themselves (043) are not run: no archiver's store is a
# directory of plain copies.
# Env: CLOUDARCHIVE_TEST_DIR (default /tmp/cloudarchive-test), CLOUDARCHIVE_TEST_BIN (run: the binary to test).
set -euo pipefail
umask 022

BASE=${CLOUDARCHIVE_TEST_DIR:-/tmp/cloudarchive-test}
TREE=$BASE/pg15-recovery-tests
PG15_BIN=/usr/lib/postgresql/15/bin
PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress
# Raised whenever substitute() changes, so a tree prepared by an older one is made again.
SUBSTITUTION=4

step() { echo "pg-recovery-tests: $*" >&2; }
die() { echo "pg-recovery-tests: ERROR: $*" >&2; exit 1; }

prepare() {
  [ "$(id -u)" = 0 ] || die "prepare must run as root (apt-get)"
  local version apt dir orig
  version=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null) || die "postgresql-15 is not installed (infra/install.sh)"
  if [ -f "$TREE/.version" ] && [ "$(cat "$TREE/.version")" = "$version substitution $SUBSTITUTION" ]; then
    step "PostgreSQL $version's recovery tests already in $TREE"
    return 0
  fi
  apt=$BASE/pg15-source-apt
  rm -rf "$apt" "$TREE"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d" "$apt/src"
  # The system's own archives, as source archives (deb822 .sources and one-line .list files alike).
  : >"$apt/sources.list"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && sed -n 's/^deb \(.*\)$/deb-src \1/p' "$f" >>"$apt/sources.list"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && sed 's/^Types:.*/Types: deb-src/' "$f" >"$apt/sources.list.d/$(basename "$f")"
  done
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=root" -qq)
  step "fetching the source of postgresql-15 $version from the Debian archive"
  # Three tries each, 5 s apart: a network hiccup must not fail the run's recovery tests.
  local try
  for try in 1 2 3; do
    apt-get "${opts[@]}" update >/dev/null && break
    [ "$try" = 3 ] && die "apt-get update of the source archives failed"
    sleep 5
  done
  for try in 1 2 3; do
    (cd "$apt/src" && { apt-get "${opts[@]}" source --download-only "postgresql-15=$version" >/dev/null 2>&1 ||
      apt-get "${opts[@]}" source --download-only postgresql-15 >/dev/null; }) && break
    [ "$try" = 3 ] && die "apt-get source postgresql-15 failed"
    sleep 5
  done
  orig=$(ls "$apt/src"/postgresql-15_*.orig.tar.* 2>/dev/null | head -n 1)
  [ -n "$orig" ] || die "no upstream tarball of postgresql-15 in $apt/src"
  dir=$(tar -tf "$orig" | head -n 1 | cut -d/ -f1) || true  # (head ends tar's listing early: SIGPIPE)
  [ -n "$dir" ] || die "cannot list $orig"
  mkdir -p "$TREE"
  tar -xf "$orig" -C "$TREE" --strip-components=1 "$dir/src/test/perl" "$dir/src/test/recovery" || die "cannot unpack $orig"
  substitute
  echo "$version substitution $SUBSTITUTION" >"$TREE/.version"
  chmod -R a+rX "$TREE"
  rm -rf "$apt"
  step "PostgreSQL $version's recovery tests ready in $TREE"
}

# perl -0pi with a check: the file must change, else the upstream lines moved and the run would test `cp`.
edit() {  # FILE PERL-SUBSTITUTION
  local before
  before=$(sha256sum "$1")
  perl -0pi -e "$2" "$1"
  [ "$(sha256sum "$1")" != "$before" ] || die "the substitution did not apply to $1: $2"
}

substitute() {
  local cluster=$TREE/src/test/perl/PostgreSQL/Test/Cluster.pm
  edit "$cluster" 's{qq\{cp "\$path/%f" "%p"\}}{_cloudarchive_command("wal-fetch %f %p", \$path)}'
  edit "$cluster" 's{qq\{cp "%p" "\$path/%f"\}}{_cloudarchive_command("wal-push %p", \$path)}'
  # Two helpers of PostgreSQL::Test::Cluster at the end of the file (before its closing "1;"): the command on a store
  # (store-init first), and a wait until the store serves a file.
  edit "$cluster" 's{\n1;\s*\z}{
# cloudarchive (infra/pg-recovery-tests.sh): archive_command and restore_command run cloudarchive on a store in DIR
# (or, with CLOUDARCHIVE_TEST_STORE_BASE, on the store under it named after DIR).
package PostgreSQL::Test::Cluster;    ## no critic (ProhibitMultiplePackages)

use Digest::MD5 ();

sub _cloudarchive_store
{
	my (\$path) = \@_;
	my \$base = \$ENV{CLOUDARCHIVE_TEST_STORE_BASE};
	return defined \$base && \$base ne "" ? "\$base/" . Digest::MD5::md5_hex(\$path) : "file://\$path";
}

sub _cloudarchive_command
{
	my (\$args, \$path) = \@_;
	my \$store = _cloudarchive_store(\$path);
	PostgreSQL::Test::Utils::system_or_bail(\$ENV{CLOUDARCHIVE_TEST_BIN}, "store-init", "--store", \$store);
	my \$options = \$args =~ /^wal-push/ ? \$ENV{CLOUDARCHIVE_TEST_PUSH_OPTIONS} : \$ENV{CLOUDARCHIVE_TEST_FETCH_OPTIONS};
	\$args .= " \$options" if defined \$options && \$options ne "";
	my \$command = qq{\$ENV{CLOUDARCHIVE_TEST_BIN} \$args --store \$store};
	Test::More::note("cloudarchive command: \$command");
	return \$command;
}

# cloudarchive: true once the store of this node\x27s archive directory serves FILE (wal-fetch), within the timeout.
sub cloudarchive_poll_archived
{
	my (\$self, \$file) = \@_;
	my \$probe = PostgreSQL::Test::Utils::tempdir() . "/cloudarchive-probe";
	for (my \$i = 0; \$i < 10 * \$PostgreSQL::Test::Utils::timeout_default; \$i++)
	{
		unlink \$probe;
		return 1 if system(\$ENV{CLOUDARCHIVE_TEST_BIN}, "wal-fetch", \$file, \$probe, "--store", _cloudarchive_store(\$self->archive_dir)) == 0;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

1;
}'
  edit "$TREE/src/test/recovery/t/002_archiving.pl" \
    's{\$caughtup_query =\s*"SELECT size IS NOT NULL FROM pg_stat_file\(\x27\$primary_archive/00000002\.history\x27, true\)";\s*\$node_primary->poll_query_until\(\x27postgres\x27, \$caughtup_query\)}{\$node_primary->cloudarchive_poll_archived(\x2700000002.history\x27)}'
}

run() {  # T.pl [NAME]
  local t=$1 name=${2:-} work
  [ "$(id -u)" = 0 ] || die "run must run as root (it runs the test as user postgres)"
  [ -f "$TREE/.version" ] || die "no prepared recovery tests in $TREE: run '$0 prepare' first"
  [ -f "$TREE/src/test/recovery/t/$t" ] || die "no test t/$t in $TREE"
  [ -x "${CLOUDARCHIVE_TEST_BIN:-}" ] || die "CLOUDARCHIVE_TEST_BIN must name the cloudarchive binary to test"
  [ -n "$name" ] || name=${t%.pl}
  work=$BASE/work/recovery-tests/$name
  rm -rf "$work"; mkdir -p "$work"; chown postgres: "$work"; chmod 700 "$work"
  cd "$TREE/src/test/recovery"
  # A cloud store: its base, and the config file that reaches it (its endpoint, trust and credentials); else no config
  # file at all, not even /etc/cloudarchive's.
  local store=(CLOUDARCHIVE_CONFIG=)
  if [ -n "${CLOUDARCHIVE_TEST_STORE_BASE:-}" ]; then
    [ -n "${CLOUDARCHIVE_CONFIG:-}" ] || die "CLOUDARCHIVE_TEST_STORE_BASE needs CLOUDARCHIVE_CONFIG: the config file that reaches that store"
    store=(CLOUDARCHIVE_TEST_STORE_BASE="$CLOUDARCHIVE_TEST_STORE_BASE" CLOUDARCHIVE_CONFIG="$CLOUDARCHIVE_CONFIG")
  fi
  # A clean environment: the tests' own, PostgreSQL 15 first on PATH, no PG* variable of the caller.
  runuser -u postgres -- env -i HOME="$work" LANG=C.UTF-8 PATH="$PG15_BIN:/usr/bin:/bin" TESTDIR="$work" \
    PG_REGRESS="$PG_REGRESS" CLOUDARCHIVE_TEST_BIN="$CLOUDARCHIVE_TEST_BIN" \
    CLOUDARCHIVE_TEST_PUSH_OPTIONS="${CLOUDARCHIVE_TEST_PUSH_OPTIONS:-}" CLOUDARCHIVE_TEST_FETCH_OPTIONS="${CLOUDARCHIVE_TEST_FETCH_OPTIONS:-}" \
    "${store[@]}" timeout 600 prove -v -I "$TREE/src/test/perl" -I "$TREE/src/test/recovery" "t/$t"
}

case "${1:-}" in
  prepare) prepare ;;
  run) [ $# = 2 ] || [ $# = 3 ] || die "usage: $0 run T.pl [NAME]"; run "$2" "${3:-}" ;;
  *) die "usage: $0 prepare | run T.pl [NAME]" ;;
esac
