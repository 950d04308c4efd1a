//! The GIC Interrupt Translation Service (ARM IHI 0069, chapters 5 and
//! 12.19): turns a device's MSI write (device id from the bus, event id =
//! the data) into an LPI at the redistributor of the CPU the event's
//! collection names. Set up once by the boot CPU: the device and
//! collection tables its `GITS_BASER<n>` registers ask for, the command
//! queue, a pool of interrupt translation tables (one per device); then
//! each MSI is mapped with commands (MAPC once per CPU, MAPD once per
//! device, MAPTI, INV, SYNC) and unmapped with DISCARD.
//!
//! The command encoding ([`crate::its_command`]), the queue
//! ([`crate::its_queue`]), the table arithmetic ([`crate::its_tables`])
//! and the event bookkeeping ([`crate::its_mappings`]) are pure modules;
//! this one holds the registers and the memory.

use crate::cache::clean_to_poc;
use crate::clock;
use crate::gic_lpi::{LpiRedistributor, LpiTables};
use crate::its_command::{ItsCommand, RedistributorTarget};
use crate::its_mappings::{ItsMappings, MappingError};
use crate::its_queue::{CommandQueue, QueueError, QueueRegisters};
use crate::its_tables::{
    Baser, COMMAND_QUEUE_BYTES, EVENTS_PER_DEVICE, ItsTyper, LPI_ID_BITS, MAX_DEVICE_ID_BITS,
    TableKind, cbaser_value, lpi_range,
};
use crate::register_frame::RegisterFrame;
use aarch64_cpu::asm::barrier;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;
use stratus_arch::interrupts::MapRegisters;
use stratus_arch::{
    AllocateMemory, CpuHardwareId, InterruptError, InterruptId, MsiAddressData, MsiDevice,
};

/// Control frame and translation frame.
const ITS_LEN: u64 = 0x20000;
const GITS_CTLR: u64 = 0x0;
const CTLR_ENABLED: u32 = 1;
const CTLR_QUIESCENT: u32 = 1 << 31;
const GITS_TYPER: u64 = 0x8;
const GITS_CBASER: u64 = 0x80;
const GITS_CWRITER: u64 = 0x88;
const GITS_CREADR: u64 = 0x90;
const GITS_BASER: u64 = 0x100;
/// Offset of `GITS_TRANSLATER` from the ITS base (translation frame + 0x40).
pub const GITS_TRANSLATER: u64 = 0x1_0040;
/// Devices whose ITTs are allocated at boot.
const ITT_POOL_DEVICES: usize = 64;
/// Longest wait for the ITS to execute commands or go quiet.
const COMMAND_TIMEOUT_MS: u64 = 1000;
/// Polls before giving up when the counter frequency is unknown.
const POLL_LIMIT: u64 = 10_000_000;

/// A bound on a wait: true once it has run out.
fn deadline() -> impl FnMut() -> bool {
    let start = clock::read_counter();
    let limit = clock::counter_frequency().map(|hz| hz * COMMAND_TIMEOUT_MS / 1000);
    let mut polls = 0u64;
    move || {
        polls += 1;
        match limit {
            Some(ticks) => clock::read_counter().wrapping_sub(start) > ticks,
            None => polls > POLL_LIMIT,
        }
    }
}

/// The queue's view of the ITS registers.
struct Registers<'a>(&'a RegisterFrame);

impl QueueRegisters for Registers<'_> {
    fn read_creadr(&mut self) -> u64 {
        self.0.read64(GITS_CREADR)
    }

    fn write_cwriter(&mut self, value: u64) {
        // The commands must be in memory before the ITS is told.
        barrier::dsb(barrier::SY);
        self.0.write64(GITS_CWRITER, value);
    }

    fn wrote(&mut self, slot: &[u64; 4]) {
        clean_to_poc(slot.as_ptr() as u64, 32);
    }
}

/// One ITS, set up and enabled.
pub struct Its {
    phys: u64,
    frame: RegisterFrame,
    typer: ItsTyper,
    queue: CommandQueue<'static>,
    /// Device ids the device table covers.
    devices: u64,
    /// Collection ids the ITS can hold (table or hardware collections).
    collections: u64,
    itt_pool: u64,
    mappings: ItsMappings,
    /// Collections mapped so far, by redistributor index.
    mapped_collections: Vec<bool>,
    /// The redistributor each mapped LPI goes to (for SYNC on release).
    lpi_targets: BTreeMap<u32, RedistributorTarget>,
    lpis: &'static LpiTables,
}

