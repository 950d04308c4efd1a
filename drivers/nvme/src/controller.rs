//! One NVMe controller: bring-up (NVMe Base Specification 2.0, 3.5.1),
//! admin commands, I/O queue creation with MSI-X, and the loop that
//! submits commands and collects their completions.

use crate::command::{Command, Completion, admin, cns, io};
use crate::error::NvmeError;
use crate::identify::{self, ControllerIdentity, NamespaceError, NamespaceIdentity};
use crate::queue::QueuePair;
use crate::regs::{self, Capabilities, PAGE_SIZE};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use spin::Mutex;
use stratus_driver_api::clock::{self, Deadline};
use stratus_driver_api::{DriverServices, IoMem, MsiRequest, MsiVector, RequestEvent};
use stratus_pci::PciFunction;
use stratus_pci::msix::Msix;

/// How long one command may take before it is called timed out (unless
/// the driver was given another bound), and how long a submitter waits
/// for a free command slot.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Polls standing in for the command timeout before the clock runs.
const COMMAND_TIMEOUT_POLLS: u64 = 20_000_000;
/// Register reads standing in for CAP.TO before the clock runs, per
/// 500 ms unit.
const READY_POLLS_PER_UNIT: u64 = 1_000_000;

/// Entries of the admin queues.
const ADMIN_ENTRIES: u16 = 16;
/// Entries of each I/O queue: 63 commands in flight per queue.
pub const IO_ENTRIES: u16 = 64;
/// I/O queues asked for at most (one per CPU up to this).
const MAX_IO_QUEUES: usize = 64;
/// Largest transfer of one I/O command, unless the controller's MDTS is
/// smaller. A slot's bounce buffer holds this much (plus its PRP list
/// page), allocated the first time the slot is used: memory grows with
/// the queue depth actually used, 129 pages per slot at most.
pub const MAX_TRANSFER: usize = 128 * 1024;
/// How long a submitter halts waiting for a completion interrupt before it
/// checks its commands' deadlines again.
const INTERRUPT_WAIT: Duration = Duration::from_millis(10);

/// Completion interrupts taken, all controllers together.
pub static COMPLETION_INTERRUPTS: AtomicU64 = AtomicU64::new(0);
static POLLING_WARNED: AtomicBool = AtomicBool::new(false);

/// An I/O queue's MSI-X handler: the interrupt only wakes the submitter
/// waiting on this CPU, which collects the completions itself (so the
/// handler takes no lock).
fn on_completion(_queue: usize) {
    COMPLETION_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
}

/// Data of one command.
#[derive(Debug)]
pub enum Data<'a> {
    /// No data (Flush, Create queue).
    None,
    /// The device writes into the buffer (Read, Identify).
    FromDevice(&'a mut [u8]),
    /// The device reads the buffer (Write).
    ToDevice(&'a [u8]),
}

/// One command to run and, once run, how it went.
#[derive(Debug)]
pub struct Transfer<'a> {
    /// The command (its id and PRPs are filled in at submission).
    pub command: Command,
    /// Its data.
    pub data: Data<'a>,
    /// Its completion, or why there is none.
    pub result: Result<Completion, NvmeError>,
}

impl<'a> Transfer<'a> {
    /// `command` with `data`, not run yet.
    pub fn new(command: Command, data: Data<'a>) -> Self {
        Self {
            command,
            data,
            result: Err(NvmeError::CommandTimeout {
                command: "unsubmitted",
            }),
        }
    }
}

/// The name of an opcode, for messages.
pub fn command_name(is_admin: bool, opcode: u8) -> &'static str {
    match (is_admin, opcode) {
        (true, admin::DELETE_IO_SQ) => "Delete I/O Submission Queue",
        (true, admin::CREATE_IO_SQ) => "Create I/O Submission Queue",
        (true, admin::DELETE_IO_CQ) => "Delete I/O Completion Queue",
        (true, admin::CREATE_IO_CQ) => "Create I/O Completion Queue",
        (true, admin::IDENTIFY) => "Identify",
        (true, admin::SET_FEATURES) => "Set Features",
        (true, _) => "admin command",
        (false, io::FLUSH) => "Flush",
        (false, io::WRITE) => "Write",
        (false, io::READ) => "Read",
        (false, _) => "I/O command",
    }
}

