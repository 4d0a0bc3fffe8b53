#!/usr/bin/env bash
# bench_rss.sh: the home's peak RSS and CPU of a nightly sync and of an idle night, per scale.
# Role: on demand (issue 14's "home peak RSS <= 64 MB at every scale"); bench_sync.sh measures the
# same sync with its byte anchors, this one only the home's memory and CPU, at several scales.
# For each SCALE: mkplex init (the full tree: Metadata, Media, hard links), a bootstrap through
# the local cloud, mkplex stream --seed 11 at home, one sync with `mkplex analyze --seed 12` as the
# runner, then an idle night (runner `true`). Figures from `sync --json` home.* (getrusage of the
# home process alone: the agent and the runner are other processes).
# Usage: bench/bench_rss.sh BUILD_DIR [SCALE...] (default: small medium) [--work DIR] [--keep]
# Needs: jq. Prints one JSON object per scale; the work dir goes unless --keep (medium: ~5 GB).
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
shift || true
scales=() work= keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --work) work=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) scales+=("$1"); shift ;;
  esac
done
[ ${#scales[@]} -gt 0 ] || scales=(small medium)
command -v jq >/dev/null || { echo "bench_rss: needs jq" >&2; exit 2; }
pb=$build/plexburst mk=$build/mkplex
[ -x "$pb" ] && [ -x "$mk" ] || { echo "bench_rss: build plexburst and mkplex first" >&2; exit 2; }
work=${work:-$(mktemp -d "${TMPDIR:-/tmp}/bench-rss.XXXXXX")}
[ $keep = 1 ] || trap 'rm -rf "$work"' EXIT
for scale in "${scales[@]}"; do
  w=$work/$scale
  rm -rf "$w" && mkdir -p "$w"
  "$mk" init --dir "$w/home" --scale "$scale" --seed 1 >/dev/null
  files=$(find "$w/home" -type f | wc -l) linked=$(find "$w/home" -type f -links +1 | wc -l)
  "$pb" bootstrap --plex-dir "$w/home" --cloud "local:$w/cloud" \
    --runner "{mkplex} init --dir {plex_dir} --scale $scale --seed 1" --json >"$w/boot.json" 2>"$w/log"
  "$mk" stream --dir "$w/home" --seed 11 >/dev/null
  "$pb" sync --plex-dir "$w/home" --cloud "local:$w/cloud" \
    --runner "{mkplex} analyze --dir {plex_dir} --seed 12" \
    --plex-stop-cmd true --plex-start-cmd true --json >"$w/sync.json" 2>>"$w/log"
  "$pb" sync --plex-dir "$w/home" --cloud "local:$w/cloud" --runner true \
    --plex-stop-cmd true --plex-start-cmd true --json >"$w/idle.json" 2>>"$w/log"
  jq -n -c --arg scale "$scale" --argjson files "$files" --argjson linked "$linked" \
    --slurpfile b "$w/boot.json" --slurpfile s "$w/sync.json" --slurpfile i "$w/idle.json" '
    def h(x): {ok: x.ok, max_rss_kb: x.home.max_rss_kb,
               cpu_ms: ((x.home.cpu_user_ms + x.home.cpu_sys_ms) | floor),
               downtime_ms: (x.timings_ms.downtime // 0 | floor)};
    {scale: $scale, files: $files, multi_linked: $linked, bootstrap: h($b[0]), sync: h($s[0]),
     idle: h($i[0]),
     target: {home_peak_rss_kb: 65536,
              met: ([$b[0], $s[0], $i[0]] | all(.home.max_rss_kb <= 65536))}}'
  [ $keep = 1 ] || rm -rf "$w"
done
