//! The monotonic clock, one deadline timer per CPU, and `sleep`.
//!
//! The clock is the CPU's free-running counter ([`crate::time`]: TSC or
//! CNTVCT). Each CPU has one hardware deadline timer ([`stratus_arch::Timer`]:
//! TSC-deadline or the local APIC one-shot on x86, the virtual generic timer
//! on arm) driven by a [`DeadlineTimer`]: one pending deadline with a
//! callback, one-shot or periodic. A periodic timer re-arms at the previous
//! deadline plus the period, so a late interrupt does not shift the later
//! ones, and runs its callback once for each deadline a late interrupt
//! passed, so no period is lost. [`sleep`] arms the deadline (when no periodic
//! timer owns it) and waits for interrupts until the clock has passed it.
//!
//! Only the boot CPU's timer exists for now; SMP gives each CPU its own.

use crate::cpu_local::{self, MAX_CPUS};
use crate::irq::{Interrupts, IrqError};
use crate::irq_lock::IrqSafeSpinlock;
use crate::time;
use alloc::boxed::Box;
use core::time::Duration;
use stratus_arch::{Arch, InterruptError, InterruptId, Timer, TimerDescription};

/// What a timer callback is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerEvent {
    /// The deadline that passed, in clock ticks.
    pub deadline: u64,
    /// The clock when the interrupt handler was entered.
    pub entered: u64,
}

/// Called from the timer interrupt when a deadline has passed.
pub type TimerCallback = fn(TimerEvent);

/// Why a timer request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerError {
    /// Timers were not set up on this CPU.
    NotInitialised,
    /// A periodic timer owns the deadline.
    Busy,
    /// The period is zero.
    ZeroPeriod,
    /// Setting the timer up failed.
    Setup(IrqError),
}

impl From<IrqError> for TimerError {
    fn from(e: IrqError) -> Self {
        Self::Setup(e)
    }
}

impl From<InterruptError> for TimerError {
    fn from(e: InterruptError) -> Self {
        Self::Setup(IrqError::Controller(e))
    }
}

impl core::fmt::Display for TimerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotInitialised => f.write_str("no timer on this CPU"),
            Self::Busy => f.write_str("a periodic timer owns this CPU's deadline"),
            Self::ZeroPeriod => f.write_str("zero period"),
            Self::Setup(e) => write!(f, "{e}"),
        }
    }
}

struct Pending {
    deadline: u64,
    period: u64,
    callback: TimerCallback,
}

struct TimerState {
    hardware: Box<dyn Timer>,
    pending: Option<Pending>,
}

/// One CPU's deadline timer.
pub struct DeadlineTimer {
    state: IrqSafeSpinlock<TimerState>,
    kind: &'static str,
}

impl DeadlineTimer {
    /// Drives `hardware`, already bound to its interrupt.
    pub fn new(hardware: Box<dyn Timer>) -> Self {
        Self {
            kind: hardware.kind(),
            state: IrqSafeSpinlock::new(TimerState {
                hardware,
                pending: None,
            }),
        }
    }

    /// The hardware timer's name.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Calls `callback` once the clock reaches `deadline`; replaces any
    /// pending deadline.
    pub fn set_deadline(&self, deadline: u64, callback: TimerCallback) {
        self.arm(deadline, 0, callback);
    }

    /// Calls `callback` every `period` ticks, the first time at `first`.
    pub fn start_periodic(
        &self,
        first: u64,
        period: u64,
        callback: TimerCallback,
    ) -> Result<(), TimerError> {
        if period == 0 {
            return Err(TimerError::ZeroPeriod);
        }
        self.arm(first, period, callback);
        Ok(())
    }

    fn arm(&self, deadline: u64, period: u64, callback: TimerCallback) {
        let mut state = self.state.lock();
        state.pending = Some(Pending {
            deadline,
            period,
            callback,
        });
        state.hardware.set_deadline(deadline);
    }

    /// Drops the pending deadline.
    pub fn cancel(&self) {
        let mut state = self.state.lock();
        state.pending = None;
        state.hardware.cancel();
    }

