//! A fake NVMe controller for host tests.
//!
//! Its registers are host memory handed to the driver as an [`IoMem`]; a
//! thread watches them the way the device would: it enables and disables
//! on CC.EN, reads the submission rings up to each tail doorbell, executes
//! admin commands (Identify, Set Features, Create I/O queues) and NVM
//! commands against RAM disks, and posts completions with phase tags,
//! respecting the completion head doorbells (a full completion queue
//! stalls it, as it would a device). Bus addresses are `HostDma`'s, the
//! host's virtual addresses, so the fake reaches the driver's rings and
//! bounce buffers directly. Behaviours make it misbehave on purpose.

extern crate std;

use crate::command::{Command, Completion, SQE_SIZE, admin, cns, io};
use crate::identify::{IDENTIFY_SIZE, build};
use crate::regs::{self, Capabilities, PAGE_SIZE};
use crate::status::{Status, code_type};
use core::time::Duration;
use std::boxed::Box;
use std::collections::BTreeMap;
use std::string::String;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Instant;
use std::vec;
use std::vec::Vec;
use stratus_driver_api::services::host::{HostRegisters, HostServices};
use stratus_pci::{Bar, ConfigAccess, FunctionConfig, PciAddress, PciFunction};

/// Where BAR0 claims to be.
pub const BAR_ADDRESS: u64 = 0xfebf_0000;
/// BAR0's size: registers and doorbells for 64 queue pairs at stride 4.
pub const BAR_SIZE: usize = 0x4000;

/// CAP of a controller like QEMU's, with CAP.TO = `timeout_units`
/// (500 ms each) and CAP.MQES = `max_entries - 1`.
pub fn cap(max_entries: u16, timeout_units: u8) -> u64 {
    u64::from(max_entries - 1) | 1 << 16 | u64::from(timeout_units) << 24 | 1 << 37 | 4 << 52
}

/// What the fake does and how it misbehaves.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// The CAP register.
    pub cap: u64,
    /// CSTS.RDY never becomes 1.
    pub never_ready: bool,
    /// CSTS.CFS is set instead of CSTS.RDY.
    pub fatal_on_enable: bool,
    /// I/O queue pairs granted at most.
    pub queues_granted: u16,
    /// I/O commands with this opcode complete with this status.
    pub fail_io: Option<(u8, Status)>,
    /// I/O commands are never completed.
    pub ignore_io: bool,
    /// I/O completions are held until this many I/O commands are waiting
    /// (or two seconds pass): shows how many the driver has in flight.
    pub hold_until: usize,
    /// Identify's MDTS.
    pub mdts: u8,
    /// Whether Identify CNS 02h (active namespace list) is supported.
    pub namespace_list: bool,
    /// Namespaces: blocks and log2 of the block size.
    pub namespaces: Vec<(u64, u8)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            cap: cap(2048, 2),
            never_ready: false,
            fatal_on_enable: false,
            queues_granted: 64,
            fail_io: None,
            ignore_io: false,
            hold_until: 0,
            mdts: 7,
            namespace_list: true,
            namespaces: vec![(2048, 9)],
        }
    }
}

/// What the fake saw, for the tests to check.
#[derive(Debug, Default)]
pub struct Observed {
    /// I/O commands executed: submission queue id and the command.
    pub io_commands: Mutex<Vec<(u16, Command)>>,
    /// Most I/O commands waiting in submission rings at one time.
    pub max_pending: AtomicUsize,
    /// RAM disks, one per namespace.
    pub disks: Mutex<Vec<Vec<u8>>>,
    /// Times the controller was enabled.
    pub enables: AtomicUsize,
    /// Normal shutdown notifications completed.
    pub shutdowns: AtomicUsize,
}

struct Sq {
    base: u64,
    size: u16,
    head: u16,
    cq: u16,
}

struct Cq {
    base: u64,
    size: u16,
    tail: u16,
    phase: bool,
}

/// The device side: registers, rings, disks.
struct Device {
    regs: usize,
    behaviour: Behaviour,
    observed: Arc<Observed>,
    caps: Capabilities,
    enabled: bool,
    granted: u16,
    sqs: BTreeMap<u16, Sq>,
    cqs: BTreeMap<u16, Cq>,
    held_since: Option<Instant>,
}

