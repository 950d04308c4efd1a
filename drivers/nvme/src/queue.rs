//! One submission/completion queue pair in memory, with its command slots.
//!
//! Each queue pair owns its submission and completion rings in DMA memory,
//! and one slot per command it can have in flight (the submission ring's
//! size minus one). A slot's index is the command identifier. A slot owns
//! a bounce buffer, allocated the first time the slot carries data and
//! kept: transfers go through it because callers' buffers are ordinary
//! heap memory whose bus address the driver does not know. The buffer
//! holds the largest transfer the driver sends in one command, then the
//! PRP list pages that transfer needs, so its list is always at hand.
//!
//! The queue pair is used under its lock; nothing here waits.

use crate::command::{CQE_SIZE, Command, Completion, SQE_SIZE};
use crate::error::NvmeError;
use crate::prp::{self, Prps};
use crate::regs::{Capabilities, PAGE_SIZE};
use crate::ring::{CompletionRing, SubmissionRing};
use alloc::vec::Vec;
use stratus_driver_api::{DmaBuffer, DriverServices, IoMem};

/// Where a command slot stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    /// Free for a new command.
    Free,
    /// Submitted, not completed.
    InFlight,
    /// Completed; the submitter has not collected it yet.
    Done(Completion),
    /// Its submitter gave up waiting; the slot (and its buffer, which the
    /// controller may still write) is reused only once the completion
    /// arrives.
    Abandoned,
}

struct Slot {
    state: SlotState,
    bounce: Option<DmaBuffer>,
}

/// A queue pair: rings, doorbells, slots.
pub struct QueuePair {
    id: u16,
    sq_memory: DmaBuffer,
    cq_memory: DmaBuffer,
    sq: SubmissionRing,
    cq: CompletionRing,
    sq_doorbell: usize,
    cq_doorbell: usize,
    slots: Vec<Slot>,
    transfer_size: usize,
    unexpected: u64,
}

impl core::fmt::Debug for QueuePair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QueuePair")
            .field("id", &self.id)
            .field("entries", &self.sq.entries())
            .finish_non_exhaustive()
    }
}

impl QueuePair {
    /// Queue pair `id` of `entries` entries (2..=65536, within CAP.MQES),
    /// whose commands carry at most `transfer_size` bytes (a multiple of
    /// 4 KiB).
    pub fn new(
        id: u16,
        entries: u16,
        transfer_size: usize,
        caps: &Capabilities,
        services: &dyn DriverServices,
    ) -> Result<Self, NvmeError> {
        let entries = entries.max(2);
        let sq_memory = services.allocate_dma(usize::from(entries) * SQE_SIZE)?;
        let cq_memory = services.allocate_dma(usize::from(entries) * CQE_SIZE)?;
        let slots = (1..entries)
            .map(|_| Slot {
                state: SlotState::Free,
                bounce: None,
            })
            .collect();
        Ok(Self {
            id,
            sq_memory,
            cq_memory,
            sq: SubmissionRing::new(entries),
            cq: CompletionRing::new(entries),
            sq_doorbell: caps.sq_tail_doorbell(id),
            cq_doorbell: caps.cq_head_doorbell(id),
            slots,
            transfer_size,
            unexpected: 0,
        })
    }

    /// The queue id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Entries in each ring.
    pub fn entries(&self) -> u16 {
        self.sq.entries()
    }

    /// Commands that may be in flight at once.
    pub fn depth(&self) -> usize {
        self.slots.len()
    }

    /// Bus address of the submission ring.
    pub fn sq_bus_address(&self) -> u64 {
        self.sq_memory.bus_address()
    }

    /// Bus address of the completion ring.
    pub fn cq_bus_address(&self) -> u64 {
        self.cq_memory.bus_address()
    }

    /// Completions that named no command in flight (ignored).
    pub fn unexpected_completions(&self) -> u64 {
        self.unexpected
    }

    /// A free slot, when the ring has room.
    pub fn free_slot(&self) -> Option<u16> {
        if self.sq.free() == 0 {
            return None;
        }
        let index = self.slots.iter().position(|s| s.state == SlotState::Free)?;
        u16::try_from(index).ok()
    }

    /// The bounce buffer of `slot`, allocated on first use.
    pub fn bounce(
        &mut self,
        slot: u16,
        services: &dyn DriverServices,
    ) -> Result<&DmaBuffer, NvmeError> {
        let list_pages = prp::list_pages_needed(self.transfer_size.div_ceil(PAGE_SIZE));
        let len = self.transfer_size + list_pages * PAGE_SIZE;
        let entry = &mut self.slots[usize::from(slot)];
        if entry.bounce.is_none() {
            entry.bounce = Some(services.allocate_dma(len)?);
        }
        entry.bounce.as_ref().ok_or(NvmeError::Service(
            stratus_driver_api::ServiceError::NoMemory,
        ))
    }

