//! The enabled CPUs the MADT lists, by hardware id (bounded byte parser).
//!
//! Entries (ACPI 6.5, 5.2.12): Processor Local APIC (type 0: APIC id at
//! byte 3, flags at 4), Processor Local x2APIC (type 9: x2APIC id at 4,
//! flags at 8), GIC CPU interface (type 0xB: flags at 12, MPIDR at 68). Flag
//! bit 0 is "enabled"; CPUs only "online capable" (bit 1) are hot-plug
//! material and not started at boot.

use alloc::vec::Vec;

const MADT_HEADER: usize = 44;
const LOCAL_APIC: u8 = 0;
const LOCAL_X2APIC: u8 = 9;
const GICC: u8 = 0xb;
const ENABLED: u32 = 1;

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The hardware ids (APIC / x2APIC id, or MPIDR affinity) of the enabled
/// CPUs in a MADT's bytes, in table order, without duplicates. Parsing stops
/// at the first malformed entry.
pub fn enabled_cpu_ids(madt: &[u8]) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut at = MADT_HEADER;
    while let (Some(&kind), Some(&length)) = (madt.get(at), madt.get(at + 1)) {
        let length = usize::from(length);
        let Some(entry) = madt.get(at..at + length).filter(|_| length >= 2) else {
            log::warn!("MADT entry at byte {at} has a bad length {length}; rest ignored");
            break;
        };
        let found = match kind {
            LOCAL_APIC if length >= 8 => u32_at(entry, 4)
                .filter(|f| f & ENABLED != 0)
                .map(|_| u64::from(entry[3])),
            LOCAL_X2APIC if length >= 16 => u32_at(entry, 8)
                .filter(|f| f & ENABLED != 0)
                .and_then(|_| u32_at(entry, 4).map(u64::from)),
            GICC if length >= 76 => u32_at(entry, 12)
                .filter(|f| f & ENABLED != 0)
                .and_then(|_| u64_at(entry, 68).map(|m| m & 0xff_00ff_ffff)),
            _ => None,
        };
        if let Some(id) = found
            && !ids.contains(&id)
        {
            ids.push(id);
        }
        at += length;
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn madt(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut t = vec![0u8; MADT_HEADER];
        for e in entries {
            t.extend_from_slice(e);
        }
        t
    }

    fn lapic(id: u8, flags: u32) -> Vec<u8> {
        let mut e = vec![LOCAL_APIC, 8, id, id];
        e.extend_from_slice(&flags.to_le_bytes());
        e
    }

    fn gicc(mpidr: u64, flags: u32) -> Vec<u8> {
        let mut e = vec![0u8; 80];
        e[0] = GICC;
        e[1] = 80;
        e[12..16].copy_from_slice(&flags.to_le_bytes());
        e[68..76].copy_from_slice(&mpidr.to_le_bytes());
        e
    }

    #[test]
    fn lists_enabled_local_apics_and_x2apics() {
        let mut x2 = vec![LOCAL_X2APIC, 16, 0, 0];
        x2.extend_from_slice(&300u32.to_le_bytes());
        x2.extend_from_slice(&1u32.to_le_bytes());
        x2.extend_from_slice(&[0; 4]);
        let t = madt(&[lapic(0, 1), lapic(1, 1), lapic(2, 2), x2]);
        assert_eq!(enabled_cpu_ids(&t), vec![0, 1, 300]);
    }

    #[test]
    fn lists_gicc_mpidrs() {
        let t = madt(&[gicc(0x8000_0000, 1), gicc(0x8000_0001, 1), gicc(0x100, 0)]);
        assert_eq!(enabled_cpu_ids(&t), vec![0, 1]);
    }

    #[test]
    fn stops_at_a_malformed_entry() {
        let mut t = madt(&[lapic(0, 1)]);
        t.extend_from_slice(&[LOCAL_APIC, 0, 5, 5]);
        t.extend_from_slice(&lapic(7, 1));
        assert_eq!(enabled_cpu_ids(&t), vec![0]);
        let mut t = madt(&[lapic(0, 1)]);
        t.extend_from_slice(&[LOCAL_APIC, 200, 5]);
        assert_eq!(enabled_cpu_ids(&t), vec![0]);
        assert!(enabled_cpu_ids(&[]).is_empty());
    }
}
