//! The boot sequence shared by every platform, and the [`Kernel`] handle it
//! gives the target's `main`.
//!
//! Order: exception vectors, logger (buffered), the loader's answers
//! ([`BootInfo`]), stop path, frame allocator, heap, ACPI discovery, console,
//! clock. Each step that can fail says what failed; the kernel stops only
//! when it cannot go on.

use crate::acpi::{self, AcpiSummary, PmTimer, SpcrOutcome};
use crate::boot_info::BootInfo;
use crate::cmdline::CommandLine;
use crate::console::{ConsoleDescriptor, ConsoleSink, UartRegisters};
use crate::fixed_string::FixedString;
use crate::frames::{FRAME_SIZE, FrameAllocator};
use crate::mmio::DeviceMemory;
use crate::ready::ReadyLine;
use crate::{heap, limine_boot, logger, panic, time};
use stratus_arch::{Arch, ExitStatus, PortIo, PowerMethods};

/// How the platform reaches a console's registers once kernel-core has
/// mapped them.
#[derive(Clone, Copy, Debug)]
pub enum ConsoleAccess {
    /// Registers mapped with device attributes at `virt`.
    Mmio {
        /// Virtual address of register 0.
        virt: u64,
        /// Access width and register stride in bytes.
        width: u8,
    },
    /// Registers in I/O port space.
    Port {
        /// First port.
        base: u16,
        /// The architecture's port accessors.
        io: PortIo,
    },
}

/// Builds a console driver for a descriptor (the platform wires this to the
/// UART drivers). `None` when the kind is not supported.
///
/// Safety contract: the access must describe that UART's registers, mapped
/// with device attributes when in memory.
pub type OpenConsole =
    unsafe fn(&ConsoleDescriptor, ConsoleAccess) -> Option<&'static dyn ConsoleSink>;

static POWER: spin::Once<PowerMethods> = spin::Once::new();

fn stop_with<A: Arch>(status: ExitStatus) -> ! {
    let methods = POWER.get().copied().unwrap_or_default();
    A::power_off(status, &methods)
}

fn reset_with<A: Arch>() -> ! {
    let methods = POWER.get().copied().unwrap_or_default();
    A::reset(&methods)
}

fn halt<A: Arch>(_status: ExitStatus) -> ! {
    A::halt()
}

/// The booted kernel, handed to the target's `main`.
pub struct Kernel {
    /// Architecture name.
    pub arch: &'static str,
    /// What the loader said.
    pub boot: BootInfo,
    /// Physical frames.
    pub frames: FrameAllocator,
    /// Device register window.
    pub device_memory: DeviceMemory,
    /// What ACPI said.
    pub acpi: AcpiSummary,
    /// The console in use.
    pub console: Option<ConsoleDescriptor>,
    ticks: fn() -> u64,
    wait_for_interrupt: fn(),
    stop: panic::StopFn,
    reset: fn() -> !,
}

impl Kernel {
    /// The kernel command line.
    pub fn cmdline(&self) -> CommandLine<'static> {
        CommandLine::new(self.boot.cmdline)
    }

    /// Milliseconds since kernel entry, when the clock is known.
    pub fn millis_since_entry(&self) -> Option<u64> {
        time::micros_since_entry((self.ticks)()).map(|us| us / 1000)
    }

    /// Prints the one `stratus: ready` line.
    pub fn print_ready_line(&self) {
        let console: &dyn core::fmt::Display = match &self.console {
            Some(c) => c,
            None => &"none",
        };
        let line = ReadyLine {
            arch: self.arch,
            loader_name: self.boot.loader_name,
            loader_version: self.boot.loader_version,
            memory_mib: self.boot.memory_map.ram_bytes() >> 20,
            boot_ms: self.millis_since_entry(),
            console,
        };
        logger::write_raw(format_args!("{line}\n"));
    }

    /// Waits for interrupts forever: what a kernel does when it has nothing
    /// left to do.
    pub fn idle(&self) -> ! {
        loop {
            (self.wait_for_interrupt)();
        }
    }

    /// Resets the machine.
    pub fn reset(&self) -> ! {
        log::info!("resetting");
        (self.reset)()
    }

    /// Stops the machine with `status`.
    pub fn shutdown(&self, status: ExitStatus) -> ! {
        (self.stop)(status)
    }
}

/// Boots the portable kernel on architecture `A`. `entry_ticks` is the
/// counter read first thing at kernel entry; `open_console` builds the UART
/// driver for the console ACPI names.
pub fn start<A: Arch>(entry_ticks: u64, open_console: OpenConsole) -> Kernel {
    A::init_exceptions();
    logger::init(A::ticks);
    panic::set_stop(halt::<A>);

    let boot = match limine_boot::boot_info(entry_ticks) {
        Ok(boot) => boot,
        Err(e) => fail_without_memory::<A>(open_console, e),
    };
    let cmdline = CommandLine::new(boot.cmdline);
    log::info!(
        "Stratus on {}, loaded by {} {} at phys {:#x} (cmdline \"{}\")",
        A::NAME,
        boot.loader_name,
        boot.loader_version,
        boot.kernel_phys_base,
        cmdline.escaped()
    );
    for word in cmdline.not_understood() {
        log::warn!("cmdline: \"{word}\" not understood (not UTF-8); ignored");
    }

    let mut frames = FrameAllocator::from_memory_map(&boot.memory_map);
    init_heap(&boot, &mut frames);

    let acpi = match boot.rsdp {
        // SAFETY: the address is the loader's RSDP, and the direct map covers
        // the ACPI tables (Limine protocol, base revision 2).
        Some(rsdp) => unsafe { acpi::discover(rsdp, boot.hhdm_offset) }.unwrap_or_else(|e| {
            log::error!("{e}; continuing without ACPI");
            AcpiSummary::empty()
        }),
        None => {
            log::warn!("the loader gave no RSDP; continuing without ACPI");
            AcpiSummary::empty()
        }
    };
    POWER.call_once(|| PowerMethods {
        psci: acpi.psci,
        acpi_reset_port: acpi.reset_port,
        qemu_exit: cmdline.is("exit", "qemu"),
    });
    panic::set_stop(stop_with::<A>);

    let mut device_memory = DeviceMemory::new(boot.hhdm_offset, &boot.memory_map);
    let console = attach_console::<A>(&acpi.spcr, open_console, &mut device_memory, &mut frames);
    init_clock::<A>(&acpi, entry_ticks);

    log::info!(
        "memory: {} MiB RAM, {} MiB free, {} map entries, direct map at {:#x}",
        boot.memory_map.ram_bytes() >> 20,
        (frames.free_frames() * FRAME_SIZE) >> 20,
        boot.memory_map.regions().len(),
        boot.hhdm_offset
    );
    let mut cpu: FixedString<96> = FixedString::new();
    let _ = A::describe(&mut cpu);
    log::info!("cpu: {}", cpu.as_str());

    Kernel {
        arch: A::NAME,
        boot,
        frames,
        device_memory,
        acpi,
        console,
        ticks: A::ticks,
        wait_for_interrupt: A::wait_for_interrupt,
        stop: stop_with::<A>,
        reset: reset_with::<A>,
    }
}

