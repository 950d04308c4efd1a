#!/usr/bin/env bash
# Checks the cloud image files that `stratus-image cloud-images` wrote, with tools
# independent of it (qemu-img, GNU tar, sgdisk, Python's tarfile), against the raw
# image they came from.
#
# usage: ci/check-cloud-images.sh IMAGE DIR
#   IMAGE  the raw image (build/stratus.img)
#   DIR    the directory holding stratus-aws.raw, stratus-aws.vmdk, stratus-gcp.tar.gz,
#          stratus-azure.vhd
# Prints one line per check and each file's size; on the first failure says which
# check failed, shows the tool's output and exits 1.
set -euo pipefail

img="${1:-}"; dir="${2:-}"
[ -n "$img" ] && [ -n "$dir" ] || { echo "usage: ci/check-cloud-images.sh IMAGE DIR" >&2; exit 2; }
work="$(mktemp -d "${TMPDIR:-/tmp}/stratus-cloud.XXXXXX")"
trap 'rm -rf "$work"' EXIT
n=0
ok() { n=$((n + 1)); printf '  ok   %s\n' "$1"; }
fail() {
    printf 'check-cloud-images: FAIL: %s\n' "$1" >&2
    if [ -n "${2:-}" ] && [ -s "$2" ]; then sed 's/^/    | /' "$2" >&2; fi
    printf 'check-cloud-images: %d checks passed before this one\n' "$n" >&2
    exit 1
}
raw="$dir/stratus-aws.raw" vmdk="$dir/stratus-aws.vmdk" gcp="$dir/stratus-gcp.tar.gz" vhd="$dir/stratus-azure.vhd"
for f in "$img" "$raw" "$vmdk" "$gcp" "$vhd"; do [ -f "$f" ] || fail "$f does not exist (make cloud-images)"; done
size=$(stat -c %s "$img")

# info FORMAT FILE: qemu-img info as JSON; prints "virtual-size create-type".
info() {
    qemu-img info --output=json -f "$1" "$2" >"$work/info" 2>&1 || fail "qemu-img info -f $1 could not read $2" "$work/info"
    python3 -c 'import json,sys; i=json.load(open(sys.argv[1])); d=i.get("format-specific",{}).get("data",{}); print(i["virtual-size"], d.get("create-type","-"))' "$work/info"
}
# compare FORMAT FILE [RAW]: qemu-img compare against the raw image.
compare() {
    qemu-img compare -f raw -F "$1" "${3:-$img}" "$2" >"$work/cmp" 2>&1 || fail "qemu-img compare: $2 differs from ${3:-$img}" "$work/cmp"
}

echo "check-cloud-images: $dir (from $img)"

# AWS raw: the image itself.
read -r vsize _ < <(info raw "$raw")
[ "$vsize" = "$size" ] || fail "$raw: virtual size $vsize, expected $size"
compare raw "$raw"
ok "AWS raw: $size bytes, identical to the image (qemu-img compare)"

# AWS VMDK: stream-optimized, consistent, same contents.
read -r vsize ctype < <(info vmdk "$vmdk")
[ "$ctype" = streamOptimized ] || fail "$vmdk: create type $ctype, expected streamOptimized" "$work/info"
[ "$vsize" = "$size" ] || fail "$vmdk: virtual size $vsize, expected $size" "$work/info"
qemu-img check -f vmdk "$vmdk" >"$work/check" 2>&1 || fail "qemu-img check found errors in $vmdk" "$work/check"
compare vmdk "$vmdk"
ok "AWS VMDK: streamOptimized, virtual size $vsize, qemu-img check clean, identical contents"

# Azure VHD: fixed, whole MiB, valid footer (checked here in Python too), same contents.
read -r vsize _ < <(info vpc "$vhd")
[ "$vsize" = "$size" ] || fail "$vhd: virtual size $vsize, expected $size" "$work/info"
[ $((vsize % 1048576)) = 0 ] || fail "$vhd: virtual size $vsize is not a whole number of MiB"
[ "$(stat -c %s "$vhd")" = $((vsize + 512)) ] || fail "$vhd: file is not the disk plus a 512-byte footer"
python3 - "$vhd" >"$work/why" 2>&1 <<'PY' || fail "$vhd: VHD footer" "$work/why"
import struct, sys
with open(sys.argv[1], "rb") as f:
    f.seek(-512, 2)
    footer = f.read(512)
