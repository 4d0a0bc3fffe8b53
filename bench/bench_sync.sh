#!/usr/bin/env bash
# bench_sync.sh: the nightly sync on the `medium` fixture against its anchors.
# Builds a home library (mkplex init), bootstraps it through the local cloud, makes a
# nightly-sized change (home: mkplex stream; cloud: mkplex analyze), runs one sync, and reports:
#   - bytes over the home link (up + down, from `sync --json`)
#   - the information floor: the changed rows compressed (the home's changeset up + the cloud's
#     changesets down, zstd -19 as the report measures them) + the new and changed files'
#     content compressed (tar of exactly those files | zstd -19)
#   - shipping whole archives (the prior scripts): tar | zstd -3 of the DB pair up, of the DB
#     pair + Metadata + Media down
#   - rsync -z --no-whole-file of the DB file up (onto the previous baseline) and of the DB pair
#     + tree down (onto the home as it was), bytes sent + received
#   - home-side CPU time and peak RSS (the home process alone, from getrusage), downtime (with
#     no-op Plex stop/start commands: the time Plex would be stopped), wall times.
# Usage: bench/bench_sync.sh BUILD_DIR [--scale medium] [--work DIR] [--keep]
# Needs: jq, rsync, tar, zstd. Results as one JSON object on stdout (and $WORK/result.json).
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
shift || true
scale=medium work= keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --scale) scale=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "bench_sync: unknown option $1" >&2; exit 2 ;;
  esac
done
for t in jq rsync tar zstd; do
  command -v $t >/dev/null || { echo "bench_sync: needs $t (apt-get install $t)" >&2; exit 2; }
done
pb=$build/plexburst mk=$build/mkplex
[ -x "$pb" ] && [ -x "$mk" ] || { echo "bench_sync: build plexburst and mkplex first" >&2; exit 2; }
work=${work:-$(mktemp -d "${TMPDIR:-/tmp}/bench-sync.XXXXXX")}
mkdir -p "$work"
home=$work/home before=$work/before log=$work/bench.log
db="Plug-in Support/Databases/com.plexapp.plugins.library.db"
blobs="Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"
note() { echo "bench_sync: $*" >&2; }
now() { date +%s.%N; }

rm -rf "$home" "$home.plexburst" "$before" "$work/cloud" "$work/base"
note "work dir $work, scale $scale"
t=$(now); "$mk" init --dir "$home" --scale "$scale" --seed 1 >"$log"; t_init=$(awk "BEGIN {printf \"%.1f\", $(now) - $t}")
note "home library built in ${t_init}s ($(du -sh "$home" | cut -f1))"
"$pb" bootstrap --plex-dir "$home" --cloud "local:$work/cloud" \
  --runner "{mkplex} init --dir {plex_dir} --scale $scale --seed 1" --json >"$work/bootstrap.json" 2>>"$log"
note "bootstrap: $(jq -r '"\(.bytes.down) bytes down in \(.timings_ms.total / 1000 | floor) s"' "$work/bootstrap.json")"

# the night: home streams, then the state the cloud starts from is kept for the anchors
"$mk" stream --dir "$home" --seed 11 >>"$log"
cp -a "$home" "$before"
mkdir -p "$work/base"
cp "$home.plexburst/baseline.db" "$work/base/db"
[ -f "$home.plexburst/baseline.blobs.db" ] && cp "$home.plexburst/baseline.blobs.db" "$work/base/blobs"
/usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" \
  "$pb" sync --plex-dir "$home" --cloud "local:$work/cloud" \
  --runner "{mkplex} analyze --dir {plex_dir} --seed 12" \
  --plex-stop-cmd true --plex-start-cmd true --json >"$work/sync.json" 2>>"$log"
jq -e .ok "$work/sync.json" >/dev/null || { note "the sync failed: see $log"; exit 1; }

up=$(jq .bytes.up "$work/sync.json") down=$(jq .bytes.down "$work/sync.json")
ours=$((up + down))
# floor: rows
rows_up=$(jq .bytes.changeset_up "$work/sync.json")
rows_down=$(jq '.report.bytes.changeset_zstd // 0' "$work/sync.json")
# floor: new and changed files (what rsync's quick check finds different between after and before;
# cp -a kept the mtimes of everything the sync did not touch)
excl=(--exclude='plexburst-backups/' --exclude='*-wal' --exclude='*-shm' --exclude='*-journal'
      --exclude='Cache/' --exclude='Logs/' --exclude='Preferences.xml')