/// MSI-X in use: the table and one vector per I/O queue (queue `i` uses
/// table entry `i`; entry 0, the admin queue's, stays masked: admin
/// commands are polled).
struct Interrupts {
    msix: Msix,
    vectors: Vec<MsiVector>,
}

/// A running controller.
pub struct Controller {
    name: String,
    regs: IoMem,
    caps: Capabilities,
    services: &'static dyn DriverServices,
    admin: Mutex<QueuePair>,
    io: Vec<Mutex<QueuePair>>,
    interrupts: Option<Interrupts>,
    max_transfer: usize,
    command_timeout: Duration,
}

impl core::fmt::Debug for Controller {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.name)
            .field("io_queues", &self.io.len())
            .finish_non_exhaustive()
    }
}

/// Waits until CSTS.RDY is `ready`, at most CAP.TO. Waiting for ready,
/// CSTS.CFS ends the wait with [`NvmeError::ControllerFatal`].
fn wait_ready(regs: &IoMem, caps: &Capabilities, ready: bool) -> Result<(), NvmeError> {
    let units = caps.ready_timeout.as_millis() as u64 / 500;
    let outcome = clock::poll_until(caps.ready_timeout, units * READY_POLLS_PER_UNIT, || {
        let csts = match regs.read::<u32>(regs::CSTS) {
            Ok(csts) => csts,
            Err(e) => return Some(Err(NvmeError::from(e))),
        };
        if ready && csts & regs::CSTS_CFS != 0 {
            return Some(Err(NvmeError::ControllerFatal { during: "enable" }));
        }
        // All ones: the function is gone (or the BAR is not decoded).
        if csts != u32::MAX && (csts & regs::CSTS_RDY != 0) == ready {
            return Some(Ok(()));
        }
        None
    });
    outcome.unwrap_or(Err(NvmeError::ReadyTimeout {
        ready,
        waited_ms: caps.ready_timeout.as_millis() as u64,
    }))
}

impl Controller {
    /// Reads CAP, checks that the driver can use the controller, and
    /// disables it (CC.EN = 0, then CSTS.RDY = 0).
    pub fn reset(regs: &IoMem) -> Result<Capabilities, NvmeError> {
        let cap = regs.read::<u64>(regs::CAP)?;
        if cap == u64::MAX {
            return Err(NvmeError::NotResponding);
        }
        let caps = Capabilities::decode(cap);
        if !caps.nvm_command_set {
            return Err(NvmeError::NoNvmCommandSet);
        }
        if caps.min_page_size > PAGE_SIZE as u64 {
            return Err(NvmeError::PageSizeUnsupported(caps.min_page_size));
        }
        let cc = regs.read::<u32>(regs::CC)?;
        if cc & regs::CC_EN != 0 {
            regs.write::<u32>(regs::CC, cc & !regs::CC_EN)?;
        }
        wait_ready(regs, &caps, false)?;
        Ok(caps)
    }

    /// Sets up the admin queues of a reset controller and enables it
    /// (CC: NVM command set, 4 KiB pages, 64/16-byte entries), waiting
    /// for CSTS.RDY. Each command it runs is bounded by `command_timeout`.
    pub fn enable(
        name: String,
        regs: IoMem,
        caps: Capabilities,
        services: &'static dyn DriverServices,
        command_timeout: Duration,
    ) -> Result<Self, NvmeError> {
        let entries = ADMIN_ENTRIES.min(caps.max_queue_entries.min(4096) as u16);
        let admin = QueuePair::new(0, entries, PAGE_SIZE, &caps, services)?;
        regs.write::<u32>(regs::AQA, regs::admin_queue_attributes(admin.entries()))?;
        regs.write::<u64>(regs::ASQ, admin.sq_bus_address())?;
        regs.write::<u64>(regs::ACQ, admin.cq_bus_address())?;
        regs.write::<u32>(regs::CC, regs::CC_ENABLE_NVM)?;
        // From here on the controller may use the queues: on failure
        // `Drop` disables it before their memory goes.
        let controller = Self {
            name,
            regs,
            caps,
            services,
            admin: Mutex::new(admin),
            io: Vec::new(),
            interrupts: None,
            max_transfer: MAX_TRANSFER,
            command_timeout,
        };
        wait_ready(&controller.regs, &controller.caps, true)?;
        Ok(controller)
    }

    /// The controller's name (`nvme0`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The decoded CAP register.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The version register as `major.minor.tertiary`.
    pub fn version(&self) -> (u16, u8, u8) {
        regs::version(self.regs.read::<u32>(regs::VS).unwrap_or(0))
    }

