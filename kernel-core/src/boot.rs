//! The boot sequence shared by every platform, and the [`Kernel`] handle it
//! gives the target's `main`.
//!
//! Order: exception vectors, logger (buffered, with its fallback console),
//! command line and stop path, the loader's answers ([`BootInfo`]), frame
//! allocator, heap, ACPI discovery or the device tree, clock, console. Each
//! step that can fail says what failed; the kernel stops only when it cannot
//! go on, and then says why on the best console it reaches.

mod clock;
mod console_attach;
mod discovery;

use crate::acpi::interrupt_tables::InterruptTables;
use crate::acpi::{self, AcpiPlatform, SpcrOutcome};
use crate::boot_info::BootInfo;
use crate::cmdline::CommandLine;
use crate::console::{ConsoleDescriptor, ConsoleSink};
use crate::driver_services::{self, KernelServices};
use crate::fixed_string::FixedString;
use crate::frames::{FRAME_SIZE, FrameAllocator};
use crate::irq::InterruptSummary;
use crate::irq_lock::IrqSafeGuard;
use crate::logger::Fallback;
use crate::mmio::DeviceMemory;
use crate::pci::{self, PciDrivers, PciInventory};
use crate::ready::ReadyLine;
use crate::stacks::KernelStacks;
use crate::{cpu_local, heap, irq, irq_lock, limine_boot, logger, panic, smp, time};
use stratus_arch::{Arch, ExitStatus, PowerMethods};

pub use stratus_driver_api::console::{ConsoleAccess, OpenConsole};

/// How the machine can be stopped; grows as the kernel learns more (the
/// command line first, then ACPI or the device tree).
static POWER: spin::Mutex<PowerMethods> = spin::Mutex::new(PowerMethods {
    psci: None,
    acpi_reset_port: None,
    acpi_soft_off: None,
    qemu_exit: false,
});

/// The platform's console opener, kept for the fallback console.
static OPEN_CONSOLE: spin::Once<OpenConsole> = spin::Once::new();

fn power_methods() -> PowerMethods {
    // The lock is only held to copy the value, never across a call that can
    // fail; should it be held anyway (a fault inside), stop the plain way.
    POWER.try_lock().map(|p| *p).unwrap_or_default()
}

fn stop_with<A: Arch>(status: ExitStatus) -> ! {
    A::power_off(status, &power_methods())
}

fn reset_with<A: Arch>() -> ! {
    A::reset(&power_methods())
}

/// Opens the architecture's legacy serial port (x86 COM1): the fallback
/// console.
fn open_legacy_console<A: Arch>() -> Option<&'static dyn ConsoleSink> {
    let (port, io, open) = (A::LEGACY_CONSOLE_PORT?, A::port_io()?, OPEN_CONSOLE.get()?);
    let access = ConsoleAccess::Port { base: port, io };
    // SAFETY: the architecture names this port as its legacy serial port.
    unsafe { open(&ConsoleDescriptor::legacy_port(port), access) }
}

/// The booted kernel, handed to the target's `main`.
pub struct Kernel {
    /// Architecture name.
    pub arch: &'static str,
    /// What the loader said.
    pub boot: BootInfo,
    /// What drivers get of the kernel: register mapping, DMA memory, MSI
    /// vectors, the shared frame allocator.
    pub services: &'static KernelServices,
    /// PCI functions found and the disks their drivers brought up.
    pub pci: PciInventory,
    /// Kernel stacks with guard pages.
    pub stacks: KernelStacks,
    /// What ACPI described: CPUs, interrupt controllers, ECAM, timers,
    /// power, console, IORT.
    pub acpi: AcpiPlatform,
    /// The interrupt controller and timer in use.
    pub interrupts: InterruptSummary,
    ticks: fn() -> u64,
    wait_for_interrupt: fn(),
    stop: panic::StopFn,
    reset: fn() -> !,
}

impl Kernel {
    /// The disks the PCI drivers brought up.
    pub fn block_devices(&self) -> &[alloc::sync::Arc<dyn stratus_driver_api::BlockDevice>] {
        &self.pci.block_devices
    }

    /// The network interfaces the PCI drivers brought up, in enumeration
    /// order.
    pub fn net_devices(&self) -> &[alloc::sync::Arc<dyn stratus_driver_api::NetDevice>] {
        &self.pci.net_devices
    }