fn read32(addr: usize) -> u32 {
    // SAFETY: `addr` is inside the leaked register block or a live DMA
    // buffer of the driver under test (see `dma_read`); aligned by the
    // callers (register offsets, ring entries).
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write32(addr: usize, value: u32) {
    // SAFETY: as in `read32`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// Copies device-visible memory at bus address `bus` into `out`.
fn dma_read(bus: u64, out: &mut [u8]) {
    fence(Ordering::SeqCst);
    // SAFETY: bus addresses of `HostDma` are the virtual addresses of live
    // heap allocations; the driver under test keeps its rings and bounce
    // buffers until it has disabled the controller, and the fake only
    // follows addresses the driver put in commands and registers.
    unsafe { core::ptr::copy_nonoverlapping(bus as *const u8, out.as_mut_ptr(), out.len()) };
}

/// Copies `data` to device-visible memory at bus address `bus`.
fn dma_write(bus: u64, data: &[u8]) {
    // SAFETY: as in `dma_read`.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), bus as *mut u8, data.len()) };
    fence(Ordering::SeqCst);
}

fn generic(code: u8) -> Status {
    Status::new(code_type::GENERIC, code)
}

fn specific(code: u8) -> Status {
    Status::new(code_type::COMMAND_SPECIFIC, code)
}

/// The pages a device reads or writes for `len` bytes described by
/// PRP1/PRP2, walked the way the specification says (4.1.1), independent
/// of the driver's builder.
fn prp_segments(prp1: u64, prp2: u64, len: usize) -> Result<Vec<(u64, usize)>, Status> {
    let page = PAGE_SIZE as u64;
    let invalid = generic(0x13); // PRP Offset Invalid
    if !prp1.is_multiple_of(4) {
        return Err(invalid);
    }
    let first = len.min(PAGE_SIZE - (prp1 % page) as usize);
    let mut segments = vec![(prp1, first)];
    let mut remaining = len - first;
    if remaining == 0 {
        return Ok(segments);
    }
    if remaining <= PAGE_SIZE {
        if !prp2.is_multiple_of(page) {
            return Err(invalid);
        }
        segments.push((prp2, remaining));
        return Ok(segments);
    }
    if !prp2.is_multiple_of(8) {
        return Err(invalid);
    }
    let mut entry_address = prp2;
    while remaining > 0 {
        let mut bytes = [0u8; 8];
        dma_read(entry_address, &mut bytes);
        let entry = u64::from_le_bytes(bytes);
        let last_in_page = (entry_address + 8).is_multiple_of(page);
        if last_in_page && remaining > PAGE_SIZE {
            // A chain pointer to the next list page.
            if !entry.is_multiple_of(8) {
                return Err(invalid);
            }
            entry_address = entry;
            continue;
        }
        if !entry.is_multiple_of(page) {
            return Err(invalid);
        }
        let n = remaining.min(PAGE_SIZE);
        segments.push((entry, n));
        remaining -= n;
        entry_address += 8;
    }
    Ok(segments)
}

fn transfer_from_device(command: &Command, data: &[u8]) -> Result<(), Status> {
    let (prp1, prp2) = command.prps();
    let mut offset = 0;
    for (address, len) in prp_segments(prp1, prp2, data.len())? {
        dma_write(address, &data[offset..offset + len]);
        offset += len;
    }
    Ok(())
}

fn transfer_to_device(command: &Command, data: &mut [u8]) -> Result<(), Status> {
    let (prp1, prp2) = command.prps();
    let mut offset = 0;
    for (address, len) in prp_segments(prp1, prp2, data.len())? {
        dma_read(address, &mut data[offset..offset + len]);
        offset += len;
    }
    Ok(())
}

impl Device {
    fn reg(&self, offset: usize) -> usize {
        self.regs + offset
    }

    fn reg64(&self, offset: usize) -> u64 {
        u64::from(read32(self.reg(offset))) | u64::from(read32(self.reg(offset + 4))) << 32
    }

    /// One look at the registers; true when something happened.
    fn step(&mut self) -> bool {
        let cc = read32(self.reg(regs::CC));
        let enable = cc & regs::CC_EN != 0;
        let csts = read32(self.reg(regs::CSTS));
        if self.enabled
            && cc & regs::CC_SHN_NORMAL != 0
            && csts & regs::CSTS_SHST_MASK != regs::CSTS_SHST_COMPLETE
        {
            self.observed.shutdowns.fetch_add(1, Ordering::SeqCst);
            write32(self.reg(regs::CSTS), csts | regs::CSTS_SHST_COMPLETE);
            return true;
        }
        if enable && !self.enabled {
            self.enabled = true;
            self.observed.enables.fetch_add(1, Ordering::SeqCst);
            self.start(cc);
            return true;
        }
        if !enable && self.enabled {
            self.enabled = false;
            self.sqs.clear();
            self.cqs.clear();
            for offset in (regs::DOORBELLS..BAR_SIZE).step_by(4) {
                write32(self.reg(offset), 0);
            }
            write32(self.reg(regs::CSTS), 0);
            return true;
        }
        self.enabled && read32(self.reg(regs::CSTS)) & regs::CSTS_RDY != 0 && self.process()
    }

    fn start(&mut self, cc: u32) {
        if self.behaviour.never_ready {
            return;
        }
        let expected = regs::CC_ENABLE_NVM;
        if self.behaviour.fatal_on_enable || cc != expected {
            write32(self.reg(regs::CSTS), regs::CSTS_CFS);
            return;
        }
        let aqa = read32(self.reg(regs::AQA));
        self.sqs.insert(
            0,
            Sq {
                base: self.reg64(regs::ASQ),
                size: (aqa & 0xfff) as u16 + 1,
                head: 0,
                cq: 0,
            },
        );
        self.cqs.insert(
            0,
            Cq {
                base: self.reg64(regs::ACQ),
                size: ((aqa >> 16) & 0xfff) as u16 + 1,
                tail: 0,
                phase: true,
            },
        );
        write32(self.reg(regs::CSTS), regs::CSTS_RDY);
    }

    fn pending(&self, id: u16, sq: &Sq) -> usize {
        let tail = read32(self.reg(self.caps.sq_tail_doorbell(id))) as u16;
        if tail >= sq.size {
            return 0;
        }
        usize::from((tail + sq.size - sq.head) % sq.size)
    }

    fn process(&mut self) -> bool {
        let io_pending: usize = self
            .sqs
            .iter()
            .filter(|(id, _)| **id != 0)
            .map(|(id, sq)| self.pending(*id, sq))
            .sum();
        self.observed
            .max_pending
            .fetch_max(io_pending, Ordering::SeqCst);
        let hold = self.behaviour.hold_until > 0 && io_pending > 0 && {
            let since = *self.held_since.get_or_insert_with(Instant::now);
            io_pending < self.behaviour.hold_until && since.elapsed() < Duration::from_secs(2)
        };
        if !hold {
            self.held_since = None;
        }
        let ids: Vec<u16> = self.sqs.keys().copied().collect();
        let mut progressed = false;
        for id in ids {
            if id != 0 && hold {
                continue;
            }
            while self.execute_next(id) {
                progressed = true;
            }
        }
        progressed
    }

    /// Fetches and executes the next command of submission queue `id`;
    /// false when there is none or its completion queue is full.
    fn execute_next(&mut self, id: u16) -> bool {
        let Some(sq) = self.sqs.get(&id) else {
            return false;
        };
        if self.pending(id, sq) == 0 {
            return false;
        }
        let cq_id = sq.cq;
        let Some(cq) = self.cqs.get(&cq_id) else {
            return false;
        };
        let cq_head = read32(self.reg(self.caps.cq_head_doorbell(cq_id))) as u16;
        if (cq.tail + 1) % cq.size == cq_head {
            return false;
        }
        let mut bytes = [0u8; SQE_SIZE];
        dma_read(sq.base + u64::from(sq.head) * SQE_SIZE as u64, &mut bytes);
        let command = Command::from_bytes(&bytes);
        let sq = self.sqs.get_mut(&id).expect("queue looked up above");
        sq.head = (sq.head + 1) % sq.size;
        let sq_head = sq.head;
        let outcome = if id == 0 {
            Some(self.admin(&command))
        } else {
            self.observed
                .io_commands
                .lock()
                .unwrap()
                .push((id, command));
            self.io(&command)
        };
        if let Some((status, result)) = outcome {
            self.post(
                cq_id,
                Completion {
                    result,
                    sq_head,
                    sq_id: id,
                    command_id: command.command_id(),
                    phase: false,
                    status,
                },
            );
        }
        true
    }

    fn post(&mut self, cq_id: u16, mut completion: Completion) {
        let cq = self.cqs.get_mut(&cq_id).expect("completion queue checked");
        completion.phase = cq.phase;
        let dwords = completion.encode();
        let base = (cq.base + u64::from(cq.tail) * 16) as usize;
        for (i, dword) in dwords.iter().enumerate().take(3) {
            write32(base + 4 * i, *dword);
        }
        fence(Ordering::SeqCst);
        // The phase tag goes last, as the device's write would land.
        write32(base + 12, dwords[3]);
        cq.tail += 1;
        if cq.tail == cq.size {
            cq.tail = 0;
            cq.phase = !cq.phase;
        }
    }

    fn admin(&mut self, command: &Command) -> (Status, u32) {
        let d = &command.dwords;
        match command.opcode() {
            admin::IDENTIFY => (self.identify(command), 0),
            admin::SET_FEATURES if d[10] & 0xff == 7 => {
                let asked = (d[11] & 0xffff) as u16 + 1;
                self.granted = asked.min(self.behaviour.queues_granted).max(1);
                let n = u32::from(self.granted - 1);
                (Status::SUCCESS, n << 16 | n)
            }
            admin::CREATE_IO_CQ => {
                let (id, size) = (d[10] as u16, (d[10] >> 16) as u16 + 1);
                if id == 0 || id > self.granted || self.cqs.contains_key(&id) {
                    return (specific(0x01), 0);
                }
                if u32::from(size) > self.caps.max_queue_entries || d[11] & 1 == 0 {
                    return (specific(0x02), 0);
                }
                let base = command.prps().0;
                self.cqs.insert(
                    id,
                    Cq {
                        base,
                        size,
                        tail: 0,
                        phase: true,
                    },
                );
                (Status::SUCCESS, 0)
            }
            admin::CREATE_IO_SQ => {
                let (id, size, cq) = (d[10] as u16, (d[10] >> 16) as u16 + 1, (d[11] >> 16) as u16);
                if id == 0 || id > self.granted || self.sqs.contains_key(&id) {
                    return (specific(0x01), 0);
                }
                if !self.cqs.contains_key(&cq) || cq == 0 {
                    return (specific(0x00), 0);
                }
                let base = command.prps().0;
                self.sqs.insert(
                    id,
                    Sq {
                        base,
                        size,
                        head: 0,
                        cq,
                    },
                );
                (Status::SUCCESS, 0)
            }
            _ => (generic(0x01), 0),
        }
    }

    fn identify(&self, command: &Command) -> Status {
        let nsid = command.dwords[1];
        let namespaces = &self.behaviour.namespaces;
        let data = match command.dwords[10] & 0xff {
            cns::CONTROLLER => build::controller(
                "Stratus Fake NVMe",
                "fake-serial-0001",
                "1.0",
                self.behaviour.mdts,
                namespaces.len() as u32,
            ),
            cns::NAMESPACE => match namespaces.get((nsid as usize).wrapping_sub(1)) {
                Some((blocks, lbads)) => build::namespace(*blocks, *lbads),
                None => return generic(0x0b),
            },
            cns::ACTIVE_NAMESPACES if self.behaviour.namespace_list => {
                let ids: Vec<u32> = (1..=namespaces.len() as u32)
                    .filter(|id| *id > nsid)
                    .collect();
                build::namespace_list(&ids)
            }
            _ => return generic(0x02),
        };
        debug_assert_eq!(data.len(), IDENTIFY_SIZE);
        match transfer_from_device(command, &data) {
            Ok(()) => Status::SUCCESS,
            Err(status) => status,
        }
    }

    fn io(&mut self, command: &Command) -> Option<(Status, u32)> {
        if self.behaviour.ignore_io {
            return None;
        }
        if let Some((opcode, status)) = self.behaviour.fail_io
            && opcode == command.opcode()
        {
            return Some((status, 0));
        }
        let nsid = command.dwords[1] as usize;
        let Some((blocks, lbads)) = self.behaviour.namespaces.get(nsid.wrapping_sub(1)).copied()
        else {
            return Some((generic(0x0b), 0));
        };
        if command.opcode() == io::FLUSH {
            return Some((Status::SUCCESS, 0));
        }
        let (lba, count) = (command.lba(), u64::from(command.blocks()));
        if lba.checked_add(count).is_none_or(|end| end > blocks) {
            return Some((generic(0x80), 0));
        }
        let block = 1usize << lbads;
        let range = lba as usize * block..(lba + count) as usize * block;
        let mut disks = self.observed.disks.lock().unwrap();
        let disk = &mut disks[nsid - 1];
        let outcome = match command.opcode() {
            io::READ => transfer_from_device(command, &disk[range]),
            io::WRITE => transfer_to_device(command, &mut disk[range]),
            _ => Err(generic(0x01)),
        };
        Some((outcome.err().unwrap_or(Status::SUCCESS), 0))
    }
}

/// The fake controller: its register block and the thread acting on it.
pub struct FakeController {
    regs: usize,
    /// What it saw.
    pub observed: Arc<Observed>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeController {
    /// Starts a controller behaving as `behaviour` says.
    pub fn start(behaviour: Behaviour) -> Self {
        let block: &'static mut [u64] = Box::leak(vec![0u64; BAR_SIZE / 8].into_boxed_slice());
        let regs = block.as_mut_ptr() as usize;
        let caps = Capabilities::decode(behaviour.cap);
        write32(regs + regs::CAP, behaviour.cap as u32);
        write32(regs + regs::CAP + 4, (behaviour.cap >> 32) as u32);
        write32(regs + regs::VS, 0x0001_0400);
        let observed = Arc::new(Observed::default());
        *observed.disks.lock().unwrap() = behaviour
            .namespaces
            .iter()
            .map(|(blocks, lbads)| vec![0u8; (*blocks as usize) << lbads])
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let mut device = Device {
            regs,
            behaviour,
            observed: observed.clone(),
            caps,
            enabled: false,
            granted: 0,
            sqs: BTreeMap::new(),
            cqs: BTreeMap::new(),
            held_since: None,
        };
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                if !device.step() {
                    thread::sleep(Duration::from_micros(20));
                }
            }
        });
        Self {
            regs,
            observed,
            stop,
            thread: Some(thread),
        }
    }

    /// A register of the block, as the device sees it.
    pub fn register(&self, offset: usize) -> u32 {
        read32(self.regs + offset)
    }
}

