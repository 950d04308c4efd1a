//! The arithmetic of the block read benchmark, the same on both sides of
//! the comparison: the demo kernel's `bench=block` and `blockbench-linux`,
//! the helper the Linux reference guest runs (`ci/linux_guest.py`).
//!
//! * [`Offsets`]: the pseudo-random request positions (xorshift64*, one
//!   seed per stream, so both sides read the same kind of sequence);
//! * [`Summary`]: IOPS, MiB/s, median and 99th percentile latency from the
//!   recorded per-request latencies;
//! * [`InflightMeter`]: the time-weighted mean number of requests in
//!   flight, which shows whether a run really held its queue depth;
//! * [`Line`]: the one-line report both sides print and `ci/bench.py`
//!   parses.
//!
//! No I/O and no clock here: callers measure in nanoseconds and pass the
//! numbers in.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

/// Latencies a run records at most: a workload ends after its time or after
/// this many reads, whichever comes first (4 MiB of samples; far beyond what
/// TCG reaches in seconds, but a bound for faster machines).
pub const MAX_SAMPLES: usize = 1 << 19;

/// The workloads, by the name printed in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// 4 KiB reads at random 4 KiB-aligned offsets, one at a time.
    Rand4kQd1,
    /// 4 KiB reads at random offsets, 32 in flight.
    Rand4kQd32,
    /// 128 KiB reads one after the other from the start, one at a time.
    Seq128kQd1,
    /// As [`Workload::Rand4kQd32`], by 32 threads doing one read at a time
    /// (the Linux helper's second way to reach depth 32; not in
    /// [`Workload::ALL`]).
    Rand4kQd32Threads,
}

impl Workload {
    /// All of them, in the order they run.
    pub const ALL: [Workload; 3] = [Self::Rand4kQd1, Self::Rand4kQd32, Self::Seq128kQd1];

    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rand4kQd1 => "rand4k-qd1",
            Self::Rand4kQd32 => "rand4k-qd32",
            Self::Seq128kQd1 => "seq128k-qd1",
            Self::Rand4kQd32Threads => "rand4k-qd32-threads",
        }
    }

    /// Bytes per request.
    pub fn request_bytes(self) -> usize {
        match self {
            Self::Rand4kQd1 | Self::Rand4kQd32 | Self::Rand4kQd32Threads => 4096,
            Self::Seq128kQd1 => 128 * 1024,
        }
    }

    /// Requests in flight.
    pub fn depth(self) -> usize {
        match self {
            Self::Rand4kQd32 | Self::Rand4kQd32Threads => 32,
            _ => 1,
        }
    }

    /// The random seed of stream `stream` (the same on both sides; the
    /// threaded depth-32 run uses the seeds of the other).
    pub fn seed(self, stream: usize) -> u64 {
        let base = match self {
            Self::Rand4kQd32Threads => Self::Rand4kQd32,
            other => other,
        };
        0x5354_5241_5455_5300 + (base as u64) * 1000 + stream as u64
    }

    /// Whether positions are random (else sequential, wrapping at the end).
    pub fn random(self) -> bool {
        !matches!(self, Self::Seq128kQd1)
    }
}

/// Request positions, in units of the request size, below `slots`.
///
/// Random workloads draw from xorshift64* (Vigna, "An experimental
/// exploration of Marsaglia's xorshift generators"), reduced to the range
/// by a multiply-shift (no division, negligible bias for ranges far below
/// 2^32); sequential ones count up and wrap.
#[derive(Clone, Debug)]
pub struct Offsets {
    state: u64,
    slots: u64,
    random: bool,
    next: u64,
}

impl Offsets {
    /// Positions below `slots` (at least 1); `seed` picks the random
    /// sequence (0 is replaced, xorshift must not start at 0).
    pub fn new(seed: u64, slots: u64, random: bool) -> Self {
        Self {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
            slots: slots.max(1),
            random,
            next: 0,
        }
    }

    /// The next position.
    pub fn next_slot(&mut self) -> u64 {
        if !self.random {
            let slot = self.next;
            self.next = (self.next + 1) % self.slots;
            return slot;
        }
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
        (r * self.slots) >> 32
    }
}

