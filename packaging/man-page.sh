#!/usr/bin/env bash
# Writes the manual page cloudarchive(1) (roff) to stdout, generated from the binary itself so it cannot drift from it:
# `cloudarchive --help` gives the global options and the list of commands, each command's `--help` its own section
# (less the global options it repeats), and the "Exit codes" table of docs/reference.md the EXIT STATUS section.
# Usage: man-page.sh BINARY
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
die() { echo "man-page: ERROR: $*" >&2; exit 1; }
[ $# = 1 ] || die "usage: man-page.sh BINARY"
BIN=$1
[ -x "$BIN" ] || die "$BIN is not an executable cloudarchive"

version=$("$BIN" --version) || die "$BIN --version failed"
version=${version%%+*}
# The page's date is the commit's, so the same commit makes the same page.
date=$(git -C "$REPO" log -1 --format=%cs 2>/dev/null || date -u +%F)
top=$("$BIN" --help) || die "$BIN --help failed"
commands=$(awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1}' <<<"$top")
[ -n "$commands" ] || die "no commands in the output of $BIN --help"

# roff-escapes a line of text: backslashes, hyphens (minus signs: flags are copied from the page), a leading . or '.
ESC='function esc(s, c) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); c = substr(s, 1, 1); if (c == "." || c == "\047") s = "\\&" s; return s }'

# help → roff. Mode "global": the Options section as the page's OPTIONS. Mode "command": description, usage, arguments
# and the options not in GLOBALS (space-separated option names). System.CommandLine writes one item a line:
# two spaces, the term, two or more spaces, its text.
to_roff() {
  awk -v mode="$1" -v globals="$2" "$ESC"'
    BEGIN { n = split(globals, g, " "); for (i = 1; i <= n; i++) isglobal[g[i]] = 1 }
    /^[A-Z][a-z]*:$/ { section = $0; next }
    /^$/ { next }
    {
      line = substr($0, 3)
      if (section == "Description:") { if (mode == "command") print esc(line); next }
      if (section == "Usage:") { if (mode == "command") { print ".PP"; print ".B " esc(line) }; next }
      gap = match(line, /  +/)
      term = gap ? substr(line, 1, gap - 1) : line
      text = gap ? substr(line, gap + RLENGTH) : ""
      name = term; sub(/ .*/, "", name)
      if (section == "Options:") {
        if (name == "-?," || (mode == "command" && name in isglobal)) next
        if (mode == "command" && !heading++) { print ".PP"; print "Options:" }
      } else if (section == "Arguments:") {
        if (mode != "command") next
      } else next
      print ".TP"; print "\\fB" esc(term) "\\fR"; print esc(text)
    }'
}

globals=$(awk '/^Options:/ {on=1; next} /^[A-Z]/ {on=0} on && /^  --/ {print $1}' <<<"$top" | tr '\n' ' ')

cat <<ROFF
.TH CLOUDARCHIVE 1 "$date" "cloudarchive $version" "User Commands"
.SH NAME
cloudarchive \\- keep a PostgreSQL cluster recoverable from object storage
.SH SYNOPSIS
.B cloudarchive
.I command
.RI [ arguments ]
.RI [ options ]
.br
.B cloudarchive
.RB [ \\-\\-help | \\-\\-version ]
.SH DESCRIPTION
.B cloudarchive
is PostgreSQL's archive_command and restore_command: every completed WAL segment is compressed (zstd),
checksummed (SHA\\-256) and written to a store with a conditional put, so nothing archived is ever overwritten,
and every segment comes back verified for recovery and point\\-in\\-time recovery.
It also takes base backups, restores them to a target, keeps SQL dumps and proves with a drill that the archive restores.
Stores: a local directory (file:///path), S3 and S3\\-compatible servers (s3://bucket/prefix) and Azure Blob Storage
(azure://container/prefix).
.PP
In postgresql.conf:
.PP
.nf
.RS
archive_mode = on
archive_command = 'cloudarchive wal\\-push %p \\-\\-store file:///var/lib/cloudarchive'
restore_command = 'cloudarchive wal\\-fetch %f %p \\-\\-store file:///var/lib/cloudarchive'
.RE
.fi
.PP
Every setting is a flag, else its CLOUDARCHIVE_* environment variable, else a KEY=VALUE line in the config file
named by \\-\\-config or CLOUDARCHIVE_CONFIG; each option below names its variable and default.
.SH OPTIONS
These options are taken by every command.
ROFF
to_roff global "" <<<"$top"
echo ".SH COMMANDS"
for c in $commands; do
  help=$("$BIN" "$c" --help) || die "$BIN $c --help failed"
  echo ".SS $c"
  to_roff command "$globals" <<<"$help"
done

cat <<ROFF
.SH FILES
.TP
.I /etc/cloudarchive/cloudarchive.env.example
An example config file of every setting, with its default; copy it to
.I /etc/cloudarchive/cloudarchive.env
(read when \\-\\-config and CLOUDARCHIVE_CONFIG name none), or name the copy with \\-\\-config or
CLOUDARCHIVE_CONFIG.
.SH EXIT STATUS
ROFF
# docs/reference.md's table: | code | meaning |, backquotes dropped; none found is an error.
exit_status=$(awk "$ESC"'
  /^## Exit codes/ { on = 1; next }
  on && /^## / { exit }
  on && /^\| [0-9]/ {
    code = $0; sub(/^\| */, "", code); sub(/ *\|.*/, "", code)
    meaning = $0; sub(/^\|[^|]*\| */, "", meaning); sub(/ *\| *$/, "", meaning); gsub(/`/, "", meaning)
    print ".TP"; print ".B " code; print esc(meaning)
  }' "$REPO/docs/reference.md")
[ -n "$exit_status" ] || die "no exit-code table under '## Exit codes' in $REPO/docs/reference.md"
echo "$exit_status"
cat <<ROFF
.PP
Errors are one line on standard error; \\-\\-verbose adds the stack trace.
.SH SEE ALSO
.BR postgres (1),
.BR pg_basebackup (1),
.BR pg_dump (1);
README.md and docs/ in /usr/share/doc/cloudarchive for the full manual.
ROFF
