//! Bringing the other CPUs online.
//!
//! The kernel starts the CPUs itself (PSCI `CPU_ON` on aarch64) rather than
//! asking the loader for them through the Limine MP request: the same code
//! then runs under the built-in loader and under genuine Limine, and later
//! serves CPU hot-plug. For each enabled CPU that the firmware tables list,
//! other than the boot CPU, kernel-core allocates a kernel stack and an
//! exception stack (each with a guard page, see [`crate::stacks`]), asks the architecture to start the CPU at
//! [`secondary_entry`], and waits a bounded time for the CPU to check in. A
//! CPU that fails to start or does not arrive is named and the others carry
//! on.

use crate::boot_info::{MemoryKind, MemoryMap};
use crate::cpu_local::{self, MAX_CPUS};
use crate::frames::{FRAME_SIZE, FrameAllocator};
use crate::irq_lock::IrqSafeSpinlock;
use crate::mmio::ZeroedFrames;
use crate::stacks::KernelStacks;
use crate::{irq, time, timer};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use stratus_arch::{
    Arch, CpuHardwareId, CpuStart, InterruptId, PsciConduit, STARTUP_LOW_MEMORY_BYTES,
};

/// Kernel stack of a secondary CPU.
pub const STACK_BYTES: u64 = 64 * 1024;
/// Exception stack of a secondary CPU.
pub const EXCEPTION_STACK_BYTES: u64 = 16 * 1024;
/// How long a started CPU has to arrive. Under QEMU's TCG a CPU arrives in
/// well under 10 ms; hardware in microseconds.
pub const ARRIVAL_TIMEOUT_MS: u64 = 1000;
/// Polls while waiting when the counter frequency is unknown.
const SPINS_WITHOUT_CLOCK: u64 = 100_000_000;

/// CPUs online, the boot CPU included.
static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// CPUs online so far.
pub fn online_cpus() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// What a secondary CPU finds at its entry argument.
struct Arrival {
    /// Position in the firmware's CPU list.
    index: usize,
    /// Top of its exception stack.
    exception_stack_top: u64,
    /// Set by the CPU once it runs kernel code.
    arrived: AtomicBool,
}

/// Where a CPU's start ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// The CPU runs kernel code.
    Online,
    /// The architecture or firmware refused to start it.
    Refused(stratus_arch::StartError),
    /// Started, but it did not check in within [`ARRIVAL_TIMEOUT_MS`].
    NoArrival,
    /// No memory (or window space) for its stacks.
    NoMemory,
}

/// The top [`STARTUP_LOW_MEMORY_BYTES`] of the highest usable RAM below
/// 1 MiB (never page 0), for x86's real-mode start-up routine. The frame
/// allocator never hands out memory below 1 MiB, so it stays free.
pub fn startup_low_memory(map: &MemoryMap) -> Option<u64> {
    const ONE_MIB: u64 = 0x10_0000;
    map.regions()
        .iter()
        .filter(|r| r.kind == MemoryKind::Usable)
        .filter_map(|r| {
            let start = r.base.max(FRAME_SIZE).next_multiple_of(FRAME_SIZE);
            let end = r.base.saturating_add(r.len).min(ONE_MIB) & !(FRAME_SIZE - 1);
            (end >= start.saturating_add(STARTUP_LOW_MEMORY_BYTES))
                .then(|| end - STARTUP_LOW_MEMORY_BYTES)
        })
        .max()
}

/// Busy-waits about `micros` microseconds on the counter (a fixed spin count
/// per microsecond while its frequency is unknown).
fn delay_us<A: Arch>(micros: u64) {
    match time::ticks_per_second() {
        Some(hz) => {
            let start = A::ticks();
            let ticks = hz.saturating_mul(micros) / 1_000_000;
            while A::ticks().wrapping_sub(start) < ticks {
                core::hint::spin_loop();
            }
        }
        None => (0..micros.saturating_mul(1000)).for_each(|_| core::hint::spin_loop()),
    }
}

