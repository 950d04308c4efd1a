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
/// yield 0: masking is best effort.
pub fn ioapics(mem: &impl PhysRead, rsdp: u64, out: &mut [u64; MAX_IOAPICS]) -> usize {
    let mut sig = [0u8; 8];
    if !mem.read(rsdp, &mut sig) || &sig != b"RSD PTR " {
        return 0;
    }
    let mut rev = [0u8; 1];
    if !mem.read(rsdp + 15, &mut rev) {
        return 0;
    }
    let (root, entry_size) = match (rev[0] >= 2).then(|| u64_at(mem, rsdp + 24)).flatten() {
        Some(xsdt) if xsdt != 0 => (xsdt, 8),
        _ => match u32_at(mem, rsdp + 16) {
            Some(rsdt) if rsdt != 0 => (u64::from(rsdt), 4),
            _ => return 0,
        },
    };
    let Some(root_len) = u32_at(mem, root + 4) else {
        return 0;
    };
    let entries = (root_len.saturating_sub(36) / entry_size).min(MAX_TABLES);
    for i in 0..entries {
        let at = root + 36 + u64::from(i * entry_size);
        let table = if entry_size == 8 {
            u64_at(mem, at)
        } else {
            u32_at(mem, at).map(u64::from)
        };
        let Some(table) = table.filter(|&t| t != 0) else {
            continue;
        };
        if signature(mem, table) == Some(*b"APIC") {
            return madt_ioapics(mem, table, out);
        }
    }
    0
}

fn madt_ioapics(mem: &impl PhysRead, madt: u64, out: &mut [u64; MAX_IOAPICS]) -> usize {
    let Some(len) = u32_at(mem, madt + 4) else {
        return 0;
    };
    let end = madt + u64::from(len.min(1 << 20));
    let mut at = madt + 44;
    let mut n = 0;
    while at + 2 <= end && n < MAX_IOAPICS {
        let mut head = [0u8; 2];
        if !mem.read(at, &mut head) || head[1] < 2 {
            break;
        }
        if head[0] == 1
            && head[1] >= 12
            && let Some(addr) = u32_at(mem, at + 4)
        {
            out[n] = u64::from(addr);
            n += 1;
        }
        at += u64::from(head[1]);
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

    struct Mem(Vec<u8>);
    impl PhysRead for Mem {
        fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
            let (s, e) = (phys as usize, phys as usize + buf.len());
            match self.0.get(s..e) {
                Some(b) => {
                    buf.copy_from_slice(b);
                    true
                }
                None => false,
            }
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
        Mem(m)
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
        m.0[0] = b'X';
        assert_eq!(ioapics(&m, 0, &mut out), 0);
        // A zero-length MADT entry stops the walk instead of looping.
        let mut m = tables(true);
        m.0[0x300 + 44 + 1] = 0;
        assert_eq!(ioapics(&m, 0, &mut out), 0);
        // Root table pointing outside memory.
        let mut m = tables(true);
        put(&mut m.0, 0x124, &0xdead_0000u64.to_le_bytes());
        put(&mut m.0, 0x12c, &0xdead_0000u64.to_le_bytes());
        assert_eq!(ioapics(&m, 0, &mut out), 0);
        assert_eq!(ioapics(&m, 0x5000, &mut out), 0);
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
