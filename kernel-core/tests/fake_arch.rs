//! kernel-core against a fake architecture: what the portable boot code asks
//! of an `Arch`, observed on the host.

use kernel_core::boot::{ConsoleAccess, start};
use kernel_core::console::{ConsoleDescriptor, ConsoleSink, ConsoleTimeout, UartRegisters};
use kernel_core::frames::FrameAllocator;
use kernel_core::mmio::DeviceMemory;
use std::sync::Mutex;
use stratus_arch::{
    Arch, Clock, Cpu, DeviceMapper, DeviceMapping, ExitStatus, FrameSource, MapError, PortIo,
    Power, PowerMethods,
};

/// Everything the fake architecture was asked to do.
static CALLS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Tests share CALLS (the fake's functions are plain functions): one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn begin() -> std::sync::MutexGuard<'static, ()> {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    CALLS.lock().unwrap().clear();
    guard
}

fn record(call: impl Into<String>) {
    CALLS.lock().unwrap().push(call.into());
}

struct FakeArch;

impl Cpu for FakeArch {
    fn init_exceptions() {
        record("init_exceptions");
    }
    fn enable_interrupts() {}
    fn disable_interrupts() {}
    fn wait_for_interrupt() {}
    fn describe(out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        out.write_str("fake CPU")
    }
}

impl Clock for FakeArch {
    fn ticks() -> u64 {
        1_000
    }
    fn ticks_per_second() -> Option<u64> {
        Some(1_000_000)
    }
}

impl DeviceMapper for FakeArch {
    fn map_device(
        m: DeviceMapping,
        hhdm: u64,
        _frames: &mut dyn FrameSource,
    ) -> Result<(), MapError> {
        record(format!(
            "map_device phys={:#x} virt={:#x} len={:#x} hhdm={hhdm:#x}",
            m.phys, m.virt, m.len
        ));
        Ok(())
    }
}

impl Power for FakeArch {
    fn power_off(status: ExitStatus, _methods: &PowerMethods) -> ! {
        panic!("power_off({status:?})");
    }
    fn reset(_methods: &PowerMethods) -> ! {
        panic!("reset");
    }
}

fn no_port_read(_: u16) -> u8 {
    0
}
fn no_port_write(_: u16, _: u8) {}
fn no_port_read32(_: u16) -> u32 {
    0
}

impl Arch for FakeArch {
    const NAME: &'static str = "fake";
    const LEGACY_CONSOLE_PORT: Option<u16> = Some(0x3f8);
    fn port_io() -> Option<PortIo> {
        Some(PortIo {
            read_u8: no_port_read,
            write_u8: no_port_write,
            read_u32: no_port_read32,
        })
    }
}

struct DiscardingConsole;

impl ConsoleSink for DiscardingConsole {
    fn write_bytes(&self, _bytes: &[u8]) -> Result<(), ConsoleTimeout> {
        Ok(())
    }
}

static CONSOLE: DiscardingConsole = DiscardingConsole;

unsafe fn open_recorded_console(
    d: &ConsoleDescriptor,
    access: ConsoleAccess,
) -> Option<&'static dyn ConsoleSink> {
    record(
        format!("open_console {d} {access:?}")
            .split(" io:")
            .next()
            .unwrap()
            .to_string(),
    );
    Some(&CONSOLE)
}

/// With no loader answering the Limine requests (as on the host), boot opens
/// the legacy console and stops with a message naming the problem: it neither
/// hangs nor maps anything it was not given.
#[test]
fn boot_without_loader_answers_stops_with_a_message() {
    let _one = begin();
    // The expected panic is checked below; keep it off the test output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| {
        let _kernel = start::<FakeArch>(0, open_recorded_console);
    });
    std::panic::set_hook(default_hook);
    let payload = outcome.expect_err("boot must stop");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert_eq!(message, "cannot boot: the loader gave no HHDM response");
    let calls = CALLS.lock().unwrap().clone();
    assert_eq!(calls[0], "init_exceptions");
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("open_console 16550@port:0x3f8 Port { base: 1016")),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("map_device")),
        "{calls:?}"
    );
}

/// Device registers are mapped through the architecture, page-aligned, in the
/// device window above the direct map.
#[test]
fn device_memory_maps_through_the_architecture() {
    let _one = begin();
    let map = kernel_core::boot_info::MemoryMap::new();
    let mut frames = FrameAllocator::from_memory_map(&map);
    let mut window = DeviceMemory::new(0xffff_0000_0000_0000, &map);
    let region = window
        .map::<FakeArch>(0x0900_0000, 0x1000, &mut frames)
        .unwrap();
    assert_eq!(region.virt, 0xffff_4000_0000_0000);
    let calls = CALLS.lock().unwrap().clone();
    assert!(
        calls.contains(
            &"map_device phys=0x9000000 virt=0xffff400000000000 len=0x1000 hhdm=0xffff000000000000"
                .to_string()
        ),
        "{calls:?}"
    );
    let descriptor = ConsoleDescriptor::legacy_port(0x2f8);
    assert_eq!(descriptor.registers, UartRegisters::Port { base: 0x2f8 });
}
