//! The `\_S5` (soft-off) sleep type from the DSDT, read without an AML
//! interpreter.
//!
//! Powering an x86 machine off through ACPI means writing `SLP_TYPx | SLP_EN`
//! to the PM1a (and PM1b) control registers (ACPI 6.5, 4.8.3.2.1 and 7.4.2),
//! where `SLP_TYPx` comes from the `\_S5` object in the DSDT. No AML
//! interpreter builds on stable Rust, and a full one is not needed for this:
//! nearly every firmware (QEMU's, OVMF's, cloud hypervisors') declares
//! `\_S5` as a plain named package of integer constants:
//!
//! ```text
//! 08          NameOp
//! 5C          '\' (optional root prefix)
//! 5F 53 35 5F "_S5_"
//! 12          PackageOp
//! PkgLength   1 to 4 bytes
//! NumElements
//! element...  ZeroOp 00 | OneOp 01 | OnesOp FF | BytePrefix 0A nn | WordPrefix 0B nn nn |
//!             DWordPrefix 0C nn*4 | QWordPrefix 0E nn*8
//! ```
//!
//! [`find_s5`] scans the AML byte stream for exactly that shape and reads the
//! first two elements (`SLP_TYPa`, `SLP_TYPb`). Every read is bounded by the
//! stream's length. Anything else (a `Method` returning the package, a package
//! built at run time) is reported as [`S5Error::NotAPlainPackage`] rather than
//! guessed at.

use core::fmt;

/// `_S5_` as it appears in AML (a NameSeg, padded with `_`).
const S5_NAME_SEG: [u8; 4] = *b"_S5_";
const NAME_OP: u8 = 0x08;
const ROOT_CHAR: u8 = b'\\';
const PACKAGE_OP: u8 = 0x12;
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const ONES_OP: u8 = 0xff;
const BYTE_PREFIX: u8 = 0x0a;
const WORD_PREFIX: u8 = 0x0b;
const DWORD_PREFIX: u8 = 0x0c;
const QWORD_PREFIX: u8 = 0x0e;

/// `SLP_EN`, bit 13 of the PM1 control registers (ACPI 6.5, table 4.13).
pub const SLP_EN: u16 = 1 << 13;
/// `SLP_TYPx` occupies bits 10 to 12 of the PM1 control registers.
const SLP_TYP_SHIFT: u16 = 10;
/// `SCI_EN`, bit 0 of PM1 control: set when the OS owns the ACPI hardware.
pub const SCI_EN: u16 = 1;

/// The sleep type values of `\_S5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S5SleepType {
    /// `SLP_TYPa`, for the PM1a control register.
    pub slp_typ_a: u8,
    /// `SLP_TYPb`, for the PM1b control register (when the FADT has one).
    pub slp_typ_b: u8,
}

impl S5SleepType {
    /// The value to write to the PM1a control register to enter S5.
    pub fn pm1a_value(&self) -> u16 {
        pm1_value(self.slp_typ_a)
    }

    /// The value to write to the PM1b control register to enter S5.
    pub fn pm1b_value(&self) -> u16 {
        pm1_value(self.slp_typ_b)
    }
}

fn pm1_value(slp_typ: u8) -> u16 {
    (u16::from(slp_typ) << SLP_TYP_SHIFT) | SLP_EN
}

/// Why no sleep type could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S5Error {
    /// The AML holds no `_S5_` name at all.
    NotFound,
    /// `_S5_` appears, but not as `Name(_S5, Package(){...})` of constants
    /// (for instance a method that computes it).
    NotAPlainPackage,
    /// The package is cut short by the end of the table or by its own length.
    Truncated,
    /// The package has fewer than the two elements `SLP_TYPa`, `SLP_TYPb`.
    TooFewElements(u8),
    /// A sleep type does not fit the 3-bit `SLP_TYPx` field.
    ValueTooLarge(u64),
}

impl fmt::Display for S5Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotFound => f.write_str("no \\_S5 object in the DSDT"),
            Self::NotAPlainPackage => {
                f.write_str("\\_S5 is not a package of constants (needs an AML interpreter)")
            }
            Self::Truncated => f.write_str("\\_S5 package runs past the end of its table"),
            Self::TooFewElements(n) => write!(f, "\\_S5 package has {n} elements, needs 2"),
            Self::ValueTooLarge(v) => write!(f, "\\_S5 sleep type {v:#x} exceeds 3 bits"),
        }
    }
}

