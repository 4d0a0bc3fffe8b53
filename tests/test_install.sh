#!/usr/bin/env bash
# test_install.sh: the Debian package (CPack over the build tree) unpacked into a scratch root:
# the files are where Debian 12 wants them (binary, compressed man page, bash and zsh
# completions, systemd units, /etc/plexburst/plexburst.env as a root-only conffile, docs,
# copyright), mkplex and the test tools are not in it, its Depends name every library the binary
# links (dpkg-shlibdeps), `plexburst --help` and `--version` run from the scratch root, `man -l`
# renders the page without a warning, and apt accepts the package on this machine (simulated).
# Prerequisites: a built tree (PB_BUILD_DIR), cpack, dpkg-deb; man and dpkg-shlibdeps optional.
set -euo pipefail
B=${PB_BUILD_DIR:?}
for t in cpack dpkg-deb; do
  command -v "$t" >/dev/null || { echo "skip: $t is not installed"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cpack -G DEB -B "$tmp/pkg" --config "$B/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack"; }
debs=("$tmp"/pkg/plexburst_*_*.deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || fail "no single plexburst_*.deb: ${debs[*]}"
deb=${debs[0]}
echo "package: $(basename "$deb") ($(stat -c %s "$deb") bytes)"

root=$tmp/root
dpkg-deb -x "$deb" "$root"
for f in usr/bin/plexburst usr/share/man/man1/plexburst.1.gz \
  usr/share/bash-completion/completions/plexburst usr/share/zsh/vendor-completions/_plexburst \
  lib/systemd/system/plexburst-sync.service lib/systemd/system/plexburst-sync.timer \
  etc/plexburst/plexburst.env usr/share/doc/plexburst/copyright \
  usr/share/doc/plexburst/changelog.Debian.gz usr/share/doc/plexburst/README.md \
  usr/share/doc/plexburst/cli.md; do
  [ -f "$root/$f" ] || fail "missing /$f"
done
[ -x "$root/usr/bin/plexburst" ] || fail "/usr/bin/plexburst is not executable"
[ "$(stat -c %a "$root/etc/plexburst/plexburst.env")" = 600 ] || fail "plexburst.env is not 0600"
extra=$(cd "$root" && find . -type f | grep -E 'mkplex|test_|plexcompat|fuzz|bench' || true)
[ -z "$extra" ] || fail "tools that must not be installed: $extra"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/plexburst/plexburst.env || fail "not a conffile"
# the postinst gives the file to the group plex (the service user reads it): run it on a copy
dpkg-deb -e "$deb" "$tmp/control"
[ -x "$tmp/control/postinst" ] || fail "no executable postinst"
sh -n "$tmp/control/postinst" || fail "postinst does not parse"
grep -q 'chgrp plex' "$tmp/control/postinst" || fail "postinst does not give the file to plex"
# every setting is in the example configuration, commented out (nothing is set by default)
grep -v '^#' "$root/etc/plexburst/plexburst.env" | grep -q . && fail "plexburst.env sets a value"
for s in PLEXBURST_PLEX_DIR PLEXBURST_RUNNER PLEXBURST_PLEX_STOP_CMD PLEXBURST_S3_SECRET_KEY; do
  grep -q "^#$s=" "$root/etc/plexburst/plexburst.env" || fail "plexburst.env lacks $s"
done

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for p in libsqlite3-0 librsync2 libcurl4 libssh2-1 libzstd1 libxxhash0 libicu72 libjansson4 \
  libyaml-0-2 libssl3; do
  grep -Eq "(^|, )$p( |,|$)" <<<"$depends" || fail "Depends lacks $p"
done
if command -v dpkg-shlibdeps >/dev/null; then
  mkdir -p "$tmp/shl/debian"
  printf 'Source: plexburst\n\nPackage: plexburst\nArchitecture: any\n' >"$tmp/shl/debian/control"
  found=$(cd "$tmp/shl" && dpkg-shlibdeps -O "$root/usr/bin/plexburst" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
  echo "dpkg-shlibdeps: $found"
  for p in $(tr ',' '\n' <<<"$found" | awk '{print $1}'); do
    grep -Eq "(^|, )$p( |,|$)" <<<"$depends" || fail "Depends lacks $p (dpkg-shlibdeps)"
  done
else
  echo "note: dpkg-shlibdeps not installed, Depends checked against the fixed list only"
fi

"$root/usr/bin/plexburst" --help >"$tmp/help.txt" || fail "plexburst --help"
grep -q "sync" "$tmp/help.txt" || fail "plexburst --help lists no sync"
"$root/usr/bin/plexburst" --version >"$tmp/version.txt" || fail "plexburst --version"
head -n 1 "$tmp/version.txt" | grep -Eq '^plexburst [0-9]+\.[0-9]+\.[0-9]+$' || fail "version line"

if command -v man >/dev/null; then
  MANWIDTH=100 man --warnings -l "$root/usr/share/man/man1/plexburst.1.gz" >"$tmp/man.txt" \
    2>"$tmp/man.err" || { cat "$tmp/man.err"; fail "man -l"; }
  [ ! -s "$tmp/man.err" ] || { cat "$tmp/man.err"; fail "man -l warns"; }
  for w in NAME SYNOPSIS COMMANDS ENVIRONMENT FILES "EXIT STATUS" "plexburst sync" \
    "plexburst bootstrap" "plexburst-sync.timer"; do
    grep -q "$w" "$tmp/man.txt" || fail "the man page lacks '$w'"
  done
  echo "man -l: $(wc -l <"$tmp/man.txt") lines rendered"
else
  echo "note: man is not installed, the page is not rendered"
fi

# apt resolves the package's dependencies on this Debian machine (nothing is installed)
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -s -q "$deb" >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "apt-get -s"; }
  grep -q "^Inst plexburst" "$tmp/apt.log" || { cat "$tmp/apt.log"; fail "apt would not install"; }
  echo "apt-get install -s: ok"
else
  echo "note: not root or no apt-get: the dependency resolution is not simulated"
fi
echo "ok: test_install"