impl Its {
    /// Maps the ITS registers at `phys` and checks that something answers
    /// there (firmware may list an ITS the machine does not have).
    pub fn probe(phys: u64, map: &mut MapRegisters<'_>) -> Result<RegisterFrame, InterruptError> {
        let virt = map(phys, ITS_LEN).map_err(InterruptError::Map)?;
        // SAFETY: GITS_CTLR of the frame just mapped with device attributes;
        // reading it has no side effects.
        if unsafe { crate::probe::read32(virt + GITS_CTLR) }.is_none() {
            return Err(InterruptError::NoDevice);
        }
        // SAFETY: the ITS's control and translation frames, mapped with
        // device attributes for the kernel's lifetime, and answering.
        Ok(unsafe { RegisterFrame::new(virt, ITS_LEN) })
    }

    /// Gives the ITS at `phys` (its registers `frame`, from
    /// [`Its::probe`]) its tables and command queue, and enables it.
    pub fn new(
        phys: u64,
        frame: RegisterFrame,
        memory: AllocateMemory<'_>,
        lpis: &'static LpiTables,
    ) -> Result<Self, InterruptError> {
        quiesce(&frame)?;
        let typer = ItsTyper::decode(frame.read64(GITS_TYPER));
        if !typer.physical {
            return Err(InterruptError::MsiUnsupported);
        }
        let device_ids = 1u64 << typer.device_id_bits.min(MAX_DEVICE_ID_BITS);
        let mut devices = 0;
        let mut collections = u64::from(typer.hardware_collections);
        for n in 0..8 {
            let offset = GITS_BASER + 8 * n;
            let read = frame.read64(offset);
            let baser = Baser::decode(read);
            let ids = match baser.kind {
                TableKind::Devices => device_ids,
                TableKind::Collections => lpis.len() as u64,
                _ => continue,
            };
            let layout = baser.layout(ids);
            let table =
                memory(layout.bytes, baser.page_bytes).ok_or(InterruptError::OutOfMemory)?;
            clean_to_poc(table.virt, layout.bytes);
            frame.write64(offset, baser.value(read, &layout, table.phys));
            if Baser::decode(frame.read64(offset)).page_bytes != baser.page_bytes {
                return Err(InterruptError::WrongHardware);
            }
            match baser.kind {
                TableKind::Devices => devices = layout.covered.min(device_ids),
                _ => collections = collections.max(layout.covered),
            }
        }
        if devices == 0 {
            // No device table: no MAPD could succeed.
            return Err(InterruptError::MsiUnsupported);
        }
        let queue_memory =
            memory(COMMAND_QUEUE_BYTES, COMMAND_QUEUE_BYTES).ok_or(InterruptError::OutOfMemory)?;
        clean_to_poc(queue_memory.virt, COMMAND_QUEUE_BYTES);
        let itt_pool = memory(typer.itt_bytes() * ITT_POOL_DEVICES as u64, 0x1000)
            .ok_or(InterruptError::OutOfMemory)?;
        clean_to_poc(itt_pool.virt, typer.itt_bytes() * ITT_POOL_DEVICES as u64);
        frame.write64(
            GITS_CBASER,
            cbaser_value(queue_memory.phys, COMMAND_QUEUE_BYTES),
        );
        frame.write64(GITS_CWRITER, 0);
        // SAFETY: the queue memory was just allocated, zeroed, for this ITS
        // alone and for the kernel's lifetime; 64 KiB holds 2048 slots of
        // four u64s, and the allocation is 64 KiB aligned.
        let slots = unsafe {
            core::slice::from_raw_parts_mut(
                queue_memory.virt as *mut [u64; 4],
                (COMMAND_QUEUE_BYTES / 32) as usize,
            )
        };
        barrier::dsb(barrier::SY);
        frame.write32(GITS_CTLR, frame.read32(GITS_CTLR) | CTLR_ENABLED);
        collections = collections.min(1 << typer.collection_id_bits.min(16));
        log::info!(target: "gic",
            "ITS at {phys:#x}: LPIs {:?}, device ids below {devices:#x}, {collections} collections, {}-byte ITT entries, targets by {}",
            lpi_range(LPI_ID_BITS),
            typer.itt_entry_bytes,
            if typer.physical_target_addresses { "address" } else { "processor number" }
        );
        Ok(Self {
            phys,
            frame,
            typer,
            queue: CommandQueue::new(slots),
            devices,
            collections,
            itt_pool: itt_pool.phys,
            mappings: ItsMappings::new(ITT_POOL_DEVICES),
            mapped_collections: vec![false; lpis.len()],
            lpi_targets: BTreeMap::new(),
            lpis,
        })
    }

    /// LPIs for MSIs.
    pub fn msi_ids(&self) -> Range<u32> {
        lpi_range(LPI_ID_BITS)
    }

    fn target(&self, r: &LpiRedistributor) -> RedistributorTarget {
        if self.typer.physical_target_addresses {
            RedistributorTarget::Physical(r.phys)
        } else {
            RedistributorTarget::ProcessorNumber(r.processor_number)
        }
    }

