//! The time-stamp counter.

use core::arch::x86_64::{__cpuid, _rdtsc};

/// Reads the TSC.
pub fn read_tsc() -> u64 {
    // SAFETY: `rdtsc` is available on every x86_64 CPU and has no side
    // effects beyond reading the counter.
    unsafe { _rdtsc() }
}

/// TSC frequency from CPUID leaf 0x15 (Intel SDM vol. 2A, CPUID "Time Stamp
/// Counter and Nominal Core Crystal Clock"), or from the hypervisor timing
/// leaf 0x40000010 (TSC kHz in EAX) that KVM-based clouds expose. `None`
/// when neither states it; the kernel then calibrates against ACPI.
pub fn tsc_frequency_from_cpuid() -> Option<u64> {
    let max_leaf = __cpuid(0).eax;
    if max_leaf >= 0x15 {
        let leaf = __cpuid(0x15);
        if leaf.eax != 0 && leaf.ebx != 0 && leaf.ecx != 0 {
            return Some(u64::from(leaf.ecx) * u64::from(leaf.ebx) / u64::from(leaf.eax));
        }
    }
    let hypervisor_present = __cpuid(1).ecx & (1 << 31) != 0;
    if hypervisor_present && __cpuid(0x4000_0000).eax >= 0x4000_0010 {
        let khz = __cpuid(0x4000_0010).eax;
        if khz != 0 {
            return Some(u64::from(khz) * 1000);
        }
    }
    None
}
