#!/usr/bin/env bash
# test_install_systemd.sh: the nightly units (packaging/systemd) pass `systemd-analyze verify`
# without a warning, against the binary and man page of the package unpacked into a scratch root
# (copies of the units point there), and say what issue 13 asks: a oneshot service reading
# /etc/plexburst/plexburst.env at low CPU and I/O priority, stopped by SIGTERM with a generous
# timeout; a nightly, randomized, persistent timer whose calendar expression parses.
# Prerequisites: systemd-analyze (else skipped), cpack and dpkg-deb (the package).
set -euo pipefail
B=${PB_BUILD_DIR:?}
S=${PB_SOURCE_DIR:?}
command -v systemd-analyze >/dev/null || { echo "skip: systemd-analyze is not installed"; exit 77; }
for t in cpack dpkg-deb; do
  command -v "$t" >/dev/null || { echo "skip: $t is not installed"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

svc=$S/packaging/systemd/plexburst-sync.service
tmr=$S/packaging/systemd/plexburst-sync.timer
for kv in Type=oneshot EnvironmentFile=/etc/plexburst/plexburst.env \
  'ExecStart=/usr/bin/plexburst sync --quiet' IOSchedulingClass=idle CPUSchedulingPolicy=batch \
  KillSignal=SIGTERM KillMode=mixed TimeoutStopSec= Nice=; do
  grep -q "^$kv" "$svc" || fail "the service lacks $kv"
done
for kv in OnCalendar= RandomizedDelaySec= Persistent=true WantedBy=timers.target; do
  grep -q "^$kv" "$tmr" || fail "the timer lacks $kv"
done
cal=$(sed -n 's/^OnCalendar=//p' "$tmr")
systemd-analyze calendar "$cal" >/dev/null || fail "OnCalendar=$cal does not parse"

cpack -G DEB -B "$tmp/pkg" --config "$B/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack"; }
root=$tmp/root
dpkg-deb -x "$tmp"/pkg/plexburst_*.deb "$root"
mkdir "$tmp/units"
for u in plexburst-sync.service plexburst-sync.timer; do
  cmp -s "$S/packaging/systemd/$u" "$root/lib/systemd/system/$u" || fail "$u differs in the package"
  sed -e "s|/usr/bin/plexburst|$root/usr/bin/plexburst|" \
    -e "s|/etc/plexburst/|$root/etc/plexburst/|" "$root/lib/systemd/system/$u" >"$tmp/units/$u"
done
# Documentation=man:plexburst(1) is looked up with man: the package's page
MANPATH=$root/usr/share/man systemd-analyze verify "$tmp/units/plexburst-sync.service" \
  "$tmp/units/plexburst-sync.timer" >"$tmp/verify.log" 2>&1 || { cat "$tmp/verify.log"; fail "verify"; }
[ ! -s "$tmp/verify.log" ] || { cat "$tmp/verify.log"; fail "systemd-analyze verify warns"; }
echo "ok: systemd-analyze verify of both units, no warning; OnCalendar=$cal"
