//! ACPI discovery against table sets built in host memory, reached through
//! a direct map with offset 0.

use super::*;
use crate::console::{SpcrError, UartKind, UartRegisters};
use stratus_arch::PsciConduit;
extern crate std;
use std::vec::Vec;

/// Makes `bytes` sum to zero by adjusting the byte at `at`.
fn fix_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    let sum = bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    bytes[at] = 0u8.wrapping_sub(sum);
}

/// A system description table with a valid header and checksum.
fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(signature);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum
    t.extend_from_slice(b"STRTUS");
    t.extend_from_slice(b"FIXTURE ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"TEST");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    fix_checksum(&mut t, 9);
    t
}

/// SPCR revision 2 (80 bytes, as QEMU and AWS build it).
fn spcr(
    interface_type: u8,
    space: u8,
    bit_width: u8,
    access_size: u8,
    address: u64,
    baud_code: u8,
) -> Vec<u8> {
    let mut body = std::vec![0u8; 80 - 36];
    body[0] = interface_type;
    body[4] = space;
    body[5] = bit_width;
    body[7] = access_size;
    body[8..16].copy_from_slice(&address.to_le_bytes());
    body[58 - 36] = baud_code;
    table(b"SPCR", 2, &body)
}

/// FADT revision 6 (276 bytes) with ARM boot flags and a PM timer port.
fn fadt(arm_boot_flags: u16, pm_timer_port: u32) -> Vec<u8> {
    let mut body = std::vec![0u8; 276 - 36];
    body[76 - 36..80 - 36].copy_from_slice(&pm_timer_port.to_le_bytes());
    body[91 - 36] = if pm_timer_port != 0 { 4 } else { 0 };
    body[129 - 36..131 - 36].copy_from_slice(&arm_boot_flags.to_le_bytes());
    body[131 - 36] = 6; // minor revision
    table(b"FACP", 6, &body)
}

/// Lays out the tables plus XSDT and RSDP in one leaked buffer and returns
/// the RSDP's address.
fn install(tables: &[Vec<u8>]) -> u64 {
    let mut placed: Vec<Box<[u8]>> = tables
        .iter()
        .map(|t| t.clone().into_boxed_slice())
        .collect();
    let mut xsdt_body = Vec::new();
    for t in &placed {
        xsdt_body.extend_from_slice(&(t.as_ptr() as u64).to_le_bytes());
    }
    let xsdt = table(b"XSDT", 1, &xsdt_body).into_boxed_slice();
    let mut rsdp = std::vec![0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(b"STRTUS");
    rsdp[15] = 2;
    rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&(xsdt.as_ptr() as u64).to_le_bytes());
    fix_checksum(&mut rsdp[..20], 8);
    fix_checksum(&mut rsdp, 32);
    let rsdp = rsdp.into_boxed_slice();
    let address = rsdp.as_ptr() as u64;
    placed.push(xsdt);
    placed.push(rsdp);
    // The tables must outlive the test's use of their addresses.
    std::mem::forget(placed);
    address
}

/// All of the host's address space, as one region: host tests reach their
/// leaked tables through a direct map with offset 0.
const HOST_MEMORY: [MemoryRegion; 1] = [MemoryRegion {
    base: 1,
    len: u64::MAX - 1,
    kind: MemoryKind::Reserved,
}];

fn discover_fixture(tables: &[Vec<u8>]) -> Result<AcpiPlatform, AcpiUnavailable> {
    let rsdp = install(tables);
    // SAFETY: `rsdp` points at a complete table set in this process's memory,
    // reachable with a direct-map offset of 0, and leaked so it stays valid.
    unsafe { discover(rsdp, 0, &HOST_MEMORY) }
}

#[test]
fn qemu_virt_pl011_and_psci_over_hvc() {
    let summary = discover_fixture(&[fadt(0b11, 0), spcr(3, 0, 32, 3, 0x0900_0000, 3)]).unwrap();
    assert_eq!(summary.tables.len(), 2);
    assert_eq!(summary.psci(), Some(PsciConduit::Hvc));
    assert_eq!(summary.pm_timer(), None);
    let SpcrOutcome::Console(console) = summary.spcr else {
        panic!("no console: {:?}", summary.spcr)
    };
    assert_eq!(console.kind, UartKind::Pl011);
    assert_eq!(
        console.registers,
        UartRegisters::Mmio {
            phys: 0x0900_0000,
            width: 4
        }
    );
    assert_eq!(console.baud, Some(9600));
}