    /// Whether a periodic timer owns the deadline.
    pub fn is_periodic(&self) -> bool {
        self.state
            .lock()
            .pending
            .as_ref()
            .is_some_and(|p| p.period != 0)
    }

    /// The timer interrupt, the clock reading `now` at handler entry: runs
    /// the callback if the deadline passed and re-arms (periodic), or
    /// re-arms the same deadline when the interrupt came early, or stops the
    /// hardware. A periodic timer whose interrupt came more than a period
    /// late runs the callback once for every deadline that passed (at most
    /// [`MAX_CATCH_UP`] per interrupt), so no period is lost to a late or
    /// merged interrupt. Callbacks run without the lock held.
    pub fn handle_interrupt(&self, now: u64) {
        let (callback, first, period, due) = {
            let mut state = self.state.lock();
            let TimerState { hardware, pending } = &mut *state;
            match pending {
                Some(p) if now >= p.deadline => {
                    let first = p.deadline;
                    let (period, callback) = (p.period, p.callback);
                    let due = match (now - first).checked_div(period) {
                        None => {
                            *pending = None;
                            hardware.cancel();
                            1
                        }
                        Some(passed) => {
                            let due = (passed + 1).min(MAX_CATCH_UP);
                            p.deadline = first.wrapping_add(due * period);
                            hardware.set_deadline(p.deadline);
                            due
                        }
                    };
                    (callback, first, period, due)
                }
                Some(p) => {
                    hardware.set_deadline(p.deadline);
                    return;
                }
                None => {
                    hardware.cancel();
                    return;
                }
            }
        };
        for i in 0..due {
            callback(TimerEvent {
                deadline: first.wrapping_add(i * period),
                entered: now,
            });
        }
    }
}

/// Most periods one late interrupt catches up on; the rest follow with the
/// next interrupts (which then come at once, their deadline having passed).
pub const MAX_CATCH_UP: u64 = 64;

/// The functions of the architecture the timer code needs.
#[derive(Clone, Copy)]
struct ArchFns {
    ticks: fn() -> u64,
    enabled: fn() -> bool,
    disable: fn(),
    enable: fn(),
    enable_and_wait: fn(),
}

static ARCH: spin::Once<ArchFns> = spin::Once::new();
/// Each CPU's deadline timer, by [`cpu_local::index`].
static TIMERS: [spin::Once<DeadlineTimer>; MAX_CPUS] = [const { spin::Once::new() }; MAX_CPUS];
/// The timer's description and interrupt id as the boot CPU set them up:
/// secondary CPUs build theirs the same way.
static SETUP: spin::Once<(TimerDescription, InterruptId)> = spin::Once::new();

fn on_timer_interrupt(_id: InterruptId) {
    if let (Some(arch), Some(timer)) = (ARCH.get(), this_cpu()) {
        timer.handle_interrupt((arch.ticks)());
    }
}

/// Makes the clock ([`now`]) and [`sleep`] work, even without a timer
/// (sleep then spins on the clock).
pub fn init_clock<A: Arch>() {
    ARCH.call_once(|| ArchFns {
        ticks: A::ticks,
        enabled: A::interrupts_enabled,
        disable: A::disable_interrupts,
        enable: A::enable_interrupts,
        enable_and_wait: A::enable_interrupts_and_wait,
    });
}

/// Builds the boot CPU's timer and routes its interrupt. Interrupts stay
/// masked.
pub fn init<A: Arch>(
    interrupts: &Interrupts,
    description: &TimerDescription,
) -> Result<&'static DeadlineTimer, TimerError> {
    init_clock::<A>();
    let mut hardware = A::init_timer(description)?;
    let id = interrupts.request_line(description.line, on_timer_interrupt)?;
    hardware.bind(id);
    SETUP.call_once(|| (*description, id));
    Ok(TIMERS[0].call_once(|| DeadlineTimer::new(Box::new(hardware))))
}

