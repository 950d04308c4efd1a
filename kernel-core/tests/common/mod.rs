//! Shared by the ACPI host tests and fuzz targets: table sets dumped from
//! QEMU (`src/acpi/testdata/<machine>/SIG@PHYS.dat`, captured with
//! `acpi=dump` and `ci/acpi-dump.py`) laid out at their original physical
//! addresses in a fake physical memory, and helpers to edit them.
#![allow(dead_code)]

use kernel_core::acpi::{AcpiPlatform, PhysicalMemory, describe, read_tables};
use std::path::PathBuf;

/// Physical memory made of blocks; anything else is unreadable.
#[derive(Clone, Debug, Default)]
pub struct FakeMemory {
    /// `(physical base, bytes)`.
    pub blocks: Vec<(u64, Vec<u8>)>,
}

impl PhysicalMemory for FakeMemory {
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
        self.blocks.iter().find_map(|(base, bytes)| {
            let offset = usize::try_from(phys.checked_sub(*base)?).ok()?;
            bytes.get(offset..offset.checked_add(len)?)
        })
    }
}

/// A machine's tables.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// The tables, one block each.
    pub memory: FakeMemory,
    /// The RSDP's address.
    pub rsdp: u64,
}

/// The machines dumped from QEMU.
pub const MACHINES: [&str; 5] = [
    "x86_64-q35-4cpu",
    "x86_64-q35-1cpu",
    "x86_64-pc-1cpu",
    "aarch64-virt-4cpu",
    "aarch64-virt-1cpu",
];

/// Loads `testdata/<machine>`.
pub fn fixture(machine: &str) -> Fixture {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/acpi/testdata")
        .join(machine);
    let mut memory = FakeMemory::default();
    let mut rsdp = None;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let (signature, phys) = name.split_once('@').expect("SIG@PHYS.dat");
        let phys = u64::from_str_radix(phys, 16).unwrap();
        if signature == "RSDP" {
            rsdp = Some(phys);
        }
        memory.blocks.push((phys, std::fs::read(&path).unwrap()));
    }
    memory.blocks.sort_by_key(|b| b.0);
    Fixture {
        memory,
        rsdp: rsdp.expect("an RSDP file"),
    }
}

impl Fixture {
    /// Discovery over these tables.
    pub fn describe(&self) -> AcpiPlatform {
        let set = read_tables(&self.memory, self.rsdp).expect("root table");
        describe(&set, &self.memory)
    }

    /// The bytes of the (first) table with `signature`.
    pub fn table_mut(&mut self, signature: &[u8; 4]) -> &mut Vec<u8> {
        &mut self
            .memory
            .blocks
            .iter_mut()
            .find(|(_, b)| b.len() >= 36 && &b[..4] == signature)
            .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(signature)))
            .1
    }

    /// Replaces the table with `signature` by `bytes` (checksum fixed).
    pub fn replace(&mut self, signature: &[u8; 4], mut bytes: Vec<u8>) {
        fix_checksum(&mut bytes);
        *self.table_mut(signature) = bytes;
    }

    /// Removes the table with `signature` from the root table.
    pub fn unlist(&mut self, signature: &[u8; 4]) {
        let phys = self
            .memory
            .blocks
            .iter()
            .find(|(_, b)| b.len() >= 36 && &b[..4] == signature)
            .map(|b| b.0)
            .unwrap();
        let xsdt = self.table_mut(b"XSDT");
        let mut kept: Vec<u8> = xsdt[36..]
            .chunks(8)
            .filter(|p| u64::from_le_bytes((*p).try_into().unwrap()) != phys)
            .flatten()
            .copied()
            .collect();
        xsdt.truncate(36);
        xsdt.append(&mut kept);
        let len = xsdt.len() as u32;
        xsdt[4..8].copy_from_slice(&len.to_le_bytes());
        fix_checksum(xsdt);
    }
}

/// Makes a table's bytes sum to zero (checksum at offset 9).
pub fn fix_checksum(table: &mut [u8]) {
    table[9] = 0;
    let sum = table.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    table[9] = 0u8.wrapping_sub(sum);
}

