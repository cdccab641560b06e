#!/usr/bin/env bash
# Builds the Debian package cloudarchive_<version>_<arch>.deb from the published NativeAOT binary:
#   /usr/bin/cloudarchive
#   /usr/share/man/man1/cloudarchive.1.gz              generated from the binary's help (packaging/man-page.sh)
#   /usr/share/doc/cloudarchive/                       README.md.gz, docs/*.md.gz (the manual), copyright, changelog.gz,
#                                                      examples/cloudarchive.env
#   /usr/share/lintian/overrides/cloudarchive          the two things lintian flags on purpose, with the reason
#   /etc/cloudarchive/cloudarchive.env.example         the example config (a conffile; read only when named by
#                                                      --config or CLOUDARCHIVE_CONFIG: nothing is read by default)
# The version is Directory.Build.props's <Version>, which the binary must report. Needs only dpkg-deb, gzip and
# awk (all in a Debian base system; git, if present, dates the man page and changelog by the commit); runs as any user (dpkg-deb --root-owner-group, no fakeroot).
# Usage: build-deb.sh [--binary PATH] [--out DIR]
#   --binary  a published cloudarchive (default: publish one with dotnet into a temporary directory)
#   --out     where the .deb is written (default: dist/ in the repository)
# Prints the path of the .deb on stdout, progress on stderr.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
die() { echo "build-deb: ERROR: $*" >&2; exit 1; }
step() { echo "build-deb: $*" >&2; }

BIN= OUT=$REPO/dist
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; BIN=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT=$2; shift 2 ;;
    *) die "unknown argument '$1' (usage: build-deb.sh [--binary PATH] [--out DIR])" ;;
  esac
done
for tool in dpkg-deb gzip awk; do command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install dpkg gzip mawk)"; done

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
if [ -z "$BIN" ]; then
  command -v dotnet >/dev/null || die "dotnet not found: give a published binary with --binary, or install the .NET 10 SDK"
  step "publishing cloudarchive (NativeAOT)"
  DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet publish "$REPO/src/CloudArchive.Cli" -c Release -o "$STAGE/publish" --nologo -v quiet >&2
  BIN=$STAGE/publish/cloudarchive
fi
[ -f "$BIN" ] && [ -x "$BIN" ] || die "$BIN is not an executable file"

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$REPO/Directory.Build.props")
[ -n "$version" ] || die "no <Version> in $REPO/Directory.Build.props"
reported=$("$BIN" --version) || die "$BIN --version failed"
[ "${reported%%+*}" = "$version" ] || die "$BIN reports version ${reported%%+*}, the repository is at $version: publish it again"

# The architecture is the binary's own (ELF e_machine at offset 18), not the build host's.
case $(od -An -tx2 -j18 -N2 "$BIN" | tr -d ' ') in
  003e) arch=amd64 ;;
  00b7) arch=arm64 ;;
  *) die "$BIN is not an x86-64 or AArch64 ELF executable" ;;
esac
# The newest glibc symbol version the binary binds (in its dynamic string table); ldd names only libc and libm.
glibc=$(grep -ao 'GLIBC_2\.[0-9]*' "$BIN" | sort -uV | tail -n 1)
[ -n "$glibc" ] || die "no GLIBC_ symbol versions in $BIN"

MAINTAINER="CloudArchive maintainers <maintainers@users.noreply.r-seed-894af18e.example>"
step "staging cloudarchive $version ($arch)"
root=$STAGE/root
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man1" "$root/usr/share/doc/cloudarchive/examples" \
  "$root/usr/share/doc/cloudarchive/docs" \
  "$root/usr/share/lintian/overrides" "$root/etc/cloudarchive"
install -m 0755 "$BIN" "$root/usr/bin/cloudarchive"
"$HERE/man-page.sh" "$BIN" | gzip -9n >"$root/usr/share/man/man1/cloudarchive.1.gz"
gzip -9nc "$REPO/README.md" >"$root/usr/share/doc/cloudarchive/README.md.gz"
# The manual README links to.
for page in "$REPO"/docs/*.md; do
  gzip -9nc "$page" >"$root/usr/share/doc/cloudarchive/docs/$(basename "$page").gz"
  chmod 0644 "$root/usr/share/doc/cloudarchive/docs/$(basename "$page").gz"
done
install -m 0644 "$HERE/copyright" "$root/usr/share/doc/cloudarchive/copyright"
install -m 0644 "$REPO/.env.example" "$root/usr/share/doc/cloudarchive/examples/cloudarchive.env"
install -m 0644 "$REPO/.env.example" "$root/etc/cloudarchive/cloudarchive.env.example"
# A native package's changelog: one entry, the commit it was built from (its date, so the same commit builds the same file).
commit=$(git -C "$REPO" log -1 --format='%h %cD' 2>/dev/null || echo "- $(date -R)")
printf 'cloudarchive (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n' \
  "$version" "${commit%% *}" "$MAINTAINER" "${commit#* }" | gzip -9n >"$root/usr/share/doc/cloudarchive/changelog.gz"
cat >"$root/usr/share/lintian/overrides/cloudarchive" <<'OVERRIDES'
# Linked at a fixed address on purpose: see PositionIndependentExecutable in src/CloudArchive.Cli/CloudArchive.Cli.csproj.
cloudarchive: hardening-no-pie [usr/bin/cloudarchive]
# The .NET runtime's compression (zlib-ng) is compiled into the NativeAOT binary.
cloudarchive: embedded-library zlib [usr/bin/cloudarchive]
OVERRIDES
chmod 0644 "$root/usr/share/man/man1/cloudarchive.1.gz" "$root/usr/share/doc/cloudarchive/README.md.gz" \
  "$root/usr/share/doc/cloudarchive/changelog.gz" "$root/usr/share/lintian/overrides/cloudarchive"
echo /etc/cloudarchive/cloudarchive.env.example >"$root/DEBIAN/conffiles"

# Depends: what the binary loads. libc6 it links; libssl3 (libssl.so.3 and libcrypto.so.3) .NET's cryptography and TLS
# dlopen for every SHA-256 and HTTPS request; libzstd1 (libzstd.so.1) CloudArchive.Native dlopens for zstd (a slower
# managed port when absent, but every Debian has it). On Debian 13 libssl3 is called libssl3t64.
cat >"$root/DEBIAN/control" <<CONTROL
Package: cloudarchive
Version: $version
Architecture: $arch
Maintainer: $MAINTAINER
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: libc6 (>= ${glibc#GLIBC_}), libssl3 | libssl3t64, libzstd1
Recommends: postgresql-client
Section: database
Priority: optional
Description: PostgreSQL WAL archiving, base backups and dumps to object storage
 cloudarchive is PostgreSQL's archive_command and restore_command: every
 completed WAL segment is compressed (zstd), checksummed (SHA-256) and written
 with a conditional put, so nothing archived is ever overwritten, and comes
 back verified for recovery and point-in-time recovery. It also takes base
 backups (full, differential, incremental), restores them to a target, keeps
 SQL dumps and proves with a drill that the archive restores.
 .
 Stores: a local directory, S3 and S3-compatible servers, and Azure Blob
 Storage. The PostgreSQL client programs (pg_basebackup, pg_dump, psql) come
 from postgresql-client.
CONTROL

mkdir -p "$OUT"
deb=$(cd "$OUT" && pwd)/cloudarchive_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
step "wrote $deb ($(du -h "$deb" | cut -f1))"
echo "$deb"
