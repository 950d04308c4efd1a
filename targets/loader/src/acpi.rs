//! Finding the I/O APICs in the MADT (x86_64), so the loader can mask their
//! redirection entries before entry as Limine does ("IO APIC IRQs (only those
//! with delivery mode fixed (0b000) or lowest priority (0b001)) are all masked").
//!
//! Table layouts: ACPI 6.5, 5.2.5.3 (RSDP), 5.2.6 (header), 5.2.7/5.2.8
//! (RSDT/XSDT), 5.2.12 (MADT), 5.2.12.3 (I/O APIC structure). Physical memory is
//! read through a callback, so this is tested against byte buffers.

/// Most I/O APICs reported.
pub const MAX_IOAPICS: usize = 16;
/// Most root table entries looked at.
const MAX_TABLES: u32 = 256;

/// Reads physical memory: fills the buffer from the address, `false` if it cannot.
pub trait PhysRead {
    /// Reads `buf.len()` bytes at `phys`.
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool;
}

impl<F: Fn(u64, &mut [u8]) -> bool> PhysRead for F {
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
        self(phys, buf)
    }
}

/// Physical memory holding `bytes` at `base` and nothing elsewhere: tables
/// copied out of firmware, test and fuzz inputs.
#[derive(Clone, Copy, Debug)]
pub struct BytesAt<'a> {
    /// Physical address of `bytes[0]`.
    pub base: u64,
    /// The memory's contents.
    pub bytes: &'a [u8],
}

impl PhysRead for BytesAt<'_> {
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
        let Some(Ok(start)) = phys.checked_sub(self.base).map(usize::try_from) else {
            return false;
        };
        match start
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(start..end))
        {
            Some(b) => {
                buf.copy_from_slice(b);
                true
            }
            None => false,
        }
    }
}

fn u32_at(mem: &impl PhysRead, phys: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    mem.read(phys, &mut b).then(|| u32::from_le_bytes(b))
}

fn u64_at(mem: &impl PhysRead, phys: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    mem.read(phys, &mut b).then(|| u64::from_le_bytes(b))
}

fn signature(mem: &impl PhysRead, phys: u64) -> Option<[u8; 4]> {
    let mut b = [0u8; 4];
    mem.read(phys, &mut b).then_some(b)
}

/// Physical base addresses of the I/O APICs the MADT lists (up to
/// [`MAX_IOAPICS`]); returns how many were written. Malformed or missing tables
/// yield 0: masking is best effort. Every address computed from a firmware
/// pointer is overflow-checked: a pointer near `u64::MAX` ends the walk.
pub fn ioapics(mem: &impl PhysRead, rsdp: u64, out: &mut [u64; MAX_IOAPICS]) -> usize {
    let Some(madt) = find_madt(mem, rsdp) else {
        return 0;
    };
    madt_ioapics(mem, madt, out)
}

/// Physical address of the MADT, through the XSDT (revision 2 and later) or
/// the RSDT.
fn find_madt(mem: &impl PhysRead, rsdp: u64) -> Option<u64> {
    let mut sig = [0u8; 8];
    if !mem.read(rsdp, &mut sig) || &sig != b"RSD PTR " {
        return None;
    }
    let mut rev = [0u8; 1];
    if !mem.read(rsdp.checked_add(15)?, &mut rev) {
        return None;
    }
    let xsdt = match rev[0] >= 2 {
        true => u64_at(mem, rsdp.checked_add(24)?),
        false => None,
    };
    let (root, entry_size) = match xsdt {
        Some(xsdt) if xsdt != 0 => (xsdt, 8),
        _ => match u32_at(mem, rsdp.checked_add(16)?) {
            Some(rsdt) if rsdt != 0 => (u64::from(rsdt), 4),
            _ => return None,
        },
    };
    let root_len = u32_at(mem, root.checked_add(4)?)?;
    let entries = (root_len.saturating_sub(36) / entry_size).min(MAX_TABLES);
    for i in 0..entries {
        let at = root.checked_add(36 + u64::from(i * entry_size))?;
        let table = if entry_size == 8 {
            u64_at(mem, at)
        } else {
            u32_at(mem, at).map(u64::from)
        };
        let Some(table) = table.filter(|&t| t != 0) else {
            continue;
        };
        if signature(mem, table) == Some(*b"APIC") {
            return Some(table);
        }
    }
    None
}

fn madt_ioapics(mem: &impl PhysRead, madt: u64, out: &mut [u64; MAX_IOAPICS]) -> usize {
    let Some(len) = madt.checked_add(4).and_then(|at| u32_at(mem, at)) else {
        return 0;
    };
    let Some(end) = madt.checked_add(u64::from(len.min(1 << 20))) else {
        return 0;
    };
    let mut at = madt.saturating_add(44);
    let mut n = 0;
    while n < MAX_IOAPICS && at.checked_add(2).is_some_and(|e| e <= end) {
        let mut head = [0u8; 2];
        if !mem.read(at, &mut head) || head[1] < 2 {
            break;
        }
        if head[0] == 1
            && head[1] >= 12
            && let Some(addr) = at.checked_add(4).and_then(|a| u32_at(mem, a))
        {
            out[n] = u64::from(addr);
            n += 1;
        }
        let Some(next) = at.checked_add(u64::from(head[1])) else {
            break;
        };
        at = next;
    }
    n
}

