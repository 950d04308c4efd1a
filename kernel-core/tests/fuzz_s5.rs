//! Fuzz target: the `\_S5` reader over hostile AML.

use kernel_core::acpi::sleep::{S5Error, find_s5};

#[test]
fn fuzz_s5_reader() {
    let qemu: &[u8] = &[
        0x10, 0x05, 0x5c, 0x00, 0x08, 0x5c, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x00, 0x00,
        0x00, 0x00, 0x14, 0x08, b'_', b'P', b'T', b'S', 0x01, 0x70, 0x00, 0x60,
    ];
    let board: &[u8] = &[
        0x08, b'_', b'S', b'5', b'_', 0x12, 0x46, 0x00, 0x02, 0x0a, 0x05, 0x0b, 0x05, 0x00,
    ];
    stratus_fuzz::fuzz("s5", &[qemu, board], |aml| match find_s5(aml) {
        Ok(s5) => {
            assert!(s5.slp_typ_a <= 7 && s5.slp_typ_b <= 7);
            assert_eq!(s5.pm1a_value() & !(0x7 << 10), 1 << 13);
        }
        Err(S5Error::TooFewElements(n)) => assert!(n < 2),
        Err(_) => {}
    });
}