    fn submit(&mut self, commands: &[ItsCommand]) -> Result<(), InterruptError> {
        let frame = self.frame;
        self.queue
            .submit(commands, &mut Registers(&frame), deadline())
            .map_err(|e| {
                log::error!(target: "gic", "ITS at {:#x}: {e:?}", self.phys);
                match e {
                    QueueError::Stalled { offset } => InterruptError::ItsStalled(offset),
                    QueueError::Timeout { .. } => InterruptError::Timeout,
                }
            })
    }

    /// Maps the next event of `device` to LPI `id` on CPU `target` and
    /// returns the write that raises it.
    pub fn compose(
        &mut self,
        device: MsiDevice,
        id: InterruptId,
        target: CpuHardwareId,
    ) -> Result<MsiAddressData, InterruptError> {
        if !self.msi_ids().contains(&id.0) {
            return Err(InterruptError::BadId(id.0));
        }
        let device_id = device.its_device_id;
        if u64::from(device_id) >= self.devices {
            return Err(InterruptError::ItsDeviceUnavailable(device_id));
        }
        let affinity = (((target.0 >> 32) & 0xff) << 24 | (target.0 & 0xff_ffff)) as u32;
        let lpis = self.lpis;
        let (icid, r) = lpis
            .find(affinity)
            .filter(|&(icid, r)| (icid as u64) < self.collections && lpis.enabled(r))
            .ok_or(InterruptError::MsiUnreachableCpu(target.0))?;
        let target_rd = self.target(r);
        let mapping = self.mappings.map(device_id, id.0).map_err(|e| match e {
            MappingError::LpiInUse(lpi) => InterruptError::BadId(lpi),
            MappingError::NoItt | MappingError::DeviceFull(_) => {
                InterruptError::ItsDeviceUnavailable(device_id)
            }
        })?;
        let mut commands = Vec::with_capacity(6);
        if !self.mapped_collections[icid] {
            commands.push(ItsCommand::Mapc {
                icid: icid as u16,
                target: target_rd,
            });
        }
        if let Some(itt) = mapping.new_device_itt {
            commands.push(ItsCommand::Mapd {
                device: device_id,
                itt_phys: Some(self.itt_pool + itt as u64 * self.typer.itt_bytes()),
                event_id_bits: EVENTS_PER_DEVICE.trailing_zeros() as u8,
            });
        }
        commands.push(ItsCommand::Mapti {
            device: device_id,
            event: mapping.event,
            lpi: id.0,
            icid: icid as u16,
        });
        self.lpis.configure(id.0, true);
        commands.push(ItsCommand::Inv {
            device: device_id,
            event: mapping.event,
        });
        commands.push(ItsCommand::Sync { target: target_rd });
        if let Err(e) = self.submit(&commands) {
            self.lpis.configure(id.0, false);
            self.mappings.unmap(id.0);
            return Err(e);
        }
        self.mapped_collections[icid] = true;
        self.lpi_targets.insert(id.0, target_rd);
        Ok(MsiAddressData {
            address: self.phys + GITS_TRANSLATER,
            data: mapping.event,
        })
    }

    /// Unmaps LPI `id`: DISCARD (which also drops it if pending), the
    /// device too when it was its last event, then SYNC.
    pub fn release(&mut self, device: MsiDevice, id: InterruptId) {
        let Some(released) = self.mappings.unmap(id.0) else {
            return;
        };
        if released.device != device.its_device_id {
            log::warn!(target: "gic", "LPI {} was mapped for device {:#x}, released for {:#x}", id.0, released.device, device.its_device_id);
        }
        self.lpis.configure(id.0, false);
        let mut commands = vec![ItsCommand::Discard {
            device: released.device,
            event: released.event,
        }];
        if released.device_now_unused {
            commands.push(ItsCommand::Mapd {
                device: released.device,
                itt_phys: None,
                event_id_bits: EVENTS_PER_DEVICE.trailing_zeros() as u8,
            });
        }
        if let Some(target) = self.lpi_targets.remove(&id.0) {
            commands.push(ItsCommand::Sync { target });
        }
        let _ = self.submit(&commands);
    }
}

/// Makes sure the ITS is disabled and quiescent before its registers are
/// written (an earlier kernel or the firmware may have left it enabled).
fn quiesce(frame: &RegisterFrame) -> Result<(), InterruptError> {
    let ctlr = frame.read32(GITS_CTLR);
    if ctlr & CTLR_ENABLED != 0 {
        frame.write32(GITS_CTLR, ctlr & !CTLR_ENABLED);
    }
    let mut expired = deadline();
    while frame.read32(GITS_CTLR) & CTLR_QUIESCENT == 0 {
        if expired() {
            return Err(InterruptError::Timeout);
        }
        core::hint::spin_loop();
    }
    Ok(())
}