/// The value at percentile `pct` (0..=100) of `sorted` (ascending), by the
/// nearest-rank method: the smallest value with at least `pct` % of the
/// values at or below it. 0 for an empty slice.
pub fn percentile(sorted: &[u64], pct: u32) -> u64 {
    let n = sorted.len() as u64;
    if n == 0 {
        return 0;
    }
    let rank = (u64::from(pct.min(100)) * n).div_ceil(100).max(1);
    sorted[(rank - 1) as usize]
}

/// What one workload measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Requests completed.
    pub ops: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time of the run, ns.
    pub elapsed_ns: u64,
    /// Median request latency, ns.
    pub median_ns: u64,
    /// 99th percentile request latency, ns.
    pub p99_ns: u64,
}

impl Summary {
    /// From the latencies of every request (sorted here), the bytes each
    /// request read, and the run's wall time.
    pub fn new(latencies_ns: &mut [u64], request_bytes: usize, elapsed_ns: u64) -> Self {
        latencies_ns.sort_unstable();
        let ops = latencies_ns.len() as u64;
        Self {
            ops,
            bytes: ops * request_bytes as u64,
            elapsed_ns,
            median_ns: percentile(latencies_ns, 50),
            p99_ns: percentile(latencies_ns, 99),
        }
    }

    /// Requests per second.
    pub fn iops(&self) -> u64 {
        if self.elapsed_ns == 0 {
            return 0;
        }
        (u128::from(self.ops) * 1_000_000_000 / u128::from(self.elapsed_ns)) as u64
    }

    /// MiB per second, in tenths.
    pub fn mib_per_s_tenths(&self) -> u64 {
        if self.elapsed_ns == 0 {
            return 0;
        }
        (u128::from(self.bytes) * 10_000_000_000 / (u128::from(self.elapsed_ns) << 20)) as u64
    }
}

/// The time-weighted mean of the number of requests in flight.
#[derive(Clone, Copy, Debug, Default)]
pub struct InflightMeter {
    in_flight: u64,
    last_ns: Option<u64>,
    first_ns: u64,
    area: u128,
}

impl InflightMeter {
    /// A meter with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// At time `now_ns` one request more (`up`) or one fewer is in flight.
    pub fn change(&mut self, now_ns: u64, up: bool) {
        match self.last_ns {
            Some(last) => {
                self.area += u128::from(self.in_flight) * u128::from(now_ns.saturating_sub(last))
            }
            None => self.first_ns = now_ns,
        }
        self.last_ns = Some(now_ns);
        self.in_flight = if up {
            self.in_flight + 1
        } else {
            self.in_flight.saturating_sub(1)
        };
    }

    /// Requests in flight right now.
    pub fn current(&self) -> u64 {
        self.in_flight
    }

    /// The mean from the first change to the last, in hundredths.
    pub fn mean_hundredths(&self) -> u64 {
        let span = self.last_ns.map_or(0, |last| last - self.first_ns);
        if span == 0 {
            return 0;
        }
        (self.area * 100 / u128::from(span)) as u64
    }
}

/// One report line: `<prefix>: bench block disk=... workload=... ops=...
/// iops=... lat_median_us=... lat_p99_us=... mib_s=... elapsed_ms=...
/// inflight_mean=... errors=...` (decimals with one or two places, no
/// floating point).
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    /// `stratus` or `linux`.
    pub prefix: &'a str,
    /// The disk's name on that side.
    pub disk: &'a str,
    /// The workload.
    pub workload: Workload,
    /// What it measured.
    pub summary: Summary,
    /// Mean requests in flight, hundredths.
    pub inflight_hundredths: u64,
    /// Requests that failed (not counted in `summary`).
    pub errors: u64,
}