fn init_heap(boot: &BootInfo, frames: &mut FrameAllocator) {
    let want = heap::initial_heap_bytes(frames.free_frames() * FRAME_SIZE);
    let Some(phys) = frames.allocate_contiguous(want / FRAME_SIZE) else {
        panic!("no {} KiB of contiguous memory for the heap", want / 1024);
    };
    #[cfg(target_os = "none")]
    // SAFETY: the frames were just taken from the allocator, so the block is
    // unused RAM, mapped writable in the direct map, and never handed out again.
    unsafe {
        heap::init((phys + boot.hhdm_offset) as *mut u8, want as usize)
    };
    #[cfg(not(target_os = "none"))]
    let _ = (phys, boot);
    log::info!("heap: {} KiB at phys {:#x}", want / 1024, phys);
}

fn attach_console<A: Arch>(
    spcr: &SpcrOutcome,
    open_console: OpenConsole,
    device_memory: &mut DeviceMemory,
    frames: &mut FrameAllocator,
) -> Option<ConsoleDescriptor> {
    let chosen = match spcr {
        SpcrOutcome::Console(d) => Some(*d),
        SpcrOutcome::Absent | SpcrOutcome::Unusable(_) | SpcrOutcome::Invalid => {
            A::LEGACY_CONSOLE_PORT.map(ConsoleDescriptor::legacy_port)
        }
    }?;
    let access = match chosen.registers {
        UartRegisters::Port { base } => ConsoleAccess::Port {
            base,
            io: A::port_io()?,
        },
        UartRegisters::Mmio { phys, width } => match device_memory.map::<A>(phys, 0x1000, frames) {
            Ok(region) => ConsoleAccess::Mmio {
                virt: region.virt,
                width,
            },
            Err(e) => {
                log::error!("cannot map console registers at {phys:#x}: {e}");
                return None;
            }
        },
    };
    // SAFETY: `access` is the descriptor's port range or its registers just
    // mapped with device attributes.
    let sink = unsafe { open_console(&chosen, access) }?;
    logger::attach_console(sink);
    match spcr {
        SpcrOutcome::Console(_) => log::info!("console: {chosen} from SPCR"),
        SpcrOutcome::Absent => log::info!("console: {chosen} (no SPCR table, legacy port)"),
        SpcrOutcome::Unusable(e) => log::warn!("console: {chosen} ({e}; legacy port)"),
        SpcrOutcome::Invalid => log::warn!("console: {chosen} (SPCR invalid; legacy port)"),
    }
    Some(chosen)
}

fn init_clock<A: Arch>(acpi: &AcpiSummary, entry_ticks: u64) {
    if let Some(hz) = A::ticks_per_second() {
        time::set_clock(hz, entry_ticks);
        log::info!("clock: counter at {} kHz (architectural)", hz / 1000);
        return;
    }
    match (acpi.pm_timer, A::port_io()) {
        (Some(PmTimer::Port { port, bits }), Some(io)) => {
            let read_pm = || u64::from((io.read_u32)(port));
            // 10 ms of the 3.58 MHz PM timer.
            let hz = time::calibrate(
                A::ticks,
                read_pm,
                time::ACPI_PM_TIMER_HZ,
                bits,
                time::ACPI_PM_TIMER_HZ / 100,
            );
            time::set_clock(hz, entry_ticks);
            log::info!(
                "clock: counter at {} kHz (calibrated against the ACPI PM timer)",
                hz / 1000
            );
        }
        _ => log::warn!(
            "clock: counter frequency unknown (no architectural value, no ACPI PM timer)"
        ),
    }
}

/// The loader's answers are unusable: there is no memory map to build on.
/// Say so on the legacy console if the architecture has one, then stop.
fn fail_without_memory<A: Arch>(open_console: OpenConsole, error: limine_boot::BootError) -> ! {
    if let (Some(port), Some(io)) = (A::LEGACY_CONSOLE_PORT, A::port_io()) {
        let descriptor = ConsoleDescriptor::legacy_port(port);
        let access = ConsoleAccess::Port { base: port, io };
        // SAFETY: the architecture names this port as its legacy serial port.
        let sink = unsafe { open_console(&descriptor, access) };
        if let Some(sink) = sink {
            logger::attach_console(sink);
        }
    }
    panic!("cannot boot: {error}")
}
