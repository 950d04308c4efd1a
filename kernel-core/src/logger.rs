//! The kernel logger: `log` records to the console, one line each.
//!
//! Lines look like `[    0.012345] INFO  acpi: message`: seconds since kernel
//! entry (blank until the counter frequency is known), level, subsystem (the
//! last component of the record's target) and message. Records logged before
//! the console exists are kept in a small buffer and written when
//! [`attach_console`] is called.

use crate::console::ConsoleSink;
use crate::irq_lock::IrqSafeSpinlock;
use crate::time;
use core::fmt::{self, Write};
use log::{LevelFilter, Log, Metadata, Record};

/// Bytes of log kept before the console is attached.
const EARLY_BUFFER_SIZE: usize = 8192;

struct EarlyBuffer {
    bytes: [u8; EARLY_BUFFER_SIZE],
    len: usize,
    lost: usize,
}

impl EarlyBuffer {
    fn push(&mut self, data: &[u8]) {
        let room = EARLY_BUFFER_SIZE - self.len;
        let take = room.min(data.len());
        self.bytes[self.len..self.len + take].copy_from_slice(&data[..take]);
        self.len += take;
        self.lost += data.len() - take;
    }
}

struct LoggerState {
    sink: Option<&'static dyn ConsoleSink>,
    early: EarlyBuffer,
    ticks: Option<fn() -> u64>,
}

impl Write for LoggerState {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self.sink {
            Some(sink) => sink.write_bytes(s.as_bytes()),
            None => self.early.push(s.as_bytes()),
        }
        Ok(())
    }
}

// Interrupt-safe: a handler that logs while the interrupted code holds the
// lock would otherwise spin forever.
static STATE: IrqSafeSpinlock<LoggerState> = IrqSafeSpinlock::new(LoggerState {
    sink: None,
    early: EarlyBuffer {
        bytes: [0; EARLY_BUFFER_SIZE],
        len: 0,
        lost: 0,
    },
    ticks: None,
});

struct KernelLogger;

static LOGGER: KernelLogger = KernelLogger;

/// The subsystem shown for a record: the last `::` component of its target.
pub fn subsystem(target: &str) -> &str {
    target.rsplit("::").next().unwrap_or(target)
}

/// Writes a `[seconds.micros]` stamp, or blanks when the clock is unknown.
fn write_stamp(out: &mut dyn Write, micros: Option<u64>) -> fmt::Result {
    match micros {
        Some(us) => write!(out, "[{:5}.{:06}] ", us / 1_000_000, us % 1_000_000),
        None => out.write_str("[            ] "),
    }
}

/// Formats one record as a console line.
pub fn format_line(out: &mut dyn Write, micros: Option<u64>, record: &Record<'_>) -> fmt::Result {
    write_stamp(out, micros)?;
    writeln!(
        out,
        "{:<5} {}: {}",
        record.level(),
        subsystem(record.target()),
        record.args()
    )
}

impl Log for KernelLogger {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let mut state = STATE.lock();
        let micros = state
            .ticks
            .and_then(|ticks| time::micros_since_entry(ticks()));
        let _ = format_line(&mut *state, micros, record);
    }

    fn flush(&self) {}
}

/// Installs the logger. `ticks` reads the CPU counter for time stamps.
pub fn init(ticks: fn() -> u64) {
    STATE.lock().ticks = Some(ticks);
    // Fails only when a logger is already set, which is then ours.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

/// Makes `sink` the console and writes out what was logged before it.
pub fn attach_console(sink: &'static dyn ConsoleSink) {
    let mut state = STATE.lock();
    let early_len = state.early.len;
    let lost = state.early.lost;
    sink.write_bytes(&state.early.bytes[..early_len]);
    state.early.len = 0;
    state.sink = Some(sink);
    if lost > 0 {
        let _ = writeln!(
            state,
            "[            ] WARN  log: {lost} bytes of early log were lost"
        );
    }
}

/// Writes text straight to the console (no stamp, no level): for the ready
/// line and other lines that tools parse.
pub fn write_raw(args: fmt::Arguments<'_>) {
    let _ = STATE.lock().write_fmt(args);
}

/// For the panic path: writes even if the logger lock is held by the code
/// that panicked. Only for use when nothing else will run afterwards.
pub fn write_emergency(args: fmt::Arguments<'_>) {
    for _ in 0..1000 {
        if let Some(mut state) = STATE.try_lock() {
            let _ = state.write_fmt(args);
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the holder of the lock is the code that panicked on this CPU
    // (no other CPU runs yet); it will never release it, and the panic path
    // never returns to it, so taking the state over cannot race.
    unsafe { STATE.force_unlock() };
    let _ = STATE.lock().write_fmt(args);
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::String;

    #[test]
    fn subsystem_is_last_component() {
        assert_eq!(subsystem("kernel_core::acpi"), "acpi");
        assert_eq!(subsystem("uart"), "uart");
    }

    fn formatted(micros: Option<u64>) -> String {
        let mut out = String::new();
        format_line(
            &mut out,
            micros,
            &Record::builder()
                .args(format_args!("found {} tables", 7))
                .level(log::Level::Info)
                .target("kernel_core::acpi")
                .build(),
        )
        .unwrap();
        out
    }

    #[test]
    fn line_format() {
        assert_eq!(
            formatted(Some(1_234_567)),
            "[    1.234567] INFO  acpi: found 7 tables\n"
        );
        assert_eq!(
            formatted(None),
            "[            ] INFO  acpi: found 7 tables\n"
        );
    }

    #[test]
    fn early_buffer_counts_overflow() {
        let mut b = EarlyBuffer {
            bytes: [0; EARLY_BUFFER_SIZE],
            len: 0,
            lost: 0,
        };
        b.push(&[b'x'; EARLY_BUFFER_SIZE - 2]);
        b.push(b"abcd");
        assert_eq!(b.len, EARLY_BUFFER_SIZE);
        assert_eq!(b.lost, 2);
        assert_eq!(&b.bytes[EARLY_BUFFER_SIZE - 2..], b"ab");
    }
}
