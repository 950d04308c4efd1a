//! The HPET's main counter as a reference clock (IA-PC HPET specification
//! 1.0a, 2.3): used to measure the CPU counter's frequency where the
//! architecture does not state it and there is no ACPI PM timer (or when
//! the command line says `clock=hpet`).

use core::fmt;
use stratus_driver_api::IoMem;

/// Bytes of the register block to map.
pub const REGISTER_BLOCK_BYTES: u64 = 0x400;

/// General capabilities and id register.
const CAPABILITIES: usize = 0x00;
/// General configuration register.
const CONFIGURATION: usize = 0x10;
/// Main counter value register.
const MAIN_COUNTER: usize = 0xf0;
/// Configuration: the main counter runs.
const ENABLE_CNF: u64 = 1;
/// Capabilities: the main counter is 64 bits wide.
const COUNT_SIZE_CAP: u64 = 1 << 13;
/// The longest counter period the specification allows: 100 ns, in fs.
const MAX_PERIOD_FS: u64 = 100_000_000;
/// Reads allowed for the counter to show it runs.
const RUN_CHECK_READS: u32 = 10_000;

/// Why the HPET cannot serve as a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpetClockError {
    /// The counter period is zero or longer than 100 ns (all ones: nothing
    /// answers at that address).
    BadPeriod(u64),
    /// The main counter did not advance.
    Stopped,
    /// A register could not be read.
    Registers,
}

impl fmt::Display for HpetClockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPeriod(fs) => write!(
                f,
                "counter period {fs} fs is outside 1..=100000000 (no HPET there?)"
            ),
            Self::Stopped => f.write_str("the main counter does not run"),
            Self::Registers => f.write_str("registers out of reach"),
        }
    }
}

/// The main counter's frequency and width, from the capabilities register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterSpec {
    /// Ticks per second.
    pub hz: u64,
    /// Width: 32 or 64 bits.
    pub bits: u32,
}

/// Decodes the capabilities register.
pub fn counter_spec(capabilities: u64) -> Result<CounterSpec, HpetClockError> {
    let period_fs = capabilities >> 32;
    if period_fs == 0 || period_fs > MAX_PERIOD_FS {
        return Err(HpetClockError::BadPeriod(period_fs));
    }
    Ok(CounterSpec {
        hz: 1_000_000_000_000_000 / period_fs,
        bits: if capabilities & COUNT_SIZE_CAP != 0 {
            64
        } else {
            32
        },
    })
}

/// The running main counter.
#[derive(Debug)]
pub struct HpetCounter {
    regs: IoMem,
    spec: CounterSpec,
}

impl HpetCounter {
    /// Checks the block at `regs`, starts the main counter if firmware left
    /// it stopped, and checks that it runs.
    pub fn open(regs: IoMem) -> Result<Self, HpetClockError> {
        let capabilities = regs
            .read::<u64>(CAPABILITIES)
            .map_err(|_| HpetClockError::Registers)?;
        let spec = counter_spec(capabilities)?;
        let config = regs
            .read::<u64>(CONFIGURATION)
            .map_err(|_| HpetClockError::Registers)?;
        if config & ENABLE_CNF == 0 {
            regs.write::<u64>(CONFIGURATION, config | ENABLE_CNF)
                .map_err(|_| HpetClockError::Registers)?;
        }
        let counter = Self { regs, spec };
        let first = counter.read();
        if (0..RUN_CHECK_READS).any(|_| counter.read() != first) {
            Ok(counter)
        } else {
            Err(HpetClockError::Stopped)
        }
    }

    /// Frequency and width.
    pub fn spec(&self) -> CounterSpec {
        self.spec
    }

    /// The main counter.
    pub fn read(&self) -> u64 {
        let value = if self.spec.bits == 64 {
            self.regs.read::<u64>(MAIN_COUNTER)
        } else {
            self.regs.read::<u32>(MAIN_COUNTER).map(u64::from)
        };
        value.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_driver_api::CachePolicy;

    #[test]
    fn the_period_gives_the_frequency_and_nonsense_is_refused() {
        // QEMU's HPET: 10 ns period, 64-bit counter.
        let qemu = (10_000_000u64 << 32) | COUNT_SIZE_CAP | 0x8086_a201;
        assert_eq!(
            counter_spec(qemu),
            Ok(CounterSpec {
                hz: 100_000_000,
                bits: 64
            })
        );
        // A 14.318 MHz chipset HPET with a 32-bit counter.
        assert_eq!(
            counter_spec(69_841_279u64 << 32),
            Ok(CounterSpec {
                hz: 14_318_179,
                bits: 32
            })
        );
        assert_eq!(
            counter_spec(u64::MAX),
            Err(HpetClockError::BadPeriod(0xffff_ffff))
        );
        assert_eq!(counter_spec(0x1234), Err(HpetClockError::BadPeriod(0)));
    }

    #[test]
    fn a_stopped_counter_is_started_and_a_dead_one_refused() {
        // Registers in ordinary memory: the counter never moves.
        let mut block = [0u64; (REGISTER_BLOCK_BYTES / 8) as usize];
        block[0] = 10_000_000u64 << 32 | COUNT_SIZE_CAP;
        // SAFETY: `block` stands in for the register block and outlives
        // `regs`.
        let regs = unsafe {
            IoMem::new(
                block.as_mut_ptr() as usize,
                0xfed0_0000,
                REGISTER_BLOCK_BYTES as usize,
                CachePolicy::Uncached,
            )
        };
        assert_eq!(HpetCounter::open(regs).err(), Some(HpetClockError::Stopped));
        assert_eq!(block[CONFIGURATION / 8] & ENABLE_CNF, ENABLE_CNF);
    }
}