    /// Largest transfer of one I/O command.
    pub fn max_transfer(&self) -> usize {
        self.max_transfer
    }

    /// I/O queues in use.
    pub fn io_queue_count(&self) -> usize {
        self.io.len()
    }

    /// Commands one I/O queue holds in flight.
    pub fn io_queue_depth(&self) -> usize {
        self.io.first().map_or(0, |q| q.lock().depth())
    }

    /// Whether I/O completions raise MSI-X interrupts (else they are polled).
    pub fn uses_interrupts(&self) -> bool {
        self.interrupts.is_some()
    }

    /// Runs one admin command with up to 4 KiB of data.
    fn admin_command(&self, command: Command, data: Data<'_>) -> Result<Completion, NvmeError> {
        let mut transfers = [Transfer::new(command, data)];
        self.run(
            &self.admin,
            true,
            true,
            &mut transfers,
            usize::MAX,
            &mut |_, _| {},
        );
        let [transfer] = transfers;
        transfer.result
    }

    /// An Identify data structure (on the heap: 4 KiB is a lot of kernel
    /// stack).
    fn identify(&self, cns: u32, nsid: u32) -> Result<Vec<u8>, NvmeError> {
        let mut data = alloc::vec![0u8; identify::IDENTIFY_SIZE];
        self.admin_command(Command::identify(cns, nsid), Data::FromDevice(&mut data))?;
        Ok(data)
    }

    /// Identify Controller; applies its MDTS to the largest transfer.
    pub fn identify_controller(&mut self) -> Result<ControllerIdentity, NvmeError> {
        let identity = ControllerIdentity::parse(&self.identify(cns::CONTROLLER, 0)?);
        if let Some(limit) = identity.max_transfer_bytes(self.caps.min_page_size) {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            self.max_transfer = MAX_TRANSFER.min(limit).max(PAGE_SIZE) / PAGE_SIZE * PAGE_SIZE;
        }
        Ok(identity)
    }

    /// The active namespace ids (CNS 02h); controllers older than NVMe
    /// 1.1 refuse it, and then ids 1..=NN are tried (at most 1024).
    pub fn active_namespaces(&self, namespace_count: u32) -> Vec<u32> {
        match self.identify(cns::ACTIVE_NAMESPACES, 0) {
            Ok(list) => identify::active_namespaces(&list).collect(),
            Err(e) => {
                log::warn!(
                    target: "nvme",
                    "{} active namespace list: {e}; trying 1..={namespace_count}",
                    self.name
                );
                (1..=namespace_count.min(1024)).collect()
            }
        }
    }

    /// Identify Namespace `nsid`: `Ok(Err(..))` when it answered but the
    /// namespace cannot be used.
    pub fn identify_namespace(
        &self,
        nsid: u32,
    ) -> Result<Result<NamespaceIdentity, NamespaceError>, NvmeError> {
        Ok(NamespaceIdentity::parse(
            &self.identify(cns::NAMESPACE, nsid)?,
        ))
    }

    /// Asks for one I/O queue pair per CPU, sets up MSI-X vectors steered
    /// to each queue's CPU (or polling when that is not possible), and
    /// creates the queues.
    pub fn create_io_queues(&mut self, function: &PciFunction) -> Result<(), NvmeError> {
        let wanted = self.services.cpu_count().clamp(1, MAX_IO_QUEUES) as u16;
        let granted = self.admin_command(Command::set_queue_count(wanted), Data::None)?;
        let submission = (granted.result & 0xffff) + 1;
        let completion = (granted.result >> 16) + 1;
        let mut count = usize::from(wanted).min(submission.min(completion) as usize);
        // Every doorbell must lie inside BAR0.
        while count > 0 && self.caps.cq_head_doorbell(count as u16) + 4 > self.regs.len() {
            count -= 1;
        }
        self.interrupts = self.setup_interrupts(function, count);
        if let Some(interrupts) = &self.interrupts {
            count = count.min(interrupts.vectors.len());
        }
        let entries =
            IO_ENTRIES.min(u16::try_from(self.caps.max_queue_entries).unwrap_or(u16::MAX));
        for id in 1..=count as u16 {
            match self.create_io_queue(id, entries) {
                Ok(queue) => self.io.push(Mutex::new(queue)),
                Err(e) => {
                    log::warn!(target: "nvme", "{} I/O queue {id}: {e}", self.name);
                    break;
                }
            }
        }
        if let Some(mut interrupts) = self.interrupts.take() {
            // Vectors of queues that could not be created.
            self.release_interrupts(&mut interrupts, self.io.len());
            self.interrupts = Some(interrupts);
        }
        if self.io.is_empty() {
            return Err(NvmeError::NoIoQueues);
        }
        Ok(())
    }

