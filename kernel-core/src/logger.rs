//! The kernel logger: `log` records to the console, one line each.
//!
//! Lines look like `[    0.012345] INFO  acpi: message`: seconds since kernel
//! entry (blank until the counter frequency is known), level, subsystem (the
//! last component of the record's target) and message. Records logged before
//! the console exists are kept in a small buffer and written when
//! [`attach_console`] is called.
//!
//! A console that stops accepting bytes (its device never reports ready) is
//! dropped for good, and the logger moves to the fallback console if there is
//! one (x86: the legacy COM1 port), saying which console it gave up. The same
//! fallback serves the panic path when nothing was attached yet, so a failure
//! before the console exists is still reported.
//!
//! Up to [`EXTRA_CONSOLES`] more consoles can be added later
//! ([`add_console`]: a PCI serial card, say): every line from then on goes to
//! each of them as well. One that stops accepting bytes is removed, which the
//! others are told.

use crate::console::{ConsoleDescriptor, ConsoleSink, READY_TIMEOUT_MICROS};
use crate::fixed_string::FixedString;
use crate::irq_lock::IrqSafeSpinlock;
use crate::time;
use core::fmt::{self, Write};
use log::{LevelFilter, Log, Metadata, Record};

/// Consoles added besides the console (see [`add_console`]).
pub const EXTRA_CONSOLES: usize = 3;

/// Bytes of log kept before the console is attached.
const EARLY_BUFFER_SIZE: usize = 8192;

struct EarlyBuffer {
    bytes: [u8; EARLY_BUFFER_SIZE],
    len: usize,
    lost: usize,
}

