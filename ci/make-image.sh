#!/usr/bin/env bash
# Builds ONE raw GPT disk image whose EFI system partition boots on both OVMF
# (x86_64) and AAVMF (aarch64) through the UEFI removable-media path. No root needed.
#
# usage: ci/make-image.sh OUTPUT [CMDLINE] [options]
#   OUTPUT                 image path to write (replaced if it exists)
#   CMDLINE                kernel command line written to /boot/stratus.cmdline and to
#                          limine.conf (default: empty; also --cmdline=STR)
#   --kernel-x86_64=PATH   kernel ELF for x86_64   (env KERNEL_X86_64)
#   --kernel-aarch64=PATH  kernel ELF for aarch64  (env KERNEL_AARCH64)
#   --loader-x86_64=PATH   BOOTX64.EFI             (env LOADER_X86_64)
#   --loader-aarch64=PATH  BOOTAA64.EFI            (env LOADER_AARCH64)
#   --limine-dir=DIR       use genuine Limine (DIR/BOOTX64.EFI, DIR/BOOTAA64.EFI)
#                          instead of our loader (env LIMINE_DIR)
#   --size-mib=N           image size in MiB, >= 64 (env IMAGE_SIZE_MIB, default 64)
# A kernel or loader PATH of "none" leaves that file out (for negative tests).
# Defaults come from $CARGO_TARGET_DIR (or ./target) release builds.
#
# Layout of the ESP (partition 1, type EF00, FAT32, starting at 1 MiB):
#   /EFI/BOOT/BOOTX64.EFI  /EFI/BOOT/BOOTAA64.EFI
#   /boot/kernel-x86-64    /boot/kernel-aarch64    /boot/stratus.cmdline
#   /boot/limine/limine.conf  /limine.conf
# Kernel names follow Limine's ${ARCH} spelling ("x86-64", "aarch64"), so one
# limine.conf line serves both architectures and the layout is the same whichever
# loader is installed.
set -euo pipefail

die() { echo "make-image: error: $*" >&2; exit 1; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tdir="${CARGO_TARGET_DIR:-$root/target}"

out=""
cmdline=""
have_cmdline=0
kx="${KERNEL_X86_64:-$tdir/x86_64-unknown-none/release/stratus-demo}"
ka="${KERNEL_AARCH64:-$tdir/aarch64-unknown-none/release/stratus-demo}"
lx="${LOADER_X86_64:-$tdir/x86_64-unknown-uefi/release/stratus-loader.efi}"
la="${LOADER_AARCH64:-$tdir/aarch64-unknown-uefi/release/stratus-loader.efi}"
limine="${LIMINE_DIR:-}"
size_mib="${IMAGE_SIZE_MIB:-64}"

for arg in "$@"; do
    case "$arg" in
        --cmdline=*) cmdline="${arg#*=}"; have_cmdline=1 ;;
        --kernel-x86_64=*) kx="${arg#*=}" ;;
        --kernel-aarch64=*) ka="${arg#*=}" ;;
        --loader-x86_64=*) lx="${arg#*=}" ;;
        --loader-aarch64=*) la="${arg#*=}" ;;
        --limine-dir=*) limine="${arg#*=}" ;;
        --size-mib=*) size_mib="${arg#*=}" ;;
        -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}"; exit 0 ;;
        --*) die "unknown option $arg (see --help)" ;;
        *)
            if [ -z "$out" ]; then out="$arg"
            elif [ "$have_cmdline" = 0 ]; then cmdline="$arg"; have_cmdline=1
            else die "too many arguments (see --help)"; fi ;;
    esac
done
[ -n "$out" ] || die "no output path given (usage: ci/make-image.sh OUTPUT [CMDLINE] [options])"
case "$cmdline" in *$'\n'*) die "the command line must be one line" ;; esac
[[ "$size_mib" =~ ^[0-9]+$ ]] && [ "$size_mib" -ge 64 ] || die "--size-mib must be a number >= 64"