#[test]
fn graviton_16550_mmio_and_psci_over_smc_on_metal() {
    let summary = discover_fixture(&[spcr(0, 0, 8, 1, 0x090a_0000, 7), fadt(0b01, 0)]).unwrap();
    assert_eq!(summary.psci(), Some(PsciConduit::Smc));
    let SpcrOutcome::Console(console) = summary.spcr else {
        panic!("no console")
    };
    assert_eq!(console.kind, UartKind::Ns16550);
    assert_eq!(
        console.registers,
        UartRegisters::Mmio {
            phys: 0x090a_0000,
            width: 1
        }
    );
    assert_eq!(console.baud, Some(115_200));
}

#[test]
fn x86_without_spcr_has_pm_timer() {
    let summary = discover_fixture(&[fadt(0, 0x608)]).unwrap();
    assert_eq!(summary.spcr, SpcrOutcome::Absent);
    assert_eq!(
        summary.pm_timer(),
        Some(PmTimer::Port {
            port: 0x608,
            bits: 24
        })
    );
    assert_eq!(summary.psci(), None);
    assert_eq!(&summary.oem_id, b"STRTUS");
}

#[test]
fn spcr_with_bad_checksum_is_reported_present_and_invalid() {
    let mut broken = spcr(3, 0, 32, 3, 0x0900_0000, 3);
    broken[60] ^= 0xff;
    let summary = discover_fixture(&[broken, fadt(0b11, 0)]).unwrap();
    assert_eq!(
        summary.spcr,
        SpcrOutcome::Invalid(tables::TableFault::BadChecksum)
    );
    assert_eq!(summary.psci(), Some(PsciConduit::Hvc));
}

#[test]
fn spcr_with_unsupported_uart_is_reported() {
    let summary = discover_fixture(&[spcr(0x10, 0, 32, 3, 0x1000, 0)]).unwrap();
    assert_eq!(
        summary.spcr,
        SpcrOutcome::Unusable(SpcrError::UnsupportedInterface(0x10))
    );
}

#[test]
fn rsdp_with_wrong_signature_is_refused() {
    let mut bogus = std::vec![0u8; 64].into_boxed_slice();
    bogus[..8].copy_from_slice(b"NOT RSDP");
    let address = bogus.as_ptr() as u64;
    // SAFETY: 64 readable bytes at `address`; the crate reads only the RSDP.
    let result = unsafe { discover(address, 0, &HOST_MEMORY) };
    assert_eq!(result, Err(AcpiUnavailable(RootError::RsdpSignature)));
}

#[test]
fn short_spcr_bytes_give_no_fields() {
    assert_eq!(spcr_fields_from_bytes(&[0u8; 40]), None);
    let fields = spcr_fields_from_bytes(&spcr(3, 0, 32, 3, 0x0900_0000, 7)).unwrap();
    assert_eq!(fields.baud, Some(115_200));
}

/// FADT revision 1 (116 bytes, as QEMU's i440FX PC builds it) with a PM1a
/// control block and no DSDT.
fn fadt_rev1(pm1a_control: u32) -> Vec<u8> {
    let mut body = std::vec![0u8; 116 - 36];
    body[64 - 36..68 - 36].copy_from_slice(&pm1a_control.to_le_bytes());
    body[89 - 36] = 2; // PM1_CNT_LEN
    table(b"FACP", 1, &body)
}

#[test]
fn fadt_revision_1_fields_past_its_end_are_not_read() {
    // Bytes after the 116-byte table that would read as "PSCI over HVC" and
    // a reset register if the ARM boot flags were taken from beyond its end.
    let mut fadt = fadt_rev1(0xb004);
    fadt.extend_from_slice(&[0xff; 64]);
    let summary = discover_fixture(&[fadt]).unwrap();
    assert_eq!(summary.psci(), None);
    assert_eq!(summary.reset_port(), None);
}

