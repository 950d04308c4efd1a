//! Finding the ACPI tables: the RSDP, the XSDT (or RSDT) and every table it
//! lists, read through a [`PhysicalMemory`] that refuses addresses outside
//! the memory map.
//!
//! Stratus walks the root table itself rather than through the `acpi`
//! crate's `find_table`: that one reports a table that fails validation as
//! missing (so a broken SPCR looked like no SPCR at all), its header
//! iterator skips such tables, and it maps whatever length a header claims.
//! Here every listed table is kept with what is wrong with it, lengths are
//! bounded, and each address is checked before it is read.

use super::bytes::{array_at, sums_to_zero, u8_at, u32_at, u64_at};
use alloc::vec::Vec;
use core::fmt;

/// Size of a system description table header (ACPI 6.5, 5.2.6).
pub const HEADER_LEN: usize = 36;
/// The largest table read. QEMU's DSDT is about 8 KiB, large servers' a few
/// hundred KiB; a longer length is taken for a lie.
pub const MAX_TABLE_BYTES: usize = 4 << 20;
/// The longest RSDP accepted.
const MAX_RSDP_BYTES: usize = 4096;
/// The most tables taken from the root table.
pub const MAX_TABLES: usize = 256;

/// Physical memory as discovery may read it.
pub trait PhysicalMemory {
    /// The `len` bytes at physical `phys`, or `None` when any of them lies
    /// outside the memory the kernel may read.
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]>;
}

/// A four-character table signature (`APIC`, `MCFG`...).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 4]);

impl Signature {
    /// The name as text, with bytes outside printable ASCII shown as `?`.
    pub fn chars(&self) -> impl Iterator<Item = char> + '_ {
        self.0.iter().map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b)
            } else {
                '?'
            }
        })
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chars().try_for_each(|c| fmt::Write::write_char(f, c))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// What is wrong with a listed table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFault {
    /// Its header lies outside readable memory.
    Unreadable,
    /// Its length is shorter than a header or beyond [`MAX_TABLE_BYTES`].
    BadLength(u32),
    /// Its body runs outside readable memory.
    Truncated(u32),
    /// Its bytes do not sum to zero.
    BadChecksum,
}

impl fmt::Display for TableFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable => f.write_str("header outside memory"),
            Self::BadLength(n) => write!(f, "impossible length {n}"),
            Self::Truncated(n) => write!(f, "truncated (length {n} runs outside memory)"),
            Self::BadChecksum => f.write_str("bad checksum"),
        }
    }
}

/// One table the root table lists.
#[derive(Clone, Copy, Debug)]
pub struct ListedTable<'m> {
    /// Its signature (all zero when its header could not be read).
    pub signature: Signature,
    /// Its physical address.
    pub phys: u64,
    /// The table's bytes (bounded by its length), or what is wrong with it.
    pub bytes: Result<&'m [u8], TableFault>,
}

/// The tables reachable from an RSDP.
#[derive(Clone, Debug)]
pub struct TableSet<'m> {
    /// The RSDP's OEM id.
    pub oem_id: [u8; 6],
    /// The RSDP revision (0: ACPI 1.0 with an RSDT; 2: XSDT).
    pub revision: u8,
    /// The root table's signature (`XSDT` or `RSDT`) and address.
    pub root: (Signature, u64),
    /// Every table the root table lists, in its order.
    pub tables: Vec<ListedTable<'m>>,
}

impl<'m> TableSet<'m> {
    /// The first valid table with `signature`, or the fault of the first
    /// listed one when none is valid; `None` when none is listed.
    pub fn find(&self, signature: &[u8; 4]) -> Option<Result<&'m [u8], TableFault>> {
        let mut listed = self.tables.iter().filter(|t| &t.signature.0 == signature);
        let first = listed.clone().next()?;
        Some(
            listed
                .find_map(|t| t.bytes.ok())
                .ok_or_else(|| first.bytes.err().unwrap_or(TableFault::Unreadable)),
        )
    }
}

/// Why there are no tables at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootError {
    /// The RSDP lies outside readable memory.
    RsdpUnreadable,
    /// The RSDP does not start with `RSD PTR `.
    RsdpSignature,
    /// The RSDP checksum (or extended checksum) is wrong.
    RsdpChecksum,
    /// The XSDT/RSDT is unreadable or invalid.
    Root(Signature, TableFault),
    /// The root table's signature is not the expected one.
    RootSignature(Signature),
}

impl fmt::Display for RootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RsdpUnreadable => f.write_str("RSDP outside memory"),
            Self::RsdpSignature => f.write_str("RSDP signature wrong"),
            Self::RsdpChecksum => f.write_str("RSDP checksum wrong"),
            Self::Root(sig, fault) => write!(f, "{sig}: {fault}"),
            Self::RootSignature(sig) => write!(f, "root table has signature {sig}"),
        }
    }
}

