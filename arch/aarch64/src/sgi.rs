//! Encoding of ICC_SGI1R_EL1, the register that sends a software-generated
//! interrupt (GICv3 architecture specification, ARM IHI 0069, 12.2.23).
//!
//! A write names the target CPUs by Aff3.Aff2.Aff1 and a 16-bit list of
//! Aff0 values. Aff0 values of 16 and above need the range selector (RS):
//! the list then covers Aff0 `RS * 16 .. RS * 16 + 16`, which the CPU
//! interface supports when ICC_CTLR_EL1.RSS is set (and the distributor's
//! GICD_TYPER.RSS). `arm-gic` 0.10 writes the register without RS, so the
//! kernel encodes it here.

/// ICC_CTLR_EL1.RSS: the CPU interface takes Aff0 values 0..=255 in SGIs.
pub const ICC_CTLR_RSS: u64 = 1 << 18;

/// Why an SGI cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiError {
    /// INTIDs 0..16 are SGIs; this is not one.
    NotAnSgi(u32),
    /// The target's Aff0 is 16 or more and the CPU interface has no range
    /// selector support.
    NoRangeSelector(u8),
}

/// The ICC_SGI1R_EL1 value sending SGI `intid` to the one CPU whose MPIDR
/// affinity is `target` (Aff3 in bits 39:32, Aff2..Aff0 in bits 23:0, as
/// MPIDR_EL1 holds them); `range_selector` says whether the CPU interface
/// supports RS (see [`ICC_CTLR_RSS`]).
pub fn sgi1r_value(intid: u32, target: u64, range_selector: bool) -> Result<u64, SgiError> {
    if intid >= 16 {
        return Err(SgiError::NotAnSgi(intid));
    }
    let aff0 = (target & 0xff) as u8;
    let aff1 = (target >> 8) & 0xff;
    let aff2 = (target >> 16) & 0xff;
    let aff3 = (target >> 32) & 0xff;
    if aff0 >= 16 && !range_selector {
        return Err(SgiError::NoRangeSelector(aff0));
    }
    let rs = u64::from(aff0 >> 4);
    let list = 1u64 << (aff0 & 0xf);
    Ok(aff3 << 48 | rs << 44 | aff2 << 32 | u64::from(intid) << 24 | aff1 << 16 | list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_encoded_by_affinity_with_the_range_selector() {
        // SGI 3 to 0.0.0.2: list bit 2, no RS.
        assert_eq!(sgi1r_value(3, 2, false), Ok(0x0300_0004));
        // SGI 1 to 0.0.1.5 (Aff1 = 1).
        assert_eq!(sgi1r_value(1, 0x105, false), Ok(0x0101_0020));
        // Aff3 = 1, Aff2 = 2: bits 55:48 and 39:32.
        assert_eq!(
            sgi1r_value(0, 0x01_0002_0000, false),
            Ok(0x0001_0002_0000_0001)
        );
        // Aff0 = 0x23 (35): RS 2, list bit 3; refused without RS support.
        assert_eq!(sgi1r_value(15, 0x23, true), Ok(0x2000_0f00_0008));
        assert_eq!(
            sgi1r_value(15, 0x23, false),
            Err(SgiError::NoRangeSelector(0x23))
        );
        assert_eq!(sgi1r_value(16, 0, true), Err(SgiError::NotAnSgi(16)));
    }
}
