//! `test=msi`: message-signalled interrupts reach every CPU, without any
//! device. On aarch64 the CPU itself writes each MSI's message: a write to
//! the GIC ITS's `GITS_TRANSLATER` is translated like a device's, with the
//! device id the write carries on the bus, which for a CPU write in QEMU
//! is 0 (its `requester_id` attribute is unset). So the test allocates one
//! MSI per CPU for ITS device 0, writes each message a few times, checks
//! that each CPU's handler ran on that CPU as often (waiting for each
//! before the next write, which gives the write-to-handler latency),
//! releases the MSIs, and checks that writes after the release raise
//! nothing (each waited for 100 ms). An x86 CPU cannot
//! raise an MSI itself (its writes to 0xfee00000 reach its own local APIC's
//! registers), so there the test says it skipped.
//!
//! Prints `stratus: msi cpus=N vectors=N delivered=D expected=E
//! wrong_cpu=W after_release=A first_id=I max_latency_us=L`, or `stratus: msi
//! skipped: ...`.

use crate::platform::Kernel;
use crate::platform::kernel_core::logger;

/// `test=msi`.
#[cfg(target_arch = "x86_64")]
pub fn msi(_kernel: &Kernel) {
    logger::write_raw(format_args!(
        "stratus: msi skipped: an x86 CPU cannot raise an MSI itself (its writes to 0xfee00000 reach its local APIC)\n"
    ));
}

#[cfg(target_arch = "aarch64")]
pub use self_triggered::msi;

#[cfg(target_arch = "aarch64")]
mod self_triggered {
    use super::{Kernel, logger};
    use crate::platform::Arch;
    use crate::platform::kernel_core::__arch::{
        CpuHardwareId, InterruptId, MsiAddressData, MsiDevice, Multiprocessor,
    };
    use crate::platform::kernel_core::irq;
    use crate::platform::kernel_core::{cpu_local, smp, time, timer};
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};

    /// CPUs the test covers.
    const CPUS: usize = 64;
    /// Writes of each message.
    const ROUNDS: u64 = 3;
    /// The device id a CPU's write to `GITS_TRANSLATER` carries in QEMU.
    const CPU_WRITE_DEVICE: MsiDevice = MsiDevice {
        segment: 0,
        requester_id: 0,
        its_device_id: 0,
    };

    static HARDWARE_IDS: [AtomicU64; CPUS] = [const { AtomicU64::new(u64::MAX) }; CPUS];
    static DELIVERED: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
    static WRONG_CPU: AtomicU64 = AtomicU64::new(0);

    fn record_hardware_id(_cpu: usize) {
        if let Some(slot) = HARDWARE_IDS.get(cpu_local::index()) {
            slot.store(<Arch as Multiprocessor>::hardware_id(), Ordering::Relaxed);
        }
    }

    /// The MSI handler; `cpu` is the CPU it was sent to.
    fn on_msi(cpu: usize) {
        if let Some(count) = DELIVERED.get(cpu) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        if cpu_local::index() != cpu {
            WRONG_CPU.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn total() -> u64 {
        DELIVERED.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }

    /// Raises `message` (a CPU write to the ITS's translation register)
    /// and waits, at most `patience_ms`, for `cpu`'s handler to count it.
    /// Returns the clock ticks from the write to the count, if it came.
    fn raise_and_wait(
        doorbell: *mut u32,
        message: &MsiAddressData,
        cpu: usize,
        patience_ms: u64,
    ) -> Option<u64> {
        let before = DELIVERED[cpu].load(Ordering::Relaxed);
        let patience = time::ticks_per_second()? * patience_ms / 1000;
        let start = timer::now_ticks()?;
        // SAFETY: `doorbell` is the ITS's GITS_TRANSLATER, mapped with
        // device attributes; a 32-bit write of an event id is what a
        // device's MSI does.
        unsafe { core::ptr::write_volatile(doorbell, message.data) };
        loop {
            let now = timer::now_ticks()?;
            if DELIVERED[cpu].load(Ordering::Relaxed) > before {
                return Some(now - start);
            }
            if now - start > patience {
                return None;
            }
            core::hint::spin_loop();
        }
    }

    fn skipped(why: &str) {
        logger::write_raw(format_args!("stratus: msi skipped: {why}\n"));
    }

    /// `test=msi`.
    pub fn msi(kernel: &Kernel) {
        let Some(interrupts) = irq::interrupts() else {
            return skipped("no interrupt controller");
        };
        if !interrupts.msi_available() {
            return skipped("the interrupt controller delivers no MSIs");
        }
        let cpus = smp::online_cpus().min(CPUS);
        record_hardware_id(0);
        smp::call_on_others::<Arch>(record_hardware_id);
        let mut vectors: Vec<(usize, InterruptId, MsiAddressData)> = Vec::new();
        for (cpu, id) in HARDWARE_IDS[..cpus].iter().enumerate() {
            let target = CpuHardwareId(id.load(Ordering::Relaxed));
            match interrupts.allocate_msi(CPU_WRITE_DEVICE, target, on_msi, cpu) {
                Ok((id, message)) => vectors.push((cpu, id, message)),
                Err(e) => log::error!("test: MSI for cpu {cpu} ({:#x}): {e}", target.0),
            }
        }
        let Some(&(_, first_id, first)) = vectors.first() else {
            return log::error!("test: no MSI could be allocated");
        };
        if vectors.iter().any(|(_, _, m)| m.address != first.address) {
            log::error!("test: MSIs of one ITS with different addresses");
        }
        let doorbell = match kernel.services.map_registers(first.address, 4) {
            Ok(region) => region.virt as *mut u32,
            Err(e) => {
                return log::error!(
                    "test: cannot map the MSI address {:#x}: {e:?}",
                    first.address
                );
            }
        };
        let expected = ROUNDS * vectors.len() as u64;
        let mut max_latency = 0;
        for _ in 0..ROUNDS {
            for &(cpu, _, ref message) in &vectors {
                if let Some(ticks) = raise_and_wait(doorbell, message, cpu, 1000) {
                    max_latency = max_latency.max(ticks);
                }
            }
        }
        let delivered = total();
        for &(_, id, _) in &vectors {
            interrupts.free_msi(CPU_WRITE_DEVICE, id);
        }
        for &(cpu, _, ref message) in &vectors {
            if raise_and_wait(doorbell, message, cpu, 100).is_some() {
                log::error!("test: the MSI of cpu {cpu} still arrives after its release");
            }
        }
        let hz = time::ticks_per_second().unwrap_or(1);
        logger::write_raw(format_args!(
            "stratus: msi cpus={cpus} vectors={} delivered={delivered} expected={expected} wrong_cpu={} after_release={} first_id={} max_latency_us={}\n",
            vectors.len(),
            WRONG_CPU.load(Ordering::Relaxed),
            total() - delivered,
            first_id.0,
            time::ticks_to_micros(max_latency, hz)
        ));
    }
}