    /// PRPs for `len` bytes in `slot`'s bounce buffer (which must exist),
    /// writing its list.
    pub fn prps(&self, slot: u16, len: usize) -> Result<Prps, NvmeError> {
        let bounce = self.slots[usize::from(slot)]
            .bounce
            .as_ref()
            .ok_or(NvmeError::Service(
                stratus_driver_api::ServiceError::NoMemory,
            ))?;
        if len > self.transfer_size {
            return Err(NvmeError::Prp(prp::PrpError::ListTooSmall {
                needed: prp::list_pages_needed(len.div_ceil(PAGE_SIZE)),
                available: 0,
            }));
        }
        let list_offset = self.transfer_size;
        let list_pages = (bounce.len() - list_offset) / PAGE_SIZE;
        prp::build(
            bounce.bus_address(),
            len,
            bounce.bus_address() + list_offset as u64,
            list_pages,
            |offset, value| {
                bounce.write::<u64>(list_offset + offset, value);
            },
        )
        .map_err(NvmeError::Prp)
    }

    /// Copies data out of `slot`'s bounce buffer.
    pub fn copy_out(&self, slot: u16, out: &mut [u8]) -> bool {
        match &self.slots[usize::from(slot)].bounce {
            Some(bounce) => bounce.copy_to(0, out),
            None => false,
        }
    }

    /// Places `command` in the submission ring as slot `slot`'s command
    /// (the slot from [`QueuePair::free_slot`]). The doorbell is rung
    /// separately, once for a batch ([`QueuePair::ring`]).
    pub fn push(&mut self, slot: u16, mut command: Command) -> Result<(), NvmeError> {
        let tail = self.sq.push().ok_or(NvmeError::QueueFull)?;
        command.set_command_id(slot);
        let base = usize::from(tail) * SQE_SIZE;
        for (i, dword) in command.dwords.iter().enumerate() {
            self.sq_memory.write::<u32>(base + 4 * i, *dword);
        }
        self.slots[usize::from(slot)].state = SlotState::InFlight;
        Ok(())
    }

    /// Tells the controller about every command pushed so far.
    pub fn ring(&self, regs: &IoMem) -> Result<(), NvmeError> {
        regs.write::<u32>(self.sq_doorbell, u32::from(self.sq.tail()))?;
        Ok(())
    }

    /// Whether a new completion waits at the head (nothing is consumed).
    pub fn completion_pending(&self) -> bool {
        let base = usize::from(self.cq.head()) * CQE_SIZE;
        self.cq_memory
            .read::<u32>(base + 12)
            .is_some_and(|dw3| self.cq.is_new(dw3 & (1 << 16) != 0))
    }

    /// Consumes every new completion: each marks its slot done. Returns
    /// how many were consumed; the completion head doorbell is written
    /// when there were any.
    pub fn reap(&mut self, regs: &IoMem) -> Result<usize, NvmeError> {
        let mut consumed = 0;
        loop {
            let base = usize::from(self.cq.head()) * CQE_SIZE;
            let Some(dw3) = self.cq_memory.read::<u32>(base + 12) else {
                break;
            };
            if !self.cq.is_new(dw3 & (1 << 16) != 0) {
                break;
            }
            let mut dwords = [0u32; 4];
            for (i, dword) in dwords.iter_mut().enumerate().take(3) {
                *dword = self.cq_memory.read::<u32>(base + 4 * i).unwrap_or(0);
            }
            dwords[3] = dw3;
            let completion = Completion::decode(dwords);
            self.cq.advance();
            consumed += 1;
            self.complete(completion);
        }
        if consumed > 0 {
            regs.write::<u32>(self.cq_doorbell, u32::from(self.cq.head()))?;
        }
        Ok(consumed)
    }

    fn complete(&mut self, completion: Completion) {
        if !self.sq.set_head(completion.sq_head) {
            self.unexpected += 1;
        }
        match self.slots.get_mut(usize::from(completion.command_id)) {
            Some(slot) if slot.state == SlotState::InFlight => {
                slot.state = SlotState::Done(completion)
            }
            Some(slot) if slot.state == SlotState::Abandoned => slot.state = SlotState::Free,
            _ => {
                self.unexpected += 1;
                log::warn!(
                    target: "nvme",
                    "queue {} completion for command {} which is not in flight (ignored)",
                    self.id,
                    completion.command_id
                );
            }
        }
    }

    /// The completion of `slot`, if it arrived; the slot is then free
    /// again (copy its data out first).
    pub fn take_completion(&mut self, slot: u16) -> Option<Completion> {
        let entry = self.slots.get_mut(usize::from(slot))?;
        match entry.state {
            SlotState::Done(completion) => {
                entry.state = SlotState::Free;
                Some(completion)
            }
            _ => None,
        }
    }

    /// Gives up on `slot`'s command: the slot stays out of use until the
    /// controller completes it after all.
    pub fn abandon(&mut self, slot: u16) {
        if let Some(entry) = self.slots.get_mut(usize::from(slot)) {
            entry.state = match entry.state {
                SlotState::Done(_) | SlotState::Free => SlotState::Free,
                _ => SlotState::Abandoned,
            };
        }
    }

    /// Commands in flight (abandoned ones included).
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, SlotState::InFlight | SlotState::Abandoned))
            .count()
    }
}
