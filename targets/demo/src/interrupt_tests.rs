//! Interrupt and timer checks run by command-line switches. Each prints one
//! `stratus: ...` line of measured figures that the QEMU tests bound
//! (ci/qemu_test.py) or the benchmark collects (ci/bench.py).
//!
//! Every figure comes from the monotonic clock (TSC / CNTVCT) and from
//! counts kept by the timer callbacks, which run in the timer interrupt.

use crate::platform::kernel_core::__arch::{self as platform_arch, InterruptId, InterruptLine};
use crate::platform::kernel_core::{irq, logger, time, timer};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use timer::{DeadlineTimer, TimerEvent};

static TICKS: AtomicU64 = AtomicU64::new(0);
static MAX_LATE: AtomicU64 = AtomicU64::new(0);
/// Log a line from the interrupt handler every this many ticks (0: never).
static LOG_EVERY: AtomicU64 = AtomicU64::new(0);

/// The end of the measured window: only deadlines before it are counted.
static WINDOW_END: AtomicU64 = AtomicU64::new(u64::MAX);

fn on_tick(event: TimerEvent) {
    if event.deadline >= WINDOW_END.load(Ordering::Relaxed) {
        return;
    }
    let n = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    MAX_LATE.fetch_max(
        event.entered.saturating_sub(event.deadline),
        Ordering::Relaxed,
    );
    let every = LOG_EVERY.load(Ordering::Relaxed);
    if every != 0 && n.is_multiple_of(every) {
        log::info!(target: "storm", "tick {n} logged from the timer interrupt");
    }
}

fn timer_and_hz() -> Option<(&'static DeadlineTimer, u64, u64)> {
    let hz = time::ticks_per_second()?;
    let now = timer::now_ticks()?;
    let t = timer::this_cpu()?;
    Some((t, hz, now))
}

fn micros(ticks: u64, hz: u64) -> u64 {
    time::ticks_to_micros(ticks, hz)
}

/// How long, after the window, callbacks for the window's last deadlines
/// may still arrive (a host that stalls the virtual CPU delays them; they
/// are late, not lost).
const LATE_GRACE: Duration = Duration::from_millis(500);

/// Runs a periodic timer at `rate_hz` for `window`; `busy` runs meanwhile.
/// Every deadline inside the window must produce one callback: callbacks
/// for deadlines after it are not counted, and those for deadlines inside
/// it that arrive late (up to [`LATE_GRACE`] after it) still are. Returns
/// (callbacks counted, deadlines in the window, window in ticks).
fn run_periodic(
    rate_hz: u64,
    window: Duration,
    mut busy: impl FnMut(u64),
) -> Option<(u64, u64, u64)> {
    let (t, hz, start) = timer_and_hz()?;
    let period = hz / rate_hz;
    let window_ticks = timer::duration_to_ticks(window)?;
    TICKS.store(0, Ordering::Relaxed);
    MAX_LATE.store(0, Ordering::Relaxed);
    let first = start + period;
    let end = start + window_ticks;
    WINDOW_END.store(end, Ordering::Relaxed);
    let expected = (end - first).div_ceil(period);
    let handle = t.start_periodic(first, period, on_tick).ok()?;
    loop {
        let now = timer::now_ticks()?;
        if now >= end {
            break;
        }
        busy(end);
    }
    let grace_end = end + timer::duration_to_ticks(LATE_GRACE)?;
    while TICKS.load(Ordering::Relaxed) < expected && timer::now_ticks()? < grace_end {
        core::hint::spin_loop();
    }
    t.cancel(handle);
    WINDOW_END.store(u64::MAX, Ordering::Relaxed);
    Some((TICKS.load(Ordering::Relaxed), expected, window_ticks))
}

fn missing() {
    log::error!("test: no timer on this CPU (see the irq/timer lines above)");
}

/// `test=timer`: a 1 kHz periodic timer for one second.
pub fn timer_rate() {
    const RATE_HZ: u64 = 1000;
    let Some((ticks, expected, elapsed)) = run_periodic(RATE_HZ, Duration::from_secs(1), |_| {
        let _ = timer::sleep(Duration::from_millis(50));
    }) else {
        return missing();
    };
    let hz = time::ticks_per_second().unwrap_or(1);
    let window_us = micros(elapsed, hz);
    logger::write_raw(format_args!(
        "stratus: timer rate_hz={} expected_hz={RATE_HZ} ticks={ticks} expected_ticks={expected} window_ms={}\n",
        ticks * 1_000_000 / window_us.max(1),
        window_us / 1000
    ));
}

