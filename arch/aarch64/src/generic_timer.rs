//! The EL1 virtual timer of the generic timer as per-CPU deadline timer
//! (ARM DDI 0487 D11.2.4): `CNTV_CVAL_EL0` holds the deadline in
//! `CNTVCT_EL0` ticks, `CNTV_CTL_EL0` enables it. Its interrupt is the PPI
//! the GTDT names (27 on QEMU virt and the clouds, but read from the table).

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_CVAL_EL0, Writeable};
use stratus_arch::{InterruptError, InterruptId, InterruptLine, Timer, TimerDescription};

/// The boot CPU's virtual timer.
pub struct VirtualTimer;

impl VirtualTimer {
    /// The virtual timer, stopped; its interrupt must be a PPI.
    pub fn new(description: &TimerDescription) -> Result<Self, InterruptError> {
        if !matches!(description.line, InterruptLine::PerCpu(16..32)) {
            return Err(InterruptError::BadLine);
        }
        let mut timer = Self;
        timer.cancel();
        Ok(timer)
    }
}

impl Timer for VirtualTimer {
    fn kind(&self) -> &'static str {
        "cntv"
    }

    fn bind(&mut self, _id: InterruptId) {}

    fn set_deadline(&mut self, deadline: u64) {
        CNTV_CVAL_EL0.set(deadline);
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
        barrier::isb(barrier::SY);
    }

    fn cancel(&mut self) {
        CNTV_CTL_EL0.set(0);
        barrier::isb(barrier::SY);
    }
}