/// The timer interrupt's id, once the boot CPU's timer exists: a per-CPU
/// interrupt each secondary CPU unmasks for itself.
pub fn interrupt_id() -> Option<InterruptId> {
    SETUP.get().map(|&(_, id)| id)
}

/// Builds the executing secondary CPU's timer like the boot CPU's.
pub fn init_secondary<A: Arch>() -> Result<&'static DeadlineTimer, TimerError> {
    let &(description, id) = SETUP.get().ok_or(TimerError::NotInitialised)?;
    let slot = TIMERS
        .get(cpu_local::index())
        .ok_or(TimerError::NotInitialised)?;
    let mut hardware = A::init_secondary_timer(&description)?;
    hardware.bind(id);
    Ok(slot.call_once(|| DeadlineTimer::new(Box::new(hardware))))
}

/// This CPU's deadline timer, once [`init`] (boot CPU) or
/// [`init_secondary`] succeeded on it.
pub fn this_cpu() -> Option<&'static DeadlineTimer> {
    TIMERS.get(cpu_local::index())?.get()
}

/// The clock in ticks (the CPU counter), once the kernel has booted.
pub fn now_ticks() -> Option<u64> {
    ARCH.get().map(|a| (a.ticks)())
}

/// Time since kernel entry on the monotonic clock.
pub fn now() -> Option<Duration> {
    now_ticks()
        .and_then(time::micros_since_entry)
        .map(Duration::from_micros)
}

/// Clock ticks in `duration`, once the counter frequency is known.
pub fn duration_to_ticks(duration: Duration) -> Option<u64> {
    let hz = time::ticks_per_second()?;
    Some(((duration.as_nanos() * u128::from(hz)) / 1_000_000_000).min(u128::from(u64::MAX)) as u64)
}

fn wake(_event: TimerEvent) {}

/// Waits until the clock has passed now + `duration`, halting the CPU
/// between interrupts. Arms this CPU's deadline unless a periodic timer
/// owns it (whose interrupts then wake the wait). With interrupts masked by
/// the caller, or without a timer, it spins on the clock instead: every way
/// through ends when the clock passes the deadline.
pub fn sleep(duration: Duration) -> Result<(), TimerError> {
    let arch = ARCH.get().copied().ok_or(TimerError::NotInitialised)?;
    let ticks = duration_to_ticks(duration).ok_or(TimerError::NotInitialised)?;
    let end = (arch.ticks)().saturating_add(ticks);
    wait_until(duration, &mut || (arch.ticks)() >= end);
    Ok(())
}

/// Waits on this CPU until `done()` says true or `timeout` passed, halting
/// between interrupts; returns `done`'s last answer. `done` is asked with
/// interrupts masked, and the wait unmasks and halts as one step, so an
/// interrupt that makes it true cannot slip in unnoticed. Arms this CPU's
/// deadline at the timeout (unless a periodic timer owns it), replacing a
/// pending one. With interrupts masked by the caller, or without a timer,
/// it polls `done` against the clock instead.
pub fn wait_until(timeout: Duration, done: &mut dyn FnMut() -> bool) -> bool {
    let Some((arch, ticks)) = ARCH.get().copied().zip(duration_to_ticks(timeout)) else {
        // No clock yet: a bounded number of polls.
        return stratus_driver_api::clock::poll_until(timeout, 10_000_000, || done().then_some(()))
            .is_some();
    };
    let end = (arch.ticks)().saturating_add(ticks);
    let timer = this_cpu().filter(|_| (arch.enabled)());
    let Some(timer) = timer else {
        loop {
            if done() {
                return true;
            }
            if (arch.ticks)() >= end {
                return false;
            }
            core::hint::spin_loop();
        }
    };
    if !timer.is_periodic() {
        timer.set_deadline(end, wake);
    }
    (arch.disable)();
    let result = loop {
        if done() {
            break true;
        }
        if (arch.ticks)() >= end {
            break false;
        }
        (arch.enable_and_wait)();
        (arch.disable)();
    };
    (arch.enable)();
    result
}

#[cfg(test)]
mod tests;
