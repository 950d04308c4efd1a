//! `test=msi`: message-signalled interrupts reach every CPU, without any
//! device. On aarch64 the CPU itself writes each MSI's message: a write to
//! the GIC ITS's `GITS_TRANSLATER` is translated like a device's, with the
//! device id the write carries on the bus, which for a CPU write in QEMU
//! is 0 (its `requester_id` attribute is unset). So the test allocates one
//! MSI per CPU for ITS device 0, writes each message a few times, checks
//! that each CPU's handler ran on that CPU as often, releases the MSIs, and
//! checks that writes after the release raise nothing. An x86 CPU cannot
//! raise an MSI itself (its writes to 0xfee00000 reach its own local APIC's
//! registers), so there the test says it skipped.
//!
//! Prints `stratus: msi cpus=N vectors=N delivered=D expected=E
//! wrong_cpu=W after_release=A first_id=I`, or `stratus: msi skipped: ...`.

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
    use crate::platform::kernel_core::{cpu_local, smp, timer};
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};
    use core::time::Duration;

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

    /// Waits (at most a second) until `total() >= want`.
    fn wait_for(want: u64) {
        for _ in 0..100 {
            if total() >= want {
                return;
            }
            let _ = timer::sleep(Duration::from_millis(10));
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
        let mut vectors: Vec<(InterruptId, MsiAddressData)> = Vec::new();
        for (cpu, id) in HARDWARE_IDS[..cpus].iter().enumerate() {
            let target = CpuHardwareId(id.load(Ordering::Relaxed));
            match interrupts.allocate_msi(CPU_WRITE_DEVICE, target, on_msi, cpu) {
                Ok(vector) => vectors.push(vector),
                Err(e) => log::error!("test: MSI for cpu {cpu} ({:#x}): {e}", target.0),
            }
        }
        let Some(&(first_id, first)) = vectors.first() else {
            return log::error!("test: no MSI could be allocated");
        };
        if vectors.iter().any(|(_, m)| m.address != first.address) {
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
        let write_all = |vectors: &[(InterruptId, MsiAddressData)]| {
            for (_, message) in vectors {
                // SAFETY: `doorbell` is the ITS's GITS_TRANSLATER, just
                // mapped with device attributes; a 32-bit write of an
                // event id is what a device's MSI does.
                unsafe { core::ptr::write_volatile(doorbell, message.data) };
            }
        };
        let expected = ROUNDS * vectors.len() as u64;
        for round in 1..=ROUNDS {
            write_all(&vectors);
            wait_for(round * vectors.len() as u64);
        }
        let delivered = total();
        for &(id, _) in &vectors {
            interrupts.free_msi(CPU_WRITE_DEVICE, id);
        }
        write_all(&vectors);
        let _ = timer::sleep(Duration::from_millis(50));
        logger::write_raw(format_args!(
            "stratus: msi cpus={cpus} vectors={} delivered={delivered} expected={expected} wrong_cpu={} after_release={} first_id={}\n",
            vectors.len(),
            WRONG_CPU.load(Ordering::Relaxed),
            total() - delivered,
            first_id.0
        ));
    }
}
