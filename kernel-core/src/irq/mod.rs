//! The kernel's interrupt API.
//!
//! A driver asks for a line ([`Interrupts::request_line`]) or a bare id for
//! an inter-processor interrupt or (next) an MSI ([`Interrupts::allocate`])
//! and gives a handler; the id is allocated where the hardware does not fix
//! it, the line is routed to the boot CPU and unmasked. The architecture's
//! interrupt entry acknowledges each interrupt, calls [`dispatch`] with its
//! id, and signals end-of-interrupt when the handler returns: handlers never
//! touch the controller themselves.
//!
//! Handlers run with interrupts masked on the interrupted CPU's exception
//! or kernel stack; they must be short, must not allocate (the heap lock is
//! not interrupt-safe) and may log (the logger's lock is).

mod bring_up;
pub mod controller_memory;
mod vectors;

pub use bring_up::{InterruptSummary, bring_up};

pub use vectors::{MAX_IDS, VectorAllocator, VectorError};

use crate::irq_lock::IrqSafeSpinlock;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};
use stratus_arch::{
    Arch, CpuHardwareId, InterruptController, InterruptError, InterruptHardware, InterruptId,
    InterruptLine, MsiAddressData, MsiDevice,
};

/// What runs when an interrupt arrives; it gets the interrupt's id.
pub type Handler = fn(InterruptId);

/// A registered handler: a plain one, or a driver's with its context word
/// (an MSI handler from the driver API).
#[derive(Clone, Copy, Debug)]
enum Slot {
    Plain(Handler),
    WithContext(fn(usize), usize),
}

/// Why an interrupt request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// The controller refused.
    Controller(InterruptError),
    /// No id could be had.
    Vector(VectorError),
    /// A handler is registered for the id already.
    AlreadyRegistered(u32),
    /// Interrupts were not set up (no controller found, or not supported).
    NotInitialised,
}

impl From<InterruptError> for IrqError {
    fn from(e: InterruptError) -> Self {
        Self::Controller(e)
    }
}

impl From<VectorError> for IrqError {
    fn from(e: VectorError) -> Self {
        Self::Vector(e)
    }
}

impl core::fmt::Display for IrqError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Controller(e) => write!(f, "{e}"),
            Self::Vector(e) => write!(f, "no interrupt id: {e:?}"),
            Self::AlreadyRegistered(id) => write!(f, "interrupt {id} already has a handler"),
            Self::NotInitialised => f.write_str("interrupts are not set up"),
        }
    }
}

/// Interrupt id -> handler.
pub struct DispatchTable {
    handlers: IrqSafeSpinlock<[Option<Slot>; MAX_IDS as usize]>,
    unhandled: AtomicU64,
}

impl Default for DispatchTable {
    fn default() -> Self {
        Self::new()
    }
}

