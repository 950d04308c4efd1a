//! Seeded mutation fuzzing that runs on stable Rust as a plain `#[test]`.
//!
//! Every parser that takes outside input (ELF files, Limine requests, memory
//! maps, device trees, ACPI tables, SPCR, the command line) has a fuzz target:
//! a test function named `fuzz_<parser>` that calls [`fuzz`] with a few valid
//! inputs (the corpus) and a closure that feeds one input to the parser. The
//! closure must not panic on any input; it may assert properties of the result.
//!
//! Each iteration takes a corpus entry and applies a few random mutations (bit
//! flips, boundary values written as 8-, 16-, 32- or 64-bit little- and
//! big-endian numbers, truncation, extension, duplicated, deleted or spliced
//! chunks). The generator is seeded, so a run is reproducible.
//!
//! Environment:
//! - `STRATUS_FUZZ_ITERATIONS`: inputs per target (default [`DEFAULT_ITERATIONS`],
//!   the short pass `make test` runs; `make fuzz` runs a long one).
//! - `STRATUS_FUZZ_SEED`: the base seed (default 0); each target mixes in its
//!   name, so targets explore different sequences.
//! - `STRATUS_FUZZ_REPLAY`: a file holding one input, run alone (to reproduce a
//!   failure).
//!
//! On a panic the input is written to `target/fuzz-failures/<name>-<seed>-<n>.bin`,
//! its size and first bytes are printed with the command that replays it, and
//! the test fails.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

/// Inputs per target when `STRATUS_FUZZ_ITERATIONS` is not set.
pub const DEFAULT_ITERATIONS: u64 = 3_000;

/// Largest input a mutation may grow to.
pub const MAX_INPUT: usize = 1 << 16;

/// A small, fast, seeded generator (xorshift64*). Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Self(splitmix(seed) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn name_hash(name: &str) -> u64 {
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Values that tend to sit on a parser's boundaries.
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// Applies one random mutation to `data`. `corpus` supplies splice material.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[&[u8]]) {
    match rng.below(9) {
        0 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] ^= 1 << rng.below(8);
        }
        1 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] = rng.next_u64() as u8;
        }
        2 if !data.is_empty() => {
            let width = [1usize, 2, 4, 8][rng.below(4)];
            let value = INTERESTING[rng.below(INTERESTING.len())]
                .wrapping_add(rng.below(3) as u64)
                .wrapping_sub(1);
            let bytes = if rng.one_in(2) {
                value.to_le_bytes()
            } else {
                (value << (64 - 8 * width as u32).min(63)).to_be_bytes()
            };
            let at = rng.below(data.len());
            let end = (at + width).min(data.len());
            data[at..end].copy_from_slice(&bytes[..end - at]);
        }
        3 => data.truncate(rng.below(data.len() + 1)),
        4 if data.len() < MAX_INPUT => {
            let extra = rng.below(64) + 1;
            let fill = rng.bytes(extra);
            data.extend_from_slice(&fill);
        }
        5 if !data.is_empty() && data.len() < MAX_INPUT => {
            let start = rng.below(data.len());
            let len = rng.below((data.len() - start).min(256)) + 1;
            let chunk = data[start..start + len].to_vec();
            let at = rng.below(data.len() + 1);
            data.splice(at..at, chunk);
        }
        6 if !data.is_empty() => {
            let start = rng.below(data.len());
            let len = rng.below((data.len() - start).min(256)) + 1;
            data.drain(start..start + len);
        }
        7 if !corpus.is_empty() => {
            let other = corpus[rng.below(corpus.len())];
            if !other.is_empty() && !data.is_empty() {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from) + 1;
                let at = rng.below(data.len());
                let end = (at + len).min(data.len());
                data[at..end].copy_from_slice(&other[from..from + (end - at)]);
            }
        }
        _ => {
            if let Some(byte) = data.last_mut() {
                *byte = byte.wrapping_add(1);
            }
        }
    }
}