/// Finds `Name(\_S5, Package(){SLP_TYPa, SLP_TYPb, ...})` in an AML byte
/// stream (a DSDT or SSDT body, after the 36-byte table header).
///
/// The first occurrence that is a name definition decides: a firmware with
/// more than one `\_S5` at the root would be malformed.
pub fn find_s5(aml: &[u8]) -> Result<S5SleepType, S5Error> {
    let mut seen_name = false;
    let mut from = 0;
    while let Some(found) = find_seg(aml, from) {
        from = found + 1;
        seen_name = true;
        if !is_name_definition(aml, found) {
            continue;
        }
        return parse_package(aml, found + S5_NAME_SEG.len());
    }
    Err(if seen_name {
        S5Error::NotAPlainPackage
    } else {
        S5Error::NotFound
    })
}

fn find_seg(aml: &[u8], from: usize) -> Option<usize> {
    aml.get(from..)?
        .windows(S5_NAME_SEG.len())
        .position(|w| w == S5_NAME_SEG)
        .map(|p| from + p)
}

/// Whether the name segment at `at` is the name of a `Name` operator
/// (`08 _S5_` or `08 5C _S5_`).
fn is_name_definition(aml: &[u8], at: usize) -> bool {
    let before = |n: usize| at.checked_sub(n).and_then(|i| aml.get(i)).copied();
    before(1) == Some(NAME_OP) || (before(1) == Some(ROOT_CHAR) && before(2) == Some(NAME_OP))
}

/// Decodes a PkgLength at `at` (ACPI 6.5, 20.2.4): its value (which counts
/// the length bytes themselves) and how many bytes it occupies.
fn pkg_length(aml: &[u8], at: usize) -> Option<(usize, usize)> {
    let lead = *aml.get(at)?;
    let extra = usize::from(lead >> 6);
    if extra == 0 {
        return Some((usize::from(lead & 0x3f), 1));
    }
    let mut value = usize::from(lead & 0x0f);
    for i in 0..extra {
        let byte = usize::from(*aml.get(at + 1 + i)?);
        value |= byte << (4 + 8 * i);
    }
    Some((value, 1 + extra))
}

fn parse_package(aml: &[u8], at: usize) -> Result<S5SleepType, S5Error> {
    if aml.get(at) != Some(&PACKAGE_OP) {
        return Err(S5Error::NotAPlainPackage);
    }
    let (length, length_bytes) = pkg_length(aml, at + 1).ok_or(S5Error::Truncated)?;
    // The package spans PkgLength bytes from the PkgLength itself.
    let end = (at + 1).checked_add(length).ok_or(S5Error::Truncated)?;
    if end > aml.len() || length < length_bytes + 1 {
        return Err(S5Error::Truncated);
    }
    let body = &aml[..end];
    let count_at = at + 1 + length_bytes;
    let count = body[count_at];
    if count < 2 {
        return Err(S5Error::TooFewElements(count));
    }
    let mut cursor = count_at + 1;
    let slp_typ_a = sleep_type(read_integer(body, &mut cursor)?)?;
    let slp_typ_b = sleep_type(read_integer(body, &mut cursor)?)?;
    Ok(S5SleepType {
        slp_typ_a,
        slp_typ_b,
    })
}

fn sleep_type(value: u64) -> Result<u8, S5Error> {
    u8::try_from(value)
        .ok()
        .filter(|&v| v <= 7)
        .ok_or(S5Error::ValueTooLarge(value))
}

