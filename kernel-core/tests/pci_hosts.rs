//! PCI host bridges and their I/O windows from QEMU's real DSDTs (dumped
//! with `acpi=dump`), and from broken copies of them.

mod common;

use common::{Fixture, fixture};
use kernel_core::acpi::aml_scan::{NotStatic, StopReason};
use kernel_core::acpi::pci_host::{CrsError, IoWindow, PciHosts};
use kernel_core::acpi::summary;

fn hosts(f: &Fixture) -> PciHosts {
    f.describe().pci_hosts.expect("a DSDT")
}

/// Offset of `needle` in the DSDT (the first one).
fn dsdt_offset(f: &mut Fixture, needle: &[u8]) -> usize {
    let dsdt = f.table_mut(b"DSDT");
    dsdt.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in the DSDT")
}

/// Edits the DSDT with `edit` and fixes its checksum.
fn edit_dsdt(f: &mut Fixture, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut dsdt = f.table_mut(b"DSDT").clone();
    edit(&mut dsdt);
    f.replace(b"DSDT", dsdt);
}

/// QEMU virt's `DWordIO` in PCI0's `_CRS`: type 1, producer, the whole
/// 64 KiB port range, translated to 0x3eff0000.
const VIRT_DWORD_IO: &[u8] = &[
    0x87, 0x17, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0x3e,
    0, 0, 1, 0,
];

#[test]
fn qemu_virt_host_bridge_and_its_io_window() {
    for machine in ["aarch64-virt-1cpu", "aarch64-virt-4cpu"] {
        let h = hosts(&fixture(machine));
        assert!(h.stopped.is_empty(), "{machine}: {:?}", h.stopped);
        assert_eq!(h.bridges.len(), 1, "{machine}");
        let bridge = &h.bridges[0];
        assert_eq!(bridge.path.to_string(), "\\_SB.PCI0");
        assert_eq!((bridge.segment, bridge.buses), (0, (0, 0xff)));
        assert_eq!(
            bridge.io_windows,
            [IoWindow {
                pci_start: 0,
                pci_end: 0xffff,
                translation: 0x3eff_0000,
                type_translation: false,
            }]
        );
        assert_eq!(bridge.crs_error, None);
        // The BAR AAVMF gives QEMU's pci-serial: port 0x1000, 8 ports.
        let window = h.bridge_for(0, 1).unwrap().io_windows[0];
        assert_eq!(window.cpu_address(0x1000, 8), Some(0x3eff_1000));
        assert_eq!(window.cpu_address(0x1_0000, 8), None);
        assert!(summary::lines(&fixture(machine).describe()).contains(
            &"pci-hosts=1 [\\_SB.PCI0 seg 0 bus 00-ff io 0x0-0xffff+0x3eff0000]".to_owned()
        ));
    }
}

/// q35 and the i440FX PC: the DSDT's `Device(PCI0)` has `_HID` as an EISA
/// id, and its `_CRS` sits in a separate `Scope(\_SB.PCI0)`; the two port
/// ranges around the configuration ports are untranslated.
#[test]
fn x86_host_bridges_with_their_crs_in_another_scope() {
    for machine in ["x86_64-q35-1cpu", "x86_64-q35-4cpu", "x86_64-pc-1cpu"] {
        let h = hosts(&fixture(machine));
        assert!(h.stopped.is_empty(), "{machine}: {:?}", h.stopped);
        assert_eq!(h.bridges.len(), 1, "{machine}");
        let windows: Vec<_> = h.bridges[0]
            .io_windows
            .iter()
            .map(|w| (w.pci_start, w.pci_end, w.translation))
            .collect();
        assert_eq!(windows, [(0, 0xcf7, 0), (0xd00, 0xffff, 0)], "{machine}");
        assert_eq!(h.bridges[0].buses, (0, 0xff));
    }
}

#[test]
fn a_bridge_without_a_pci_id_is_not_one() {
    let mut f = fixture("aarch64-virt-1cpu");
    edit_dsdt(&mut f, |d| {
        for id in [&b"PNP0A08"[..], b"PNP0A03"] {
            let at = d.windows(7).position(|w| w == id).unwrap();
            d[at] = b'X';
        }
    });
    let h = hosts(&f);
    assert!(h.bridges.is_empty());
    assert!(summary::lines(&f.describe()).contains(&"pci-hosts=0".to_owned()));
}

