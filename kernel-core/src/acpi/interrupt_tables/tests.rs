//! MADT and GTDT decoding from bytes laid out as QEMU and the clouds build them.

use super::*;
extern crate std;
use std::vec::Vec;

fn header(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(signature);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.resize(36, 0);
    t.extend_from_slice(body);
    t
}

/// A q35-like MADT: local APIC, x2APIC above 255, one I/O APIC, two overrides.
fn x86_madt() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]); // LAPIC id 0, enabled
    b.extend_from_slice(&[0, 8, 1, 1, 0, 0, 0, 0]); // LAPIC id 1, disabled
    b.extend_from_slice(&[9, 16, 0, 0, 0x2c, 1, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0]); // x2APIC 300
    b.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]); // IOAPIC
    b.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]); // IRQ0 -> GSI2
    b.extend_from_slice(&[2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0]); // IRQ9 level, high
    b.extend_from_slice(&[2, 10, 0, 11, 11, 0, 0, 0, 0x0f, 0]); // IRQ11 level, low
    header(b"APIC", &b)
}

/// A virt-like MADT: GICC without redistributor, GICD v3, one GICR range.
fn arm_madt(with_gicr_range: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&[0; 8]);
    let mut gicc = [0u8; 80];
    gicc[0] = 0xb;
    gicc[1] = 80;
    gicc[12] = 1; // enabled
    if !with_gicr_range {
        gicc[60..68].copy_from_slice(&0x1020_0000u64.to_le_bytes());
    }
    b.extend_from_slice(&gicc);
    let mut gicd = [0u8; 24];
    gicd[0] = 0xc;
    gicd[1] = 24;
    gicd[8..16].copy_from_slice(&0x0800_0000u64.to_le_bytes());
    gicd[20] = 3;
    b.extend_from_slice(&gicd);
    if with_gicr_range {
        let mut gicr = [0u8; 16];
        gicr[0] = 0xe;
        gicr[1] = 16;
        gicr[4..12].copy_from_slice(&0x080a_0000u64.to_le_bytes());
        gicr[12..16].copy_from_slice(&0xf6_0000u32.to_le_bytes());
        b.extend_from_slice(&gicr);
    }
    header(b"APIC", &b)
}

fn gtdt(virtual_gsiv: u32, flags: u32) -> Vec<u8> {
    let mut b = std::vec![0u8; 104 - 36];
    b[64 - 36..68 - 36].copy_from_slice(&virtual_gsiv.to_le_bytes());
    b[68 - 36..72 - 36].copy_from_slice(&flags.to_le_bytes());
    header(b"GTDT", &b)
}

#[test]
fn x86_madt_gives_apics_overrides_and_ids() {
    let mut t = InterruptTables::default();
    t.read_madt(&x86_madt());
    assert_eq!(t.local_apic_phys, Some(0xfee0_0000));
    assert_eq!(t.apic_ids, [0, 300]);
    assert_eq!(
        t.io_apics,
        [IoApicDescription {
            id: 0,
            phys: 0xfec0_0000,
            gsi_base: 0
        }]
    );
    assert_eq!(t.overrides.len(), 3);
    assert_eq!(t.overrides[0].gsi, 2);
    assert_eq!(
        (t.overrides[1].trigger, t.overrides[1].polarity),
        (Trigger::Level, Polarity::High)
    );
    assert_eq!(
        (t.overrides[2].trigger, t.overrides[2].polarity),
        (Trigger::Level, Polarity::Low)
    );
    assert!(matches!(
        t.hardware(),
        Some(InterruptHardware::Apic {
            local_apic_phys: 0xfee0_0000,
            ..
        })
    ));
}

#[test]
fn arm_madt_prefers_gicr_ranges_and_falls_back_to_gicc() {
    let mut t = InterruptTables::default();
    t.read_madt(&arm_madt(true));
    t.read_gtdt(&gtdt(27, 0));
    assert_eq!(t.virtual_timer, Some(InterruptLine::PerCpu(27)));
    match t.hardware() {
        Some(InterruptHardware::Gic {
            version: 3,
            distributor_phys: 0x0800_0000,
            redistributors,
            source: RedistributorSource::Ranges,
        }) => assert_eq!(redistributors, [(0x080a_0000, 0xf6_0000)]),
        other => panic!("{other:?}"),
    }
    let mut metal = InterruptTables::default();
    metal.read_madt(&arm_madt(false));
    match metal.hardware() {
        Some(InterruptHardware::Gic {
            redistributors,
            source: RedistributorSource::PerCpu,
            ..
        }) => assert_eq!(redistributors, [(0x1020_0000, GICV3_REDISTRIBUTOR_LEN)]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_lengths_end_the_walk() {
    let mut madt = x86_madt();
    madt[44 + 1] = 0; // first entry length 0
    let mut t = InterruptTables::default();
    t.read_madt(&madt);
    assert!(t.apic_ids.is_empty() && t.io_apics.is_empty());
    let mut madt = x86_madt();
    let last = madt.len() - 9;
    madt[last] = 200; // last entry runs past the end
    let mut t = InterruptTables::default();
    t.read_madt(&madt);
    assert_eq!(t.overrides.len(), 2);
    let mut t = InterruptTables::default();
    t.read_gtdt(&gtdt(27, 0)[..60]);
    assert_eq!(t.virtual_timer, None);
}

#[test]
fn fuzz_madt_and_gtdt() {
    let corpus = [x86_madt(), arm_madt(true), arm_madt(false), gtdt(27, 3)];
    let corpus: Vec<&[u8]> = corpus.iter().map(Vec::as_slice).collect();
    stratus_fuzz::fuzz("madt", &corpus, |bytes| {
        let mut t = InterruptTables::default();
        t.read_madt(bytes);
        t.read_gtdt(bytes);
        let _ = t.hardware();
        assert!(t.io_apics.len() <= bytes.len() / 12);
    });
}
