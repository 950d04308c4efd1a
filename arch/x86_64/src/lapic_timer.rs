//! The local APIC timer as per-CPU deadline timer: TSC-deadline mode when
//! CPUID has it (leaf 1, ECX bit 24), else one-shot mode with the count
//! converted from TSC ticks at a rate measured against the ACPI PM timer
//! (Intel SDM vol. 3A, 11.5.4).

use crate::clock::read_tsc;
use crate::local_apic::{
    self, LVT_MASKED, LVT_TIMER, LocalApic, TIMER_CURRENT, TIMER_DIVIDE, TIMER_INITIAL,
};
use core::arch::x86_64::__cpuid;
use stratus_arch::calibration::calibrate;
use stratus_arch::{InterruptError, InterruptId, Timer, TimerDescription};
use x86_64::registers::model_specific::Msr;

const IA32_TSC_DEADLINE: u32 = 0x6e0;
/// LVT timer mode field (bits 18:17): TSC-deadline.
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
/// Divide configuration 0b1011: divide by 1.
const DIVIDE_BY_1: u32 = 0b1011;

#[derive(Clone, Copy, Debug)]
enum Mode {
    TscDeadline,
    OneShot { apic_hz: u64, tsc_hz: u64 },
}

/// The boot CPU's local APIC timer.
pub struct LapicTimer {
    lapic: LocalApic,
    mode: Mode,
}

/// Whether the TSC runs at a constant rate in every power state (CPUID
/// 0x8000_0007 EDX bit 8), so the clock can be built on it.
pub fn tsc_is_invariant() -> bool {
    __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// The APIC timer frequency the boot CPU measured: every CPU's APIC timer
/// runs from the same bus clock, so secondaries reuse it.
static CALIBRATED_HZ: spin::Once<u64> = spin::Once::new();

impl LapicTimer {
    /// The timer of the executing CPU's local APIC (enabled by
    /// [`local_apic::init`] or [`local_apic::init_secondary`]).
    pub fn new(description: &TimerDescription) -> Result<Self, InterruptError> {
        let lapic = local_apic::get().ok_or(InterruptError::WrongHardware)?;
        // Said once for the machine, not once per CPU.
        static TSC_CHECKED: spin::Once<()> = spin::Once::new();
        TSC_CHECKED.call_once(|| {
            if !tsc_is_invariant() {
                log::warn!(target: "timer", "the CPU does not report an invariant TSC");
            }
        });
        let mode = if __cpuid(1).ecx & (1 << 24) != 0 {
            Mode::TscDeadline
        } else {
            if description.counter_hz == 0 {
                return Err(InterruptError::TimerUncalibrated);
            }
            let apic_hz = match CALIBRATED_HZ.get() {
                Some(&hz) => hz,
                None => {
                    let hz = calibrate_apic(lapic, description.counter_hz)?;
                    log::info!(target: "timer", "local APIC timer at {} kHz (measured against the TSC)", hz / 1000);
                    *CALIBRATED_HZ.call_once(|| hz)
                }
            };
            Mode::OneShot {
                apic_hz,
                tsc_hz: description.counter_hz,
            }
        };
        Ok(Self { lapic, mode })
    }
}

/// Measures the APIC timer (divide by 1) against the TSC, whose frequency
/// kernel-core already knows (calibrated against the ACPI PM timer or the
/// HPET, or stated by CPUID): [`calibrate`] takes three ~10 ms windows,
/// robust against the CPU being stopped between reads. The count restarts
/// at its maximum each time, and a window lasts far less than its ~4 s at
/// 1 GHz.
fn calibrate_apic(lapic: LocalApic, tsc_hz: u64) -> Result<u64, InterruptError> {
    let tsc = read_tsc;
    lapic.write(LVT_TIMER, LVT_MASKED);
    lapic.write(TIMER_DIVIDE, DIVIDE_BY_1);
    lapic.write(TIMER_INITIAL, u32::MAX);
    let counted = || u64::from(u32::MAX - lapic.read(TIMER_CURRENT));
    let hz = calibrate(counted, tsc, tsc_hz, 64, tsc_hz / 100);
    lapic.write(TIMER_INITIAL, 0);
    hz.ok_or(InterruptError::Timeout)
}

fn write_deadline(deadline: u64) {
    // SAFETY: IA32_TSC_DEADLINE exists (CPUID said so for this mode);
    // writing it arms or (0) disarms the timer, nothing else.
    unsafe { Msr::new(IA32_TSC_DEADLINE).write(deadline) };
}

impl Timer for LapicTimer {
    fn kind(&self) -> &'static str {
        match self.mode {
            Mode::TscDeadline => "tsc-deadline",
            Mode::OneShot { .. } => "lapic-oneshot",
        }
    }

    fn bind(&mut self, id: InterruptId) {
        let vector = id.0 & 0xff;
        match self.mode {
            Mode::TscDeadline => {
                self.lapic.write(LVT_TIMER, vector | LVT_TSC_DEADLINE);
                // The LVT write must be ordered before the first deadline
                // write (SDM 11.5.4.1).
                core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            }
            Mode::OneShot { .. } => {
                self.lapic.write(TIMER_DIVIDE, DIVIDE_BY_1);
                self.lapic.write(LVT_TIMER, vector);
            }
        }
    }

    fn set_deadline(&mut self, deadline: u64) {
        match self.mode {
            Mode::TscDeadline => write_deadline(deadline.max(1)),
            Mode::OneShot { apic_hz, tsc_hz } => {
                let delta = deadline.saturating_sub(read_tsc());
                let count = (u128::from(delta) * u128::from(apic_hz) / u128::from(tsc_hz.max(1)))
                    .clamp(1, u128::from(u32::MAX)) as u32;
                self.lapic.write(TIMER_INITIAL, count);
            }
        }
    }

    fn cancel(&mut self) {
        match self.mode {
            Mode::TscDeadline => write_deadline(0),
            Mode::OneShot { .. } => self.lapic.write(TIMER_INITIAL, 0),
        }
    }
}