/// Reads one integer constant at `*cursor` and moves past it.
fn read_integer(body: &[u8], cursor: &mut usize) -> Result<u64, S5Error> {
    let op = *body.get(*cursor).ok_or(S5Error::Truncated)?;
    let width = match op {
        ZERO_OP => 0,
        ONE_OP => {
            *cursor += 1;
            return Ok(1);
        }
        ONES_OP => {
            *cursor += 1;
            return Ok(u64::MAX);
        }
        BYTE_PREFIX => 1,
        WORD_PREFIX => 2,
        DWORD_PREFIX => 4,
        QWORD_PREFIX => 8,
        _ => return Err(S5Error::NotAPlainPackage),
    };
    let start = *cursor + 1;
    let bytes = body.get(start..start + width).ok_or(S5Error::Truncated)?;
    *cursor = start + width;
    Ok(bytes
        .iter()
        .rev()
        .fold(0u64, |v, &b| (v << 8) | u64::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Name (\_S5, Package (0x04) { Zero, Zero, Zero, Zero })`, as QEMU's
    /// q35 and i440fx DSDTs declare it, inside some surrounding AML.
    const QEMU_S5: &[u8] = &[
        0x10, 0x05, 0x5c, 0x00, // Scope (\) header bytes before it
        0x08, 0x5c, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00, //
        0x14, 0x08, b'_', b'P', b'T', b'S', 0x01, 0x70, 0x00, 0x60, // Method (_PTS)
    ];

    #[test]
    fn reads_qemu_s5() {
        let s5 = find_s5(QEMU_S5).unwrap();
        assert_eq!(
            s5,
            S5SleepType {
                slp_typ_a: 0,
                slp_typ_b: 0
            }
        );
        assert_eq!(s5.pm1a_value(), 0x2000);
    }

    #[test]
    fn reads_byte_prefixed_values_without_root_prefix() {
        // Name (_S5, Package (0x02) { 0x05, 0x05 }): common on real boards.
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x02, 0x0a, 0x05, 0x0a, 0x05,
        ];
        let s5 = find_s5(&aml).unwrap();
        assert_eq!(
            s5,
            S5SleepType {
                slp_typ_a: 5,
                slp_typ_b: 5
            }
        );
        assert_eq!(s5.pm1a_value(), (5 << 10) | (1 << 13));
    }

    #[test]
    fn reads_one_op_and_word_prefix() {
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x02, 0x01, 0x0b, 0x07, 0x00,
        ];
        assert_eq!(
            find_s5(&aml).unwrap(),
            S5SleepType {
                slp_typ_a: 1,
                slp_typ_b: 7
            }
        );
    }

    #[test]
    fn decodes_multi_byte_package_length() {
        // PkgLength 0x4N 0x00: two bytes, value N + (0 << 4).
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x41, 0x00, 0x02, 0x00, 0x00,
        ];
        assert_eq!(pkg_length(&aml, 6), Some((1, 2)));
        assert_eq!(find_s5(&aml), Err(S5Error::Truncated));
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x46, 0x00, 0x02, 0x0a, 0x03, 0x00,
        ];
        assert_eq!(
            find_s5(&aml).unwrap(),
            S5SleepType {
                slp_typ_a: 3,
                slp_typ_b: 0
            }
        );
    }

    #[test]
    fn skips_name_seg_that_is_not_a_definition() {
        // A reference to _S5_ (in a method body) before the definition.
        let mut aml = vec![0x70, b'_', b'S', b'5', b'_', 0x60];
        aml.extend_from_slice(&QEMU_S5[4..17]);
        assert!(find_s5(&aml).is_ok());
    }

    #[test]
    fn method_s5_is_not_guessed() {
        // Method (_S5) { Return (Package () {5, 5}) }
        let aml = [
            0x14, 0x0b, b'_', b'S', b'5', b'_', 0x00, 0xa4, 0x12, 0x04, 0x02, 0x05,
        ];
        assert_eq!(find_s5(&aml), Err(S5Error::NotAPlainPackage));
    }

    #[test]
    fn missing_and_broken_packages_are_errors() {
        assert_eq!(find_s5(&[0u8; 64]), Err(S5Error::NotFound));
        assert_eq!(find_s5(&[]), Err(S5Error::NotFound));
        // Cut in the middle of the package.
        assert_eq!(find_s5(&QEMU_S5[..14]), Err(S5Error::Truncated));
        // One element only.
        let aml = [0x08, b'_', b'S', b'5', b'_', 0x12, 0x03, 0x01, 0x00];
        assert_eq!(find_s5(&aml), Err(S5Error::TooFewElements(1)));
        // A sleep type wider than SLP_TYP.
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x02, 0x0a, 0x08, 0x0a, 0x00,
        ];
        assert_eq!(find_s5(&aml), Err(S5Error::ValueTooLarge(8)));
        let aml = [0x08, b'_', b'S', b'5', b'_', 0x12, 0x04, 0x02, 0xff, 0x00];
        assert_eq!(find_s5(&aml), Err(S5Error::ValueTooLarge(u64::MAX)));
        // A package length that claims more than the table holds.
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        assert_eq!(find_s5(&aml), Err(S5Error::Truncated));
    }

    #[test]
    fn name_at_the_very_start_or_end_is_bounded() {
        assert_eq!(find_s5(b"_S5_"), Err(S5Error::NotAPlainPackage));
        assert_eq!(find_s5(b"\x08_S5_"), Err(S5Error::NotAPlainPackage));
        assert_eq!(find_s5(b"\x08_S5_\x12"), Err(S5Error::Truncated));
    }
}