impl EarlyBuffer {
    const fn new() -> Self {
        Self {
            bytes: [0; EARLY_BUFFER_SIZE],
            len: 0,
            lost: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let room = EARLY_BUFFER_SIZE - self.len;
        let take = room.min(data.len());
        self.bytes[self.len..self.len + take].copy_from_slice(&data[..take]);
        self.len += take;
        self.lost += data.len() - take;
    }
}

/// A console to switch to when the one in use stops working or before any
/// exists (x86: the legacy COM1 port), opened only when needed.
#[derive(Clone, Copy)]
pub struct Fallback {
    /// The console it opens.
    pub console: ConsoleDescriptor,
    /// Opens it; `None` when that fails.
    pub open: fn() -> Option<&'static dyn ConsoleSink>,
}

/// Where log output goes, and what to do when it stops working.
struct Output {
    sink: Option<&'static dyn ConsoleSink>,
    console: Option<ConsoleDescriptor>,
    fallback: Option<Fallback>,
    /// A console given up on, not yet reported on a working one.
    abandoned: Option<ConsoleDescriptor>,
    /// Consoles that get every line too.
    extra: [Option<(&'static dyn ConsoleSink, ConsoleDescriptor)>; EXTRA_CONSOLES],
    ticks: Option<fn() -> u64>,
}

impl Output {
    const fn new() -> Self {
        Self {
            sink: None,
            console: None,
            fallback: None,
            abandoned: None,
            extra: [None; EXTRA_CONSOLES],
            ticks: None,
        }
    }

    /// Writes `data` to the console, switching to the fallback when the
    /// console times out, and to every added console. False when no console
    /// took it.
    fn emit(&mut self, data: &[u8]) -> bool {
        let mut written = false;
        while let Some(sink) = self.sink {
            if sink.write_bytes(data).is_ok() {
                written = true;
                break;
            }
            self.abandon();
        }
        for i in 0..EXTRA_CONSOLES {
            let Some((sink, console)) = self.extra[i] else {
                continue;
            };
            if sink.write_bytes(data).is_ok() {
                written = true;
            } else {
                self.extra[i] = None;
                self.report_removed(console);
            }
        }
        written
    }

    /// Says on the remaining consoles that an added one was removed.
    fn report_removed(&mut self, dead: ConsoleDescriptor) {
        let mut line: FixedString<200> = FixedString::new();
        let micros = self
            .ticks
            .and_then(|ticks| time::micros_since_entry(ticks()));
        let _ = write_stamp(&mut line, micros);
        let _ = writeln!(
            line,
            "WARN  log: console {dead} did not become ready within {} ms; removed",
            READY_TIMEOUT_MICROS / 1000
        );
        let bytes = line.as_str().as_bytes();
        let sinks = self
            .sink
            .into_iter()
            .chain(self.extra.iter().flatten().map(|e| e.0));
        for sink in sinks {
            let _ = sink.write_bytes(bytes);
        }
    }

    /// Adds a console that gets every line from now on.
    fn add(
        &mut self,
        sink: &'static dyn ConsoleSink,
        console: ConsoleDescriptor,
    ) -> Result<usize, AddConsoleError> {
        let taken = self.console == Some(console)
            || self.extra.iter().flatten().any(|(_, c)| *c == console);
        if taken {
            return Err(AddConsoleError::AlreadyInUse);
        }
        let slot = self
            .extra
            .iter_mut()
            .find(|e| e.is_none())
            .ok_or(AddConsoleError::NoRoom)?;
        *slot = Some((sink, console));
        Ok(self.sink.iter().count() + self.extra.iter().flatten().count())
    }

    /// Drops the console for good and opens the fallback, if it is another
    /// device.
    fn abandon(&mut self) {
        self.sink = None;
        let dead = self.console.take();
        self.abandoned = dead.or(self.abandoned);
        if let Some(fallback) = self.fallback.take().filter(|f| Some(f.console) != dead) {
            self.open_fallback(fallback);
        }
    }

    fn open_fallback(&mut self, fallback: Fallback) {
        if let Some(sink) = (fallback.open)() {
            self.sink = Some(sink);
            self.console = Some(fallback.console);
            self.report_abandoned();
        }
    }

    /// Opens the fallback console when there is none (the panic path).
    fn ensure_console(&mut self) {
        if self.sink.is_none()
            && let Some(fallback) = self.fallback.take()
        {
            self.open_fallback(fallback);
        }
    }

    /// Says on the console in use which one was given up.
    fn report_abandoned(&mut self) {
        let (Some(sink), Some(dead)) = (self.sink, self.abandoned) else {
            return;
        };
        let mut line: FixedString<200> = FixedString::new();
        let micros = self
            .ticks
            .and_then(|ticks| time::micros_since_entry(ticks()));
        let _ = write_stamp(&mut line, micros);
        let _ = write!(
            line,
            "WARN  log: console {dead} did not become ready within {} ms; abandoned",
            READY_TIMEOUT_MICROS / 1000
        );
        if let Some(now) = self.console {
            let _ = write!(line, ", now on {now}");
        }
        let _ = line.write_str("\n");
        if sink.write_bytes(line.as_str().as_bytes()).is_ok() {
            self.abandoned = None;
        }
    }
}

struct LoggerState {
    out: Output,
    early: EarlyBuffer,
}

impl LoggerState {
    /// Writes the early buffer out; keeps it when there is no console.
    fn flush_early(&mut self) {
        let len = self.early.len;
        if self.out.emit(&self.early.bytes[..len]) {
            self.early.len = 0;
            let lost = core::mem::take(&mut self.early.lost);
            if lost > 0 {
                let _ = writeln!(
                    self,
                    "[            ] WARN  log: {lost} bytes of early log were lost"
                );
            }
        }
    }
}

impl Write for LoggerState {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.out.emit(s.as_bytes()) {
            self.early.push(s.as_bytes());
        }
        Ok(())
    }
}

// Interrupt-safe: a handler that logs while the interrupted code holds the
// lock would otherwise spin forever.
static STATE: IrqSafeSpinlock<LoggerState> = IrqSafeSpinlock::new(LoggerState {
    out: Output::new(),
    early: EarlyBuffer::new(),
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
            .out
            .ticks
            .and_then(|ticks| time::micros_since_entry(ticks()));
        let _ = format_line(&mut *state, micros, record);
    }

    fn flush(&self) {}
}

/// Installs the logger. `ticks` reads the CPU counter for time stamps.
pub fn init(ticks: fn() -> u64) {
    STATE.lock().out.ticks = Some(ticks);
    time::set_counter(ticks);
    // Fails only when a logger is already set, which is then ours.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

/// Makes `sink` (the UART `console` describes) the console and writes out
/// what was logged before it.
pub fn attach_console(sink: &'static dyn ConsoleSink, console: ConsoleDescriptor) {
    let mut state = STATE.lock();
    state.out.sink = Some(sink);
    state.out.console = Some(console);
    state.flush_early();
    state.out.report_abandoned();
}

/// Opens the fallback console when there is no console, and writes out what
/// was logged so far (for failures before the console exists).
pub fn ensure_console() {
    let mut state = STATE.lock();
    if state.out.sink.is_none() {
        state.out.ensure_console();
        state.flush_early();
    }
}

/// Why a console could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddConsoleError {
    /// It is the console, or was added already.
    AlreadyInUse,
    /// [`EXTRA_CONSOLES`] were added already.
    NoRoom,
}

impl fmt::Display for AddConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyInUse => f.write_str("it is a console already"),
            Self::NoRoom => write!(f, "{EXTRA_CONSOLES} consoles were added already"),
        }
    }
}

