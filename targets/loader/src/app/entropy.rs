//! Random bits for the kernel's slide (KASLR): `EFI_RNG_PROTOCOL` when the
//! firmware offers it (UEFI 2.10, 37.5), else the CPU counter, scrambled.

use stratus_loader::reloc::scramble;
use uefi::boot;
use uefi::proto::rng::Rng;

use super::arch;

/// Where the random bits came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `EFI_RNG_PROTOCOL`, default algorithm.
    Firmware,
    /// The CPU counter (TSC, `CNTVCT_EL0`): varies with boot timing only.
    Counter,
}

impl Source {
    /// The name in the loader's handoff line (`kaslr=<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Firmware => "rng",
            Self::Counter => "counter",
        }
    }
}

fn from_firmware() -> Option<u64> {
    let handle = boot::get_handle_for_protocol::<Rng>().ok()?;
    let mut rng = boot::open_protocol_exclusive::<Rng>(handle).ok()?;
    let mut bytes = [0u8; 8];
    rng.get_rng(None, &mut bytes).ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// 64 random bits and their source.
pub fn random_u64() -> (u64, Source) {
    match from_firmware() {
        Some(bits) => (bits, Source::Firmware),
        None => (scramble(arch::counter()), Source::Counter),
    }
}
