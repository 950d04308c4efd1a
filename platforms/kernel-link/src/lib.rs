//! Used from a kernel target's `build.rs`, whose `main` calls
//! `stratus_kernel_link::link_kernel()` (see `targets/demo/build.rs`).
//!
//! For bare-metal builds (`target_os = "none"`) it links the binary with
//! `platforms/<arch>/kernel.ld`, the layout the Limine-protocol loaders
//! expect: a static position-independent executable linked in the top 2 GiB
//! (the loader slides it and applies its relocations), one PT_LOAD per
//! permission, the Limine requests kept between their markers. It needs no
//! rustflags, so a kernel crate anywhere builds with plain `cargo build`.
//! Host builds are left alone.

use std::env;
use std::path::PathBuf;

/// The linker script of the platform for `arch` (`x86_64`, `aarch64`).
pub fn linker_script(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(arch)
        .join("kernel.ld")
}

/// Emits the cargo directives that link the current binary as a kernel.
pub fn link_kernel() {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "none" {
        return;
    }
    let script = linker_script(&arch);
    assert!(
        script.exists(),
        "no linker script for architecture '{arch}' at {}",
        script.display()
    );
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    // A static position-independent executable: x86_64-unknown-none links one by
    // default; aarch64-unknown-none compiles with the static relocation model, so
    // its absolute addresses in read-only data become dynamic relocations there
    // (`-z notext`), which the loader applies before it maps the kernel.
    println!("cargo:rustc-link-arg-bins=-pie");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    if arch == "aarch64" {
        println!("cargo:rustc-link-arg-bins=-znotext");
    }
    println!("cargo:rustc-link-arg-bins=-znoexecstack");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_platforms_have_a_linker_script() {
        for arch in ["x86_64", "aarch64"] {
            assert!(linker_script(arch).exists(), "{arch}");
        }
    }
}
