//! Decoding of the exception vector that fired and of `ESR_EL1`, the
//! exception syndrome (ARM DDI 0487, D1.3 "Exception entry" for the vector
//! table layout, D19.2 "ESR_EL1" for the syndrome and its fault status
//! codes). Pure functions, tested on the host.

use core::fmt;

/// The kind of exception, from the vector's position within its group of
/// four (offsets 0x000, 0x080, 0x100, 0x180 of each 0x200 group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorKind {
    /// Synchronous: caused by an instruction; `ESR_EL1` says why.
    Synchronous,
    /// IRQ interrupt.
    Irq,
    /// FIQ interrupt.
    Fiq,
    /// System error (asynchronous abort).
    SError,
}

/// Where the exception came from: the 0x200-byte group of the vector table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorOrigin {
    /// EL1 while using SP_EL0 (`SPSel` = 0): the kernel's normal state.
    CurrentElSp0,
    /// EL1 while using SP_ELx (`SPSel` = 1): in Stratus, the exception
    /// handler itself, which runs on the exception stack.
    CurrentElSpx,
    /// EL0 in AArch64.
    LowerElAarch64,
    /// EL0 in AArch32.
    LowerElAarch32,
}

/// One of the 16 entries of the vector table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vector {
    /// Which group of four.
    pub origin: VectorOrigin,
    /// Which entry within the group.
    pub kind: VectorKind,
}

impl Vector {
    /// The vector with table index `index` (0..16, the offset / 0x80).
    pub fn from_index(index: u64) -> Self {
        let origin = match (index / 4) % 4 {
            0 => VectorOrigin::CurrentElSp0,
            1 => VectorOrigin::CurrentElSpx,
            2 => VectorOrigin::LowerElAarch64,
            _ => VectorOrigin::LowerElAarch32,
        };
        let kind = match index % 4 {
            0 => VectorKind::Synchronous,
            1 => VectorKind::Irq,
            2 => VectorKind::Fiq,
            _ => VectorKind::SError,
        };
        Self { origin, kind }
    }
}

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            VectorKind::Synchronous => "synchronous",
            VectorKind::Irq => "IRQ",
            VectorKind::Fiq => "FIQ",
            VectorKind::SError => "SError",
        };
        let origin = match self.origin {
            VectorOrigin::CurrentElSp0 => "EL1 on SP_EL0",
            VectorOrigin::CurrentElSpx => "EL1 on SP_EL1",
            VectorOrigin::LowerElAarch64 => "EL0 AArch64",
            VectorOrigin::LowerElAarch32 => "EL0 AArch32",
        };
        write!(f, "{kind} from {origin}")
    }
}

/// `ESR_EL1.EC`, the exception class (bits \[31:26\]).
pub fn exception_class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// `ESR_EL1.ISS` bits \[24:0\], the class-specific syndrome.
fn iss(esr: u64) -> u64 {
    esr & 0x1ff_ffff
}

/// Exception classes of instruction and data aborts (ARM DDI 0487 D19.2).
const EC_INSTRUCTION_ABORT_LOWER: u8 = 0x20;
const EC_INSTRUCTION_ABORT_SAME: u8 = 0x21;
const EC_DATA_ABORT_LOWER: u8 = 0x24;
const EC_DATA_ABORT_SAME: u8 = 0x25;

/// The name of the exception: the vector kind for interrupts and system
/// errors, the exception class for synchronous exceptions.
pub fn exception_name(vector: Vector, esr: u64) -> &'static str {
    match vector.kind {
        VectorKind::Irq => "IRQ",
        VectorKind::Fiq => "FIQ",
        VectorKind::SError => "SError",
        VectorKind::Synchronous => exception_class_name(exception_class(esr)),
    }
}

/// The name of a synchronous exception class (ARM DDI 0487 D19.2, ESR_EL1.EC).
pub fn exception_class_name(ec: u8) -> &'static str {
    match ec {
        0x00 => "undefined instruction",
        0x01 => "trapped WFI/WFE",
        0x07 => "trapped SVE/SIMD/floating-point access",
        0x0d => "branch target exception",
        0x0e => "illegal execution state",
        0x11 | 0x15 => "SVC instruction",
        0x12 | 0x16 => "HVC instruction",
        0x13 | 0x17 => "SMC instruction",
        0x18 => "trapped system register access",
        0x19 => "trapped SVE access",
        0x1c => "pointer authentication failure",
        EC_INSTRUCTION_ABORT_LOWER => "instruction abort (lower EL)",
        EC_INSTRUCTION_ABORT_SAME => "instruction abort (same EL)",
        0x22 => "PC alignment fault",
        EC_DATA_ABORT_LOWER => "data abort (lower EL)",
        EC_DATA_ABORT_SAME => "data abort (same EL)",
        0x26 => "SP alignment fault",
        0x28 | 0x2c => "floating-point exception",
        0x2f => "SError",
        0x30 => "breakpoint (lower EL)",
        0x31 => "breakpoint (same EL)",
        0x32 => "software step (lower EL)",
        0x33 => "software step (same EL)",
        0x34 => "watchpoint (lower EL)",
        0x35 => "watchpoint (same EL)",
        0x38 | 0x3c => "BRK instruction",
        _ => "unknown exception class",
    }
}

/// Whether `FAR_EL1` holds the faulting address for this syndrome: the
/// aborts (unless `ISS.FnV` says it is not valid), PC alignment faults and
/// watchpoints.
pub fn fault_address_valid(esr: u64) -> bool {
    match exception_class(esr) {
        EC_INSTRUCTION_ABORT_LOWER
        | EC_INSTRUCTION_ABORT_SAME
        | EC_DATA_ABORT_LOWER
        | EC_DATA_ABORT_SAME => iss(esr) & (1 << 10) == 0,
        0x22 | 0x34 | 0x35 => true,
        _ => false,
    }
}

