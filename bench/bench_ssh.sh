#!/usr/bin/env bash
# bench_ssh.sh: SSH bulk transfer of plexburst (SFTP through transfer/ssh.h, driven by the
# bench_ssh binary) against scp, to and from the same loopback sshd (scripts/ssh-test-server),
# measured in one run with the two alternating so both see the same machine load.
# Target: plexburst >= 70 % of scp's throughput in each direction for a 1 GB file.
# Role: benchmark on demand, never in CI. Prerequisites: a build with bench_ssh
# (cmake --build BUILD --target bench_ssh), openssh-server/-client (installed by the server
# script when missing and root).
#
#   bench/bench_ssh.sh [SIZE_MB (1024)] [ROUNDS (3)]
# Environment: PB_BUILD_DIR (default ./build), BENCH_DIR (scratch; default /dev/shm when it has
# room, so that disks do not blur the transport), BENCH_BUFFER (bytes in flight, default the
# library's), BENCH_CAT=1 (also the exec-channel `cat` path), BENCH_BASELINE=PATH (another
# bench_ssh binary, e.g. built from an older commit, run in the same rounds: before/after figures
# from the same minutes).
set -euo pipefail

size_mb=${1:-1024}
rounds=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
build=${PB_BUILD_DIR:-$here/build}
bin=$build/bench_ssh
[ -x "$bin" ] || { echo "bench_ssh: build it first: cmake --build $build --target bench_ssh" >&2; exit 2; }

if [ -z "${BENCH_DIR:-}" ]; then
  free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')
  if [ -n "$free_kb" ] && [ "$free_kb" -gt $((size_mb * 1024 * 4)) ]; then
    BENCH_DIR=/dev/shm
  else
    BENCH_DIR=${TMPDIR:-/tmp}
  fi
fi
work=$(mktemp -d "$BENCH_DIR/pb-bench-ssh.XXXXXX")
srv=$(mktemp -d "${TMPDIR:-/tmp}/pb-bench-sshd.XXXXXX")
cleanup() {
  "$here/scripts/ssh-test-server" stop "$srv" || true
  rm -rf "$work" "$srv"
}
trap cleanup EXIT

port=$("$here/scripts/ssh-test-server" start "$srv")
key=$srv/client_ed25519
kh=$srv/known_hosts
sshopts=(-i "$key" -P "$port" -o UserKnownHostsFile="$kh" -o BatchMode=yes -o StrictHostKeyChecking=yes)

echo "bench_ssh: ${size_mb} MiB file in $work, sshd 127.0.0.1:$port, $rounds rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
head -c "${size_mb}M" /dev/urandom >"$work/src"
bytes=$(stat -c %s "$work/src")

now() { date +%s.%N; }
mibs() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / s / 1048576 }'; }

declare -a r_scp_put r_scp_get r_pb_put r_pb_get r_cat_put r_cat_get
declare -a c_scp_put c_scp_get c_pb_put c_pb_get r_base_put r_base_get c_base_put c_base_get
base=${BENCH_BASELINE:-}
[ -z "$base" ] || [ -x "$base" ] || { echo "bench_ssh: BENCH_BASELINE $base is not executable" >&2; exit 2; }
# Each run prints "MiB/s CPU-seconds" (the client's user + system time, scp's ssh child included).
timed() { /usr/bin/time -o "$work/cpu" -f "%U %S" "$@"; }
cpu() { awk '{print $1 + $2}' "$work/cpu"; }
run_scp() {
  local t0 t1
  t0=$(now)
  timed scp -q "${sshopts[@]}" "$1" "$2"
  t1=$(now)
  echo "$(mibs "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')") $(cpu)"
}
run_pb() { echo "$(timed "$bin" "$1" "$port" "$key" "$kh" "$2" "$3" ${BENCH_BUFFER:-} | awk '{print $4}') $(cpu)"; }
run_base() { echo "$(timed "$base" "$1" "$port" "$key" "$kh" "$2" "$3" ${BENCH_BUFFER:-} | awk '{print $4}') $(cpu)"; }
base_put() { run_base put "$work/src" "$work/base.remote"; }
base_get() { run_base get "$work/base.back" "$work/pb.remote"; }
scp_put() { run_scp "$work/src" "root@127.0.0.1:$work/scp.remote"; }
scp_get() { run_scp "root@127.0.0.1:$work/scp.remote" "$work/scp.back"; }
pb_put() { run_pb put "$work/src" "$work/pb.remote"; }
pb_get() { run_pb get "$work/pb.back" "$work/pb.remote"; }
add() { # add NAME "MiBs CPU"
  local -n rate=r_$1 cpus=c_$1
  rate+=("${2% *}")
  cpus+=("${2#* }")
}