/// FADT revision 6 with a PM1a control block and the DSDT at `dsdt` (X_DSDT).
fn fadt_with_dsdt(pm1a_control: u32, dsdt: &[u8]) -> Vec<u8> {
    let mut t = fadt(0, 0);
    t[64..68].copy_from_slice(&pm1a_control.to_le_bytes());
    t[89] = 2; // PM1_CNT_LEN
    t[140..148].copy_from_slice(&(dsdt.as_ptr() as u64).to_le_bytes());
    fix_checksum(&mut t, 9);
    t
}

#[test]
fn s5_power_off_from_fadt_and_dsdt() {
    // Name (\_S5, Package (0x04) { 0x05, Zero, Zero, Zero }) in the DSDT.
    let aml = [
        0x08, 0x5c, b'_', b'S', b'5', b'_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00,
    ];
    let dsdt = Box::leak(table(b"DSDT", 1, &aml).into_boxed_slice());
    let summary = discover_fixture(&[fadt_with_dsdt(0x604, dsdt)]).unwrap();
    let off = summary.soft_off().expect("S5 found");
    assert_eq!(off.pm1a_control, 0x604);
    assert_eq!(off.pm1b_control, None);
    assert_eq!(off.pm1a_value, (5 << 10) | (1 << 13));
    assert_eq!(off.acpi_enable, None);
}

#[test]
fn no_s5_power_off_without_s5_object() {
    let dsdt = Box::leak(table(b"DSDT", 1, &[0x10, 0x05, 0x5c, 0x00]).into_boxed_slice());
    let summary = discover_fixture(&[fadt_with_dsdt(0x604, dsdt)]).unwrap();
    assert_eq!(
        summary.soft_off,
        Some(Err(crate::acpi::soft_off::SoftOffError::S5(
            crate::acpi::sleep::S5Error::NotFound
        )))
    );
}

#[test]
fn s5_power_off_survives_an_unreadable_listed_table() {
    let aml = [
        0x08, 0x5c, b'_', b'S', b'5', b'_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00,
    ];
    let dsdt = Box::leak(table(b"DSDT", 1, &aml).into_boxed_slice());
    let rsdp = install(&[fadt_with_dsdt(0x604, dsdt)]);
    // Memory as the kernel may read it: everything from 0x2000 on; an
    // XSDT entry will point at 0x1000.
    let memory = [MemoryRegion {
        base: 0x2000,
        len: u64::MAX - 0x2000,
        kind: MemoryKind::Reserved,
    }];
    // SAFETY: the fixture's tables are leaked host memory at offset 0.
    let with_fadt_only = unsafe { discover(rsdp, 0, &memory) }.unwrap();
    assert!(with_fadt_only.soft_off().is_some());
    let rsdp = install(&[fadt_with_dsdt(0x604, dsdt), table(b"SSDT", 1, &[])]);
    let xsdt = read_tables(&HostMemory, rsdp).unwrap().root.1 as *mut u8;
    // SAFETY: the XSDT was leaked by `install`: 36 bytes of header and two
    // pointers; the second is pointed at page 0x1000 and the checksum fixed.
    let xsdt = unsafe { core::slice::from_raw_parts_mut(xsdt, 52) };
    xsdt[44..52].copy_from_slice(&0x1000u64.to_le_bytes());
    fix_checksum(xsdt, 9);
    // SAFETY: as above; page 0x1000 is outside `memory` and never read.
    let platform = unsafe { discover(rsdp, 0, &memory) }.unwrap();
    // The unreadable table is named and never read; S5 still comes from the
    // DSDT, which the table walk read within the memory map.
    assert_eq!(platform.tables[1].fault, Some(TableFault::Unreadable));
    assert!(platform.fadt.is_some());
    assert_eq!(platform.soft_off(), with_fadt_only.soft_off());
}

/// The host's memory, for reading back what `install` laid out.
struct HostMemory;

impl PhysicalMemory for HostMemory {
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
        // SAFETY: tests only read addresses of leaked fixture buffers.
        Some(unsafe { core::slice::from_raw_parts(phys as *const u8, len) })
    }
}