/// Whether the syndrome is an instruction or data abort, whose fault status
/// code [`AbortSyndrome`] decodes.
pub fn is_abort(esr: u64) -> bool {
    matches!(
        exception_class(esr),
        EC_INSTRUCTION_ABORT_LOWER
            | EC_INSTRUCTION_ABORT_SAME
            | EC_DATA_ABORT_LOWER
            | EC_DATA_ABORT_SAME
    )
}

/// The decoded fault status code of an abort (`ISS.DFSC` / `ISS.IFSC`, bits
/// \[5:0\]) and the access that faulted; `Display` gives e.g.
/// "translation fault at level 2, read".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortSyndrome {
    esr: u64,
}

impl AbortSyndrome {
    /// The abort described by `esr`, or `None` when it is not an abort.
    pub fn new(esr: u64) -> Option<Self> {
        is_abort(esr).then_some(Self { esr })
    }

    /// The fault status code.
    pub fn status_code(&self) -> u8 {
        (self.esr & 0x3f) as u8
    }

    fn is_data(&self) -> bool {
        matches!(
            exception_class(self.esr),
            EC_DATA_ABORT_LOWER | EC_DATA_ABORT_SAME
        )
    }

    fn access(&self) -> &'static str {
        if !self.is_data() {
            "instruction fetch"
        } else if iss(self.esr) & (1 << 8) != 0 {
            "cache maintenance"
        } else if iss(self.esr) & (1 << 6) != 0 {
            "write"
        } else {
            "read"
        }
    }
}

impl fmt::Display for AbortSyndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.status_code();
        let level = code & 0b11;
        match code {
            0b00_0000..=0b00_0011 => write!(f, "address size fault at level {level}")?,
            0b00_0100..=0b00_0111 => write!(f, "translation fault at level {level}")?,
            0b00_1001..=0b00_1011 => write!(f, "access flag fault at level {level}")?,
            0b00_1101..=0b00_1111 => write!(f, "permission fault at level {level}")?,
            0b01_0000 => f.write_str("synchronous external abort")?,
            0b01_0001 => f.write_str("tag check fault")?,
            0b01_0100..=0b01_0111 => write!(
                f,
                "synchronous external abort on table walk at level {level}"
            )?,
            0b01_1000 => f.write_str("synchronous parity or ECC error")?,
            0b01_1100..=0b01_1111 => {
                write!(f, "parity or ECC error on table walk at level {level}")?
            }
            0b10_0001 => f.write_str("alignment fault")?,
            0b11_0000 => f.write_str("TLB conflict abort")?,
            0b11_0001 => f.write_str("unsupported atomic hardware update")?,
            _ => write!(f, "fault status {code:#04x}")?,
        }
        write!(f, ", {}", self.access())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::string::ToString;

    #[test]
    fn vectors_by_index() {
        assert_eq!(
            Vector::from_index(0),
            Vector {
                origin: VectorOrigin::CurrentElSp0,
                kind: VectorKind::Synchronous
            }
        );
        assert_eq!(
            Vector::from_index(5),
            Vector {
                origin: VectorOrigin::CurrentElSpx,
                kind: VectorKind::Irq
            }
        );
        assert_eq!(
            Vector::from_index(11),
            Vector {
                origin: VectorOrigin::LowerElAarch64,
                kind: VectorKind::SError
            }
        );
        assert_eq!(Vector::from_index(14).origin, VectorOrigin::LowerElAarch32);
        assert_eq!(
            Vector::from_index(4).to_string(),
            "synchronous from EL1 on SP_EL1"
        );
    }

    #[test]
    fn data_abort_read_of_unmapped_address() {
        // What QEMU reports for a load from an address with no level 2 table
        // entry: EC 0x25, IL, DFSC 0b000110 (translation fault, level 2).
        let esr = 0x9600_0006;
        let sync0 = Vector::from_index(0);
        assert_eq!(exception_name(sync0, esr), "data abort (same EL)");
        assert!(fault_address_valid(esr));
        assert_eq!(
            AbortSyndrome::new(esr).unwrap().to_string(),
            "translation fault at level 2, read"
        );
        // WnR set: a write; permission fault at level 3.
        assert_eq!(
            AbortSyndrome::new(0x9600_004f).unwrap().to_string(),
            "permission fault at level 3, write"
        );
        // FnV set: FAR not valid.
        assert!(!fault_address_valid(esr | 1 << 10));
    }

    #[test]
    fn instruction_abort_and_others() {
        let sync = Vector::from_index(0);
        assert_eq!(
            exception_name(sync, 0x8600_0005),
            "instruction abort (same EL)"
        );
        assert_eq!(
            AbortSyndrome::new(0x8600_0005).unwrap().to_string(),
            "translation fault at level 1, instruction fetch"
        );
        assert_eq!(exception_name(sync, 0x0200_0000), "undefined instruction");
        assert_eq!(
            exception_name(sync, 0xf200_0000 | 0x1234),
            "BRK instruction"
        );
        assert!(AbortSyndrome::new(0x0200_0000).is_none());
        assert!(!fault_address_valid(0x0200_0000));
        assert_eq!(
            exception_name(Vector::from_index(1), 0x9600_0006),
            "IRQ",
            "ESR is stale for interrupts"
        );
        assert_eq!(exception_name(Vector::from_index(3), 0xbe00_0000), "SError");
        assert_eq!(
            AbortSyndrome::new(0x9600_0021).unwrap().to_string(),
            "alignment fault, read"
        );
        assert_eq!(
            AbortSyndrome::new(0x9600_003d).unwrap().to_string(),
            "fault status 0x3d, read"
        );
    }
}