#[test]
fn broken_io_descriptors_are_named() {
    // Its length field says 4 bytes: too short for a DWord descriptor, and
    // the rest of the template is then read from the wrong place.
    let mut f = fixture("aarch64-virt-1cpu");
    let at = dsdt_offset(&mut f, VIRT_DWORD_IO);
    edit_dsdt(&mut f, |d| d[at + 1] = 4);
    let h = hosts(&f);
    assert!(matches!(
        h.bridges[0].crs_error,
        Some(CrsError::ShortDescriptor { length: 4, .. })
    ));
    assert!(h.bridges[0].io_windows.is_empty());
    let line = summary::lines(&f.describe())
        .into_iter()
        .find(|l| l.starts_with("pci-hosts=1"))
        .unwrap();
    assert!(
        line.contains("(_CRS: address space descriptor at byte "),
        "{line}"
    );
    // Sparse translation.
    let mut f = fixture("aarch64-virt-1cpu");
    edit_dsdt(&mut f, |d| d[at + 5] = 0x30);
    assert!(matches!(
        hosts(&f).bridges[0].crs_error,
        Some(CrsError::SparseTranslation { .. })
    ));
    // A length that disagrees with min and max.
    let mut f = fixture("aarch64-virt-1cpu");
    edit_dsdt(&mut f, |d| d[at + 24] = 2);
    assert!(matches!(
        hosts(&f).bridges[0].crs_error,
        Some(CrsError::BadRange { .. })
    ));
}

/// `Name(_CRS, ...)` turned into a method whose body is not a constant
/// buffer: reported as needing an interpreter, not guessed at.
#[test]
fn a_computed_crs_is_refused() {
    let mut f = fixture("aarch64-virt-1cpu");
    let pci0 = dsdt_offset(&mut f, b"PCI0");
    edit_dsdt(&mut f, |d| {
        let crs = pci0 + d[pci0..].windows(5).position(|w| w == b"\x08_CRS").unwrap();
        // Name(_CRS, Buffer(0x74) {...}) is 08 _CRS 11 48 07 ...: make it
        // Method(_CRS) { Store(One, Buffer...) }: 14 PkgLength(2) _CRS
        // flags 70 01 ..., the PkgLength spanning the old Name.
        let old_len = 5 + 1 + 0x78;
        let body = old_len - 1;
        d[crs] = 0x14;
        d[crs + 1] = 0x40 | (body & 0x0f) as u8;
        d[crs + 2] = (body >> 4) as u8;
        d[crs + 3..crs + 7].copy_from_slice(b"_CRS");
        d[crs + 7] = 0;
        d[crs + 8] = 0x70;
    });
    let h = hosts(&f);
    assert!(h.stopped.is_empty(), "{:?}", h.stopped);
    assert_eq!(
        h.bridges[0].crs_error,
        Some(CrsError::NotStatic(NotStatic::ComputedByMethod))
    );
}

/// An opcode the reader does not step over before PCI0, inside `\_SB`:
/// the rest of `\_SB` is not read, the bridge is not found, and the
/// summary says where the walk stopped.
#[test]
fn an_unknown_opcode_before_the_bridge_is_reported() {
    let mut f = fixture("aarch64-virt-1cpu");
    // Device(C000) is the first thing in \_SB.
    let at = dsdt_offset(&mut f, b"\x5b\x82\x1aC000");
    edit_dsdt(&mut f, |d| d[at] = 0x70);
    let h = hosts(&f);
    assert!(h.bridges.is_empty());
    assert_eq!(h.stopped_count, 1);
    assert_eq!(h.stopped[0].reason, StopReason::UnknownOpcode(0x70));
    assert_eq!(h.stopped[0].offset, at - 36);
    let line = summary::lines(&f.describe())
        .into_iter()
        .find(|l| l.starts_with("pci-hosts"))
        .unwrap();
    assert_eq!(
        line,
        format!(
            "pci-hosts=0 (AML walk stopped early in 1 scope(s), first at table 0 offset {:#x}: \
             opcode 0x70 not stepped over)",
            at - 36
        )
    );
}

/// Every prefix of the real DSDTs: no panic, and the bridge is found with
/// its window exactly when the table still holds all of PCI0's `_CRS`.
#[test]
fn truncated_dsdts_end_cleanly() {
    for machine in ["aarch64-virt-1cpu", "x86_64-q35-1cpu"] {
        let full = fixture(machine).table_mut(b"DSDT").clone();
        for len in (36..full.len()).step_by(7) {
            let mut f = fixture(machine);
            let mut short = full[..len].to_vec();
            common::seal(&mut short);
            f.replace(b"DSDT", short);
            let p = f.describe();
            let _ = summary::lines(&p);
            if let Some(h) = p.pci_hosts {
                assert!(h.bridges.len() <= 1);
            }
        }
    }
}
