//! `stratus-loader.efi`: Stratus's own UEFI loader for Limine-protocol kernels.
//!
//! Built for `x86_64-unknown-uefi` and `aarch64-unknown-uefi` it is the UEFI
//! application in [`app`]; on any other target it is a stub, so that `cargo test`
//! and `cargo clippy` on the host build the workspace. The pure parts (ELF, request
//! scanning, memory map, page tables) are the `stratus_loader` library.
#![cfg_attr(target_os = "uefi", no_std)]
#![cfg_attr(target_os = "uefi", no_main)]

#[cfg(target_os = "uefi")]
mod app;

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!(
        "stratus-loader is a UEFI application: build it with \
         --target x86_64-unknown-uefi or --target aarch64-unknown-uefi"
    );
    std::process::exit(2);
}