for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then
    add scp_put "$(scp_put)"; add pb_put "$(pb_put)"; add scp_get "$(scp_get)"; add pb_get "$(pb_get)"
  else
    add pb_put "$(pb_put)"; add scp_put "$(scp_put)"; add pb_get "$(pb_get)"; add scp_get "$(scp_get)"
  fi
  extra=""
  if [ -n "$base" ]; then
    add base_put "$(base_put)"; add base_get "$(base_get)"
    cmp -s "$work/src" "$work/base.back" || { echo "bench_ssh: the baseline's download differs" >&2; exit 1; }
    extra="; baseline: put ${r_base_put[-1]} get ${r_base_get[-1]}"
  fi
  if [ "${BENCH_CAT:-0}" = 1 ]; then
    cp_=$(run_pb cat-put "$work/src" "$work/cat.remote"); cg_=$(run_pb cat-get "$work/cat.back" "$work/cat.remote")
    r_cat_put+=("${cp_% *}"); r_cat_get+=("${cg_% *}")
    extra="; exec-channel cat: put ${cp_% *} get ${cg_% *}"
  fi
  echo "round $r: put scp ${r_scp_put[-1]} / plexburst ${r_pb_put[-1]} MiB/s; get scp ${r_scp_get[-1]} / plexburst ${r_pb_get[-1]} MiB/s$extra"
  cmp -s "$work/src" "$work/pb.back" || { echo "bench_ssh: the downloaded copy differs" >&2; exit 1; }
  rm -f "$work/pb.back" "$work/scp.back" "$work/base.back" "$work/base.remote"
done
cmp -s "$work/src" "$work/pb.remote" || { echo "bench_ssh: the uploaded copy differs" >&2; exit 1; }

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mp=$(median "${r_pb_put[@]}"); sp=$(median "${r_scp_put[@]}")
mg=$(median "${r_pb_get[@]}"); sg=$(median "${r_scp_get[@]}")
cpp=$(median "${c_pb_put[@]}"); csp=$(median "${c_scp_put[@]}")
cpg=$(median "${c_pb_get[@]}"); csg=$(median "${c_scp_get[@]}")
awk -v mp="$mp" -v sp="$sp" -v mg="$mg" -v sg="$sg" -v cpp="$cpp" -v csp="$csp" -v cpg="$cpg" \
  -v csg="$csg" -v gib="$(awk -v b="$bytes" 'BEGIN{print b / 1073741824}')" 'BEGIN {
  pr = 100 * mp / sp; gr = 100 * mg / sg;
  printf "median   upload: plexburst %.1f MiB/s, scp %.1f MiB/s -> %.0f %%  (client CPU %.2f vs %.2f s/GiB)\n", mp, sp, pr, cpp / gib, csp / gib;
  printf "median download: plexburst %.1f MiB/s, scp %.1f MiB/s -> %.0f %%  (client CPU %.2f vs %.2f s/GiB)\n", mg, sg, gr, cpg / gib, csg / gib;
  printf "target >= 70 %% of scp: %s\n", (pr >= 70 && gr >= 70) ? "MET" : "NOT MET";
}'
if [ -n "$base" ]; then
  awk -v bp="$(median "${r_base_put[@]}")" -v bg="$(median "${r_base_get[@]}")" -v sp="$sp" -v sg="$sg" \
    -v cbp="$(median "${c_base_put[@]}")" -v cbg="$(median "${c_base_get[@]}")" \
    -v gib="$(awk -v b="$bytes" 'BEGIN{print b / 1073741824}')" 'BEGIN {
  printf "baseline upload: %.1f MiB/s -> %.0f %% of scp (client CPU %.2f s/GiB)\n", bp, 100 * bp / sp, cbp / gib;
  printf "baseline download: %.1f MiB/s -> %.0f %% of scp (client CPU %.2f s/GiB)\n", bg, 100 * bg / sg, cbg / gib;
}'
fi
