#!/usr/bin/env bash
# Installs what `make run` / `make test` need on Debian 12 (bookworm), as root.
# Idempotent: does nothing when every tool is already present.
# QEMU 10 comes from bookworm-backports because the image's qemu-utils is from
# there and conflicts with bookworm's QEMU 7.2 (see docs/development.md).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Rust: the toolchain pinned in rust-toolchain.toml, with its targets and components.
# rustup installs them when it installs the toolchain, but NOT when the same toolchain
# is already there without them; add what is missing (no root needed).
if ! command -v rustup >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    . "$HOME/.cargo/env"
fi
if ! command -v rustup >/dev/null 2>&1 || ! command -v cargo >/dev/null 2>&1; then
    echo "setup: rustup/cargo not found; install Rust with rustup (https://rustup.rs)," >&2
    echo "setup: then run this again (rust-toolchain.toml pins the version)." >&2
    exit 1
fi
rust_targets=(x86_64-unknown-none aarch64-unknown-none x86_64-unknown-uefi aarch64-unknown-uefi)
rust_components=(rustfmt clippy rust-src)
have_targets="$(cd "$root" && rustup target list --installed 2>/dev/null || true)"
have_components="$(cd "$root" && rustup component list --installed 2>/dev/null || true)"
add_targets=()
for t in "${rust_targets[@]}"; do grep -qx "$t" <<<"$have_targets" || add_targets+=("$t"); done
add_components=()
for c in "${rust_components[@]}"; do grep -q "^$c" <<<"$have_components" || add_components+=("$c"); done
if [ "${#add_targets[@]}" -gt 0 ]; then
    echo "setup: adding Rust targets: ${add_targets[*]}" >&2
    (cd "$root" && rustup target add "${add_targets[@]}" >/dev/null)
fi
if [ "${#add_components[@]}" -gt 0 ]; then
    echo "setup: adding Rust components: ${add_components[*]}" >&2
    (cd "$root" && rustup component add "${add_components[@]}" >/dev/null)
fi

command -v python3 >/dev/null 2>&1 || { echo "setup: python3 is missing (apt-get install python3)" >&2; exit 1; }

# Images are built by the Rust image tool (tools/image); mtools, gdisk and dosfstools
# are only needed by the independent checks (ci/check-image.sh, ci/check-cloud-images.sh);
# curl and ab (apache2-utils) are the real HTTP clients of the network boot tests.
need_tools=(qemu-system-x86_64 qemu-system-aarch64 sgdisk mcopy mdir fsck.fat qemu-img timeout truncate tar
            curl ab)
need_files=(/usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_VARS_4M.fd
            /usr/share/AAVMF/AAVMF_CODE.fd /usr/share/AAVMF/AAVMF_VARS.fd)

missing=0
for t in "${need_tools[@]}"; do command -v "$t" >/dev/null 2>&1 || missing=1; done
for f in "${need_files[@]}"; do [ -e "$f" ] || missing=1; done
[ "$missing" = 0 ] && exit 0

apt_cmd="apt-get install -y -t bookworm-backports qemu-system-x86 qemu-system-arm && apt-get install -y ovmf qemu-efi-aarch64 mtools gdisk dosfstools curl apache2-utils"
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: QEMU, firmware or image tools are missing and this is not a root Debian shell." >&2
    echo "setup: on Debian 12 run as root: $apt_cmd" >&2
    echo "setup: (bookworm-backports must be in the apt sources for QEMU 10)" >&2
    exit 1
fi

echo "setup: installing QEMU, firmware and image tools with apt" >&2
backports=/etc/apt/sources.list.d/stratus-bookworm-backports.sources
if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat >"$backports" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t bookworm-backports qemu-system-x86 qemu-system-arm
apt-get install -y -qq ovmf qemu-efi-aarch64 mtools gdisk dosfstools curl apache2-utils