impl DispatchTable {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            handlers: IrqSafeSpinlock::new([None; MAX_IDS as usize]),
            unhandled: AtomicU64::new(0),
        }
    }

    /// Registers `handler` for `id`.
    pub fn register(&self, id: InterruptId, handler: Handler) -> Result<(), IrqError> {
        self.register_slot(id, Slot::Plain(handler))
    }

    /// Registers `handler`, called with `context`, for `id`.
    pub fn register_with_context(
        &self,
        id: InterruptId,
        handler: fn(usize),
        context: usize,
    ) -> Result<(), IrqError> {
        self.register_slot(id, Slot::WithContext(handler, context))
    }

    fn register_slot(&self, id: InterruptId, handler: Slot) -> Result<(), IrqError> {
        let mut handlers = self.handlers.lock();
        let slot = handlers
            .get_mut(id.0 as usize)
            .ok_or(IrqError::Vector(VectorError::OutOfRange(id.0)))?;
        if slot.is_some() {
            return Err(IrqError::AlreadyRegistered(id.0));
        }
        *slot = Some(handler);
        Ok(())
    }

    /// Removes the handler of `id`.
    pub fn unregister(&self, id: InterruptId) {
        if let Some(slot) = self.handlers.lock().get_mut(id.0 as usize) {
            *slot = None;
        }
    }

    /// Runs the handler of `id`; counts the interrupt as unhandled when
    /// there is none. The lock is released before the handler runs, so a
    /// handler may register others.
    pub fn dispatch(&self, id: InterruptId) {
        let handler = self.handlers.lock().get(id.0 as usize).copied().flatten();
        match handler {
            Some(Slot::Plain(handler)) => handler(id),
            Some(Slot::WithContext(handler, context)) => handler(context),
            None => {
                self.unhandled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Interrupts that arrived with no handler (spurious, or raced with
    /// [`DispatchTable::unregister`]).
    pub fn unhandled(&self) -> u64 {
        self.unhandled.load(Ordering::Relaxed)
    }
}

/// The interrupt controller of the boot CPU and the ids handed out.
pub struct Interrupts {
    controller: IrqSafeSpinlock<Box<dyn InterruptController>>,
    ids: IrqSafeSpinlock<VectorAllocator>,
    msi_ids: IrqSafeSpinlock<VectorAllocator>,
    table: &'static DispatchTable,
    kind: &'static str,
}

impl Interrupts {
    /// Wraps `controller`; handlers go to `table`.
    pub fn new(controller: Box<dyn InterruptController>, table: &'static DispatchTable) -> Self {
        let ids = VectorAllocator::new(controller.allocatable());
        let msi_ids = VectorAllocator::new(controller.msi_ids());
        Self {
            kind: controller.kind(),
            controller: IrqSafeSpinlock::new(controller),
            ids: IrqSafeSpinlock::new(ids),
            msi_ids: IrqSafeSpinlock::new(msi_ids),
            table,
        }
    }

    /// The controller's name (`x2apic`, `xapic`, `gicv3`).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Routes `line` to this CPU, registers `handler` for it and unmasks
    /// it. Returns the id it arrives with.
    pub fn request_line(
        &self,
        line: InterruptLine,
        handler: Handler,
    ) -> Result<InterruptId, IrqError> {
        let fixed = self.controller.lock().fixed_id(line);
        let id = match fixed {
            Some(id) => id,
            None => InterruptId(self.ids.lock().allocate()?),
        };
        let undo_id = |ids: &IrqSafeSpinlock<VectorAllocator>| {
            if fixed.is_none() {
                ids.lock().free(id.0);
            }
        };
        if let Err(e) = self.table.register(id, handler) {
            undo_id(&self.ids);
            return Err(e);
        }
        if let Err(e) = self.controller.lock().enable(line, id) {
            self.table.unregister(id);
            undo_id(&self.ids);
            return Err(e.into());
        }
        Ok(id)
    }

    /// Masks `line` and gives back its id.
    pub fn release_line(&self, line: InterruptLine, id: InterruptId) -> Result<(), IrqError> {
        self.controller.lock().disable(line)?;
        self.table.unregister(id);
        self.ids.lock().free(id.0);
        Ok(())
    }

    /// Allocates an id with no line behind it (inter-processor interrupts,
    /// and next MSI/MSI-X) and registers `handler` for it.
    pub fn allocate(&self, handler: Handler) -> Result<InterruptId, IrqError> {
        let id = InterruptId(self.ids.lock().allocate()?);
        if let Err(e) = self.table.register(id, handler) {
            self.ids.lock().free(id.0);
            return Err(e);
        }
        Ok(id)
    }

    /// Gives back an id from [`Interrupts::allocate`].
    pub fn free(&self, id: InterruptId) {
        self.table.unregister(id);
        self.ids.lock().free(id.0);
    }

    /// Allocates an MSI id for `device`, registers `handler` (called with
    /// `context`) for it and prepares its delivery to CPU `target`: the
    /// id and the message the device must write.
    pub fn allocate_msi(
        &self,
        device: MsiDevice,
        target: CpuHardwareId,
        handler: fn(usize),
        context: usize,
    ) -> Result<(InterruptId, MsiAddressData), IrqError> {
        let id = InterruptId(self.msi_ids.lock().allocate()?);
        if let Err(e) = self.table.register_with_context(id, handler, context) {
            self.msi_ids.lock().free(id.0);
            return Err(e);
        }
        match self.controller.lock().compose_msi(device, id, target) {
            Ok(message) => Ok((id, message)),
            Err(e) => {
                self.table.unregister(id);
                self.msi_ids.lock().free(id.0);
                Err(e.into())
            }
        }
    }

    /// Gives back an id from [`Interrupts::allocate_msi`].
    pub fn free_msi(&self, device: MsiDevice, id: InterruptId) {
        self.controller.lock().release_msi(device, id);
        self.table.unregister(id);
        self.msi_ids.lock().free(id.0);
    }

    /// Whether the controller can deliver MSIs at all.
    pub fn msi_available(&self) -> bool {
        !self.controller.lock().msi_ids().is_empty()
    }

    /// The executing CPU's hardware id (APIC id, MPIDR affinity).
    pub fn this_cpu(&self) -> CpuHardwareId {
        self.controller.lock().this_cpu()
    }

    /// Sends interrupt `id` to CPU `target`.
    pub fn send_ipi(&self, target: CpuHardwareId, id: InterruptId) -> Result<(), IrqError> {
        Ok(self.controller.lock().send_ipi(target, id)?)
    }

    /// Interrupts that arrived with no handler.
    pub fn unhandled(&self) -> u64 {
        self.table.unhandled()
    }
}

static TABLE: DispatchTable = DispatchTable::new();
static INTERRUPTS: spin::Once<Interrupts> = spin::Once::new();

/// Called by the architecture's interrupt entry for each interrupt.
pub fn dispatch(id: InterruptId) {
    TABLE.dispatch(id);
}

/// The interrupt service, once [`init`] succeeded.
pub fn interrupts() -> Option<&'static Interrupts> {
    INTERRUPTS.get()
}

/// Builds the boot CPU's controller from `hardware` (registers mapped by
/// `map`, memory the hardware uses from `memory`) and installs [`dispatch`]
/// as the architecture's interrupt entry target. Interrupts stay masked on
/// the CPU; the caller unmasks them when ready.
pub fn init<A: Arch>(
    hardware: &InterruptHardware<'_>,
    map: stratus_arch::interrupts::MapRegisters<'_>,
    memory: stratus_arch::AllocateMemory<'_>,
) -> Result<&'static Interrupts, IrqError> {
    A::set_interrupt_dispatcher(dispatch);
    let controller = A::init_interrupts(hardware, map, memory)?;
    Ok(INTERRUPTS.call_once(|| Interrupts::new(Box::new(controller), &TABLE)))
}

#[cfg(test)]
mod tests;