/// Adds `sink` (the UART `console` describes) as a further console: every
/// line from now on goes to it as well as to the console. Returns how many
/// consoles the log now reaches.
pub fn add_console(
    sink: &'static dyn ConsoleSink,
    console: ConsoleDescriptor,
) -> Result<usize, AddConsoleError> {
    STATE.lock().out.add(sink, console)
}

/// The consoles added besides the console, in the order added.
pub fn added_consoles() -> impl Iterator<Item = ConsoleDescriptor> {
    let extra = STATE.lock().out.extra;
    extra.into_iter().flatten().map(|(_, c)| c)
}

/// Sets the console to fall back to (see the module documentation).
pub fn set_fallback(fallback: Fallback) {
    STATE.lock().out.fallback = Some(fallback);
}

/// The console in use, if any.
pub fn console() -> Option<ConsoleDescriptor> {
    STATE.lock().out.console
}

/// Writes text straight to the console (no stamp, no level): for the ready
/// line and other lines that tools parse.
pub fn write_raw(args: fmt::Arguments<'_>) {
    let _ = STATE.lock().write_fmt(args);
}

/// For the panic path: writes even if the logger lock is held by the code
/// that panicked. Only for use when nothing else will run afterwards.
/// Opens the fallback console first when there is none, so that what was
/// logged so far and `args` reach a console.
pub fn write_emergency(args: fmt::Arguments<'_>) {
    let mut state = match (0..1000).find_map(|_| {
        core::hint::spin_loop();
        STATE.try_lock()
    }) {
        Some(state) => state,
        None => {
            // SAFETY: the holder of the lock is the code that panicked on
            // this CPU (no other CPU runs yet); it will never release it, and
            // the panic path never returns to it, so taking the state over
            // cannot race.
            unsafe { STATE.force_unlock() };
            STATE.lock()
        }
    };
    if state.out.sink.is_none() {
        state.out.ensure_console();
        state.flush_early();
    }
    let _ = state.write_fmt(args);
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

    use crate::console::ConsoleTimeout;
    use std::sync::Mutex as StdMutex;
    use std::vec::Vec;

    /// A console that records what it accepted, or refuses everything.
    struct FakeSink {
        works: bool,
        written: StdMutex<Vec<u8>>,
        calls: StdMutex<u32>,
    }

    impl ConsoleSink for FakeSink {
        fn write_bytes(&self, bytes: &[u8]) -> Result<(), ConsoleTimeout> {
            *self.calls.lock().unwrap() += 1;
            if !self.works {
                return Err(ConsoleTimeout);
            }
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(())
        }
    }

    fn leak_sink(works: bool) -> &'static FakeSink {
        std::boxed::Box::leak(std::boxed::Box::new(FakeSink {
            works,
            written: StdMutex::new(Vec::new()),
            calls: StdMutex::new(0),
        }))
    }

    static COM1_SINK: spin::Once<&'static FakeSink> = spin::Once::new();

    fn com1() -> &'static FakeSink {
        COM1_SINK.call_once(|| leak_sink(true))
    }

    fn open_com1() -> Option<&'static dyn ConsoleSink> {
        Some(com1())
    }

    fn output(sink: &'static FakeSink, console: ConsoleDescriptor) -> Output {
        Output {
            sink: Some(sink),
            console: Some(console),
            fallback: Some(Fallback {
                console: ConsoleDescriptor::legacy_port(0x3f8),
                open: open_com1,
            }),
            ..Output::new()
        }
    }

    fn mmio_console() -> ConsoleDescriptor {
        ConsoleDescriptor {
            kind: crate::console::UartKind::Ns16550,
            registers: crate::console::UartRegisters::Mmio {
                phys: 0x10_0000_0000,
                width: 1,
            },
            baud: None,
        }
    }

    #[test]
    fn a_dead_console_is_dropped_for_the_fallback_once() {
        let dead = leak_sink(false);
        let mut out = output(dead, mmio_console());
        assert!(out.emit(b"first\n"));
        assert!(out.emit(b"second\n"));
        // The dead console was tried once, then never again.
        assert_eq!(*dead.calls.lock().unwrap(), 1);
        assert_eq!(out.console, Some(ConsoleDescriptor::legacy_port(0x3f8)));
        let text = String::from_utf8(com1().written.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains(
                "WARN  log: console 16550@mmio:0x1000000000/1 did not become ready within \
                 10 ms; abandoned, now on 16550@port:0x3f8\nfirst\nsecond\n"
            ),
            "{text:?}"
        );
    }

    #[test]
    fn a_dead_fallback_is_not_reopened() {
        let dead = leak_sink(false);
        let mut out = output(dead, ConsoleDescriptor::legacy_port(0x3f8));
        assert!(!out.emit(b"lost"));
        assert!(out.sink.is_none());
        assert!(out.fallback.is_none());
        assert!(!out.emit(b"lost"));
        assert_eq!(*dead.calls.lock().unwrap(), 1);
    }

    /// A fault before any console (x86: while reading the loader's answers)
    /// is logged into the early buffer; the panic path opens the fallback and
    /// writes the buffer out before the panic message.
    #[test]
    fn the_panic_path_reaches_the_fallback_with_the_early_log() {
        let mut state = std::boxed::Box::new(LoggerState {
            out: Output::new(),
            early: EarlyBuffer::new(),
        });
        state.out.fallback = Some(Fallback {
            console: ConsoleDescriptor::legacy_port(0x2f8),
            open: open_com2,
        });
        writeln!(state, "CPU exception: page fault").unwrap();
        assert!(com2().written.lock().unwrap().is_empty());
        state.out.ensure_console();
        state.flush_early();
        writeln!(state, "panic: fatal").unwrap();
        assert_eq!(
            com2().written.lock().unwrap().as_slice(),
            b"CPU exception: page fault\npanic: fatal\n"
        );
        assert_eq!(state.early.len, 0);
    }

    static COM2_SINK: spin::Once<&'static FakeSink> = spin::Once::new();

    fn com2() -> &'static FakeSink {
        COM2_SINK.call_once(|| leak_sink(true))
    }

    fn open_com2() -> Option<&'static dyn ConsoleSink> {
        Some(com2())
    }

    /// An added console gets every line after it was added; one that dies
    /// is removed and the others are told; the same console is not added
    /// twice and there is room for EXTRA_CONSOLES.
    #[test]
    fn added_consoles_get_every_line_and_dead_ones_are_removed() {
        let main = leak_sink(true);
        let mut out = output(main, ConsoleDescriptor::legacy_port(0x3f8));
        assert!(out.emit(b"before\n"));
        let pci = leak_sink(true);
        assert_eq!(out.add(pci, mmio_console()), Ok(2));
        assert_eq!(
            out.add(pci, mmio_console()),
            Err(AddConsoleError::AlreadyInUse)
        );
        assert_eq!(
            out.add(pci, ConsoleDescriptor::legacy_port(0x3f8)),
            Err(AddConsoleError::AlreadyInUse)
        );
        let dead = leak_sink(false);
        assert_eq!(out.add(dead, ConsoleDescriptor::legacy_port(0x2f8)), Ok(3));
        assert!(out.emit(b"after\n"));
        assert!(out.emit(b"later\n"));
        assert_eq!(*dead.calls.lock().unwrap(), 1, "tried once, then removed");
        let text = |s: &FakeSink| String::from_utf8(s.written.lock().unwrap().clone()).unwrap();
        let removed = "WARN  log: console 16550@port:0x2f8 did not become ready within 10 ms; \
                       removed\n";
        assert_eq!(
            text(pci),
            alloc::format!("after\n[            ] {removed}later\n")
        );
        assert_eq!(
            text(main),
            alloc::format!("before\nafter\n[            ] {removed}later\n")
        );
        for port in [0x3e8, 0x2e8] {
            out.add(leak_sink(true), ConsoleDescriptor::legacy_port(port))
                .unwrap();
        }
        assert_eq!(
            out.add(leak_sink(true), ConsoleDescriptor::legacy_port(0x1e8)),
            Err(AddConsoleError::NoRoom)
        );
        // With no console at all, an added one still takes the lines.
        let mut alone = Output::new();
        let only = leak_sink(true);
        assert_eq!(alone.add(only, mmio_console()), Ok(1));
        assert!(alone.emit(b"x"));
    }

    #[test]
    fn early_buffer_counts_overflow() {
        let mut b = EarlyBuffer::new();
        b.push(&[b'x'; EARLY_BUFFER_SIZE - 2]);
        b.push(b"abcd");
        assert_eq!(b.len, EARLY_BUFFER_SIZE);
        assert_eq!(b.lost, 2);
        assert_eq!(&b.bytes[EARLY_BUFFER_SIZE - 2..], b"ab");
    }
}
