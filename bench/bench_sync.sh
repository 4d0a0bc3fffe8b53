#!/usr/bin/env bash
# bench_sync.sh: one nightly sync on a full-tree fixture against its anchors.
# Role: the sync benchmark of bench/run (on demand, never in CI).
# The fixture, built once per scale and kept: a home library (mkplex init, with its tree),
# bootstrapped through the local cloud, then a nightly change at home (mkplex stream --seed 11).
# It lives in WORK/fx/{home, home.plexburst, cloud}; a copy taken right then, WORK/pristine/, puts
# it back after each run, in the background (rsync of what the run changed; the next run waits for
# it when it is not done yet, or does it when it did not happen). Nothing is torn down inside
# the run. The fixture is rebuilt when the fixture
# tool (fixtures/) or these commands change, or with BENCH_FRESH_FIXTURES=1 (a state dir left by
# an older plexburst is read as an upgraded home would read it; `fixture_built_by` says which).
# Each run: one sync (cloud runner `mkplex analyze --seed 12`, no-op Plex stop/start), and:
#   - bytes over the home link (up + down, from `sync --json`)
#   - the information floor: the changed rows compressed (the home's changeset up + the cloud's
#     changesets down, zstd -19 as the report measures them) + the new and changed files'
#     content compressed (tar of exactly those files | zstd -19; cached, keyed by the file list)
#   - shipping whole archives (the prior scripts): tar | zstd -3 of the DB pair up, of the DB
#     pair + Metadata + Media down (cached)
#   - rsync -z --no-whole-file of the DB file up (onto the previous baseline) and of the DB pair
#     + tree down (onto the home as it was), bytes sent + received (cached)
#   - home-side CPU time and peak RSS (the home process alone, from getrusage), downtime (with
#     no-op Plex stop/start commands: the time Plex would be stopped), wall times.
# Cached anchors (bench/bench_anchor.sh, in --anchors DIR, default WORK/anchors) are keyed by the
# fixture key, the tool's version and the command; BENCH_FRESH_ANCHORS=1 measures them again.
# Usage: bench/bench_sync.sh BUILD_DIR [--scale medium] [--work DIR] [--anchors DIR]
# Needs: jq; rsync, tar, zstd for the anchors (each one skipped, and named, when missing).
# Results as one JSON object on stdout (and WORK/run/result.json); steps and times on stderr.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
shift || true
scale=medium work= anchors=
while [ $# -gt 0 ]; do
  case $1 in
    --scale) scale=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --anchors) anchors=$2; shift 2 ;;
    --keep) shift ;; # the fixture is always kept now
    *) echo "bench_sync: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v jq >/dev/null || { echo "bench_sync: needs jq (apt-get install jq)" >&2; exit 2; }
