//! Data cache maintenance for memory that another observer reads without
//! snooping the CPU's caches: a secondary CPU starting with its MMU off, a
//! GIC ITS or redistributor that reports itself non-shareable.

use aarch64_cpu::asm::barrier;
use core::arch::asm;

/// The data cache line size in bytes (CTR_EL0.DminLine).
fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Cleans `[start, start + len)` (virtual) to the point of coherency.
pub fn clean_to_poc(start: u64, len: u64) {
    let line = dcache_line();
    let mut addr = start & !(line - 1);
    while addr < start + len {
        // SAFETY: cache maintenance by VA on mapped memory; it changes no
        // data.
        unsafe { asm!("dc cvac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    barrier::dsb(barrier::SY);
}