/// Reads the RSDP at `rsdp`, its root table and every table listed there.
pub fn read_tables<M: PhysicalMemory + ?Sized>(
    memory: &M,
    rsdp: u64,
) -> Result<TableSet<'_>, RootError> {
    let v1 = memory.read(rsdp, 20).ok_or(RootError::RsdpUnreadable)?;
    if &v1[..8] != b"RSD PTR " {
        return Err(RootError::RsdpSignature);
    }
    if !sums_to_zero(v1) {
        return Err(RootError::RsdpChecksum);
    }
    let revision = v1[15];
    let oem_id = array_at(v1, 9).unwrap_or([b' '; 6]);
    let xsdt = if revision >= 2 {
        // The extended checksum covers the RSDP's own length (36 bytes in
        // every ACPI version so far).
        let length = memory
            .read(rsdp, 24)
            .and_then(|b| u32_at(b, 20))
            .ok_or(RootError::RsdpUnreadable)?;
        let length = usize::try_from(length)
            .ok()
            .filter(|l| (36..=MAX_RSDP_BYTES).contains(l))
            .ok_or(RootError::RsdpChecksum)?;
        let v2 = memory.read(rsdp, length).ok_or(RootError::RsdpUnreadable)?;
        if !sums_to_zero(v2) {
            return Err(RootError::RsdpChecksum);
        }
        u64_at(v2, 24).filter(|&a| a != 0)
    } else {
        None
    };
    let (expected, root_phys, pointer_len) = match xsdt {
        Some(x) => (Signature(*b"XSDT"), x, 8),
        None => (
            Signature(*b"RSDT"),
            u64::from(u32_at(v1, 16).unwrap_or(0)),
            4,
        ),
    };
    let (signature, root) =
        read_table(memory, root_phys).map_err(|(sig, fault)| RootError::Root(sig, fault))?;
    if signature != expected {
        return Err(RootError::RootSignature(signature));
    }
    let tables = root[HEADER_LEN..]
        .chunks_exact(pointer_len)
        .take(MAX_TABLES)
        .map(|p| {
            let mut raw = [0u8; 8];
            raw[..pointer_len].copy_from_slice(p);
            let phys = u64::from_le_bytes(raw);
            match read_table(memory, phys) {
                Ok((signature, bytes)) => ListedTable {
                    signature,
                    phys,
                    bytes: Ok(bytes),
                },
                Err((signature, fault)) => ListedTable {
                    signature,
                    phys,
                    bytes: Err(fault),
                },
            }
        })
        .collect();
    Ok(TableSet {
        oem_id,
        revision,
        root: (signature, root_phys),
        tables,
    })
}

/// Reads and validates the table at `phys` (header, length, checksum). The
/// error carries the signature when the header was readable.
pub fn read_table<M: PhysicalMemory + ?Sized>(
    memory: &M,
    phys: u64,
) -> Result<(Signature, &[u8]), (Signature, TableFault)> {
    let unknown = Signature([0; 4]);
    let header = memory
        .read(phys, HEADER_LEN)
        .ok_or((unknown, TableFault::Unreadable))?;
    let signature = Signature(array_at(header, 0).unwrap_or([0; 4]));
    let length = u32_at(header, 4).unwrap_or(0);
    let len = length as usize;
    if !(HEADER_LEN..=MAX_TABLE_BYTES).contains(&len) {
        return Err((signature, TableFault::BadLength(length)));
    }
    let bytes = memory
        .read(phys, len)
        .ok_or((signature, TableFault::Truncated(length)))?;
    if !sums_to_zero(bytes) {
        return Err((signature, TableFault::BadChecksum));
    }
    Ok((signature, bytes))
}

/// A table's revision byte.
pub fn revision(table: &[u8]) -> u8 {
    u8_at(table, 8).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::bytes::test_table;

    /// One block of memory at `base`.
    struct Block(u64, Vec<u8>);

    impl PhysicalMemory for Block {
        fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
            let at = usize::try_from(phys.checked_sub(self.0)?).ok()?;
            self.1.get(at..at.checked_add(len)?)
        }
    }

    fn checksum(bytes: &mut [u8], at: usize) {
        bytes[at] = 0;
        let sum = bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        bytes[at] = 0u8.wrapping_sub(sum);
    }

    /// ACPI 1.0: RSDP revision 0 and an RSDT of 32-bit pointers; the second
    /// table claims 64 MiB.
    #[test]
    fn rsdt_with_a_lying_length() {
        let base = 0x1000u64;
        let mut good = test_table(b"HPET", 1, &[0; 20]);
        checksum(&mut good, 9);
        let mut liar = test_table(b"APIC", 1, &[0; 8]);
        liar[4..8].copy_from_slice(&(64u32 << 20).to_le_bytes());
        let good_at = base + 20 + 44;
        let liar_at = good_at + good.len() as u64;
        let mut rsdt = test_table(b"RSDT", 1, &[]);
        rsdt.extend_from_slice(&(good_at as u32).to_le_bytes());
        rsdt.extend_from_slice(&(liar_at as u32).to_le_bytes());
        rsdt[4] = 44;
        checksum(&mut rsdt, 9);
        let mut rsdp = alloc::vec![0u8; 20];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[16..20].copy_from_slice(&((base + 20) as u32).to_le_bytes());
        checksum(&mut rsdp, 8);
        let memory = Block(base, [rsdp, rsdt, good, liar].concat());
        let set = read_tables(&memory, base).unwrap();
        assert_eq!(set.root.0, Signature(*b"RSDT"));
        assert_eq!(set.tables.len(), 2);
        assert!(set.tables[0].bytes.is_ok());
        assert_eq!(set.tables[1].bytes, Err(TableFault::BadLength(64 << 20)));
        assert_eq!(
            set.find(b"APIC"),
            Some(Err(TableFault::BadLength(64 << 20)))
        );
        assert_eq!(set.find(b"MCFG"), None);
        assert_eq!(
            read_tables(&memory, 0x10).err(),
            Some(RootError::RsdpUnreadable)
        );
    }
}
