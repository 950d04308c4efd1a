//! Choosing and opening the console during boot (logged as `boot`): the UART SPCR names, else
//! the one the device tree names, else the architecture's legacy port; each
//! one's registers mapped through the checked device-memory window.

use super::{ConsoleAccess, OpenConsole};
use crate::acpi::SpcrOutcome;
use crate::console::{ConsoleDescriptor, ConsoleSink, UartRegisters};
use crate::devicetree::DtConsoleError;
use crate::frames::FrameAllocator;
use crate::logger;
use crate::mmio::{DeviceMapError, DeviceMemory};
use stratus_arch::Arch;

/// Opens `chosen` and makes it the console; says where it came from.
fn try_console<A: Arch>(
    chosen: &ConsoleDescriptor,
    source: &str,
    open_console: OpenConsole,
    device_memory: &mut DeviceMemory,
    frames: &mut FrameAllocator,
) -> bool {
    match open_uart::<A>(chosen, open_console, device_memory, frames) {
        Ok(sink) => {
            logger::attach_console(sink, *chosen);
            match logger::console() {
                Some(now) if now != *chosen => {
                    log::warn!(target: "boot", "console: {chosen} from {source} did not work; now on {now}")
                }
                _ => log::info!(target: "boot", "console: {chosen} from {source}"),
            }
            true
        }
        Err(e) => {
            log::warn!(target: "boot", "console: {chosen} from {source} refused: {e}");
            false
        }
    }
}

/// Attaches the console SPCR names, else the one the device tree names,
/// else the legacy port (when the architecture has one).
pub(super) fn attach_console<A: Arch>(
    spcr: &SpcrOutcome,
    dt_console: Option<Result<ConsoleDescriptor, DtConsoleError>>,
    open_console: OpenConsole,
    device_memory: &mut DeviceMemory,
    frames: &mut FrameAllocator,
) {
    let from_firmware = match (spcr, dt_console) {
        (SpcrOutcome::Console(chosen), _) => Some((*chosen, "SPCR")),
        (_, Some(Ok(chosen))) => Some((chosen, "the device tree")),
        (_, Some(Err(e))) => {
            log::warn!(target: "boot", "console: the device tree names none: {e}");
            None
        }
        (_, None) => None,
    };
    if let Some((chosen, source)) = from_firmware
        && try_console::<A>(&chosen, source, open_console, device_memory, frames)
    {
        return;
    }
    let Some(port) = A::LEGACY_CONSOLE_PORT else {
        return;
    };
    let legacy = ConsoleDescriptor::legacy_port(port);
    let Ok(sink) = open_uart::<A>(&legacy, open_console, device_memory, frames) else {
        return;
    };
    logger::attach_console(sink, legacy);
    match spcr {
        SpcrOutcome::Console(_) => {
            log::warn!(target: "boot", "console: {legacy} (SPCR console unusable; legacy port)")
        }
        SpcrOutcome::Absent => {
            log::info!(target: "boot", "console: {legacy} (no SPCR table, legacy port)")
        }
        SpcrOutcome::Unusable(e) => {
            log::warn!(target: "boot", "console: {legacy} ({e}; legacy port)")
        }
        SpcrOutcome::Invalid(e) => log::warn!(
            target: "boot",
            "console: {legacy} (SPCR present but invalid: {e}; legacy port)"
        ),
    }
}

/// Why a console UART could not be opened.
#[derive(Clone, Copy, Debug)]
enum ConsoleError {
    /// Its registers could not (or must not) be mapped.
    Map(DeviceMapError),
    /// Port registers on an architecture without port I/O.
    NoPortIo,
    /// The platform has no driver for it.
    NoDriver,
}

impl core::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConsoleError::Map(e) => write!(f, "{e}"),
            ConsoleError::NoPortIo => f.write_str("no I/O ports on this architecture"),
            ConsoleError::NoDriver => f.write_str("no driver for it"),
        }
    }
}

/// Maps a UART's registers (checked against the memory map) and builds its
/// driver.
fn open_uart<A: Arch>(
    uart: &ConsoleDescriptor,
    open_console: OpenConsole,
    device_memory: &mut DeviceMemory,
    frames: &mut FrameAllocator,
) -> Result<&'static dyn ConsoleSink, ConsoleError> {
    let access = match uart.registers {
        UartRegisters::Port { base } => ConsoleAccess::Port {
            base,
            io: A::port_io().ok_or(ConsoleError::NoPortIo)?,
        },
        UartRegisters::Mmio { phys, width } => {
            let region = device_memory
                .map::<A>(phys, 0x1000, frames)
                .map_err(ConsoleError::Map)?;
            ConsoleAccess::Mmio {
                virt: region.virt,
                width,
            }
        }
    };
    // SAFETY: `access` is the descriptor's port range (validated to fit the
    // port space) or its registers just mapped with device attributes.
    unsafe { open_console(uart, access) }.ok_or(ConsoleError::NoDriver)
}