/// `ns` as microseconds with one decimal.
struct Micros(u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = (self.0 + 50) / 100;
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        let mib = s.mib_per_s_tenths();
        write!(
            f,
            "{}: bench block disk={} workload={} ops={} iops={} lat_median_us={} lat_p99_us={} \
             mib_s={}.{} elapsed_ms={} inflight_mean={}.{:02} errors={}",
            self.prefix,
            self.disk,
            self.workload.name(),
            s.ops,
            s.iops(),
            Micros(s.median_ns),
            Micros(s.p99_ns),
            mib / 10,
            mib % 10,
            s.elapsed_ns / 1_000_000,
            self.inflight_hundredths / 100,
            self.inflight_hundredths % 100,
            self.errors
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&v, 100), 100);
        assert_eq!(percentile(&v, 0), 1);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
        // 10 values: the 99th percentile is the largest.
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&v, 99), 10);
        assert_eq!(percentile(&v, 50), 5);
    }

    #[test]
    fn random_offsets_stay_in_range_and_spread() {
        let mut o = Offsets::new(1, 1000, true);
        let mut seen = [0u32; 1000];
        for _ in 0..100_000 {
            let s = o.next_slot();
            assert!(s < 1000);
            seen[s as usize] += 1;
        }
        // Every slot drawn, none far more often than the mean of 100.
        assert!(seen.iter().all(|&c| c > 40 && c < 200), "{seen:?}");
        // Different seeds, different sequences; the same seed, the same one.
        let a: Vec<u64> = (0..8)
            .map(|_| Offsets::new(2, 1 << 20, true).next_slot())
            .collect();
        let mut b = Offsets::new(3, 1 << 20, true);
        let mut c = Offsets::new(3, 1 << 20, true);
        let b: Vec<u64> = (0..8).map(|_| b.next_slot()).collect();
        let c: Vec<u64> = (0..8).map(|_| c.next_slot()).collect();
        assert_eq!(b, c);
        assert_ne!(a, b);
        // Seed 0 still moves.
        let mut z = Offsets::new(0, 1 << 20, true);
        assert_ne!(z.next_slot(), z.next_slot());
    }

    #[test]
    fn sequential_offsets_wrap() {
        let mut o = Offsets::new(5, 3, false);
        let v: Vec<u64> = (0..7).map(|_| o.next_slot()).collect();
        assert_eq!(v, [0, 1, 2, 0, 1, 2, 0]);
        let mut one = Offsets::new(5, 0, true);
        assert_eq!(one.next_slot(), 0);
    }

    #[test]
    fn a_summary_gives_rates_and_the_report_line() {
        let mut lat: Vec<u64> = (1..=1000).rev().map(|i| i * 1000).collect();
        let s = Summary::new(&mut lat, 4096, 500_000_000);
        assert_eq!(s.ops, 1000);
        assert_eq!(s.iops(), 2000);
        assert_eq!(s.median_ns, 500_000);
        assert_eq!(s.p99_ns, 990_000);
        // 4096000 bytes in 0.5 s = 7.8125 MiB/s.
        assert_eq!(s.mib_per_s_tenths(), 78);
        let line = Line {
            prefix: "stratus",
            disk: "nvme0n1",
            workload: Workload::Rand4kQd32,
            summary: s,
            inflight_hundredths: 3150,
            errors: 0,
        };
        assert_eq!(
            line.to_string(),
            "stratus: bench block disk=nvme0n1 workload=rand4k-qd32 ops=1000 iops=2000 \
             lat_median_us=500.0 lat_p99_us=990.0 mib_s=7.8 elapsed_ms=500 \
             inflight_mean=31.50 errors=0"
        );
        let empty = Summary::new(&mut [], 4096, 0);
        assert_eq!((empty.iops(), empty.mib_per_s_tenths()), (0, 0));
        assert_eq!(Micros(1_449).to_string(), "1.4");
        assert_eq!(Micros(1_450).to_string(), "1.5");
    }

    #[test]
    fn the_inflight_meter_weights_by_time() {
        let mut m = InflightMeter::new();
        assert_eq!(m.mean_hundredths(), 0);
        m.change(0, true);
        m.change(0, true); // 2 in flight over 0..10
        m.change(10, false); // 1 over 10..30
        m.change(30, false);
        assert_eq!(m.current(), 0);
        // (2 * 10 + 1 * 20) / 30 = 1.33
        assert_eq!(m.mean_hundredths(), 133);
        m.change(40, false);
        assert_eq!(m.current(), 0);
    }
}