/// Whether a redirection entry's low word has a delivery mode Limine masks
/// (fixed or lowest priority).
#[must_use]
pub const fn should_mask(low: u32) -> bool {
    matches!((low >> 8) & 7, 0 | 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned memory for the tests: `bytes` at `base`.
    struct Mem {
        base: u64,
        bytes: Vec<u8>,
    }

    impl PhysRead for Mem {
        fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
            BytesAt {
                base: self.base,
                bytes: &self.bytes,
            }
            .read(phys, buf)
        }
    }

    fn put(m: &mut [u8], at: usize, b: &[u8]) {
        m[at..at + b.len()].copy_from_slice(b);
    }

    /// RSDP at 0, XSDT (or RSDT) at 0x100 with a FACP and a MADT.
    fn tables(xsdt: bool) -> Mem {
        let mut m = vec![0u8; 0x1000];
        put(&mut m, 0, b"RSD PTR ");
        m[15] = if xsdt { 2 } else { 0 };
        put(&mut m, 16, &0x100u32.to_le_bytes());
        if xsdt {
            put(&mut m, 24, &0x100u64.to_le_bytes());
            put(&mut m, 0x100, b"XSDT");
            put(&mut m, 0x104, &(36u32 + 16).to_le_bytes());
            put(&mut m, 0x124, &0x200u64.to_le_bytes());
            put(&mut m, 0x12c, &0x300u64.to_le_bytes());
        } else {
            put(&mut m, 0x100, b"RSDT");
            put(&mut m, 0x104, &(36u32 + 8).to_le_bytes());
            put(&mut m, 0x124, &0x200u32.to_le_bytes());
            put(&mut m, 0x128, &0x300u32.to_le_bytes());
        }
        put(&mut m, 0x200, b"FACP");
        put(&mut m, 0x204, &36u32.to_le_bytes());
        put(&mut m, 0x300, b"APIC");
        // Local APIC (type 0, 8 bytes), I/O APIC (type 1, 12), override (2, 10),
        // I/O APIC.
        let entries: &[&[u8]] = &[
            &[0, 8, 0, 0, 1, 0, 0, 0],
            &[1, 12, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0],
            &[2, 10, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 12, 1, 0, 0x00, 0x10, 0xc0, 0xfe, 24, 0, 0, 0],
        ];
        let mut at = 0x300 + 44;
        for e in entries {
            put(&mut m, at, e);
            at += e.len();
        }
        put(&mut m, 0x304, &((at - 0x300) as u32).to_le_bytes());
        Mem { base: 0, bytes: m }
    }

    #[test]
    fn finds_ioapics_through_xsdt_and_rsdt() {
        for xsdt in [true, false] {
            let mut out = [0; MAX_IOAPICS];
            assert_eq!(ioapics(&tables(xsdt), 0, &mut out), 2);
            assert_eq!(&out[..2], &[0xfec0_0000, 0xfec0_1000]);
        }
    }

    #[test]
    fn malformed_tables_give_nothing() {
        let mut out = [0; MAX_IOAPICS];
        let mut m = tables(true);
        m.bytes[0] = b'X';
        assert_eq!(ioapics(&m, 0, &mut out), 0);
        // A zero-length MADT entry stops the walk instead of looping.
        let mut m = tables(true);
        m.bytes[0x300 + 44 + 1] = 0;
        assert_eq!(ioapics(&m, 0, &mut out), 0);
        // Root table pointing outside memory.
        let mut m = tables(true);
        put(&mut m.bytes, 0x124, &0xdead_0000u64.to_le_bytes());
        put(&mut m.bytes, 0x12c, &0xdead_0000u64.to_le_bytes());
        assert_eq!(ioapics(&m, 0, &mut out), 0);
        assert_eq!(ioapics(&m, 0x5000, &mut out), 0);
    }

    #[test]
    fn pointers_near_the_top_of_the_address_space_do_not_overflow() {
        let mut out = [0; MAX_IOAPICS];
        // The last 64 bytes of the address space, filled by `fill`.
        let top = |fill: &dyn Fn(&mut [u8])| {
            let mut bytes = vec![0u8; 64];
            fill(&mut bytes);
            Mem {
                base: u64::MAX - 63,
                bytes,
            }
        };
        // An RSDP in the last 8 bytes: its revision byte would be past 2^64.
        let m = top(&|b| put(b, 56, b"RSD PTR "));
        assert_eq!(ioapics(&m, u64::MAX - 7, &mut out), 0);
        // An RSDP whose XSDT pointer is the last 4 bytes.
        let m = top(&|b| {
            put(b, 0, b"RSD PTR ");
            b[15] = 2;
            put(b, 24, &(u64::MAX - 3).to_le_bytes());
        });
        assert_eq!(ioapics(&m, u64::MAX - 63, &mut out), 0);
        // An XSDT near the top listing a MADT in the last 4 bytes, and one whose
        // length makes its entries run past 2^64.
        for (entry, len) in [(u64::MAX - 3, 44u32), (0, 0xffff_ffff)] {
            let m = top(&|b| {
                put(b, 0, b"RSD PTR ");
                b[15] = 2;
                put(b, 24, &(u64::MAX - 47).to_le_bytes());
                put(b, 16, b"XSDT");
                put(b, 20, &len.to_le_bytes());
                put(b, 52, &entry.to_le_bytes());
                put(b, 60, b"APIC");
            });
            assert_eq!(ioapics(&m, u64::MAX - 63, &mut out), 0);
        }
        // A MADT near the top whose length runs past 2^64.
        let m = top(&|b| {
            put(b, 32, b"APIC");
            put(b, 36, &0x1000u32.to_le_bytes());
        });
        assert_eq!(madt_ioapics(&m, u64::MAX - 31, &mut out), 0);
    }

    #[test]
    fn masks_fixed_and_lowest_priority_only() {
        assert!(should_mask(0x0000_0030));
        assert!(should_mask(0x0000_0130));
        assert!(!should_mask(0x0000_0400)); // NMI
        assert!(!should_mask(0x0000_0700)); // ExtINT
        assert!(!should_mask(0x0000_0200)); // SMI
    }
}