/// Starts every CPU of `hardware_ids` except the executing one; returns the
/// number of CPUs online afterwards (the boot CPU included).
pub fn start_secondaries<A: Arch>(
    hardware_ids: &[u64],
    psci: Option<PsciConduit>,
    memory_map: &MemoryMap,
    hhdm_offset: u64,
    frames: &mut FrameAllocator,
    stacks: &mut KernelStacks,
) -> usize {
    let me = A::hardware_id();
    let low_memory = startup_low_memory(memory_map);
    if !hardware_ids.contains(&me) {
        log::warn!("boot CPU (hardware id {me:#x}) is not among the firmware's CPUs");
    }
    setup_calls();
    let mut started = Vec::new();
    let mut next_index = 1;
    for &hardware_id in hardware_ids {
        if hardware_id == me {
            continue;
        }
        let index = next_index;
        if index >= MAX_CPUS {
            log::warn!("cpu {hardware_id:#x} not started: more than {MAX_CPUS} CPUs");
            break;
        }
        next_index += 1;
        let target = Target {
            index,
            hardware_id,
            psci,
            low_memory,
        };
        match start_one::<A>(&target, hhdm_offset, frames, stacks) {
            StartOutcome::Online => started.push(hardware_id),
            StartOutcome::Refused(e) => {
                log::warn!("cpu {index} (hardware id {hardware_id:#x}) not started: {e}")
            }
            StartOutcome::NoArrival => log::warn!(
                "cpu {index} (hardware id {hardware_id:#x}) started but did not arrive within {ARRIVAL_TIMEOUT_MS} ms"
            ),
            StartOutcome::NoMemory => {
                log::warn!(
                    "cpu {index} (hardware id {hardware_id:#x}) not started: no memory for its stacks"
                )
            }
        }
    }
    SECONDARIES.call_once(|| started);
    online_cpus()
}

/// One CPU to start and what its start needs.
struct Target {
    index: usize,
    hardware_id: u64,
    psci: Option<PsciConduit>,
    low_memory: Option<u64>,
}

fn start_one<A: Arch>(
    target: &Target,
    hhdm_offset: u64,
    frames: &mut FrameAllocator,
    stacks: &mut KernelStacks,
) -> StartOutcome {
    let (Ok(exception_stack), Ok(stack)) = (
        stacks.allocate::<A>(EXCEPTION_STACK_BYTES, frames),
        stacks.allocate::<A>(STACK_BYTES, frames),
    ) else {
        return StartOutcome::NoMemory;
    };
    let exception_stack_top = exception_stack.top;
    let stack_top = stack.top;
    // Leaked on purpose: the CPU reads it for as long as it runs.
    let arrival: &'static Arrival = Box::leak(Box::new(Arrival {
        index: target.index,
        exception_stack_top,
        arrived: AtomicBool::new(false),
    }));
    let start = CpuStart {
        hardware_id: target.hardware_id,
        stack_top,
        entry: secondary_entry::<A>,
        arg: core::ptr::from_ref(arrival) as u64,
        psci: target.psci,
        low_memory: target.low_memory,
        delay_us: delay_us::<A>,
    };
    let mut zeroed = ZeroedFrames::new(frames, hhdm_offset);
    if let Err(e) = A::start_cpu(&start, hhdm_offset, &mut zeroed) {
        return StartOutcome::Refused(e);
    }
    if wait_until::<A>(ARRIVAL_TIMEOUT_MS, || {
        arrival.arrived.load(Ordering::Acquire)
    }) {
        StartOutcome::Online
    } else {
        StartOutcome::NoArrival
    }
}

/// Waits until `done()` holds or `timeout_ms` passed on the counter (a
/// fixed number of polls while its frequency is unknown); returns whether
/// `done()` held.
fn wait_until<A: Arch>(timeout_ms: u64, done: impl Fn() -> bool) -> bool {
    let start = A::ticks();
    let limit = time::ticks_per_second().map(|hz| hz.saturating_mul(timeout_ms) / 1000);
    let mut spins = 0u64;
    loop {
        if done() {
            return true;
        }
        spins += 1;
        let expired = match limit {
            Some(limit) => A::ticks().wrapping_sub(start) > limit,
            None => spins > SPINS_WITHOUT_CLOCK,
        };
        if expired {
            return false;
        }
        core::hint::spin_loop();
    }
}

/// Where a secondary CPU enters the kernel: on its own stack, in the
/// kernel's address space, interrupts masked. It installs its exception
/// vectors, checks in, and waits for work.
extern "C" fn secondary_entry<A: Arch>(arg: u64) -> ! {
    // SAFETY: `arg` is the `Arrival` that `start_one` leaked for this CPU.
    let arrival = unsafe { &*(arg as *const Arrival) };
    A::init_secondary_exceptions(arrival.exception_stack_top);
    cpu_local::install::<A>(arrival.index);
    let interrupts = init_secondary_interrupts::<A>();
    ONLINE.fetch_add(1, Ordering::AcqRel);
    log::info!(
        "cpu {} online (hardware id {:#x}){}",
        arrival.index,
        A::hardware_id(),
        interrupts
    );
    arrival.arrived.store(true, Ordering::Release);
    if irq::interrupts().is_some() && timer::this_cpu().is_some() {
        loop {
            A::enable_interrupts_and_wait();
        }
    }
    loop {
        A::wait_for_interrupt();
    }
}

