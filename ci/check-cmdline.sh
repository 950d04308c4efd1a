#!/usr/bin/env bash
# `make image CMDLINE=...` must carry the command line into the image byte for byte,
# whatever it holds. (It once pasted the value unquoted into a shell recipe: a `"` or
# `$` was mangled, and CMDLINE='x"; touch FILE; echo "' ran a command.)
#
# usage: ci/check-cmdline.sh
# Builds an image through `make image` with a hostile command line into a temporary
# directory, then checks with mtools (not our tool) that /boot/stratus.cmdline holds
# exactly those bytes, that limine.conf carries them too, and that nothing ran.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/stratus-cmdline.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export MTOOLS_SKIP_CHECK=1
canary="$work/INJECTED"

fail() {
    echo "check-cmdline: FAIL: $1" >&2
    if [ -n "${2:-}" ] && [ -s "$2" ]; then sed 's/^/    | /' "$2" >&2; fi
    exit 1
}

# Quotes that end a string, command substitutions, a variable, a backslash, make's own
# $(...) and $$, a percent sign and a tab: each one is a way the value was mangled.
cmdline="exit=qemu x\"; touch $canary; echo \" \$(touch $canary) \`touch $canary\` \$HOME '\\' \$\$ %s $(printf '\t')\$(shell touch $canary) end"

echo "check-cmdline: make image CMDLINE=<$(printf '%q' "$cmdline")>"
make -C "$root" --no-print-directory image IMAGE="$work/cmdline.img" CMDLINE="$cmdline" \
    >"$work/log" 2>&1 || fail "make image failed" "$work/log"
[ ! -e "$canary" ] || fail "a command hidden in CMDLINE ran (it created $canary)"
mcopy -n -i "$work/cmdline.img@@1M" ::/boot/stratus.cmdline "$work/got" 2>"$work/err" \
    || fail "mcopy could not read /boot/stratus.cmdline" "$work/err"
printf '%s' "$cmdline" >"$work/want"
cmp -s "$work/want" "$work/got" || {
    { echo "want: $(od -c "$work/want" | head -5)"; echo "got:  $(od -c "$work/got" | head -5)"; } >"$work/diff"
    fail "/boot/stratus.cmdline differs from the CMDLINE given" "$work/diff"
}
mcopy -n -i "$work/cmdline.img@@1M" ::/limine.conf "$work/conf" 2>"$work/err" \
    || fail "mcopy could not read /limine.conf" "$work/err"
grep -qxF "    cmdline: $cmdline" "$work/conf" || fail "limine.conf does not carry the command line" "$work/conf"
echo "  ok   the command line reached /boot/stratus.cmdline and limine.conf byte for byte; nothing ran"