    fn create_io_queue(&self, id: u16, entries: u16) -> Result<QueuePair, NvmeError> {
        let queue = QueuePair::new(id, entries, self.max_transfer, &self.caps, self.services)?;
        // The ring's own size: at least two entries, whatever CAP.MQES said.
        let entries = queue.entries();
        let interrupts = self.interrupts.is_some();
        let vector = if interrupts { id } else { 0 };
        let mut cq_command = Command::create_io_cq(id, entries, vector, interrupts);
        cq_command.set_prps(queue.cq_bus_address(), 0);
        self.admin_command(cq_command, Data::None)?;
        let mut sq_command = Command::create_io_sq(id, entries, id);
        sq_command.set_prps(queue.sq_bus_address(), 0);
        self.admin_command(sq_command, Data::None)?;
        Ok(queue)
    }

    /// One MSI-X vector per I/O queue, queue `i` (its table entry `i`)
    /// reaching CPU `i - 1`. `None`, with a warning once, when MSI-X cannot
    /// be used: the queues are then polled.
    fn setup_interrupts(&self, function: &PciFunction, queues: usize) -> Option<Interrupts> {
        let why = match self.try_interrupts(function, queues) {
            Ok(interrupts) => return Some(interrupts),
            Err(why) => why,
        };
        if !POLLING_WARNED.swap(true, Ordering::Relaxed) {
            log::warn!(
                target: "nvme",
                "{} no MSI-X ({why}): completion queues are polled",
                self.name
            );
        }
        None
    }

    fn try_interrupts(&self, function: &PciFunction, queues: usize) -> Result<Interrupts, String> {
        use alloc::format;
        if function
            .capabilities(stratus_pci::regs::CAP_MSIX)
            .next()
            .is_none()
        {
            return Err(String::from("the function has no MSI-X capability"));
        }
        let msix = Msix::new(function, self.services).map_err(|e| format!("{e:?}"))?;
        let usable = queues.min(usize::from(msix.entries()).saturating_sub(1));
        let mut interrupts = Interrupts {
            msix,
            vectors: Vec::new(),
        };
        let cpus = self.services.cpu_count().max(1);
        for queue in 1..=usable {
            let request = MsiRequest {
                source: function.msi_source(),
                cpu: (queue - 1) % cpus,
                handler: on_completion,
                context: queue,
            };
            let vector = match self.services.allocate_msi(request) {
                Ok(vector) => vector,
                Err(e) => {
                    self.release_interrupts(&mut interrupts, 0);
                    return Err(format!("{e}"));
                }
            };
            interrupts.vectors.push(vector);
            if let Err(e) = interrupts.msix.set_entry(queue as u16, vector.message) {
                self.release_interrupts(&mut interrupts, 0);
                return Err(format!("MSI-X entry {queue}: {e:?}"));
            }
        }
        if interrupts.vectors.is_empty() {
            return Err(String::from("no vector"));
        }
        interrupts.msix.enable();
        Ok(interrupts)
    }

    /// Masks and gives back the vectors of queues `keep + 1` and up.
    fn release_interrupts(&self, interrupts: &mut Interrupts, keep: usize) {
        for (i, vector) in interrupts.vectors.iter().enumerate().skip(keep) {
            let _ = interrupts.msix.mask_entry(i as u16 + 1);
            self.services.free_msi(*vector);
        }
        interrupts.vectors.truncate(keep);
    }

    /// The I/O queue of the executing CPU, and whether that queue's
    /// interrupt reaches this CPU (when CPUs outnumber queues, some CPUs
    /// share a queue whose vector goes to another CPU: they poll).
    pub fn io_queue(&self) -> Option<(&Mutex<QueuePair>, bool)> {
        let cpu = self.services.this_cpu();
        let index = cpu % self.io.len().max(1);
        let interrupt_here = self
            .interrupts
            .as_ref()
            .and_then(|interrupts| interrupts.vectors.get(index))
            .is_some_and(|vector| vector.cpu == cpu);
        Some((self.io.get(index)?, interrupt_here))
    }

