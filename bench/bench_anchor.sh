#!/usr/bin/env bash
# bench_anchor.sh: one anchor figure, measured once and cached, for bench/run and bench_sync.sh.
# Role: the expensive anchors (the whole DB with zstd -19, whole archives, rsync of a tree, Debian's
# sqldiff) depend only on the fixture and on the anchor tool's version, so their figure is kept in
# DIR/NAME-KEY.json, KEY = sha1 of (fixture key, tool version, command), and reused by later runs.
# BENCH_FRESH_ANCHORS=1 measures again (and replaces the cached figure).
#
# Usage: bench/bench_anchor.sh DIR NAME FIXTURE_KEY TOOL_VERSION -- CMD [ARG...]
#   CMD prints one JSON object (the measurement) on stdout; its exit status is the anchor's.
# Prints that object with: name, cached (true when reused), measured_at (UTC, when it was
# measured), seconds (how long the measurement took then), tool_version, fixture_key, command.
# Prerequisites: jq, sha1sum.
set -uo pipefail
[ $# -ge 6 ] && [ "$5" = -- ] || {
  echo "usage: bench_anchor.sh DIR NAME FIXTURE_KEY TOOL_VERSION -- CMD [ARG...]" >&2
  exit 2
}
dir=$1 name=$2 fxkey=$3 tool=$4
shift 5
cmd=$(printf '%q ' "$@")
key=$(printf '%s\n%s\n%s\n' "$fxkey" "$tool" "$cmd" | sha1sum | cut -c1-16)
file=$dir/$name-$key.json
if [ "${BENCH_FRESH_ANCHORS:-0}" != 1 ] && [ -s "$file" ] && jq -e . "$file" >/dev/null 2>&1; then
  jq -c '.cached = true' "$file"
  exit 0
fi
mkdir -p "$dir" || exit 1
t0=$(date +%s.%N)
out=$("$@") || {
  rc=$?
  echo "bench_anchor: $name failed (exit $rc): $cmd" >&2
  exit $rc
}
t1=$(date +%s.%N)
printf '%s' "$out" | jq -c --arg name "$name" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg tool "$tool" --arg fx "$fxkey" --arg cmd "$cmd" \
  --argjson s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" \
  '. + {name: $name, measured_at: $at, seconds: $s, tool_version: $tool, fixture_key: $fx,
        command: $cmd}' >"$file.tmp" && mv "$file.tmp" "$file" || {
  echo "bench_anchor: $name printed no JSON object: $out" >&2
  rm -f "$file.tmp"
  exit 1
}
jq -c '.cached = false' "$file"
