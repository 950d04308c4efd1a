//! Measuring a counter's frequency against a reference clock of known
//! frequency (the ACPI PM timer on x86), robust against the measuring CPU
//! being stopped for a while between two reads — which happens to virtual
//! CPUs on a busy host, and would otherwise skew the result by any factor.
//!
//! Each end of a window is a bracketed sample: reference, counter,
//! reference, kept only when the two reference reads are close, so the
//! counter value belongs to a known reference time. Three windows are
//! measured and the median taken.

/// Elapsed ticks of a wrapping counter `bits` wide between two readings.
pub fn wrapping_delta(earlier: u64, later: u64, bits: u32) -> u64 {
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    later.wrapping_sub(earlier) & mask
}

/// Reads while waiting for one window before giving up (a reference that
/// does not run).
const MAX_WAIT_READS: u64 = 50_000_000;
/// Tries for a tight bracket at each end of a window.
const BRACKET_TRIES: usize = 32;
/// A bracket this tight (reference ticks between the reads) is taken at once.
const TIGHT_BRACKET: u64 = 2;

/// A counter reading and the reference time it belongs to (the middle of
/// the bracketing reference reads, in reference ticks since `origin`).
fn bracketed_sample(
    counter: &impl Fn() -> u64,
    reference: &impl Fn() -> u64,
    bits: u32,
    origin: u64,
) -> (u64, u64) {
    let mut best: Option<(u64, u64, u64)> = None; // (spread, reference time, counter)
    for _ in 0..BRACKET_TRIES {
        let before = wrapping_delta(origin, reference(), bits);
        let count = counter();
        let after = wrapping_delta(origin, reference(), bits);
        let spread = after.saturating_sub(before);
        if best.is_none_or(|(s, _, _)| spread < s) {
            best = Some((spread, before + spread / 2, count));
        }
        if spread <= TIGHT_BRACKET {
            break;
        }
    }
    let (_, time, count) = best.unwrap_or((0, 0, counter()));
    (time, count)
}

/// One window of about `window` reference ticks; `None` when the reference
/// does not advance.
fn measure_once(
    counter: &impl Fn() -> u64,
    reference: &impl Fn() -> u64,
    reference_hz: u64,
    bits: u32,
    window: u64,
) -> Option<u64> {
    let origin = reference();
    let (t0, c0) = bracketed_sample(counter, reference, bits, origin);
    let mut reads = 0;
    while wrapping_delta(origin, reference(), bits) < t0 + window {
        reads += 1;
        if reads > MAX_WAIT_READS {
            return None;
        }
    }
    let (t1, c1) = bracketed_sample(counter, reference, bits, origin);
    let elapsed = t1.checked_sub(t0).filter(|&e| e > 0)?;
    Some((u128::from(c1.wrapping_sub(c0)) * u128::from(reference_hz) / u128::from(elapsed)) as u64)
}

/// Measures the frequency of `counter` against `reference` (frequency
/// `reference_hz`, `reference_bits` wide, wrapping) over three windows of
/// about `window_ref_ticks` reference ticks (which must be well below the
/// reference's wrap period); returns the median, or `None` when the
/// reference does not run.
pub fn calibrate(
    counter: impl Fn() -> u64,
    reference: impl Fn() -> u64,
    reference_hz: u64,
    reference_bits: u32,
    window_ref_ticks: u64,
) -> Option<u64> {
    let mut results = [0u64; 3];
    for r in &mut results {
        *r = measure_once(
            &counter,
            &reference,
            reference_hz,
            reference_bits,
            window_ref_ticks,
        )?;
    }
    results.sort_unstable();
    Some(results[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// Fake time in ns; every read advances it by 100 ns, and the read
    /// numbered `stall_at` by 200 ms (a virtual CPU descheduled).
    struct FakeClock {
        now_ns: Cell<u64>,
        reads: Cell<u64>,
        stall_at: u64,
    }

    impl FakeClock {
        fn read(&self, hz: u64) -> u64 {
            let n = self.reads.get() + 1;
            self.reads.set(n);
            let step = if n == self.stall_at { 200_000_000 } else { 100 };
            let t = self.now_ns.get() + step;
            self.now_ns.set(t);
            ((u128::from(t) * u128::from(hz)) / 1_000_000_000) as u64
        }
    }

    const PM_HZ: u64 = 3_579_545;

    fn run(stall_at: u64) -> u64 {
        let clock = FakeClock {
            now_ns: Cell::new(1_000_000_000),
            reads: Cell::new(0),
            stall_at,
        };
        let tsc = || clock.read(2_400_000_000);
        let pm = || clock.read(PM_HZ) & 0xff_ffff;
        calibrate(tsc, pm, PM_HZ, 24, PM_HZ / 100).unwrap()
    }

    #[test]
    fn calibrates_against_a_24_bit_pm_timer() {
        let hz = run(0);
        assert!(hz.abs_diff(2_400_000_000) < 2_400_000, "calibrated {hz} Hz");
    }

    #[test]
    fn a_stall_between_reads_does_not_skew_the_result() {
        // Stalls at the first sample, in the wait and in the end sample.
        for stall_at in [3, 5, 50, 200, 700] {
            let hz = run(stall_at);
            assert!(
                hz.abs_diff(2_400_000_000) < 24_000_000,
                "stall at read {stall_at}: calibrated {hz} Hz"
            );
        }
    }

    #[test]
    fn a_reference_that_stops_is_reported() {
        assert_eq!(calibrate(|| 5, || 7, PM_HZ, 24, 100), None);
    }

    #[test]
    fn delta_wraps_at_counter_width() {
        assert_eq!(wrapping_delta(0xff_fff0, 0x10, 24), 0x20);
        assert_eq!(wrapping_delta(5, 3, 64), u64::MAX - 1);
    }
}
