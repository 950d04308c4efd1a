//! CPU identification for the boot log.

use core::arch::x86_64::__cpuid;

fn push_register(out: &mut [u8], at: usize, value: u32) {
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Writes the CPUID vendor and brand strings.
pub fn describe(out: &mut dyn core::fmt::Write) -> core::fmt::Result {
    let leaf0 = __cpuid(0);
    let mut vendor = [0u8; 12];
    push_register(&mut vendor, 0, leaf0.ebx);
    push_register(&mut vendor, 4, leaf0.edx);
    push_register(&mut vendor, 8, leaf0.ecx);
    write!(out, "{}", core::str::from_utf8(&vendor).unwrap_or("?"))?;
    if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
        let mut brand = [0u8; 48];
        for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
            let r = __cpuid(leaf);
            for (j, v) in [r.eax, r.ebx, r.ecx, r.edx].into_iter().enumerate() {
                push_register(&mut brand, i * 16 + j * 4, v);
            }
        }
        let text = core::str::from_utf8(&brand)
            .unwrap_or("")
            .trim_matches(|c: char| c == '\0' || c == ' ');
        write!(out, " {text}")?;
    }
    Ok(())
}

/// The executing CPU's local APIC id: the 32-bit x2APIC id from CPUID leaf
/// 0xB where the CPU has it, else the 8-bit initial APIC id of leaf 1.
pub fn apic_id() -> u64 {
    if __cpuid(0).eax >= 0xb {
        let topology = core::arch::x86_64::__cpuid_count(0xb, 0);
        if topology.ebx != 0 {
            return u64::from(topology.edx);
        }
    }
    u64::from(__cpuid(1).ebx >> 24)
}