/// Sets a table's length field to its byte count and fixes its checksum.
pub fn seal(table: &mut [u8]) {
    let len = table.len() as u32;
    table[4..8].copy_from_slice(&len.to_le_bytes());
    fix_checksum(table);
}

/// The MADT's entries as `(type, bytes)`.
pub fn madt_entries(madt: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 44;
    while at + 2 <= madt.len() {
        let len = madt[at + 1] as usize;
        out.push((madt[at], madt[at..at + len].to_vec()));
        at += len;
    }
    out
}

/// A MADT with the header and fixed fields of `madt` and these entries.
pub fn rebuild_madt(madt: &[u8], entries: &[Vec<u8>]) -> Vec<u8> {
    let mut t = madt[..44].to_vec();
    for e in entries {
        t.extend_from_slice(e);
    }
    seal(&mut t);
    t
}

/// Every table of `fixture` except the RSDP and root, as parser corpora.
pub fn tables_of(signature: &[u8; 4]) -> Vec<Vec<u8>> {
    MACHINES
        .iter()
        .flat_map(|m| fixture(m).memory.blocks)
        .map(|b| b.1)
        .filter(|b| b.len() >= 4 && &b[..4] == signature)
        .collect()
}

/// A fixture packed into one flat image for whole-discovery fuzzing: the
/// RSDP at physical [`FLAT_BASE`], then the root table, then every table,
/// with the pointers rewritten.
pub const FLAT_BASE: u64 = 0x1000;

/// Packs `machine` (see [`FLAT_BASE`]).
pub fn flat_image(machine: &str) -> Vec<u8> {
    let f = fixture(machine);
    let find = |phys: u64| {
        f.memory
            .blocks
            .iter()
            .find(|b| b.0 == phys)
            .unwrap()
            .1
            .clone()
    };
    let rsdp = find(f.rsdp);
    let xsdt_phys = u64::from_le_bytes(rsdp[24..32].try_into().unwrap());
    let xsdt = find(xsdt_phys);
    let listed: Vec<u64> = xsdt[36..]
        .chunks(8)
        .map(|p| u64::from_le_bytes(p.try_into().unwrap()))
        .collect();
    let mut image = rsdp.clone();
    let xsdt_at = image.len() as u64;
    image.extend_from_slice(&xsdt);
    for (i, phys) in listed.iter().enumerate() {
        let mut table = find(*phys);
        let at = FLAT_BASE + image.len() as u64;
        let slot = xsdt_at as usize + 36 + 8 * i;
        image[slot..slot + 8].copy_from_slice(&at.to_le_bytes());
        if &table[..4] == b"FACP" {
            // The DSDT goes right after the FADT.
            let x_dsdt = table
                .get(140..148)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
            let dsdt_phys = if x_dsdt == 0 {
                u64::from(u32::from_le_bytes(table[40..44].try_into().unwrap()))
            } else {
                x_dsdt
            };
            let dsdt = find(dsdt_phys);
            let dsdt_at = at + table.len() as u64;
            table[40..44].copy_from_slice(&(dsdt_at as u32).to_le_bytes());
            if table.len() >= 148 {
                table[140..148].copy_from_slice(&dsdt_at.to_le_bytes());
            }
            fix_checksum(&mut table);
            image.extend_from_slice(&table);
            image.extend_from_slice(&dsdt);
        } else {
            image.extend_from_slice(&table);
        }
    }
    image[24..32].copy_from_slice(&(FLAT_BASE + xsdt_at).to_le_bytes());
    let xsdt_range = xsdt_at as usize..xsdt_at as usize + xsdt.len();
    fix_checksum(&mut image[xsdt_range]);
    image[8] = 0;
    let sum = image[..20].iter().fold(0u8, |s, &b| s.wrapping_add(b));
    image[8] = 0u8.wrapping_sub(sum);
    image[32] = 0;
    let sum = image[..36].iter().fold(0u8, |s, &b| s.wrapping_add(b));
    image[32] = 0u8.wrapping_sub(sum);
    image
}