/// `test=sleep`: five 100 ms sleeps measured on the clock; the median is
/// the figure (a busy host may stop the virtual CPU for tens of ms at any
/// time, which one sample would carry), the shortest and longest are shown.
pub fn sleep_100ms() {
    const RUNS: usize = 5;
    let mut measured = [0u64; RUNS];
    let hz = time::ticks_per_second().unwrap_or(1);
    for m in &mut measured {
        let Some(start) = timer::now_ticks() else {
            return missing();
        };
        if let Err(e) = timer::sleep(Duration::from_millis(100)) {
            log::error!("test: sleep failed: {e}");
            return;
        }
        *m = micros(timer::now_ticks().unwrap_or(start) - start, hz);
    }
    measured.sort_unstable();
    logger::write_raw(format_args!(
        "stratus: sleep requested_ms=100 runs={RUNS} min_us={} max_us={} measured_us={}\n",
        measured[0],
        measured[RUNS - 1],
        measured[RUNS / 2]
    ));
}

/// `test=irq-storm`: a 5 kHz timer for three seconds while the CPU logs
/// continuously and the handler logs every 1000th tick: no tick may be
/// lost and nothing may deadlock (the logger's lock masks interrupts).
pub fn storm() {
    const RATE_HZ: u64 = 5000;
    const SECONDS: u64 = 3;
    LOG_EVERY.store(1000, Ordering::Relaxed);
    let mut lines = 0u64;
    let result = run_periodic(RATE_HZ, Duration::from_secs(SECONDS), |end| {
        lines += 1;
        log::info!(
            target: "storm",
            "cpu line {lines}, {} ticks so far",
            TICKS.load(Ordering::Relaxed)
        );
        // Keep logging for the whole window, a line every ~20 ms.
        let next = timer::now_ticks().unwrap_or(end)
            + timer::duration_to_ticks(Duration::from_millis(20)).unwrap_or(0);
        while timer::now_ticks().unwrap_or(end) < next.min(end) {
            core::hint::spin_loop();
        }
    });
    LOG_EVERY.store(0, Ordering::Relaxed);
    let Some((ticks, expected, elapsed)) = result else {
        return missing();
    };
    let hz = time::ticks_per_second().unwrap_or(1);
    logger::write_raw(format_args!(
        "stratus: irq-storm rate_hz={RATE_HZ} seconds={SECONDS} ticks={ticks} expected_ticks={expected} lost={} max_late_us={} cpu_log_lines={lines} window_ms={}\n",
        expected.saturating_sub(ticks),
        micros(MAX_LATE.load(Ordering::Relaxed), hz),
        micros(elapsed, hz) / 1000
    ));
}

static IPI_SEEN: AtomicBool = AtomicBool::new(false);
static IPI_AT: AtomicU64 = AtomicU64::new(0);

fn on_ipi(_id: InterruptId) {
    IPI_AT.store(timer::now_ticks().unwrap_or(0), Ordering::Relaxed);
    IPI_SEEN.store(true, Ordering::Release);
}

/// `test=ipi`: an inter-processor interrupt sent to this CPU itself
/// arrives (waiting at most 100 ms).
pub fn self_ipi() {
    let Some(interrupts) = irq::interrupts() else {
        return missing();
    };
    let id = match interrupts.allocate(on_ipi) {
        Ok(id) => id,
        Err(e) => return log::error!("test: no id for an IPI: {e}"),
    };
    let me = interrupts.this_cpu();
    let start = timer::now_ticks().unwrap_or(0);
    if let Err(e) = interrupts.send_ipi(me, id) {
        return log::error!("test: IPI to {:#x} failed: {e}", me.0);
    }
    let _ = timer::sleep(Duration::from_millis(100));
    let hz = time::ticks_per_second().unwrap_or(1);
    let seen = IPI_SEEN.load(Ordering::Acquire);
    logger::write_raw(format_args!(
        "stratus: ipi target={:#x} id={} delivered={} latency_us={}\n",
        me.0,
        id.0,
        if seen { "yes" } else { "no" },
        if seen {
            micros(IPI_AT.load(Ordering::Relaxed).saturating_sub(start), hz)
        } else {
            0
        }
    ));
    interrupts.free(id);
}

