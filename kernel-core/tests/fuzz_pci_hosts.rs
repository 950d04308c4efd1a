//! Fuzz targets: the AML namespace walk and the PCI host bridges' resource
//! templates, from QEMU's real DSDTs (aarch64 virt, q35).

mod common;

use common::fixture;
use kernel_core::acpi::aml_scan::{MAX_OBJECTS, Namespace};
use kernel_core::acpi::pci_host;

fn dsdt(machine: &str) -> Vec<u8> {
    fixture(machine).table_mut(b"DSDT").clone()
}

/// Whole DSDTs (header included, as discovery hands them over): the walk
/// ends, records at most its bound, and every window it reports is
/// consistent and its CPU address computable without overflow.
#[test]
fn fuzz_pci_hosts() {
    let virt = dsdt("aarch64-virt-1cpu");
    let q35 = dsdt("x86_64-q35-1cpu");
    stratus_fuzz::fuzz("pci-hosts", &[&virt, &q35], |table| {
        let mut ns = Namespace::new();
        ns.scan(table.get(36..).unwrap_or_default());
        assert!(ns.objects.len() + ns.devices.len() <= MAX_OBJECTS + 1);
        let hosts = pci_host::from_namespace(&ns);
        assert!(hosts.stopped.len() <= hosts.stopped_count);
        for bridge in &hosts.bridges {
            let _ = bridge.to_string();
            assert!(bridge.buses.0 <= bridge.buses.1);
            for w in &bridge.io_windows {
                assert!(w.pci_start <= w.pci_end);
                assert!(w.pci_end.checked_add(w.translation).is_some());
                assert_eq!(
                    w.cpu_address(w.pci_start, 1),
                    Some(w.pci_start + w.translation)
                );
            }
        }
    });
}

/// Resource templates alone, from QEMU virt's PCI0 `_CRS`.
#[test]
fn fuzz_resource_template() {
    let virt = dsdt("aarch64-virt-1cpu");
    let at = virt.windows(5).position(|w| w == b"\x08_CRS").unwrap();
    let pci0 = virt.windows(4).position(|w| w == b"PCI0").unwrap();
    let crs = pci0
        + virt[pci0..]
            .windows(5)
            .position(|w| w == b"\x08_CRS")
            .unwrap();
    // Name(_CRS, Buffer(size) {...}): 08 _CRS 11 PkgLength 0A size bytes,
    // the PkgLength two bytes long for PCI0 and one for the console's.
    let template = virt[crs + 10..crs + 10 + usize::from(virt[crs + 9])].to_vec();
    assert_eq!(template.first(), Some(&0x88), "WordBusNumber first");
    let console_crs = virt[at + 9..at + 9 + usize::from(virt[at + 8])].to_vec();
    stratus_fuzz::fuzz("resource-template", &[&template, &console_crs], |buffer| {
        if let Ok(r) = pci_host::resources(buffer) {
            for w in &r.io_windows {
                assert!(w.pci_start <= w.pci_end);
            }
            if let Some((start, end)) = r.buses {
                assert!(start <= end);
            }
        }
    });
}