    /// The shared physical frame allocator.
    pub fn frames(&self) -> IrqSafeGuard<'static, FrameAllocator> {
        self.services.frames().lock()
    }

    /// The kernel command line.
    pub fn cmdline(&self) -> CommandLine<'static> {
        CommandLine::new(self.boot.cmdline)
    }

    /// Milliseconds since kernel entry, when the clock is known.
    pub fn millis_since_entry(&self) -> Option<u64> {
        time::micros_since_entry((self.ticks)()).map(|us| us / 1000)
    }

    /// The console in use (it may have changed during boot when the first
    /// one stopped working).
    pub fn console(&self) -> Option<ConsoleDescriptor> {
        logger::console()
    }

    /// Prints the one `stratus: ready` line.
    pub fn print_ready_line(&self) {
        self.print_ready_line_with(&[]);
    }

    /// The ready line with `extra` keys at its end (e.g. `ip=` once a
    /// network lease is held), printed.
    pub fn print_ready_line_with(&self, extra: &[(&str, &str)]) {
        let line = self.ready_line(extra);
        logger::write_raw(format_args!("{line}\n"));
    }

    /// The ready line's text (without a newline), as it would be printed
    /// now.
    pub fn ready_line(&self, extra: &[(&str, &str)]) -> alloc::string::String {
        use alloc::string::ToString;
        let console = self.console();
        let console: &dyn core::fmt::Display = match &console {
            Some(c) => c,
            None => &"none",
        };
        ReadyLine {
            arch: self.arch,
            loader_name: self.boot.loader_name,
            loader_version: self.boot.loader_version,
            cpus: smp::online_cpus(),
            memory_mib: self.boot.memory_map.ram_bytes() >> 20,
            boot_ms: self.millis_since_entry(),
            console,
            irq: self.interrupts.controller,
            timer: self.interrupts.timer,
            extra,
        }
        .to_string()
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
        log::info!("power: off ({status:?})");
        (self.stop)(status)
    }
}

/// The target's `main`.
pub type KernelMain = fn(Kernel) -> !;

/// Boots the portable kernel on architecture `A` and runs `main` with it.
/// `entry_ticks` is the counter read first thing at kernel entry;
/// `open_console` builds the UART driver for the console ACPI names. Once
/// booted, the boot CPU leaves the loader's stack and the static exception
/// stack for kernel stacks with guard pages ([`run_main_on_kernel_stacks`]).
pub fn start<A: Arch>(
    entry_ticks: u64,
    open_console: OpenConsole,
    drivers: PciDrivers,
    main: KernelMain,
) -> ! {
    let kernel = boot::<A>(entry_ticks, open_console, drivers);
    run_main_on_kernel_stacks::<A>(kernel, main)
}

/// Stack of the boot CPU once booted: what the loader was asked for.
pub const MAIN_STACK_BYTES: u64 = limine_boot::BOOT_STACK_BYTES;

/// Moves the boot CPU onto a kernel stack and an exception stack with
/// guard pages below them, as every secondary CPU has, and calls `main`
/// there. Where the stacks cannot be had, `main` runs on the loader's
/// stack, with a warning.
fn run_main_on_kernel_stacks<A: Arch>(mut kernel: Kernel, main: KernelMain) -> ! {
    let stacks = {
        let mut frames = kernel.services.frames().lock();
        kernel
            .stacks
            .allocate::<A>(smp::EXCEPTION_STACK_BYTES, &mut frames)
            .and_then(|exception| {
                let stack = kernel.stacks.allocate::<A>(MAIN_STACK_BYTES, &mut frames)?;
                Ok((exception, stack))
            })
    };
    let (exception, stack) = match stacks {
        Ok(stacks) => stacks,
        Err(e) => {
            log::warn!("boot: no guarded stacks for the boot CPU ({e}); staying on the loader's");
            main(kernel)
        }
    };
    A::init_secondary_exceptions(exception.top);
    let handoff = alloc::boxed::Box::into_raw(alloc::boxed::Box::new((kernel, main)));
    A::run_on_stack(stack.top, call_main, handoff as u64)
}

/// The first function on the boot CPU's kernel stack.
extern "C" fn call_main(handoff: u64) -> ! {
    // SAFETY: `handoff` is the pointer `run_main_on_kernel_stacks` made
    // with `Box::into_raw` and passed here once; nothing else holds it.
    let handoff = unsafe { alloc::boxed::Box::from_raw(handoff as *mut (Kernel, KernelMain)) };
    let (kernel, main) = *handoff;
    main(kernel)
}