impl Drop for FakeController {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Configuration space of the fake function: no capabilities, a command
/// register that remembers what was written.
#[derive(Debug, Default)]
pub struct FakeConfig {
    /// The command register.
    pub command: AtomicU16,
}

impl ConfigAccess for FakeConfig {
    fn read_u32(&self, _address: PciAddress, offset: u16) -> u32 {
        match offset {
            0x00 => 0x0010_1b36,
            0x04 => u32::from(self.command.load(Ordering::SeqCst)),
            0x08 => 0x0108_0200,
            _ => 0,
        }
    }

    fn write_u32(&self, _address: PciAddress, offset: u16, value: u32) {
        if offset == 0x04 {
            self.command.store(value as u16, Ordering::SeqCst);
        }
    }

    fn space_size(&self) -> u16 {
        4096
    }
}

/// Microseconds since the first call: the clock the driver's waits use.
fn now_micros() -> Option<u64> {
    static START: OnceLock<Instant> = OnceLock::new();
    Some(START.get_or_init(Instant::now).elapsed().as_micros() as u64)
}

/// A fake controller, the services and the PCI function to probe.
pub struct Fixture {
    /// The function as enumeration would hand it over.
    pub function: PciFunction,
    /// Its configuration space.
    pub config: &'static FakeConfig,
    /// The kernel services.
    pub services: &'static HostServices,
    /// The controller (stops when dropped: drop the driver's devices first).
    pub fake: FakeController,
}

impl Fixture {
    /// A fixture whose controller behaves as `behaviour` says, with `cpus`
    /// CPUs online.
    pub fn new(behaviour: Behaviour, cpus: usize) -> Self {
        stratus_driver_api::clock::install(now_micros);
        let fake = FakeController::start(behaviour);
        let config: &'static FakeConfig = Box::leak(Box::default());
        let address = PciAddress::new(0, 0, 4, 0);
        let function = PciFunction {
            address,
            vendor_id: 0x1b36,
            device_id: 0x0010,
            class: crate::NVME_CLASS,
            revision: 2,
            subsystem: (0x1af4, 0x1100),
            is_bridge: false,
            bars: [
                Some(Bar::Memory {
                    address: BAR_ADDRESS,
                    size: BAR_SIZE as u64,
                    prefetchable: false,
                    is_64bit: true,
                }),
                None,
                None,
                None,
                None,
                None,
            ],
            config: FunctionConfig::new(config, address),
            io_space: stratus_pci::IoSpace::Unknown,
        };
        let services: &'static HostServices = Box::leak(Box::new(HostServices {
            registers: Some(HostRegisters {
                phys: BAR_ADDRESS,
                virt: fake.regs,
                len: BAR_SIZE,
            }),
            cpus,
            ..HostServices::new(Box::leak(Box::default()))
        }));
        Self {
            function,
            config,
            services,
            fake,
        }
    }

    /// DMA pages the driver holds.
    pub fn dma_pages(&self) -> usize {
        self.services.dma.outstanding.load(Ordering::SeqCst)
    }

    /// Bytes of namespace `nsid`'s RAM disk.
    pub fn disk(&self, nsid: usize, range: core::ops::Range<usize>) -> Vec<u8> {
        self.fake.observed.disks.lock().unwrap()[nsid - 1][range].to_vec()
    }

    /// The I/O commands seen so far.
    pub fn io_commands(&self) -> Vec<(u16, Command)> {
        self.fake.observed.io_commands.lock().unwrap().clone()
    }
}

/// A test's message for an error value.
pub fn describe(error: impl core::fmt::Display) -> String {
    use std::string::ToString;
    error.to_string()
}