have() { command -v "$1" >/dev/null 2>&1; }
pb=$build/plexburst mk=$build/mkplex
[ -x "$pb" ] && [ -x "$mk" ] || { echo "bench_sync: build plexburst and mkplex first" >&2; exit 2; }
work=${work:-$src/bench/out/sync-$scale}
anchors=${anchors:-$work/anchors}
anchor=$src/bench/bench_anchor.sh
mkdir -p "$work"
work=$(cd "$work" && pwd)
fx=$work/fx pristine=$work/pristine run=$work/run
home=$fx/home before=$pristine/home log=$run/bench.log
db="Plug-in Support/Databases/com.plexapp.plugins.library.db"
blobs="Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"
note() { echo "bench_sync: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
declare -A step
# background removal: a tree goes out of the way at once and is deleted outside the budget
discard() { [ -e "$1" ] || return 0; local t="$1.old.$$.$RANDOM"; mv "$1" "$t" && (rm -rf "$t" </dev/null >/dev/null 2>&1 &); }
# the agent's cleanup runs detached: wait (bounded) until the cloud's trash is empty
settle() {
  local i
  for i in $(seq 1 600); do
    [ -z "$(ls -A "$fx/cloud/agent/trash" 2>/dev/null)" ] && return 0
    sleep 1
  done
  note "the cloud's trash was still being emptied after 600 s"
}
copy_tree() { rsync -aH --delete --exclude=/cloud/agent/trash/ "$1/" "$2/"; }

# the fixture key: the commands and the fixture tool's sources (committed tree + local changes)
init_cmd="init --scale $scale --seed 1" stream_cmd="stream --seed 11"
runner="{mkplex} analyze --dir {plex_dir} --seed 12"
key=$(printf '%s\n' "$init_cmd" "$stream_cmd" "$runner" "bootstrap local" \
  "$(cd "$src" && git rev-parse HEAD:fixtures 2>/dev/null)" \
  "$(cd "$src" && git diff HEAD -- fixtures 2>/dev/null | sha1sum)" | sha1sum | cut -c1-16)

t=$(now)
if [ "${BENCH_FRESH_FIXTURES:-0}" = 1 ] || [ ! -f "$work/.key" ] || [ "$(cat "$work/.key")" != "$key" ] ||
  [ ! -d "$pristine/home" ]; then
  note "building the $scale fixture in $work (once; kept while mkplex and these commands are unchanged)"
  rm -f "$work/.key"
  discard "$fx"
  discard "$pristine"
  mkdir -p "$fx" "$run"
  "$mk" init --dir "$home" --scale "$scale" --seed 1 >"$log"
  note "home library built in $(since "$t") s ($(du -sh "$home" | cut -f1))"
  "$pb" bootstrap --plex-dir "$home" --cloud "local:$fx/cloud" \
    --runner "{mkplex} $init_cmd --dir {plex_dir}" --json >"$work/bootstrap.json" 2>>"$log"
  note "bootstrap: $(jq -r '"\(.bytes.down) bytes down in \(.timings_ms.total / 1000 | floor) s"' "$work/bootstrap.json")"
  # the night at home; then the state the sync starts from is kept for the next runs
  "$mk" $stream_cmd --dir "$home" >>"$log"
  settle
  copy_tree "$fx" "$pristine"
  (cd "$src" && git rev-parse --short HEAD) >"$work/built_by"
  touch "$work/.restored"
  echo "$key" >"$work/.key"
  step[fixture_build]=$(since "$t")
  note "fixture built in ${step[fixture_build]} s"
else
  # what the last run changed (home, its state dir, the cloud) is put back after it, in the
  # background; wait for that, or do it here when it did not happen
  while [ -f "$work/restore.pid" ] && kill -0 "$(cat "$work/restore.pid")" 2>/dev/null; do sleep 2; done
  if [ ! -f "$work/.restored" ]; then
    settle
    copy_tree "$pristine" "$fx"
  fi
  step[restore_wait]=$(since "$t")
  note "fixture as built ($(since "$t") s waiting for or doing its restore from $pristine)"
fi
rm -f "$work/.restored" "$work/restore.pid"
rm -rf "$run" && mkdir -p "$run"

t=$(now)
/usr/bin/time -f '%e %U %S %M' -o "$run/time.txt" \
  "$pb" sync --plex-dir "$home" --cloud "local:$fx/cloud" --runner "$runner" \
  --plex-stop-cmd true --plex-start-cmd true --json >"$run/sync.json" 2>>"$log"
jq -e .ok "$run/sync.json" >/dev/null || { note "the sync failed: see $log"; exit 1; }
step[sync]=$(since "$t")
note "sync in ${step[sync]} s"

up=$(jq .bytes.up "$run/sync.json") down=$(jq .bytes.down "$run/sync.json")
ours=$((up + down))
# floor: rows
rows_up=$(jq .bytes.changeset_up "$run/sync.json")
rows_down=$(jq '.report.bytes.changeset_zstd // 0' "$run/sync.json")
# floor: new and changed files (what rsync's quick check finds different between after and before)
excl=(--exclude='plexburst-backups/' --exclude='*-wal' --exclude='*-shm' --exclude='*-journal'
      --exclude='Cache/' --exclude='Logs/' --exclude='Preferences.xml')
t=$(now)
(cd "$home" && rsync -a -n --out-format='%n' "${excl[@]}" --exclude='*.db' --exclude='*.db-*' \
   Metadata Media "Plug-in Support" "$before/" | grep -v '/$' | LC_ALL=C sort | tr '\n' '\0') >"$run/changed.lst"
nfiles=$(tr -cd '\0' <"$run/changed.lst" | wc -c)
raw_files=$(cd "$home" && xargs -0 -r stat -c %s <"$run/changed.lst" | awk '{s += $1} END {print s + 0}')
step[changed_list]=$(since "$t")

# the anchors, cached: each prints one object (or says why it is skipped)
skipped() { jq -nc --arg w "$1" '{skipped: $w}'; }
files_floor() { # the changed files, tar | zstd -19 (the list's digest is part of the key)
  local z
  z=$(cd "$1" && tar --null -T "$2" -cf - | zstd -19 -T0 -q -c | wc -c)
  jq -nc --argjson z "$z" '{files_zstd: $z}'
}
archives() { # tar | zstd -3 of the DB pair before (up) and of DB pair + tree after (down)
  local a b
  a=$( (cd "$1" && tar -cf - "$db" "$blobs") | zstd -3 -T0 -q -c | wc -c)
  b=$( (cd "$2" && tar -cf - "$db" "$blobs" Metadata Media) | zstd -3 -T0 -q -c | wc -c)
  jq -nc --argjson a "$a" --argjson b "$b" '{up: $a, down: $b, total: ($a + $b)}'
}
rsyncs() { # rsync -z of the DB up onto the baseline, of the tree down onto a copy of before
  local tmp a b
  tmp=$(mktemp -d "$work/rsync.XXXXXX")
  rs() { rsync -a -z --no-whole-file --stats "${excl[@]}" "$1" "$2" | awk '/Total bytes sent/ {gsub(",","",$4); s=$4}
         /Total bytes received/ {gsub(",","",$4); r=$4} END {print s + r}'; }
  cp "$3" "$tmp/up.db"
  a=$(rs "$1/$db" "$tmp/up.db")
  cp -a "$1" "$tmp/down"
  b=$(rs "$2/" "$tmp/down/")
  discard "$tmp"
  jq -nc --argjson a "$a" --argjson b "$b" '{db_up: $a, tree_down: $b, total: ($a + $b)}'
}
export -f files_floor archives rsyncs discard
export db blobs work
export EXCL="${excl[*]}"
t=$(now)
list_key=$(cat "$run/changed.lst" | sha1sum | cut -c1-16)
if have tar && have zstd; then
  a_floor=$("$anchor" "$anchors" sync_floor_files "$key:$list_key" "$(zstd -V | head -1)" -- \
    bash -c 'files_floor "$@"' _ "$home" "$run/changed.lst") || a_floor=$(skipped "the measurement failed")
  a_arch=$("$anchor" "$anchors" sync_whole_archives "$key" "$(tar --version | head -1); $(zstd -V | head -1)" -- \
    bash -c 'archives "$@"' _ "$before" "$home") || a_arch=$(skipped "the measurement failed")
else
  note "tar or zstd missing (apt-get install tar zstd): the floor's files and the whole archives are skipped"
  a_floor=$(skipped "tar or zstd missing") a_arch=$(skipped "tar or zstd missing")
fi
if have rsync; then
  a_rsync=$("$anchor" "$anchors" sync_rsync "$key" "$(rsync --version | head -1)" -- \
    bash -c 'set -f; excl=($EXCL); set +f; rsyncs "$@"' _ "$before" "$home" \
    "$pristine/home.plexburst/baseline.db") || a_rsync=$(skipped "the measurement failed")
else
  note "rsync missing (apt-get install rsync): the rsync anchor is skipped"
  a_rsync=$(skipped "rsync missing")
fi
step[anchors]=$(since "$t")
files_z=$(jq '.files_zstd // 0' <<<"$a_floor")
floor=$((rows_up + rows_down + files_z))
read -r wall cpu_u cpu_s rss <"$run/time.txt"
steps=$(for k in "${!step[@]}"; do printf '%s %s\n' "$k" "${step[$k]}"; done |
  jq -R -s 'split("\n") | map(select(length > 0) | split(" ") | {(.[0]): (.[1] | tonumber)}) | add')

jq -n --arg scale "$scale" --slurpfile sync "$run/sync.json" \
  --argjson ours $ours --argjson up $up --argjson down $down \
  --argjson rows_up $rows_up --argjson rows_down $rows_down --argjson files_z $files_z \
  --argjson nfiles $nfiles --argjson raw_files $raw_files --argjson floor $floor \
  --argjson a_floor "$a_floor" --argjson a_arch "$a_arch" --argjson a_rsync "$a_rsync" \
  --argjson steps "$steps" --arg built_by "$(cat "$work/built_by" 2>/dev/null)" \
  --argjson wall $wall --argjson tree_cpu "$(awk "BEGIN {print $cpu_u + $cpu_s}")" --argjson tree_rss $rss '
$sync[0] as $sync |
{scale: $scale, fixture_built_by: $built_by, steps_s: $steps,
 home_link: {up: $up, down: $down, total: $ours},
 floor: {rows_up: $rows_up, rows_down: $rows_down, files_zstd: $files_z, files: $nfiles,
         files_raw: $raw_files, total: $floor, ratio: ($ours / $floor)},
 whole_archives: ($a_arch | if .total then . + {ratio: (.total / $ours)} else . end),
 rsync: ($a_rsync | if .total then . + {ratio: (.total / $ours)} else . end),
 anchors: {floor: $a_floor, archives: $a_arch, rsync: $a_rsync},
 home: {cpu_ms: ($sync.home.cpu_user_ms + $sync.home.cpu_sys_ms), max_rss_kb: $sync.home.max_rss_kb},
 with_agent: {cpu_s: $tree_cpu, max_rss_kb: $tree_rss},
 downtime_ms: $sync.timings_ms.downtime, sync_ms: $sync.timings_ms.total, wall_s: $wall,
 rows: $sync.rows, files: $sync.files, upload: $sync.upload,
 phases: [$sync.phases[] | {(.name): (.ms | floor)}] | add}
| .targets = {
    home_link_vs_floor: {figure: .floor.ratio, anchor: .floor.total, target: "<= 1.2x",
                         met: (.floor.ratio <= 1.2)},
    home_peak_rss_kb: {figure: .home.max_rss_kb, target: "<= 65536 KB (the home process alone)",
                       met: (.home.max_rss_kb <= 65536)},
    home_cpu_ms: {figure: .home.cpu_ms, target: "grows with the change, not the library"},
    downtime_ms: {figure: .downtime_ms, target: "<= 2000 ms at large",
                  met: (.downtime_ms <= 2000)}}' | tee "$run/result.json"

jq -r '"
home link  \(.home_link.total) B (up \(.home_link.up), down \(.home_link.down))
floor      \(.floor.total) B (rows up \(.floor.rows_up) + rows down \(.floor.rows_down) + \(.floor.files) files \(.floor.files_zstd))  -> \(.floor.ratio * 100 | floor / 100)x the floor
archives   \(.whole_archives.total // "-") B (\(.whole_archives.ratio // 0 | floor)x more)
rsync      \(.rsync.total // "-") B (\(.rsync.ratio // 0 | floor)x more)
home CPU   \(.home.cpu_ms | floor) ms, peak RSS \(.home.max_rss_kb) KB; downtime \(.downtime_ms | floor) ms; sync \(.sync_ms / 1000 | floor) s
steps      \(.steps_s)"' "$run/result.json" >&2
# put the fixture back for the next run, in the background (outside this run's time)
(settle && copy_tree "$pristine" "$fx" && touch "$work/.restored") </dev/null >"$work/restore.log" 2>&1 &
echo $! >"$work/restore.pid"
