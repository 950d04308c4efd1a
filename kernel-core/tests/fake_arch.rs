//! kernel-core against a fake architecture: what the portable boot code asks
//! of an `Arch`, observed on the host.

use kernel_core::boot::{ConsoleAccess, start};
use kernel_core::console::{ConsoleDescriptor, ConsoleSink, ConsoleTimeout, UartRegisters};
use kernel_core::frames::FrameAllocator;
use kernel_core::mmio::DeviceMemory;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use stratus_arch::interrupts::{AllocateMemory, MapRegisters};
use stratus_arch::{
    Arch, Clock, Cpu, CpuHardwareId, CpuStart, DeviceMapper, DeviceMapping, ExitStatus,
    FrameSource, InterruptController, InterruptError, InterruptHardware, InterruptId,
    InterruptLine, InterruptSetup, MapError, Multiprocessor, PortIo, Power, PowerMethods,
    SecondaryEntry, StartError, Timer, TimerDescription,
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
    fn wait_for_interrupt() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    fn describe(out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        out.write_str("fake CPU")
    }
}

std::thread_local! {
    /// The fake per-CPU register: each thread is a CPU.
    static CPU_LOCAL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A counter that advances by one tick per read.
static TICKS: AtomicU64 = AtomicU64::new(1_000);

impl Clock for FakeArch {
    fn ticks() -> u64 {
        TICKS.fetch_add(1, Ordering::Relaxed)
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
        FakeArch::record_mapping("map_device", m, hhdm);
        Ok(())
    }
    fn map_memory(
        m: DeviceMapping,
        hhdm: u64,
        _frames: &mut dyn FrameSource,
    ) -> Result<(), MapError> {
        FakeArch::record_mapping("map_memory", m, hhdm);
        Ok(())
    }
}

impl FakeArch {
    fn record_mapping(what: &str, m: DeviceMapping, hhdm: u64) {
        record(format!(
            "{what} phys={:#x} virt={:#x} len={:#x} hhdm={hhdm:#x}",
            m.phys, m.virt, m.len
        ));
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

/// The fake's CPU 1 runs the entry on a thread, CPU 2 is refused by the
/// firmware, CPU 3 is started but never arrives.
impl Multiprocessor for FakeArch {
    fn hardware_id() -> u64 {
        0
    }
    fn run_on_stack(stack_top: u64, entry: SecondaryEntry, arg: u64) -> ! {
        record(format!("run_on_stack {stack_top:#x}"));
        entry(arg)
    }
    fn start_cpu(
        start: &CpuStart,
        hhdm_offset: u64,
        _frames: &mut dyn FrameSource,
    ) -> Result<(), StartError> {
        record(format!(
            "start_cpu {:#x} stack_top={:#x} hhdm={hhdm_offset:#x}",
            start.hardware_id, start.stack_top
        ));
        match start.hardware_id {
            1 => {
                let (entry, arg) = (start.entry, start.arg);
                std::thread::spawn(move || entry(arg));
                Ok(())
            }
            2 => Err(StartError::Firmware(-4)),
            _ => Ok(()),
        }
    }
    fn init_secondary_exceptions(exception_stack_top: u64) {
        record(format!(
            "init_secondary_exceptions {exception_stack_top:#x}"
        ));
    }
    fn set_cpu_local(value: u64) {
        CPU_LOCAL.with(|c| c.set(value));
    }
    fn cpu_local() -> u64 {
        CPU_LOCAL.with(|c| c.get())
    }
}

fn no_port_read(_: u16) -> u8 {
    0
}
fn no_port_write(_: u16, _: u8) {}
fn no_port_read32(_: u16) -> u32 {
    0
}

struct NoController;

impl InterruptController for NoController {
    fn kind(&self) -> &'static str {
        "none"
    }
    fn allocatable(&self) -> core::ops::Range<u32> {
        0..0
    }
    fn fixed_id(&self, _line: InterruptLine) -> Option<InterruptId> {
        None
    }
    fn enable(&mut self, _line: InterruptLine, _id: InterruptId) -> Result<(), InterruptError> {
        Err(InterruptError::BadLine)
    }
    fn disable(&mut self, _line: InterruptLine) -> Result<(), InterruptError> {
        Err(InterruptError::BadLine)
    }
    fn this_cpu(&self) -> CpuHardwareId {
        CpuHardwareId(0)
    }
    fn send_ipi(&mut self, _t: CpuHardwareId, _id: InterruptId) -> Result<(), InterruptError> {
        Err(InterruptError::BadLine)
    }
}

struct NoTimer;

impl Timer for NoTimer {
    fn kind(&self) -> &'static str {
        "none"
    }
    fn bind(&mut self, _id: InterruptId) {}
    fn set_deadline(&mut self, _deadline: u64) {}
    fn cancel(&mut self) {}
}

impl InterruptSetup for FakeArch {
    type Controller = NoController;
    type Timer = NoTimer;
    fn init_interrupts(
        _hardware: &InterruptHardware<'_>,
        _map: MapRegisters<'_>,
        _memory: AllocateMemory<'_>,
    ) -> Result<NoController, InterruptError> {
        record("init_interrupts");
        Err(InterruptError::WrongHardware)
    }
    fn init_timer(_timer: &TimerDescription) -> Result<NoTimer, InterruptError> {
        Err(InterruptError::WrongHardware)
    }
    fn init_secondary_interrupts(_per_cpu: &[InterruptId]) -> Result<(), InterruptError> {
        Err(InterruptError::WrongHardware)
    }
    fn init_secondary_timer(_timer: &TimerDescription) -> Result<NoTimer, InterruptError> {
        Err(InterruptError::WrongHardware)
    }
    fn set_interrupt_dispatcher(_dispatch: fn(InterruptId)) {}
    fn interrupts_enabled() -> bool {
        false
    }
    fn enable_interrupts_and_wait() {}
}

impl Arch for FakeArch {
    const NAME: &'static str = "fake";
    const LEGACY_CONSOLE_PORT: Option<u16> = Some(0x3f8);
    fn port_io() -> Option<PortIo> {
        Some(PortIo {
            read_u8: no_port_read,
            write_u8: no_port_write,
            read_u32: no_port_read32,
            write_u32: |_, _| {},
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
        start::<FakeArch>(0, open_recorded_console, &[], |_kernel| {
            panic!("main must not run")
        });
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

/// Every CPU but the boot CPU is started on its own stacks; one the firmware
/// refuses and one that never arrives are named, and the others carry on.
#[test]
fn secondary_cpus_start_and_failures_do_not_stop_the_rest() {
    use kernel_core::boot_info::{MemoryKind, MemoryMap, MemoryRegion};
    let _one = begin();
    let mut map = MemoryMap::new();
    map.push(MemoryRegion {
        base: 0x100_0000,
        len: 0x100_0000,
        kind: MemoryKind::Usable,
    });
    let mut frames = FrameAllocator::from_memory_map(&map);
    // One million fake ticks per second: the one-second arrival bound is a
    // million counter reads.
    kernel_core::time::set_clock(1_000_000, 0);
    let hhdm = 0xffff_8000_0000_0000;
    let mut stacks = kernel_core::stacks::KernelStacks::new(hhdm);
    let online = kernel_core::smp::start_secondaries::<FakeArch>(
        &[0, 1, 2, 3],
        None,
        &map,
        hhdm,
        &mut frames,
        &mut stacks,
    );
    assert_eq!(online, 2);
    let calls = CALLS.lock().unwrap().clone();
    let starts: Vec<_> = calls
        .iter()
        .filter(|c| c.starts_with("start_cpu"))
        .collect();
    assert_eq!(starts.len(), 3, "{calls:?}");
    assert!(starts[0].starts_with("start_cpu 0x1 "), "{calls:?}");
    // In the stack window (hhdm + 65 TiB): guard page, 16 KiB exception
    // stack, guard page, 64 KiB kernel stack.
    let window = hhdm + kernel_core::stacks::WINDOW_OFFSET_FROM_HHDM;
    assert!(
        calls.contains(&format!(
            "map_memory phys=0x1000000 virt={:#x} len=0x4000 hhdm={hhdm:#x}",
            window + 0x1000
        )),
        "{calls:?}"
    );
    assert!(
        calls.contains(&format!(
            "map_memory phys=0x1004000 virt={:#x} len=0x10000 hhdm={hhdm:#x}",
            window + 0x6000
        )),
        "{calls:?}"
    );
    assert!(
        starts[0].ends_with(&format!("stack_top={:#x} hhdm={hhdm:#x}", window + 0x16000)),
        "{calls:?}"
    );
    assert!(
        calls.contains(&format!("init_secondary_exceptions {:#x}", window + 0x5000)),
        "{calls:?}"
    );
}

/// Each CPU (here: each thread) finds its own data through the per-CPU
/// register; before `install` a CPU counts as the boot CPU.
#[test]
fn cpu_local_data_is_per_cpu() {
    let _one = begin();
    let other = std::thread::spawn(|| {
        let before = kernel_core::cpu_local::index();
        kernel_core::cpu_local::install::<FakeArch>(7);
        (before, kernel_core::cpu_local::index())
    });
    kernel_core::cpu_local::install::<FakeArch>(3);
    assert_eq!(other.join().unwrap(), (0, 7));
    let mine = kernel_core::cpu_local::current().unwrap();
    assert_eq!((mine.index, mine.hardware_id), (3, 0));
}
