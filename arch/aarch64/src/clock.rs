//! The generic timer's virtual counter (ARM DDI 0487 D11 "The Generic
//! Timer in AArch64 state").

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTVCT_EL0, Readable};

/// Reads `CNTVCT_EL0`. The `isb` keeps the read from being performed
/// early, ahead of the instructions before it (D11.2.2).
pub fn read_counter() -> u64 {
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

/// The counter frequency the firmware programmed into `CNTFRQ_EL0`, or
/// `None` when it left it zero.
pub fn counter_frequency() -> Option<u64> {
    Some(CNTFRQ_EL0.get()).filter(|&hz| hz != 0)
}