/// Iterations for this run (`STRATUS_FUZZ_ITERATIONS`, else the default).
pub fn iterations() -> u64 {
    std::env::var("STRATUS_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS)
}

fn base_seed() -> u64 {
    std::env::var("STRATUS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn failure_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // Tests run with the crate's directory as working directory; the
            // workspace's target/ is found from the workspace manifest's place.
            let mut dir = std::env::current_dir().unwrap_or_default();
            while !dir.join("Cargo.lock").exists() && dir.pop() {}
            dir.join("target")
        });
    target.join("fuzz-failures")
}

fn report_failure(name: &str, seed: u64, iteration: u64, input: &[u8]) {
    let dir = failure_dir();
    let path = dir.join(format!("{name}-{seed}-{iteration}.bin"));
    let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input));
    let head: String = input.iter().take(64).map(|b| format!("{b:02x}")).collect();
    eprintln!(
        "fuzz {name}: input {iteration} (seed {seed}, {} bytes) panicked; first bytes {head}",
        input.len()
    );
    match saved {
        Ok(()) => eprintln!(
            "fuzz {name}: saved to {}; replay with STRATUS_FUZZ_REPLAY={} cargo test {name}",
            path.display(),
            path.display()
        ),
        Err(e) => eprintln!("fuzz {name}: could not save the input: {e}"),
    }
}

/// Runs `target` on mutations of `corpus` (and on each corpus entry as it is).
///
/// `name` identifies the target in messages and seeds its generator. Panics
/// (failing the calling test) when `target` panics on an input, after saving
/// that input.
pub fn fuzz(name: &str, corpus: &[&[u8]], mut target: impl FnMut(&[u8])) {
    if let Some(path) = std::env::var_os("STRATUS_FUZZ_REPLAY") {
        let input = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("fuzz {name}: cannot read {path:?}: {e}"));
        target(&input);
        return;
    }
    let seed = base_seed();
    let mut rng = Rng::new(seed ^ name_hash(name));
    let mut run_one = |iteration: u64, input: &[u8]| {
        if panic::catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            report_failure(name, seed, iteration, input);
            panic!("fuzz {name}: target panicked on input {iteration}");
        }
    };
    for (i, entry) in corpus.iter().enumerate() {
        run_one(i as u64, entry);
    }
    let mut input = Vec::new();
    for iteration in 0..iterations() {
        input.clear();
        if !corpus.is_empty() {
            input.extend_from_slice(corpus[rng.below(corpus.len())]);
        }
        for _ in 0..=rng.below(8) {
            mutate(&mut rng, &mut input, corpus);
        }
        run_one(corpus.len() as u64 + iteration, &input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_reproducible() {
        let a: Vec<u64> = (0..4)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }

    #[test]
    fn mutations_change_inputs_and_stay_bounded() {
        let mut rng = Rng::new(1);
        let seed = [0u8; 32];
        let mut changed = 0;
        for _ in 0..1000 {
            let mut data = seed.to_vec();
            for _ in 0..8 {
                mutate(&mut rng, &mut data, &[&seed]);
            }
            assert!(data.len() <= MAX_INPUT + 64);
            changed += usize::from(data != seed);
        }
        assert!(changed > 900, "only {changed} of 1000 inputs changed");
    }

    #[test]
    fn a_panicking_target_fails_the_run() {
        let result = panic::catch_unwind(|| {
            fuzz("self-test-panics", &[b"abcd"], |input| {
                assert!(input.len() == 4, "length changed");
            })
        });
        assert!(result.is_err());
    }

    #[test]
    fn a_sound_target_passes() {
        let mut seen = 0u64;
        fuzz("self-test-sound", &[b"abcd"], |input| {
            seen += 1;
            let _ = input.iter().map(|&b| u64::from(b)).sum::<u64>();
        });
        assert_eq!(seen, 1 + iterations());
    }
}