/// This CPU's part of the interrupt controller and its timer, as the boot
/// CPU set them up; says what it got, for the arrival line.
fn init_secondary_interrupts<A: Arch>() -> &'static str {
    if irq::interrupts().is_none() {
        return "";
    }
    let timer_id = timer::interrupt_id();
    let per_cpu = timer_id.as_slice();
    if let Err(e) = A::init_secondary_interrupts(per_cpu) {
        log::warn!(
            "cpu {}: {e}; it runs without interrupts",
            cpu_local::index()
        );
        return ", no interrupts";
    }
    match timer::init_secondary::<A>() {
        Ok(_) => ", interrupts and timer",
        Err(e) => {
            log::warn!("cpu {}: {e}; it runs without a timer", cpu_local::index());
            ", interrupts, no timer"
        }
    }
}

/// Hardware ids of the secondary CPUs that came online.
static SECONDARIES: spin::Once<Vec<u64>> = spin::Once::new();
/// The IPI that runs [`call_on_others`]' function.
static CALL_IPI: spin::Once<InterruptId> = spin::Once::new();
/// The function the call IPI runs, while a call is under way.
static CALL: IrqSafeSpinlock<Option<fn(usize)>> = IrqSafeSpinlock::new(None);
/// CPUs that ran the current call.
static CALL_DONE: AtomicUsize = AtomicUsize::new(0);
/// One call at a time.
static CALLS: spin::Mutex<()> = spin::Mutex::new(());

/// Allocates the call IPI, when there are interrupts.
fn setup_calls() {
    if let Some(interrupts) = irq::interrupts() {
        match interrupts.allocate(on_call_ipi) {
            Ok(id) => {
                CALL_IPI.call_once(|| id);
            }
            Err(e) => log::warn!("no cross-CPU calls: {e}"),
        }
    }
}

fn on_call_ipi(_id: InterruptId) {
    let call = *CALL.lock();
    if let Some(f) = call {
        f(cpu_local::index());
        CALL_DONE.fetch_add(1, Ordering::AcqRel);
    }
}

/// How long [`call_on_others`] waits for the other CPUs.
pub const CALL_TIMEOUT_MS: u64 = 1000;

/// Runs `f(cpu index)` on every other online CPU, in its call IPI's
/// handler (interrupts masked there), and waits, at most
/// [`CALL_TIMEOUT_MS`], until all ran it. Returns how many did.
pub fn call_on_others<A: Arch>(f: fn(usize)) -> usize {
    let (Some(interrupts), Some(&id), Some(targets)) =
        (irq::interrupts(), CALL_IPI.get(), SECONDARIES.get())
    else {
        return 0;
    };
    let _one = CALLS.lock();
    *CALL.lock() = Some(f);
    CALL_DONE.store(0, Ordering::Release);
    for &target in targets {
        if let Err(e) = interrupts.send_ipi(CpuHardwareId(target), id) {
            log::warn!("call IPI to {target:#x} not sent: {e}");
        }
    }
    let all = targets.len();
    wait_until::<A>(CALL_TIMEOUT_MS, || CALL_DONE.load(Ordering::Acquire) >= all);
    *CALL.lock() = None;
    CALL_DONE.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_info::MemoryRegion;

    fn map(regions: &[(u64, u64, MemoryKind)]) -> MemoryMap {
        let mut map = MemoryMap::new();
        for &(base, len, kind) in regions {
            map.push(MemoryRegion { base, len, kind });
        }
        map
    }

    #[test]
    fn startup_memory_is_the_top_of_usable_memory_below_1_mib() {
        let m = map(&[
            (0, 0x9f000, MemoryKind::Usable),
            (0x100000, 0x1000_0000, MemoryKind::Usable),
        ]);
        assert_eq!(startup_low_memory(&m), Some(0x9f000 - 0x4000));
    }

    #[test]
    fn startup_memory_needs_four_aligned_pages_and_never_page_zero() {
        // Three pages only, and page 0 excluded.
        let m = map(&[(0, 0x4000, MemoryKind::Usable)]);
        assert_eq!(startup_low_memory(&m), None);
        // Unaligned ends are trimmed: 0x1800..0x5800 holds three whole pages.
        let m = map(&[(0x1800, 0x4000, MemoryKind::Usable)]);
        assert_eq!(startup_low_memory(&m), None);
        let m = map(&[(0x1800, 0x5800, MemoryKind::Usable)]);
        assert_eq!(startup_low_memory(&m), Some(0x3000));
        // Not usable, or above 1 MiB: nothing.
        let m = map(&[
            (0x8000, 0x10000, MemoryKind::Reserved),
            (0x100000, 0x10000, MemoryKind::Usable),
        ]);
        assert_eq!(startup_low_memory(&m), None);
    }
}