    /// Runs `transfers` on the executing CPU's I/O queue.
    pub fn run_io(&self, transfers: &mut [Transfer<'_>]) {
        self.run_io_queued(transfers, usize::MAX, &mut |_, _| {});
    }

    /// Runs `transfers` on the executing CPU's I/O queue with at most
    /// `depth` of them in flight, telling `observer` when transfer `index`
    /// is submitted and when it ends.
    pub fn run_io_queued(
        &self,
        transfers: &mut [Transfer<'_>],
        depth: usize,
        observer: &mut dyn FnMut(usize, RequestEvent),
    ) {
        match self.io_queue() {
            Some((queue, interrupt_here)) => {
                self.run(queue, false, !interrupt_here, transfers, depth, observer)
            }
            None => {
                for transfer in transfers {
                    transfer.result = Err(NvmeError::NoIoQueues);
                }
            }
        }
    }

    /// Submits as many of `transfers` as the queue has slots for, rings
    /// the doorbell once, collects completions, and refills freed slots
    /// until every transfer has a result, keeping at most `depth` of them
    /// in flight. Each command is bounded by the command timeout. A
    /// `polled` run spins; otherwise it halts until the queue's interrupt
    /// between looks. `observer` hears of each submission and each result.
    fn run(
        &self,
        queue: &Mutex<QueuePair>,
        is_admin: bool,
        polled: bool,
        transfers: &mut [Transfer<'_>],
        depth: usize,
        observer: &mut dyn FnMut(usize, RequestEvent),
    ) {
        let depth = depth.max(1);
        let mut next = 0;
        let mut waiting: Vec<(u16, usize, Deadline)> = Vec::new();
        // Set while no slot is free and none of ours is in flight (the
        // queue is full of another CPU's commands, or of commands that
        // timed out and never completed).
        let mut stalled: Option<Deadline> = None;
        while next < transfers.len() || !waiting.is_empty() {
            let mut progressed = false;
            {
                let mut q = queue.lock();
                let mut pushed = false;
                while next < transfers.len() && waiting.len() < depth {
                    let Some(slot) = q.free_slot() else { break };
                    stalled = None;
                    match self.submit(&mut q, slot, &mut transfers[next]) {
                        Ok(()) => {
                            let deadline =
                                Deadline::after(self.command_timeout, COMMAND_TIMEOUT_POLLS);
                            waiting.push((slot, next, deadline));
                            pushed = true;
                            observer(next, RequestEvent::Submitted);
                        }
                        Err(e) => {
                            transfers[next].result = Err(e);
                            observer(next, RequestEvent::Completed);
                        }
                    }
                    next += 1;
                }
                let rung = if pushed { q.ring(&self.regs) } else { Ok(()) };
                let reaped = rung.and_then(|()| q.reap(&self.regs));
                if let Err(e) = reaped {
                    for (slot, index, _) in waiting.drain(..) {
                        q.abandon(slot);
                        transfers[index].result = Err(e);
                        observer(index, RequestEvent::Completed);
                    }
                    continue;
                }
                waiting.retain_mut(|(slot, index, deadline)| {
                    let transfer = &mut transfers[*index];
                    if let Some(completion) = self.collect(&mut q, *slot, is_admin, transfer) {
                        transfer.result = completion;
                        progressed = true;
                        observer(*index, RequestEvent::Completed);
                        return false;
                    }
                    if deadline.expired() {
                        q.abandon(*slot);
                        transfer.result = Err(self.timeout(is_admin, transfer.command.opcode()));
                        observer(*index, RequestEvent::Completed);
                        return false;
                    }
                    true
                });
                if waiting.is_empty() && next < transfers.len() {
                    let deadline = stalled.get_or_insert_with(|| {
                        Deadline::after(self.command_timeout, COMMAND_TIMEOUT_POLLS)
                    });
                    if deadline.expired() {
                        for (index, transfer) in transfers.iter_mut().enumerate().skip(next) {
                            transfer.result = Err(NvmeError::NoFreeSlot);
                            observer(index, RequestEvent::Completed);
                        }
                        next = transfers.len();
                    }
                }
            }
            if !progressed && (!waiting.is_empty() || stalled.is_some()) {
                if polled {
                    core::hint::spin_loop();
                } else {
                    // Halts until the queue's interrupt (or any other)
                    // arrives; a completion that came in before the halt is
                    // seen by the check, which runs with interrupts masked.
                    // A contended lock counts as "look again".
                    self.services.wait_until(INTERRUPT_WAIT, &mut || {
                        queue.try_lock().is_none_or(|q| q.completion_pending())
                    });
                }
            }
        }
    }

    /// Prepares `transfer`'s data in `slot`'s bounce buffer and places its
    /// command in the ring.
    fn submit(
        &self,
        q: &mut QueuePair,
        slot: u16,
        transfer: &mut Transfer<'_>,
    ) -> Result<(), NvmeError> {
        let mut command = transfer.command;
        let len = match &transfer.data {
            Data::None => 0,
            Data::FromDevice(buffer) => buffer.len(),
            Data::ToDevice(buffer) => buffer.len(),
        };
        if len > 0 {
            q.bounce(slot, self.services)?;
            let prps = q.prps(slot, len)?;
            if let Data::ToDevice(buffer) = &transfer.data {
                let bounce = q.bounce(slot, self.services)?;
                bounce.copy_from(0, buffer);
            }
            command.set_prps(prps.prp1, prps.prp2);
        }
        q.push(slot, command)
    }

    /// `transfer`'s outcome if its completion arrived: data copied out,
    /// status checked.
    fn collect(
        &self,
        q: &mut QueuePair,
        slot: u16,
        is_admin: bool,
        transfer: &mut Transfer<'_>,
    ) -> Option<Result<Completion, NvmeError>> {
        let completion = q.take_completion(slot)?;
        let command = command_name(is_admin, transfer.command.opcode());
        if !completion.status.is_success() {
            return Some(Err(NvmeError::Command {
                command,
                status: completion.status,
            }));
        }
        if let Data::FromDevice(buffer) = &mut transfer.data {
            // The slot is free again, but its buffer is only reused once
            // this lock is released.
            q.copy_out(slot, buffer);
        }
        Some(Ok(completion))
    }

    /// A command's timeout, named as a fatal controller error when
    /// CSTS.CFS says so.
    fn timeout(&self, is_admin: bool, opcode: u8) -> NvmeError {
        let command = command_name(is_admin, opcode);
        match self.regs.read::<u32>(regs::CSTS) {
            Ok(csts) if csts != u32::MAX && csts & regs::CSTS_CFS != 0 => {
                NvmeError::ControllerFatal { during: command }
            }
            _ => NvmeError::CommandTimeout { command },
        }
    }
}

impl Controller {
    /// Normal shutdown (3.6.1): CC.SHN = 01b, then CSTS.SHST = 10b within
    /// CAP.TO. The controller finishes writing its volatile cache to media
    /// first. Only for a controller that is ready.
    fn shut_down(&self) -> Result<(), NvmeError> {
        let csts = self.regs.read::<u32>(regs::CSTS)?;
        if csts == u32::MAX || csts & regs::CSTS_RDY == 0 {
            return Ok(());
        }
        let cc = self.regs.read::<u32>(regs::CC)?;
        self.regs.write::<u32>(regs::CC, cc | regs::CC_SHN_NORMAL)?;
        let units = self.caps.ready_timeout.as_millis() as u64 / 500;
        let done = clock::poll_until(
            self.caps.ready_timeout,
            units * READY_POLLS_PER_UNIT,
            || match self.regs.read::<u32>(regs::CSTS) {
                Ok(csts) if csts & regs::CSTS_SHST_MASK == regs::CSTS_SHST_COMPLETE => Some(()),
                Ok(_) => None,
                Err(_) => Some(()),
            },
        );
        done.ok_or(NvmeError::ShutdownTimeout)
    }
}

impl Drop for Controller {
    /// Shuts the controller down (its volatile write cache reaches the
    /// media), then disables it: it stops fetching commands and writing
    /// memory before the queues and bounce buffers are freed. Then gives
    /// back the vectors.
    fn drop(&mut self) {
        if let Err(e) = self.shut_down() {
            log::warn!(target: "nvme", "{} shutdown: {e}", self.name);
        }
        if self.regs.write::<u32>(regs::CC, 0).is_ok()
            && let Err(e) = wait_ready(&self.regs, &self.caps, false)
        {
            log::warn!(target: "nvme", "{} disable: {e}", self.name);
        }
        if let Some(mut interrupts) = self.interrupts.take() {
            self.release_interrupts(&mut interrupts, 0);
        }
    }
}