if [ -n "$limine" ]; then
    lx="$limine/BOOTX64.EFI"
    la="$limine/BOOTAA64.EFI"
    [ -f "$lx" ] && [ -f "$la" ] || die "LIMINE_DIR=$limine must hold BOOTX64.EFI and BOOTAA64.EFI"
fi
for f in "$kx" "$ka" "$lx" "$la"; do
    [ "$f" = none ] || [ -f "$f" ] || die "missing input $f (build it first: make kernels loader)"
done
for t in sgdisk mkfs.fat mmd mcopy truncate; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (run ci/setup.sh)"
done

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp" "$tmp.log" "$tmp.cmdline" "$tmp.conf"' EXIT
rm -f "$tmp"

# 1. Sparse raw disk with a GPT holding one ESP from sector 2048 (1 MiB) to the end.
truncate -s "${size_mib}M" "$tmp"
# Never pass -q: on a blank image sgdisk -q exits 0 and writes no partition table.
sgdisk -n 1:2048:-0 -t 1:ef00 -c 1:"EFI system partition" "$tmp" >"$tmp.log" 2>&1 \
    || { cat "$tmp.log" >&2; rm -f "$tmp.log"; die "sgdisk failed"; }
rm -f "$tmp.log"
first=$(sgdisk -i 1 "$tmp" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
last=$(sgdisk -i 1 "$tmp" | sed -n 's/^Last sector: \([0-9]*\).*/\1/p')
[ "$first" = 2048 ] && [ -n "$last" ] || die "partition 1 was not created at sector 2048"
esp_kib=$(( (last - first + 1) / 2 ))

# 2. FAT32 inside the partition (FAT32 needs >= 65525 clusters; 63 MiB at 512 B each is plenty).
# (mkfs.fat warns that the file is larger than the file system: expected, hidden.)
mkfs.fat -F 32 -n STRATUS --offset 2048 "$tmp" "$esp_kib" >"$tmp.log" 2>&1 \
    || { cat "$tmp.log" >&2; rm -f "$tmp.log"; die "mkfs.fat failed"; }
rm -f "$tmp.log"

# 3. Files, copied with mtools at the partition's byte offset.
export MTOOLS_SKIP_CHECK=1
img="$tmp@@1M"
mmd -i "$img" ::/EFI ::/EFI/BOOT ::/boot ::/boot/limine
put() { # put SRC DEST
    [ "$1" = none ] && return 0
    mcopy -o -i "$img" "$1" "::$2" || die "mcopy $1 -> $2 failed"
}
put "$lx" /EFI/BOOT/BOOTX64.EFI
put "$la" /EFI/BOOT/BOOTAA64.EFI
put "$kx" /boot/kernel-x86-64
put "$ka" /boot/kernel-aarch64

# One line, no trailing newline, so a loader can pass the bytes through unchanged.
printf '%s' "$cmdline" >"$tmp.cmdline"
put "$tmp.cmdline" /boot/stratus.cmdline
# kernel_path, not path: Limine 8.2 knows only kernel_path; later versions take both.
cat >"$tmp.conf" <<EOF
# Stratus boot entry for genuine Limine (8.x). \${ARCH} is x86-64 or aarch64.
timeout: 0

/Stratus
    protocol: limine
    kernel_path: boot():/boot/kernel-\${ARCH}
    cmdline: $cmdline
EOF
# `nokaslr` on the command line: our loader keeps the kernel at its link address;
# Limine's spelling of the same is the entry option `kaslr: no`.
case " $cmdline " in *" nokaslr "*) printf '    kaslr: no\n' >>"$tmp.conf" ;; esac
put "$tmp.conf" /boot/limine/limine.conf
put "$tmp.conf" /limine.conf

mv -f "$tmp" "$out"
trap - EXIT
rm -f "$tmp.cmdline" "$tmp.conf"
echo "$out"
