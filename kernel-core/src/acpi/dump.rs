//! `acpi=dump` on the command line: every table as hex on the console, so
//! the tables of a real machine (a cloud VM) can be captured from its serial
//! log and replayed in host tests (`ci/acpi-dump.py` turns the log back into
//! files).

use super::tables::{PhysicalMemory, Signature, TableSet, read_table};
use core::fmt::Write as _;

/// Bytes per dump line.
const PER_LINE: usize = 32;

/// Dumps the RSDP, the root table, every valid listed table and the DSDT.
pub fn dump<M: PhysicalMemory + ?Sized>(memory: &M, rsdp: u64, set: &TableSet<'_>) {
    let rsdp_len = if set.revision >= 2 { 36 } else { 20 };
    if let Some(bytes) = memory.read(rsdp, rsdp_len) {
        dump_bytes(&"RSDP", rsdp, bytes);
    }
    if let Ok((sig, bytes)) = read_table(memory, set.root.1) {
        dump_table(sig, set.root.1, bytes);
    }
    for table in &set.tables {
        match table.bytes {
            Ok(bytes) => dump_table(table.signature, table.phys, bytes),
            Err(fault) => log::warn!(
                target: "acpi",
                "dump: {} @{:#x} not dumped: {fault}",
                table.signature,
                table.phys
            ),
        }
        if &table.signature.0 == b"FACP"
            && let Ok(fadt) = table.bytes
            && let Some(dsdt) = super::fadt::parse(fadt).ok().and_then(|f| f.dsdt)
            && let Ok((sig, bytes)) = read_table(memory, dsdt)
        {
            dump_table(sig, dsdt, bytes);
        }
    }
    log::info!(target: "acpi", "dump: end");
}

fn dump_table(signature: Signature, phys: u64, bytes: &[u8]) {
    dump_bytes(&signature, phys, bytes);
}

fn dump_bytes(name: &dyn core::fmt::Display, phys: u64, bytes: &[u8]) {
    log::info!(target: "acpi", "dump {name} @{phys:#x} len {}", bytes.len());
    for (i, chunk) in bytes.chunks(PER_LINE).enumerate() {
        let mut hex = crate::fixed_string::FixedString::<{ PER_LINE * 2 }>::new();
        for b in chunk {
            let _ = write!(hex, "{b:02x}");
        }
        log::info!(target: "acpi", "dump {name} +{:05x} {}", i * PER_LINE, hex.as_str());
    }
}
