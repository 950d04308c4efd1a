//! Per-CPU data: each CPU's [`CpuLocal`], reached through the
//! architecture's per-CPU register (x86 GS base, aarch64 TPIDR_EL1).
//!
//! The boot CPU is index 0; secondary CPUs get 1, 2, ... in the order they
//! come online. Per-CPU tables elsewhere (timers) are indexed by it.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};
use stratus_arch::Arch;

/// CPUs the per-CPU tables have room for.
pub const MAX_CPUS: usize = 256;

/// One CPU's own data.
#[derive(Debug)]
pub struct CpuLocal {
    /// Its index: 0 for the boot CPU, then in the order CPUs came online.
    pub index: usize,
    /// Its hardware id (APIC id, MPIDR affinity).
    pub hardware_id: u64,
}

/// How to read the per-CPU register: the architecture's function, recorded
/// once so that code without the `Arch` type (interrupt handlers, the
/// logger) can find its CPU.
static READ: spin::Once<fn() -> u64> = spin::Once::new();

/// Each index's hardware id plus one (0: no CPU with that index yet).
static HARDWARE_IDS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The hardware id of the CPU with `index`, once it installed its data.
pub fn hardware_id_of(index: usize) -> Option<u64> {
    match HARDWARE_IDS.get(index)?.load(Ordering::Acquire) {
        0 => None,
        id => Some(id - 1),
    }
}

/// Gives the executing CPU its data, for as long as it runs.
pub fn install<A: Arch>(index: usize) -> &'static CpuLocal {
    READ.call_once(|| A::cpu_local);
    let local: &'static CpuLocal = Box::leak(Box::new(CpuLocal {
        index,
        hardware_id: A::hardware_id(),
    }));
    A::set_cpu_local(core::ptr::from_ref(local) as u64);
    if let Some(slot) = HARDWARE_IDS.get(index) {
        slot.store(local.hardware_id.wrapping_add(1), Ordering::Release);
    }
    local
}

/// The executing CPU's data, once [`install`] ran on it.
pub fn current() -> Option<&'static CpuLocal> {
    let value = (READ.get()?)();
    // SAFETY: the register holds 0 or the address of a leaked `CpuLocal`
    // that `install` stored; nothing else writes it.
    (value != 0).then(|| unsafe { &*(value as *const CpuLocal) })
}

/// The executing CPU's index (0 before per-CPU data exists, which is the
/// boot CPU's).
pub fn index() -> usize {
    current().map_or(0, |c| c.index)
}
