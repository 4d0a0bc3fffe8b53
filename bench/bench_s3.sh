#!/usr/bin/env bash
# bench_s3.sh: S3 store throughput over loopback against rclone, in one run and against the same
# server: upload and download of one large file with plexburst's S3 store (build/bench_s3) and
# with `rclone copyto` (its defaults), each checked byte for byte. Target: >= 70 % of rclone.
# Role: the S3 half of the transport benchmarks (bench_ssh.sh is the other); on demand only
# (never in CI); bench/run runs it (256 MB; 1024 MB with --large).
# Prerequisites: a build with bench_s3 (tests/s3.cmake); node, rclone, and the server's npm package
# in BUILD/s3rver (`ctest -R s3` installs it). Installs nothing: exits 77 naming what is missing.
# Usage: bench/bench_s3.sh [BUILD_DIR] [SIZE_MB]   (defaults: build, 1024)
# Prints one JSON object on stdout ({size_mb, upload, download: {plexburst_MBps, rclone_MBps,
# ratio}, seconds, plexburst_upload}), the table on stderr.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
mb="${2:-1024}"
server="$src/scripts/s3-test-server"
[ -x "$build/bench_s3" ] || { echo "bench_s3: build $build/bench_s3 first" >&2; exit 1; }
for t in node rclone jq; do
  command -v $t >/dev/null || { echo "bench_s3: $t missing (apt-get install $t)" >&2; exit 77; }
done
[ -f "$build/s3rver/node_modules/@20minutes/s3rver/package.json" ] || {
  echo "bench_s3: the S3 test server is not installed in $build/s3rver (ctest -R s3 installs it)" >&2
  exit 77
}

work=$(mktemp -d "${TMPDIR:-/tmp}/pb-bench-s3-XXXXXX")
cleanup() { "$server" stop "$work" || true; rm -rf "$work"; }
trap cleanup EXIT

port=$("$server" start "$build/s3rver" "$work" $$)
export PLEXBURST_S3_ENDPOINT="http://127.0.0.1:$port" PLEXBURST_S3_REGION=fr-par
export AWS_ACCESS_KEY_ID=PBTESTKEY0001 AWS_SECRET_ACCESS_KEY=pbtest-secret-0001
bucket=plexburst-test
rc=(env -u AWS_CA_BUNDLE RCLONE_CONFIG_S3T_TYPE=s3 RCLONE_CONFIG_S3T_PROVIDER=Other
  RCLONE_CONFIG_S3T_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
  RCLONE_CONFIG_S3T_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
  RCLONE_CONFIG_S3T_ENDPOINT="$PLEXBURST_S3_ENDPOINT" RCLONE_CONFIG_S3T_REGION=fr-par
  RCLONE_CONFIG_S3T_FORCE_PATH_STYLE=true rclone --config /dev/null)

echo >&2 "bench_s3: ${mb} MB file, server @20minutes/s3rver on 127.0.0.1:$port, $(nproc) cores"
head -c $((mb * 1024 * 1024)) /dev/urandom >"$work/file.bin"
bytes=$(stat -c %s "$work/file.bin")

now() { date +%s.%N; }
rate() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.1f", b / 1e6 / t }'; }
timed() { # timed VAR command...: runs the command, stores its seconds in VAR
  local var=$1
  shift
  local t0 t1
  sync
  t0=$(now)
  "$@" >"$work/out.txt"
  t1=$(now)
  printf -v "$var" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

timed pb_up "$build/bench_s3" put "$work/file.bin" "s3://$bucket/pb" file.bin
pb_up_detail=$(cat "$work/out.txt")
timed rc_up "${rc[@]}" copyto "$work/file.bin" "s3t:$bucket/rc/file.bin"
timed pb_down "$build/bench_s3" get "s3://$bucket/pb" file.bin "$work/pb.back"
timed rc_down "${rc[@]}" copyto "s3t:$bucket/rc/file.bin" "$work/rc.back"
cmp "$work/file.bin" "$work/pb.back"
cmp "$work/file.bin" "$work/rc.back"

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", 100 * b / a }'; }
{
  printf '%-10s %12s %12s %8s\n' "" "plexburst" "rclone" "ratio"
  printf '%-10s %9s MB/s %7s MB/s %7s%%\n' upload "$(rate "$pb_up")" "$(rate "$rc_up")" "$(pct "$pb_up" "$rc_up")"
  printf '%-10s %9s MB/s %7s MB/s %7s%%\n' download "$(rate "$pb_down")" "$(rate "$rc_down")" "$(pct "$pb_down" "$rc_down")"
  echo "plexburst upload: $pb_up_detail"
  echo "(seconds: plexburst up $pb_up down $pb_down, rclone up $rc_up down $rc_down; ratio = plexburst/rclone throughput)"
} >&2
jq -n --argjson mb "$mb" --argjson pu "$(rate "$pb_up")" --argjson ru "$(rate "$rc_up")" \
  --argjson pd "$(rate "$pb_down")" --argjson rd "$(rate "$rc_down")" --arg detail "$pb_up_detail" \
  --argjson s "{\"plexburst_up\": $pb_up, \"plexburst_down\": $pb_down, \"rclone_up\": $rc_up, \"rclone_down\": $rc_down}" '
  {size_mb: $mb, upload: {plexburst_MBps: $pu, rclone_MBps: $ru, ratio: ($pu / $ru)},
   download: {plexburst_MBps: $pd, rclone_MBps: $rd, ratio: ($pd / $rd)}, seconds: $s,
   plexburst_upload: $detail, target: ">= 0.7x rclone",
   met: ($pu >= 0.7 * $ru and $pd >= 0.7 * $rd)}'
