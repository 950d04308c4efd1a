//! CPU identification for the boot log: `MIDR_EL1` decoded to a vendor and
//! core name where the name is well known (ARM DDI 0487 D19.2 "MIDR_EL1";
//! part numbers from the vendors' technical reference manuals), plus the
//! exception level.

use core::fmt;

/// The fields of a `MIDR_EL1` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Midr(pub u64);

impl Midr {
    /// Implementer code, bits \[31:24\] (0x41 Arm, 0xc0 Ampere, ...).
    pub fn implementer(self) -> u8 {
        (self.0 >> 24) as u8
    }

    /// Major revision, bits \[23:20\].
    pub fn variant(self) -> u8 {
        ((self.0 >> 20) & 0xf) as u8
    }

    /// Primary part number, bits \[15:4\].
    pub fn part(self) -> u16 {
        ((self.0 >> 4) & 0xfff) as u16
    }

    /// Minor revision, bits \[3:0\].
    pub fn revision(self) -> u8 {
        (self.0 & 0xf) as u8
    }

    /// The implementer's name, when known.
    pub fn implementer_name(self) -> Option<&'static str> {
        Some(match self.implementer() {
            0x41 => "Arm",
            0x42 => "Broadcom",
            0x43 => "Cavium",
            0x46 => "Fujitsu",
            0x48 => "HiSilicon",
            0x4e => "NVIDIA",
            0x51 => "Qualcomm",
            0x61 => "Apple",
            0x6d => "Microsoft",
            0xc0 => "Ampere",
            _ => return None,
        })
    }

    /// The core's name, for the parts found in cloud servers and common
    /// boards. Graviton 2/3/4, Google Axion and NVIDIA Grace use Arm Neoverse
    /// cores and report Arm as implementer.
    pub fn part_name(self) -> Option<&'static str> {
        Some(match (self.implementer(), self.part()) {
            (0x41, 0xd03) => "Cortex-A53",
            (0x41, 0xd05) => "Cortex-A55",
            (0x41, 0xd07) => "Cortex-A57",
            (0x41, 0xd08) => "Cortex-A72",
            (0x41, 0xd0b) => "Cortex-A76",
            (0x41, 0xd0c) => "Neoverse N1",
            (0x41, 0xd40) => "Neoverse V1",
            (0x41, 0xd41) => "Cortex-A78",
            (0x41, 0xd49) => "Neoverse N2",
            (0x41, 0xd4f) => "Neoverse V2",
            (0x41, 0xd83) => "Neoverse V3AE",
            (0x41, 0xd84) => "Neoverse V3",
            (0x41, 0xd8e) => "Neoverse N3",
            (0x6d, 0xd49) => "Azure Cobalt 100",
            (0xc0, 0xac3) => "AmpereOne",
            (0xc0, 0xac4) => "AmpereOne AC04",
            _ => return None,
        })
    }
}

impl fmt::Display for Midr {
    /// For example `Arm Neoverse N1 r3p1 (MIDR 0x413fd0c1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.implementer_name() {
            Some(name) => f.write_str(name)?,
            None => write!(f, "implementer {:#04x}", self.implementer())?,
        }
        match self.part_name() {
            Some(name) => write!(f, " {name}")?,
            None => write!(f, " part {:#05x}", self.part())?,
        }
        write!(
            f,
            " r{}p{} (MIDR {:#010x})",
            self.variant(),
            self.revision(),
            self.0
        )
    }
}

/// Writes the decoded `MIDR_EL1` and the current exception level.
#[cfg(target_arch = "aarch64")]
pub fn describe(out: &mut dyn fmt::Write) -> fmt::Result {
    use aarch64_cpu::registers::{CurrentEL, MIDR_EL1, Readable};
    write!(
        out,
        "{}, EL{}",
        Midr(MIDR_EL1.get()),
        CurrentEL.read(CurrentEL::EL)
    )
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::string::ToString;

    #[test]
    fn known_and_unknown_parts() {
        assert_eq!(
            Midr(0x413f_d0c1).to_string(),
            "Arm Neoverse N1 r3p1 (MIDR 0x413fd0c1)"
        );
        assert_eq!(
            Midr(0x6d0f_d490).to_string(),
            "Microsoft Azure Cobalt 100 r0p0 (MIDR 0x6d0fd490)"
        );
        // QEMU's `-cpu max`: implementer 0, part 0x051.
        assert_eq!(
            Midr(0x000f_0510).to_string(),
            "implementer 0x00 part 0x051 r0p0 (MIDR 0x000f0510)"
        );
    }
}