(cd "$home" && rsync -a -n --out-format='%n' "${excl[@]}" --exclude='*.db' --exclude='*.db-*' \
   Metadata Media "Plug-in Support" "$before/" | grep -v '/$' | tr '\n' '\0') >"$work/changed.lst"
nfiles=$(tr -cd '\0' <"$work/changed.lst" | wc -c)
files_z=$( (cd "$home" && tar --null -T "$work/changed.lst" -cf - | zstd -19 -T2 -q -c) | wc -c)
raw_files=$( (cd "$home" && tar --null -T "$work/changed.lst" -cf -) | wc -c)
floor=$((rows_up + rows_down + files_z))
# whole archives, as the prior scripts shipped them
arch_up=$( (cd "$before" && tar -cf - "$db" "$blobs") | zstd -3 -T2 -q -c | wc -c)
arch_down=$( (cd "$home" && tar -cf - "$db" "$blobs" Metadata Media) | zstd -3 -T2 -q -c | wc -c)
# rsync: the DB file up onto the previous baseline, the DB pair + tree down onto home as it was
rs() { rsync -a -z --no-whole-file --stats "${excl[@]}" "$1" "$2" | awk '/Total bytes sent/ {gsub(",","",$4); s=$4}
       /Total bytes received/ {gsub(",","",$4); r=$4} END {print s + r}'; }
mkdir -p "$work/rs"
cp "$work/base/db" "$work/rs/up.db"
rsync_up=$(rs "$before/$db" "$work/rs/up.db")
rm -rf "$work/rs/down" && cp -a "$before" "$work/rs/down"
rsync_down=$(rs "$home/" "$work/rs/down/")
read -r wall cpu_u cpu_s rss <"$work/time.txt"

jq -n --arg scale "$scale" --argjson sync "$(cat "$work/sync.json")" \
  --argjson ours $ours --argjson up $up --argjson down $down \
  --argjson rows_up $rows_up --argjson rows_down $rows_down --argjson files_z $files_z \
  --argjson nfiles $nfiles --argjson raw_files $raw_files --argjson floor $floor \
  --argjson arch_up $arch_up --argjson arch_down $arch_down \
  --argjson rsync_up $rsync_up --argjson rsync_down $rsync_down \
  --argjson wall $wall --argjson tree_cpu "$(awk "BEGIN {print $cpu_u + $cpu_s}")" --argjson tree_rss $rss '
{scale: $scale,
 home_link: {up: $up, down: $down, total: $ours},
 floor: {rows_up: $rows_up, rows_down: $rows_down, files_zstd: $files_z, files: $nfiles,
         files_raw: $raw_files, total: $floor, ratio: ($ours / $floor)},
 whole_archives: {up: $arch_up, down: $arch_down, total: ($arch_up + $arch_down),
                  ratio: (($arch_up + $arch_down) / $ours)},
 rsync: {db_up: $rsync_up, tree_down: $rsync_down, total: ($rsync_up + $rsync_down),
         ratio: (($rsync_up + $rsync_down) / $ours)},
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
                  met: (.downtime_ms <= 2000)}}' | tee "$work/result.json"

jq -r '"
home link  \(.home_link.total) B (up \(.home_link.up), down \(.home_link.down))
floor      \(.floor.total) B (rows up \(.floor.rows_up) + rows down \(.floor.rows_down) + \(.floor.files) files \(.floor.files_zstd))  -> \(.floor.ratio * 100 | floor / 100)x the floor
archives   \(.whole_archives.total) B (\(.whole_archives.ratio | floor)x more)
rsync      \(.rsync.total) B (\(.rsync.ratio | floor)x more)
home CPU   \(.home.cpu_ms | floor) ms, peak RSS \(.home.max_rss_kb) KB; downtime \(.downtime_ms | floor) ms; sync \(.sync_ms / 1000 | floor) s"' \
  "$work/result.json" >&2
[ $keep = 1 ] || { rm -rf "$home" "$home.plexburst" "$before" "$work/cloud" "$work/rs" "$work/base"; }