if footer[:8] != b"conectix":
    sys.exit("no 'conectix' cookie in the last 512 bytes")
disk_type = struct.unpack_from(">I", footer, 60)[0]
if disk_type != 2:
    sys.exit(f"disk type {disk_type}, expected 2 (fixed)")
stored = struct.unpack_from(">I", footer, 64)[0]
if stored != (~(sum(footer[:64]) + sum(footer[68:])) & 0xFFFFFFFF):
    sys.exit("footer checksum is wrong")
PY
compare vpc "$vhd"
ok "Azure VHD: fixed, virtual size $vsize (whole MiB), footer checksum valid, identical contents"

# GCP: one member disk.raw, oldgnu sparse, gzip, whole GiB; extracted, its GPT passes
# sgdisk -v and it equals the image grown by truncate + sgdisk -e (old backup cleared).
tar -tvzf "$gcp" >"$work/list" 2>&1 || fail "tar cannot list $gcp" "$work/list"
[ "$(awk '{print $NF}' "$work/list")" = disk.raw ] || fail "$gcp must hold exactly disk.raw" "$work/list"
python3 - "$gcp" >"$work/why" 2>&1 <<'PY' || fail "$gcp: tar format" "$work/why"
import gzip, sys, tarfile
with open(sys.argv[1], "rb") as f:
    if f.read(2) != b"\x1f\x8b":
        sys.exit("not gzip-compressed")
with gzip.open(sys.argv[1]) as f:
    header = f.read(512)
if header[257:265] != b"ustar  \0":
    sys.exit(f"tar magic {header[257:265]!r}, expected the GNU (oldgnu) b'ustar  \\0'")
if header[156:157] != b"S":
    sys.exit(f"type flag {header[156:157]!r}, expected b'S' (old GNU sparse)")
with tarfile.open(sys.argv[1], "r:gz") as t:
    m = t.getmembers()
    if [x.name for x in m] != ["disk.raw"]:
        sys.exit(f"members {[x.name for x in m]}, expected ['disk.raw']")
    if not m[0].issparse():
        sys.exit("disk.raw is not stored as a GNU sparse file")
    if m[0].size % (1 << 30):
        sys.exit(f"disk.raw is {m[0].size} bytes, not a whole number of GiB")
PY
mkdir "$work/x"
tar -xSzf "$gcp" -C "$work/x" 2>"$work/err" || fail "tar cannot extract $gcp" "$work/err"
gsize=$(stat -c %s "$work/x/disk.raw")
sgdisk -v "$work/x/disk.raw" >"$work/v" 2>&1 && grep -q 'No problems found' "$work/v" \
    || fail "sgdisk -v: disk.raw's GPT has problems" "$work/v"
cp --sparse=always "$img" "$work/ref.raw"
truncate -s "$gsize" "$work/ref.raw"
sgdisk -e "$work/ref.raw" >"$work/e" 2>&1 || fail "sgdisk -e could not grow the reference" "$work/e"
dd if=/dev/zero of="$work/ref.raw" bs=512 seek=$((size / 512 - 33)) count=33 conv=notrunc status=none
compare raw "$work/x/disk.raw" "$work/ref.raw"
ok "GCP tar.gz: disk.raw only, oldgnu sparse, $((gsize >> 30)) GiB, sgdisk -v clean, equals the image grown by sgdisk -e"

echo "check-cloud-images: sizes (apparent / allocated):"
for f in "$raw" "$vmdk" "$gcp" "$vhd"; do
    printf '    %-40s %12d bytes  %8d KiB allocated\n' "$f" "$(stat -c %s "$f")" "$(( $(stat -c %b "$f") * $(stat -c %B "$f") / 1024 ))"
done
echo "check-cloud-images: all $n checks passed"