fn boot<A: Arch>(entry_ticks: u64, open_console: OpenConsole, drivers: PciDrivers) -> Kernel {
    A::init_exceptions();
    irq_lock::set_interrupt_masking(irq_lock::InterruptMasking {
        enabled: A::interrupts_enabled,
        disable: A::disable_interrupts,
        enable: A::enable_interrupts,
    });
    logger::init(A::ticks);
    OPEN_CONSOLE.call_once(|| open_console);
    if let Some(port) = A::LEGACY_CONSOLE_PORT {
        logger::set_fallback(Fallback {
            console: ConsoleDescriptor::legacy_port(port),
            open: open_legacy_console::<A>,
        });
    }
    // Until ACPI says more, the machine stops the way the command line
    // allows (QEMU's exit device under the test harness), else halts.
    let cmdline = CommandLine::new(limine_boot::cmdline());
    POWER.lock().qemu_exit = cmdline.is("exit", "qemu");
    panic::set_stop(stop_with::<A>);

    // A loader that does not speak our base revision still answered in its
    // own (the same layout for the responses used here): go on just far
    // enough to reach a console, then say why the kernel cannot boot.
    let revision = limine_boot::check_base_revision();
    if let Err(e) = revision {
        log::error!("cannot boot: {e}; looking for a console to say so");
    }
    let boot = match limine_boot::boot_info(entry_ticks) {
        Ok(boot) => boot,
        Err(e) => cannot_boot(e),
    };
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
    cpu_local::install::<A>(0);

    let acpi = discovery::read_acpi(&boot);
    // Machines without ACPI describe themselves with a device tree.
    let dt = match acpi.spcr {
        SpcrOutcome::Absent => discovery::read_device_tree(&boot),
        _ => None,
    };
    {
        let mut power = POWER.lock();
        power.psci = acpi.psci().or(dt.and_then(|dt| dt.psci));
        power.acpi_reset_port = acpi.reset_port();
        power.acpi_soft_off = acpi.soft_off();
    }

    // The clock first, so that waits for the console are bounded in time.
    let mut device_memory = DeviceMemory::new(boot.hhdm_offset, &boot.memory_map);
    clock::init_clock::<A>(
        &acpi,
        &cmdline,
        entry_ticks,
        &mut device_memory,
        &mut frames,
    );
    let dt_console = dt.map(|dt| dt.console);
    console_attach::attach_console::<A>(
        &acpi.spcr,
        dt_console,
        open_console,
        &mut device_memory,
        &mut frames,
    );
    if let Err(e) = revision {
        cannot_boot(e);
    }
    if let (Some(rsdp), true) = (boot.rsdp, cmdline.is("acpi", "dump")) {
        // SAFETY: as in `discovery::read_acpi`.
        unsafe { acpi::dump_tables(rsdp, boot.hhdm_offset, boot.memory_map.regions()) };
    }
    let interrupts = irq::bring_up::<A>(
        &InterruptTables::from_platform(&acpi),
        &mut device_memory,
        &mut frames,
        boot.hhdm_offset,
    );

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
    let mut stacks = KernelStacks::new(boot.hhdm_offset);
    let cpus = acpi.enabled_cpu_ids();
    let online = smp::start_secondaries::<A>(
        &cpus,
        power_methods().psci,
        &boot.memory_map,
        boot.hhdm_offset,
        &mut frames,
        &mut stacks,
    );
    log::info!("smp: {online} of {} CPUs online", cpus.len().max(1));
    let services = driver_services::install::<A>(
        boot.hhdm_offset,
        frames,
        device_memory,
        msi_device_ids(&acpi),
    );
    let pci = pci::probe_all::<A>(&acpi, services, drivers);

    Kernel {
        arch: A::NAME,
        boot,
        services,
        pci,
        stacks,
        acpi,
        interrupts,
        ticks: A::ticks,
        wait_for_interrupt: A::wait_for_interrupt,
        stop: stop_with::<A>,
        reset: reset_with::<A>,
    }
}

/// How MSI sources are named to the interrupt controller: through IORT
/// where a GIC ITS is in use, else by requester id (x86 ignores it).
fn msi_device_ids(acpi: &AcpiPlatform) -> driver_services::MsiDeviceId {
    let platform = acpi.clone();
    let uses_its = platform.madt.as_ref().is_some_and(|m| !m.its.is_empty());
    alloc::boxed::Box::new(move |source: stratus_driver_api::MsiSource| {
        if uses_its {
            platform.its_device_id(source.segment, source.requester_id)
        } else {
            Some(u32::from(source.requester_id))
        }
    })
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

/// Stops the boot: says why on the console in use, or on the fallback
/// console when there is none yet (x86 COM1), then panics, which stops the
/// machine with a failure status.
fn cannot_boot(error: limine_boot::BootError) -> ! {
    logger::ensure_console();
    panic!("cannot boot: {error}")
}
