#!/usr/bin/env bash
# Checks a Stratus disk image (built by `stratus-image build`) with independent tools.
#
# usage: ci/check-image.sh IMAGE
# Prints one line per check; on the first failure says which check failed, shows the
# tool's output and exits 1.
set -euo pipefail

img="${1:-}"
[ -n "$img" ] || { echo "usage: ci/check-image.sh IMAGE" >&2; exit 2; }
[ -f "$img" ] || { echo "check-image: FAIL: $img does not exist (run make image)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/stratus-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export MTOOLS_SKIP_CHECK=1
n=0

ok() { n=$((n + 1)); printf '  ok   %s\n' "$1"; }
fail() { # fail WHAT [file with tool output]
    printf 'check-image: FAIL: %s\n' "$1" >&2
    if [ -n "${2:-}" ] && [ -s "$2" ]; then sed 's/^/    | /' "$2" >&2; fi
    printf 'check-image: %s is NOT sane (%d checks passed before this one)\n' "$img" "$n" >&2
    exit 1
}

echo "check-image: $img"

# qemu-img: raw, size consistent, 1 MiB aligned (cloud formats need that).
qemu-img info --output=json "$img" >"$work/info" 2>&1 || fail "qemu-img info could not read the image" "$work/info"
python3 - "$work/info" "$img" >"$work/why" 2>&1 <<'PY' || fail "qemu-img info: not a sane raw image" "$work/why"
import json, os, sys
info = json.load(open(sys.argv[1]))
size = os.path.getsize(sys.argv[2])
if info.get("format") != "raw":
    sys.exit(f"format is {info.get('format')!r}, expected 'raw'")
if info.get("virtual-size") != size:
    sys.exit(f"virtual size {info.get('virtual-size')} != file size {size}")
if size % (1 << 20):
    sys.exit(f"size {size} is not a multiple of 1 MiB")
PY
ok "qemu-img info: format raw, $(($(stat -c %s "$img") >> 20)) MiB, 1 MiB aligned"
rc=0; qemu-img check -f raw "$img" >"$work/check" 2>&1 || rc=$?
if [ "$rc" = 0 ]; then ok "qemu-img check: no errors"
elif [ "$rc" = 63 ] && grep -q 'does not support checks' "$work/check"; then
    ok "qemu-img check: raw has no metadata to check (exit 63, as expected)"
else fail "qemu-img check exited $rc" "$work/check"; fi

# GPT: sgdisk verifies headers, CRCs, backup table; partition 1 is the ESP.
sgdisk -v "$img" >"$work/v" 2>&1 || fail "sgdisk -v exited non-zero" "$work/v"
grep -q 'No problems found' "$work/v" || fail "sgdisk -v found problems in the GPT" "$work/v"
ok "sgdisk -v: no problems found"
sgdisk -i 1 "$img" >"$work/p1" 2>&1 || fail "sgdisk -i 1: no partition 1" "$work/p1"
grep -qi 'Partition GUID code: C12A7328-F81F-11D2-BA4B-00A0C93EC93B' "$work/p1" \
    || fail "partition 1 is not of type EF00 (EFI system partition)" "$work/p1"
first=$(sed -n 's/^First sector: \([0-9]*\).*/\1/p' "$work/p1")
last=$(sed -n 's/^Last sector: \([0-9]*\).*/\1/p' "$work/p1")
[ "$first" = 2048 ] || fail "partition 1 starts at sector $first, expected 2048 (1 MiB; mtools uses IMG@@1M)" "$work/p1"
ok "partition 1: type EF00, sectors $first-$last"

# FAT: fsck.fat -n on the partition cut out with dd.
dd if="$img" of="$work/esp" bs=512 skip="$first" count=$((last - first + 1)) conv=sparse status=none \
    || fail "dd could not cut out the ESP"
fsck.fat -n "$work/esp" >"$work/fsck" 2>&1 || fail "fsck.fat -n reported errors on the ESP" "$work/fsck"
[ "$(dd if="$work/esp" bs=1 skip=82 count=8 status=none)" = "FAT32   " ] \
    || fail "the ESP's boot sector does not say FAT32" "$work/fsck"
ok "fsck.fat -n: ESP is a clean FAT32 file system"

# Files: mdir lists what the firmware, our loader and Limine look for.
mdir -/ -b -i "$img@@1M" :: >"$work/files" 2>&1 || fail "mdir could not list the ESP" "$work/files"
expect=(/EFI/BOOT/BOOTX64.EFI /EFI/BOOT/BOOTAA64.EFI /boot/kernel-x86-64 /boot/kernel-aarch64
        /boot/stratus.cmdline /boot/limine/limine.conf /limine.conf)
for f in "${expect[@]}"; do
    grep -qxi "::$f" "$work/files" || fail "mdir: $f is missing from the ESP" "$work/files"
done
ok "mdir: ${#expect[@]} expected files present"

# Contents: each file is for the right machine (catches swapped or empty files).
get() { mcopy -n -i "$img@@1M" "::$1" "$work/$2" 2>"$work/err" || fail "mcopy could not read $1" "$work/err"; }
get /boot/kernel-x86-64 kx; get /boot/kernel-aarch64 ka
get /EFI/BOOT/BOOTX64.EFI lx; get /EFI/BOOT/BOOTAA64.EFI la
get /boot/stratus.cmdline cmdline; get /limine.conf conf
python3 - "$work" >"$work/why" 2>&1 <<'PY' || fail "file contents" "$work/why"
import struct, sys
d = sys.argv[1]
def elf(name, machine, what):
    b = open(f"{d}/{name}", "rb").read(64)
    if len(b) < 64 or b[:4] != b"\x7fELF":
        sys.exit(f"{what} is not an ELF file")
    if b[4] != 2 or b[5] != 1:
        sys.exit(f"{what} is not ELF64 little-endian")
    m = struct.unpack_from("<H", b, 18)[0]
    if m != machine:
        sys.exit(f"{what} has e_machine {m}, expected {machine}")
def pe(name, machine, what):
    b = open(f"{d}/{name}", "rb").read(4096)
    if b[:2] != b"MZ":
        sys.exit(f"{what} is not a PE/COFF (EFI) file")
    off = struct.unpack_from("<I", b, 0x3C)[0]
    if b[off:off + 4] != b"PE\0\0":
        sys.exit(f"{what} has no PE header")
    m = struct.unpack_from("<H", b, off + 4)[0]
    if m != machine:
        sys.exit(f"{what} has PE machine {m:#x}, expected {machine:#x}")
    sub = struct.unpack_from("<H", b, off + 24 + 68)[0]
    if sub != 10:
        sys.exit(f"{what} has PE subsystem {sub}, expected 10 (EFI application)")
elf("kx", 62, "/boot/kernel-x86-64")
elf("ka", 183, "/boot/kernel-aarch64")
pe("lx", 0x8664, "/EFI/BOOT/BOOTX64.EFI")
pe("la", 0xAA64, "/EFI/BOOT/BOOTAA64.EFI")
cmd = open(f"{d}/cmdline", "rb").read()
if b"\n" in cmd.rstrip(b"\n"):
    sys.exit("/boot/stratus.cmdline has more than one line")
conf = open(f"{d}/conf").read()
for want in ("timeout: 0", "/Stratus", "protocol: limine", "kernel_path: boot():/boot/kernel-${ARCH}"):
    if want not in conf:
        sys.exit(f"limine.conf lacks {want!r}")
line = [l.strip() for l in conf.splitlines() if l.strip().startswith("cmdline:")]
if not line or line[0][len("cmdline:"):].strip() != cmd.decode().strip():
    sys.exit("limine.conf cmdline differs from /boot/stratus.cmdline")
PY
ok "contents: kernels are ELF64 x86-64/AArch64, loaders are PE32+ EFI apps x64/AA64, configs agree"
echo "check-image: all $n checks passed"
