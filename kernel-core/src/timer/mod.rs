//! The monotonic clock, a deadline timer per CPU, and `sleep`.
//!
//! The clock is the CPU's free-running counter ([`crate::time`]: TSC or
//! CNTVCT). Each CPU has one hardware deadline timer ([`stratus_arch::Timer`]:
//! TSC-deadline or the local APIC one-shot on x86, the virtual generic timer
//! on arm) driven by a [`DeadlineTimer`]: up to [`MAX_DEADLINES`] pending
//! deadlines, each with a callback, one-shot or periodic, the hardware
//! programmed for the earliest. A periodic deadline re-arms at the previous
//! deadline plus the period, so a late interrupt does not shift the later
//! ones, and runs its callback once for each deadline a late interrupt
//! passed, so no period is lost. [`sleep`] and [`wait_until`] add a deadline
//! of their own and wait for interrupts until the clock has passed it.
//! Every CPU has its own timer (see [`init_secondary`]).

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
    /// Every deadline slot of the CPU is in use ([`MAX_DEADLINES`]).
    Full,
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
            Self::Full => write!(f, "all {MAX_DEADLINES} deadlines of this CPU are in use"),
            Self::ZeroPeriod => f.write_str("zero period"),
            Self::Setup(e) => write!(f, "{e}"),
        }
    }
}

/// Deadlines one CPU's timer holds at once.
pub const MAX_DEADLINES: usize = 16;

/// Names one deadline of a [`DeadlineTimer`], to cancel it. A handle whose
/// deadline has fired (one-shot) or was cancelled names nothing, even when
/// its slot is in use again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerHandle {
    slot: usize,
    generation: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    deadline: u64,
    period: u64,
    callback: TimerCallback,
    generation: u64,
}

/// A callback due from one interrupt: `due` deadlines from `first`.
#[derive(Clone, Copy)]
struct Due {
    callback: TimerCallback,
    first: u64,
    period: u64,
    due: u64,
}

struct TimerState {
    hardware: Box<dyn Timer>,
    entries: [Option<Entry>; MAX_DEADLINES],
    generation: u64,
}

impl TimerState {
    /// Programs the hardware for the earliest deadline, or stops it.
    fn rearm(&mut self) {
        match self.entries.iter().flatten().map(|e| e.deadline).min() {
            Some(deadline) => self.hardware.set_deadline(deadline),
            None => self.hardware.cancel(),
        }
    }
}

/// One CPU's deadline timer: up to [`MAX_DEADLINES`] pending deadlines,
/// one-shot or periodic, each with its callback, on one hardware timer
/// programmed for the earliest.
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
                entries: [None; MAX_DEADLINES],
                generation: 0,
            }),
        }
    }

    /// The hardware timer's name.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Calls `callback` once the clock reaches `deadline`.
    pub fn set_deadline(
        &self,
        deadline: u64,
        callback: TimerCallback,
    ) -> Result<TimerHandle, TimerError> {
        self.add(deadline, 0, callback)
    }

    /// Calls `callback` every `period` ticks, the first time at `first`.
    pub fn start_periodic(
        &self,
        first: u64,
        period: u64,
        callback: TimerCallback,
    ) -> Result<TimerHandle, TimerError> {
        if period == 0 {
            return Err(TimerError::ZeroPeriod);
        }
        self.add(first, period, callback)
    }

    fn add(
        &self,
        deadline: u64,
        period: u64,
        callback: TimerCallback,
    ) -> Result<TimerHandle, TimerError> {
        let mut state = self.state.lock();
        let slot = state
            .entries
            .iter()
            .position(Option::is_none)
            .ok_or(TimerError::Full)?;
        state.generation += 1;
        let generation = state.generation;
        state.entries[slot] = Some(Entry {
            deadline,
            period,
            callback,
            generation,
        });
        state.rearm();
        Ok(TimerHandle { slot, generation })
    }

    /// Drops the deadline `handle` names, if it is still pending.
    pub fn cancel(&self, handle: TimerHandle) {
        let mut state = self.state.lock();
        if let Some(entry) = state.entries.get_mut(handle.slot)
            && entry.is_some_and(|e| e.generation == handle.generation)
        {
            *entry = None;
            state.rearm();
        }
    }

    /// Deadlines pending.
    pub fn pending(&self) -> usize {
        self.state.lock().entries.iter().flatten().count()
    }

    /// The timer interrupt, the clock reading `now` at handler entry: runs
    /// the callback of every deadline that passed, re-arms periodic ones
    /// from their deadline (not from the late interrupt) and drops one-shot
    /// ones, then programs the hardware for the earliest deadline left (or
    /// stops it). An interrupt that came early only re-programs. A periodic
    /// deadline whose interrupt came more than a period late runs its
    /// callback once for every deadline that passed (at most
    /// [`MAX_CATCH_UP`] per interrupt), so no period is lost to a late or
    /// merged interrupt. Callbacks run without the lock held.
    pub fn handle_interrupt(&self, now: u64) {
        let mut due: [Option<Due>; MAX_DEADLINES] = [None; MAX_DEADLINES];
        {
            let mut state = self.state.lock();
            for (slot, out) in state.entries.iter_mut().zip(due.iter_mut()) {
                let Some(entry) = slot.as_mut().filter(|e| now >= e.deadline) else {
                    continue;
                };
                let first = entry.deadline;
                let count = match (now - first).checked_div(entry.period) {
                    None => 1,
                    Some(passed) => (passed + 1).min(MAX_CATCH_UP),
                };
                *out = Some(Due {
                    callback: entry.callback,
                    first,
                    period: entry.period,
                    due: count,
                });
                if entry.period == 0 {
                    *slot = None;
                } else {
                    entry.deadline = first.wrapping_add(count * entry.period);
                }
            }
            state.rearm();
        }
        for d in due.iter().flatten() {
            for i in 0..d.due {
                (d.callback)(TimerEvent {
                    deadline: d.first.wrapping_add(i * d.period),
                    entered: now,
                });
            }
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
    // Without a slot of its own the wait still ends: by the other deadlines'
    // interrupts, checked against the clock.
    let handle = timer.set_deadline(end, wake).ok();
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
    if let Some(handle) = handle {
        timer.cancel(handle);
    }
    result
}

#[cfg(test)]
mod tests;
