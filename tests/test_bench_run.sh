#!/usr/bin/env bash
# test_bench_run.sh: bench/run's own machinery, without running a benchmark (seconds):
#   1. bench/bench_anchor.sh measures an anchor once and reuses it (same fixture key, tool version
#      and command), measures again for another tool version or with BENCH_FRESH_ANCHORS=1, and
#      caches nothing when the measurement fails;
#   2. bench/run never installs anything: with rclone, node and sqldiff missing from PATH, the s3
#      benchmark is skipped and named, and no apt-get or npm is run;
#   3. the summary (bench/run BUILD summary) gives every benchmark's figures with anchor, target and
#      met/missed from canned results, and marks a cached anchor as cached with its date.
# Role: ctest (labels unit, cli). Prerequisites: bash, jq, git (skips with 77 when jq is missing).
set -uo pipefail
src=${PB_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
command -v jq >/dev/null || { echo "test_bench_run: jq is not installed: skipped"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pbtest-bench-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check WHAT COMMAND...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; fail=1; fi
}
anchor=$src/bench/bench_anchor.sh

# ---- 1. the anchor cache -----------------------------------------------------------------------
a=$tmp/anchors
measure() { echo x >>"$tmp/count"; echo '{"bytes": 42}'; }
export -f measure
export tmp
one() { "$anchor" "$a" demo "$@" -- bash -c measure; }
r1=$(one fxkey v1) r2=$(one fxkey v1)
check "first measured, not cached" test "$(jq .cached <<<"$r1")" = false
check "second reused, cached" test "$(jq .cached <<<"$r2")" = true
check "the cached figure and date are the first's" \
  test "$(jq -c '[.bytes, .measured_at]' <<<"$r1")" = "$(jq -c '[.bytes, .measured_at]' <<<"$r2")"
check "measured once" test "$(wc -l <"$tmp/count")" = 1
one fxkey v2 >/dev/null
check "another tool version measures again" test "$(wc -l <"$tmp/count")" = 2
one otherkey v1 >/dev/null
check "another fixture measures again" test "$(wc -l <"$tmp/count")" = 3
r3=$(BENCH_FRESH_ANCHORS=1 one fxkey v1)
check "BENCH_FRESH_ANCHORS=1 measures again" test "$(wc -l <"$tmp/count")" = 4
check "and says it was not cached" test "$(jq .cached <<<"$r3")" = false
if "$anchor" "$a" bad k v -- false >/dev/null 2>&1; then bad=0; else bad=1; fi
check "a failed measurement fails" test $bad = 1
check "and caches nothing" test -z "$(ls "$a" | grep '^bad-')"

# ---- 2. nothing installed ----------------------------------------------------------------------
bin=$tmp/bin build=$tmp/build out=$tmp/out
mkdir -p "$bin" "$build"
for t in bash sh jq cat cut date mkdir rm mv awk sed head tail sha1sum nproc git dirname ls stat \
  wc tr sort mktemp sleep tee env id grep printf touch seq basename readlink; do
  p=$(command -v "$t") && ln -s "$p" "$bin/$t"
done
for t in apt-get apt npm; do # stand-ins that record being run
  printf '#!/bin/sh\necho "%s $*" >>"%s/installs"\nexit 1\n' "$t" "$tmp" >"$bin/$t"
  chmod +x "$bin/$t"
done
printf '#!/bin/sh\nexit 1\n' >"$build/bench_s3" && chmod +x "$build/bench_s3"
PATH=$bin BENCH_OUT=$out "$src/bench/run" "$build" s3 >"$tmp/s3.out" 2>&1
check "no apt-get, apt or npm was run" test ! -e "$tmp/installs"
check "s3 is skipped, naming the missing tool" grep -q 's3 skipped: .*missing' "$tmp/s3.out"
check "summary.json says skipped" \
  test "$(jq -r .benchmarks.s3.status "$out/summary.json" 2>/dev/null)" = skipped

# ---- 3. the summary from canned results ----------------------------------------------------------
r=$out/results
mkdir -p "$r"
jq -n '{fixtures: [
  {name: "small", main_db_bytes: 2e7, diff: {peak_rss_kib: 20000}, merge: {peak_rss_kib: 20000}},
  {name: "medium", main_db_bytes: 3e8,
   diff: {rows_per_s: 5e5, rows_per_cpu_s: 1.2e6, rows_target: 1e6, ms: 2000, peak_rss_kib: 24000,
          zstd19: {bytes: 900}},
   session: {ms: 4000, patchset_zstd19: {bytes: 1000}},
   merge: {merge_cpu_ms: 1300, merge_ms: 1500, peak_rss_kib: 30000},
   merge_onto_base: {merge_ms: 1400}, apply_v2: {ms: 1200, cpu_ms: 1100}}]}' >"$r/merge.json"
jq -n '{whole_db_zstd19: {name: "whole_db_zstd19", bytes: 90000, cached: true,
         measured_at: "2026-12-07T21:00:00Z"},
        sqldiff: {name: "sqldiff", skipped: "sqldiff not installed"}}' >"$r/merge.anchors.json"
jq -n '{upload: {plexburst_MBps: 50, rclone_MBps: 100}, download: {plexburst_MBps: 200,
        rclone_MBps: 100}}' >"$r/s3.json"
jq -n '{status: "ok", seconds: 12}' >"$r/merge.status"
jq -n '{status: "ok", seconds: 3}' >"$r/s3.status"
PATH=$bin BENCH_OUT=$out "$src/bench/run" "$build" summary merge s3 >"$tmp/sum.out" 2>&1
s=$out/summary.json
q() { jq -r "$1" "$s" 2>/dev/null; }
check "summary.json has both" test "$(q '.benchmarks | keys | join(",")')" = merge,s3
check "each figure has figure, anchor, target, met" \
  test "$(q '[.benchmarks[].figures[] | has("figure") and has("anchor") and has("target") and has("met")] | all')" = true
check "merge CPU 1300 ms misses 1 s" test "$(q .benchmarks.merge.figures.merge_cpu_ms.met)" = false
check "its anchor is apply_v2's CPU" test "$(q .benchmarks.merge.figures.merge_cpu_ms.anchor)" = 1100
check "per-core diff speed 1.2 M meets 1 M" test "$(q .benchmarks.merge.figures.diff_rows_per_cpu_s.met)" = true
check "a cached anchor is marked with its date" \
  test "$(q '.benchmarks.merge.figures.changeset_vs_whole_db_zstd19 | "\(.anchor_cached) \(.anchor_measured_at) \(.anchor)"')" = \
  "true 2026-12-07T21:00:00Z 90000"
check "a skipped anchor says why" \
  grep -q 'skipped (sqldiff not installed)' <<<"$(q .benchmarks.merge.figures.diff_ms_vs_sqldiff.anchor_what)"
check "s3 upload at 0.5x rclone misses" test "$(q .benchmarks.s3.figures.upload_MBps.met)" = false
check "s3 download at 2x rclone meets" test "$(q .benchmarks.s3.figures.download_MBps.met)" = true
check "the table prints the figures" grep -q 'merge_cpu_ms .*1300 ms.*MISSED' "$tmp/sum.out"
[ $fail = 0 ] || { echo "--- bench/run said:"; cat "$tmp/s3.out" "$tmp/sum.out"; }
exit $fail
