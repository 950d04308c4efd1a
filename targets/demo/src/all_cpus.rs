//! Checks that involve every CPU: cross-CPU calls (an IPI from the boot CPU
//! to each other CPU), each CPU's own periodic timer, and an interrupt storm
//! on every CPU while every CPU logs. Each prints one `stratus: ...` line of
//! figures that the QEMU tests bound.

use crate::platform::Arch;
use crate::platform::kernel_core::__arch::ExitStatus;
use crate::platform::kernel_core::irq_lock::IrqSafeSpinlock;
use crate::platform::kernel_core::{cpu_local, logger, panic, smp, time, timer};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use timer::{TimerEvent, TimerHandle};

/// CPUs these checks count separately.
const CPUS: usize = 64;
static TICKS: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
static REACHED_AT: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
/// The period the next timer start uses, in clock ticks.
static PERIOD: AtomicU64 = AtomicU64::new(0);
/// How long callbacks of deadlines due in the window may still come after
/// it closed.
const LATE_GRACE: Duration = Duration::from_millis(500);
/// Log from the timer interrupt every this many ticks (0: never).
static LOG_EVERY: AtomicU64 = AtomicU64::new(0);

fn slot<T>(table: &'static [T; CPUS]) -> Option<&'static T> {
    table.get(cpu_local::index())
}

fn on_tick(event: TimerEvent) {
    let Some(count) = slot(&TICKS) else { return };
    // A deadline after this CPU's window closed is not counted: the window
    // ends where its due deadlines were counted (`close_window`).
    if slot(&WINDOW_END).is_some_and(|end| event.deadline > end.load(Ordering::Relaxed)) {
        return;
    }
    let n = count.fetch_add(1, Ordering::Relaxed) + 1;
    let every = LOG_EVERY.load(Ordering::Relaxed);
    if every != 0 && n.is_multiple_of(every) {
        log::info!(target: "storm", "cpu {} tick {n} logged from its timer interrupt", cpu_local::index());
    }
}

/// Each CPU's periodic deadline, to cancel it.
static HANDLES: [IrqSafeSpinlock<Option<TimerHandle>>; CPUS] =
    [const { IrqSafeSpinlock::new(None) }; CPUS];

/// Each CPU's first deadline, and the deadlines that fell due on it before
/// its timer was stopped: its own window, which starts and ends when the
/// start and stop calls reach it (IPIs that a loaded host may delay by
/// milliseconds), not when the boot CPU sent them.
static FIRST_DEADLINE: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
static DUE: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
/// Where each CPU's window closed (`u64::MAX`: open).
static WINDOW_END: [AtomicU64; CPUS] = [const { AtomicU64::new(u64::MAX) }; CPUS];

/// Starts this CPU's periodic timer (run on every CPU).
fn start_timer(_cpu: usize) {
    let period = PERIOD.load(Ordering::Relaxed);
    if let (Some(t), Some(now), Some(handle)) =
        (timer::this_cpu(), timer::now_ticks(), slot(&HANDLES))
    {
        if let Some(first) = slot(&FIRST_DEADLINE) {
            first.store(now + period, Ordering::Relaxed);
        }
        if let Some(end) = slot(&WINDOW_END) {
            end.store(u64::MAX, Ordering::Relaxed);
        }
        *handle.lock() = t.start_periodic(now + period, period, on_tick).ok();
    }
}

/// Closes this CPU's window: the deadlines due up to now are the ones its
/// callbacks must run (late ones still may, after this; later ones are not
/// counted).
fn close_window(_cpu: usize) {
    let period = PERIOD.load(Ordering::Relaxed).max(1);
    if let (Some(now), Some(first), Some(due), Some(end)) = (
        timer::now_ticks(),
        slot(&FIRST_DEADLINE),
        slot(&DUE),
        slot(&WINDOW_END),
    ) {
        let first = first.load(Ordering::Relaxed);
        let count = now.checked_sub(first).map_or(0, |d| d / period + 1);
        due.store(count, Ordering::Relaxed);
        end.store(first + count.saturating_sub(1) * period, Ordering::Relaxed);
    }
}

fn stop_timer(_cpu: usize) {
    if let (Some(t), Some(handle)) = (timer::this_cpu(), slot(&HANDLES))
        && let Some(handle) = handle.lock().take()
    {
        t.cancel(handle);
    }
}

fn mark_reached(_cpu: usize) {
    if let Some(at) = slot(&REACHED_AT) {
        at.store(timer::now_ticks().unwrap_or(1).max(1), Ordering::Relaxed);
    }
}

fn cpus() -> usize {
    smp::online_cpus().min(CPUS)
}

/// `test=ipi-all`: a call IPI from the boot CPU reaches every other CPU.
pub fn ipi_all() {
    let hz = time::ticks_per_second().unwrap_or(1);
    let start = timer::now_ticks().unwrap_or(0);
    let reached = smp::call_on_others::<Arch>(mark_reached);
    let slowest = REACHED_AT[1..cpus()]
        .iter()
        .map(|t| t.load(Ordering::Relaxed).saturating_sub(start))
        .max()
        .unwrap_or(0);
    logger::write_raw(format_args!(
        "stratus: ipi-all cpus={} reached={reached} expected={} max_latency_us={}\n",
        cpus(),
        cpus() - 1,
        time::ticks_to_micros(slowest, hz)
    ));
}

/// Runs every CPU's periodic timer at `rate_hz` for `window`, the boot CPU
/// logging a line every 20 ms when `log` is set; returns the window in
/// ticks and the expected tick count.
fn run_everywhere(rate_hz: u64, window: Duration, log: bool) -> Option<(u64, u64)> {
    let hz = time::ticks_per_second()?;
    let window_ticks = timer::duration_to_ticks(window)?;
    PERIOD.store(hz / rate_hz, Ordering::Relaxed);
    TICKS.iter().for_each(|t| t.store(0, Ordering::Relaxed));
    let start = timer::now_ticks()?;
    smp::call_on_others::<Arch>(start_timer);
    start_timer(0);
    let mut line = 0u64;
    while timer::now_ticks()? < start + window_ticks {
        if log {
            line += 1;
            log::info!(target: "storm", "cpu 0 line {line}");
        }
        let _ = timer::sleep(Duration::from_millis(20));
    }
    let elapsed = timer::now_ticks()? - start;
    // Close every CPU's window, give late callbacks (a vCPU the host
    // stalled) time to run the deadlines already due, then stop.
    close_window(0);
    smp::call_on_others::<Arch>(close_window);
    // No more log lines from the handlers: the result line comes next.
    LOG_EVERY.store(0, Ordering::Relaxed);
    let _ = timer::sleep(LATE_GRACE);
    stop_timer(0);
    smp::call_on_others::<Arch>(stop_timer);
    Some((elapsed, elapsed / (hz / rate_hz)))
}

/// `test=timer-all`: each CPU's own 1 kHz timer for one second.
pub fn timer_all() {
    const RATE_HZ: u64 = 1000;
    let Some((elapsed, _)) = run_everywhere(RATE_HZ, Duration::from_secs(1), false) else {
        return log::error!("test: no timer");
    };
    let window_us = time::ticks_to_micros(elapsed, time::ticks_per_second().unwrap_or(1)).max(1);
    let rates = TICKS[..cpus()]
        .iter()
        .map(|t| t.load(Ordering::Relaxed) * 1_000_000 / window_us);
    let (min, max) = rates.fold((u64::MAX, 0), |(lo, hi), r| (lo.min(r), hi.max(r)));
    logger::write_raw(format_args!(
        "stratus: timer-all cpus={} expected_hz={RATE_HZ} min_rate_hz={min} max_rate_hz={max}\n",
        cpus()
    ));
}

/// `test=irq-storm-all`: a 5 kHz timer on every CPU for three seconds while
/// every CPU logs (the boot CPU every 20 ms, each handler every 1000th
/// tick): no CPU loses a tick and nothing deadlocks. Each CPU's window
/// is its own (from its first deadline to where `close_window` reached it),
/// and callbacks a stalled vCPU runs late still count (`LATE_GRACE`).
pub fn storm_all() {
    const RATE_HZ: u64 = 5000;
    LOG_EVERY.store(1000, Ordering::Relaxed);
    let result = run_everywhere(RATE_HZ, Duration::from_secs(3), true);
    LOG_EVERY.store(0, Ordering::Relaxed);
    let Some((_, expected)) = result else {
        return log::error!("test: no timer");
    };
    // Per CPU: the deadlines due in its own window that ran no callback.
    let lost = TICKS[..cpus()]
        .iter()
        .zip(&DUE)
        .map(|(t, due)| {
            due.load(Ordering::Relaxed)
                .saturating_sub(t.load(Ordering::Relaxed))
        })
        .max()
        .unwrap_or(expected);
    logger::write_raw(format_args!(
        "stratus: irq-storm-all cpus={} rate_hz={RATE_HZ} expected_ticks={expected} lost={lost}\n",
        cpus()
    ));
}

const IPI_SAMPLES: usize = 1000;
/// When CPU 1 entered the call IPI's handler, per sample.
static IPI_RECEIVED: AtomicU64 = AtomicU64::new(0);

fn record_receipt(cpu: usize) {
    if cpu == 1 {
        IPI_RECEIVED.store(timer::now_ticks().unwrap_or(0), Ordering::Relaxed);
    }
}

/// `bench=ipi-latency`: a call IPI from the boot CPU to CPU 1, 1000 times:
/// send to handler entry on CPU 1 (the counters of all CPUs count together:
/// TSC / CNTVCT), median and 99th percentile in ticks and ns.
pub fn ipi_latency_bench() {
    let Some(hz) = time::ticks_per_second() else {
        return log::error!("bench: no clock");
    };
    if cpus() < 2 {
        return log::warn!("bench: ipi-latency needs a second CPU");
    }
    let mut samples = [0u64; IPI_SAMPLES];
    let mut n = 0;
    for sample in &mut samples {
        IPI_RECEIVED.store(0, Ordering::Relaxed);
        let sent = timer::now_ticks().unwrap_or(0);
        smp::call_on_others::<Arch>(record_receipt);
        let received = IPI_RECEIVED.load(Ordering::Relaxed);
        if received != 0 {
            *sample = received.saturating_sub(sent);
            n += 1;
        }
    }
    if n == 0 {
        return log::error!("bench: no IPI reached CPU 1");
    }
    let samples = &mut samples[..n];
    samples.sort_unstable();
    let (median, p99) = (samples[n / 2], samples[(n * 99 / 100).min(n - 1)]);
    let ns = |ticks: u64| (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64;
    logger::write_raw(format_args!(
        "stratus: bench ipi_latency_samples={n} ipi_latency_median_ticks={median} ipi_latency_p99_ticks={p99} ipi_latency_median_ns={} ipi_latency_p99_ns={}\n",
        ns(median),
        ns(p99)
    ));
}

fn power_off_here(cpu: usize) {
    if cpu == 1 {
        log::info!("test: powering off from cpu {cpu}");
        panic::stop(ExitStatus::Success);
    }
}

/// `test=power-off-cpu1`: the machine is powered off by CPU 1 (in its call
/// IPI's handler) while the boot CPU waits: power-off works from any CPU.
pub fn power_off_from_cpu1() {
    smp::call_on_others::<Arch>(power_off_here);
    log::error!("test: cpu 1 did not power the machine off");
}
