#!/usr/bin/env bash
# test_help.sh: help that teaches (issue 13, deliver 4). Every command's --help fits 100 columns
# and ends with examples of that command and, when any option has one, the environment names of
# its options; `--version` names the libraries in use; the parser is getopt_long's (a short
# alias, `--`, a repeated option refused, an abbreviation refused, an overflowing number refused,
# usage errors exit 2); the generated man page and bash and zsh completions list every option of
# every command (one source of truth), and the bash completion completes an option.
# Prerequisites: the built binary and build/generated (PB_BUILD_DIR); zsh optional.
set -euo pipefail
B=${PB_BUILD_DIR:?}
P=$B/plexburst
G=$B/generated
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export LC_ALL=C.UTF-8

cmds=$("$P" help | awk '/^  [a-z]/ {print $1}' | grep -vx -e help -e version)
[ -n "$cmds" ] || fail "plexburst help lists no command"
for c in $cmds; do
  "$P" "$c" --help >"$tmp/$c.txt" || fail "$c --help exits $?"
  w=$(wc -L <"$tmp/$c.txt")
  [ "$w" -le 100 ] || { grep -n '.\{101,\}' "$tmp/$c.txt"; fail "$c --help is $w columns wide"; }
  # the examples: two or three lines running this very command
  n=$(sed -n '/^examples:$/,/^$/p' "$tmp/$c.txt" | grep -c "^  plexburst $c\b" || true)
  [ "$n" -ge 2 ] && [ "$n" -le 3 ] || fail "$c --help has $n examples"
  # it ends with them, then the environment names (if any): nothing else after the examples
  tail=$(sed -n '/^examples:$/,$p' "$tmp/$c.txt" | grep -v -e '^$' -e '^  ' -e '^examples:$' \
    -e '^environment (an option given wins):$' || true)
  [ -z "$tail" ] || fail "$c --help: after its examples: $tail"
  sed -n '/^environment/,$p' "$tmp/$c.txt" | tail -n +2 |
    grep -v '^  PLEXBURST_[A-Z0-9_]* *--[a-z0-9-]*$' && fail "$c: not an environment line"
  # every option of the table: in the man page and both completions
  opts=$(sed -n '/^options:$/,/^$/p' "$tmp/$c.txt" | grep -o '^ *\(-[a-z], \)\?--[a-z0-9-]*' |
    grep -o -- '--[a-z0-9-]*$' | grep -vx -- --help)
  [ -n "$opts" ] || fail "$c --help lists no option"
  # the command's part of each generated file, once (the man page: from its .SS to the next)
  man=$(sed -n "/^\.SS \"plexburst $c\"\$/,/^\.S[SH] /p" "$G/plexburst.1" | sed 's/\\-/-/g')
  bash_part=$(sed -n "/^    $c)/,/;;/p" "$G/plexburst.bash")
  zsh_part=$(sed -n "/^    $c)/,/;;/p" "$G/_plexburst")
  for o in $opts; do
    [[ $man == *"\fB$o\fR"* ]] || fail "the man page lacks $c $o"
    [[ " $bash_part " =~ [\ \'=]$o[\ \'] ]] || fail "the bash completion lacks $c $o"
    [[ $zsh_part =~ $o[=\[}] ]] || fail "the zsh completion lacks $c $o"
  done
  echo "$c: $(wc -w <<<"$opts") options, $n examples, ${w} columns"
done
grep -q '^  PLEXBURST_PLEX_DIR  *--plex-dir$' "$tmp/sync.txt" || fail "sync: no PLEXBURST_PLEX_DIR"
grep -q '^  PLEXBURST_RUNNER  *--runner$' "$tmp/sync.txt" || fail "sync: no PLEXBURST_RUNNER"

"$P" --version >"$tmp/version.txt"
head -n 1 "$tmp/version.txt" | grep -Eq '^plexburst [0-9.]+$' || fail "--version's first line"
for lib in SQLite librsync zstd libcurl libssh2 ICU; do
  grep -Eq "^  $lib +[0-9]" "$tmp/version.txt" || fail "--version lacks $lib"
done

# usage: exit 2 and the message; a usage error says which option
usage() { # usage EXPECTED-TEXT ARGS...
  local want=$1 rc=0
  shift
  "$P" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" = 2 ] || { cat "$tmp/err"; fail "plexburst $* exits $rc, not 2"; }
  grep -qF -- "$want" "$tmp/err" || { cat "$tmp/err"; fail "plexburst $*: no '$want'"; }
}
usage "option --plex-dir given twice" status --plex-dir a --plex-dir b
usage "option --plex-dir given twice" status -p a --plex-dir=b
usage "unknown option '--plex' (did you mean --plex-dir?)" status --plex /x
usage "unknown option '--js'" status --js
usage "option --json takes no value" status --json=yes
usage "option -p (--plex-dir) needs a value" status -p
usage "unknown option '-Z'" status -Z
usage "option --whole-below needs a decimal whole number in 0..2147483647, not '99999999999999999999'" \
  sigs --whole-below 99999999999999999999
usage "option --zstd-level needs a decimal whole number in 1..19, not '0x10'" export --zstd-level 0x10
usage "unexpected argument '--plex-dir'" fingerprint -- --plex-dir
# `--` ends the options: what follows is a positional argument even if it starts with a dash
usage "expected status, reap or prices" cloud -- --zone
# a --json command's usage error is its JSON object
rc=0
"$P" fingerprint --json --nope >"$tmp/out" 2>/dev/null || rc=$?
[ "$rc" = 2 ] && grep -q '"exit_code": 2' "$tmp/out" || fail "--json usage error object"
# options after a positional argument are still options (getopt's permutation)
usage "unexpected argument 'x'" status x -p /nonexistent

# the completions: bash completes an option of a command; zsh parses the file
bash -c "source '$G/plexburst.bash'; COMP_WORDS=(plexburst sync --plex-d); COMP_CWORD=2; _plexburst;
  printf '%s\n' \"\${COMPREPLY[@]}\"" >"$tmp/compl"
grep -qx -- --plex-dir "$tmp/compl" || { cat "$tmp/compl"; fail "bash completion of --plex-d"; }
bash -c "source '$G/plexburst.bash'; COMP_WORDS=(plexburst st); COMP_CWORD=1; _plexburst;
  printf '%s\n' \"\${COMPREPLY[@]}\"" >"$tmp/compl"
grep -qx status "$tmp/compl" || fail "bash completion of the command st"
if command -v zsh >/dev/null; then
  zsh -n "$G/_plexburst" || fail "zsh -n _plexburst"
else
  echo "note: zsh is not installed, its completion is only checked for the options"
fi
echo "ok: test_help"