const LATENCY_SAMPLES: usize = 1000;
static LATENCIES: [AtomicU64; LATENCY_SAMPLES] = [const { AtomicU64::new(0) }; LATENCY_SAMPLES];
static LATENCY_COUNT: AtomicUsize = AtomicUsize::new(0);

fn record_latency(event: TimerEvent) {
    let i = LATENCY_COUNT.fetch_add(1, Ordering::Relaxed);
    if let Some(slot) = LATENCIES.get(i) {
        slot.store(
            event.entered.saturating_sub(event.deadline),
            Ordering::Relaxed,
        );
    }
}

/// `bench=irq-latency`: timer deadline to handler entry for 1000 periodic
/// deadlines 1 ms apart: median and 99th percentile in counter ticks and ns.
pub fn latency_bench() {
    let Some((t, hz, start)) = timer_and_hz() else {
        return missing();
    };
    let period = hz / 1000;
    LATENCY_COUNT.store(0, Ordering::Relaxed);
    let Ok(handle) = t.start_periodic(start + period, period, record_latency) else {
        return missing();
    };
    let _ = timer::sleep(Duration::from_millis(LATENCY_SAMPLES as u64 + 50));
    t.cancel(handle);
    let n = LATENCY_COUNT.load(Ordering::Relaxed).min(LATENCY_SAMPLES);
    if n == 0 {
        return log::error!("bench: the timer never fired");
    }
    let mut samples = [0u64; LATENCY_SAMPLES];
    for (s, l) in samples.iter_mut().zip(&LATENCIES).take(n) {
        *s = l.load(Ordering::Relaxed);
    }
    let samples = &mut samples[..n];
    samples.sort_unstable();
    let median = samples[n / 2];
    let p99 = samples[(n * 99 / 100).min(n - 1)];
    let ns = |ticks: u64| (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64;
    logger::write_raw(format_args!(
        "stratus: bench irq_latency_samples={n} irq_latency_median_ticks={median} irq_latency_p99_ticks={p99} irq_latency_median_ns={} irq_latency_p99_ns={}\n",
        ns(median),
        ns(p99)
    ));
}

static PIT_IRQS: AtomicU64 = AtomicU64::new(0);

fn on_pit(_id: InterruptId) {
    PIT_IRQS.fetch_add(1, Ordering::Relaxed);
}

/// `test=isa-irq` (x86): the legacy PIT on ISA IRQ 0, which the MADT's
/// interrupt source override sends to another GSI (2 on QEMU), programmed
/// at 1 kHz for 200 ms: a device line through the I/O APIC.
pub fn isa_irq(port_io: Option<platform_arch::PortIo>) {
    const PIT_HZ: u32 = 1_193_182;
    const RATE_HZ: u32 = 1000;
    let (Some(io), Some(interrupts)) = (port_io, irq::interrupts()) else {
        return missing();
    };
    let id = match interrupts.request_line(InterruptLine::Isa(0), on_pit) {
        Ok(id) => id,
        Err(e) => return log::error!("test: ISA IRQ 0: {e}"),
    };
    // Channel 0, lobyte/hibyte, mode 2 (rate generator).
    let divisor = PIT_HZ / RATE_HZ;
    // SAFETY: 0x40 and 0x43 are the PC's PIT, which nothing
    // else in this kernel uses; these are its documented programming steps.
    unsafe {
        (io.write_u8)(0x43, 0x34);
        (io.write_u8)(0x40, (divisor & 0xff) as u8);
        (io.write_u8)(0x40, (divisor >> 8) as u8);
    }
    let start = timer::now_ticks().unwrap_or(0);
    let _ = timer::sleep(Duration::from_millis(200));
    let count = PIT_IRQS.load(Ordering::Relaxed);
    let elapsed = timer::now_ticks().unwrap_or(start) - start;
    // Back to a one-shot that never fires again, and the line masked.
    // SAFETY: as above.
    unsafe { (io.write_u8)(0x43, 0x30) };
    let _ = interrupts.release_line(InterruptLine::Isa(0), id);
    let hz = time::ticks_per_second().unwrap_or(1);
    let window_us = micros(elapsed, hz).max(1);
    logger::write_raw(format_args!(
        "stratus: isa-irq irq=0 vector={} interrupts={count} window_ms={} rate_hz={}\n",
        id.0,
        window_us / 1000,
        count * 1_000_000 / window_us
    ));
}
