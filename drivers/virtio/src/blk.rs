//! The virtio-blk driver and its `BlockDevice`.

use crate::hal::StratusHal;
use crate::interrupts::{QueueInterrupts, bring_up};
use crate::transport::ModernPciTransport;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use stratus_driver_api::clock::Deadline;
use stratus_driver_api::{BlockDevice, BlockError, BlockRequest, DriverServices, RequestEvent};
use stratus_pci::{PciDriver, PciFunction, Probed};
use virtio_drivers::device::blk::{BlkReq, BlkResp, SECTOR_SIZE, VirtIOBlk};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Polls allowed per request before the clock runs (never, after boot).
const POLLS_WITHOUT_CLOCK: u64 = 50_000_000;
/// Descriptors one request takes (header, data, status) when the device
/// does not offer indirect descriptors: the queue then holds its size / 3
/// requests. With them (QEMU offers them, and virtio-drivers uses them) a
/// request takes one descriptor and the queue holds its size in requests.
/// The driver keeps up to the queue size in flight and takes the crate's
/// "queue full" as "wait for one to complete".
const DESCRIPTORS_PER_REQUEST: usize = 3;

/// Claims virtio block functions (modern 1af4:1042, transitional 1af4:1001).
#[derive(Debug, Default)]
pub struct VirtioBlkDriver;

static DEVICES: AtomicUsize = AtomicUsize::new(0);

/// Completion interrupts taken, every virtio-blk device together.
pub static BLOCK_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

fn on_completion(_device: usize) {
    BLOCK_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
}

impl PciDriver for VirtioBlkDriver {
    fn name(&self) -> &'static str {
        "virtio-blk"
    }

    fn claims(&self, function: &PciFunction) -> bool {
        crate::transport::claims(function, virtio_drivers::transport::DeviceType::Block)
    }

    fn probe(
        &self,
        function: PciFunction,
        services: &'static dyn DriverServices,
    ) -> Result<Probed, String> {
        let index = DEVICES.fetch_add(1, Ordering::Relaxed);
        let name = format!("virtio-blk{index}");
        let address = function.address;
        let (transport, interrupts) =
            bring_up(&function, services, &name, &[0], on_completion, index)?;
        let device = VirtIOBlk::<StratusHal, _>::new(transport)
            .map_err(|e| format!("virtio-blk setup: {e}"))?;
        let capacity = device.capacity();
        let in_flight = usize::from(device.virt_queue_size()).max(1);
        log::info!(
            target: "virtio",
            "{name} at {address}: {capacity} sectors of 512 bytes ({} MiB){}, queue of {} ({in_flight} requests with indirect descriptors, {} without), {}",
            (capacity * SECTOR_SIZE as u64) >> 20,
            if device.readonly() { ", read-only" } else { "" },
            device.virt_queue_size(),
            (in_flight / DESCRIPTORS_PER_REQUEST).max(1),
            if interrupts.is_some() { "MSI-X completions" } else { "completions polled" }
        );
        Ok(Probed::Block(vec![Arc::new(VirtioBlk {
            name,
            capacity,
            readonly: device.readonly(),
            in_flight,
            services,
            interrupts,
            device: spin::Mutex::new(device),
        })]))
    }
}

type Device = VirtIOBlk<StratusHal, ModernPciTransport>;

/// A virtio block device.
pub struct VirtioBlk {
    name: String,
    capacity: u64,
    readonly: bool,
    in_flight: usize,
    services: &'static dyn DriverServices,
    /// The queue's MSI-X vector, if the platform delivers MSIs: waits then
    /// halt until the completion interrupt instead of spinning.
    interrupts: Option<QueueInterrupts>,
    device: spin::Mutex<Device>,
}

// SAFETY: the transport's register pointers are only used through the
// mutex, one CPU at a time; the registers themselves may be reached from
// any CPU.
unsafe impl Send for VirtioBlk {}
// SAFETY: as for `Send`: every access goes through the mutex.
unsafe impl Sync for VirtioBlk {}

fn device_error(e: virtio_drivers::Error) -> BlockError {
    use virtio_drivers::Error;
    BlockError::Device(match e {
        Error::IoError => "VIRTIO_BLK_S_IOERR",
        Error::Unsupported => "VIRTIO_BLK_S_UNSUPP",
        Error::QueueFull => "queue full",
        Error::NotReady => "not ready",
        Error::InvalidParam => "invalid parameter",
        Error::DmaError => "DMA error",
        _ => "virtio error",
    })
}

impl VirtioBlk {
    /// Waits until the device has used a request (`token`, or any when
    /// `None`): the used token, or `None` on timeout. With MSI-X the CPU
    /// halts until the completion interrupt; otherwise it polls.
    fn wait_used(&self, device: &mut Device, token: Option<u16>) -> Option<u16> {
        let done = |device: &mut Device| {
            device
                .peek_used()
                .filter(|used| token.is_none_or(|t| t == *used))
        };
        if self.interrupts.is_some() {
            let mut used = None;
            self.services.wait_until(REQUEST_TIMEOUT, &mut || {
                used = done(device);
                used.is_some()
            });
            return used;
        }
        let mut deadline = Deadline::after(REQUEST_TIMEOUT, POLLS_WITHOUT_CLOCK);
        loop {
            if let Some(used) = done(device) {
                return Some(used);
            }
            if deadline.expired() {
                return None;
            }
            core::hint::spin_loop();
        }
    }
}

/// A request in the available ring: its token, its index in the batch,
/// and the header and status the device reads and writes.
type Slot = Option<(u16, usize, BlkReq, BlkResp)>;

/// Every request of a batch not yet ended fails with `error` (the queue is
/// given up on): those in `slots` and those from `next` on.
fn give_up(
    requests: &mut [BlockRequest<'_>],
    slots: &mut [Slot],
    next: usize,
    error: BlockError,
    observer: &mut dyn FnMut(usize, RequestEvent),
) {
    for (_, index, _, _) in slots.iter_mut().filter_map(Option::take) {
        requests[index].result = Err(error);
        observer(index, RequestEvent::Completed);
    }
    for (index, request) in requests.iter_mut().enumerate().skip(next) {
        if request.result.is_ok() {
            request.result = Err(error);
            observer(index, RequestEvent::Completed);
        }
    }
}

impl BlockDevice for VirtioBlk {
    fn name(&self) -> &str {
        &self.name
    }

    fn block_size(&self) -> u32 {
        SECTOR_SIZE as u32
    }

    fn capacity_blocks(&self) -> u64 {
        self.capacity
    }

    fn queue_count(&self) -> usize {
        1
    }

    fn read(&self, lba: u64, buffer: &mut [u8]) -> Result<(), BlockError> {
        self.check_request(lba, buffer.len())?;
        let mut device = self.device.lock();
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        // SAFETY: `req`, `buffer` and `resp` are not touched until the
        // request completes (or, on timeout, ever again by the device: the
        // crate shares them through bounce buffers the Hal keeps).
        let token = unsafe { device.read_blocks_nb(lba as usize, &mut req, buffer, &mut resp) }
            .map_err(device_error)?;
        if self.wait_used(&mut device, Some(token)).is_none() {
            return Err(BlockError::Timeout);
        }
        // SAFETY: the same buffers as `read_blocks_nb` got.
        unsafe { device.complete_read_blocks(token, &req, buffer, &mut resp) }.map_err(device_error)
    }

    fn write(&self, lba: u64, buffer: &[u8]) -> Result<(), BlockError> {
        self.check_request(lba, buffer.len())?;
        if self.readonly {
            return Err(BlockError::ReadOnly);
        }
        let mut device = self.device.lock();
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        // SAFETY: as in `read`.
        let token = unsafe { device.write_blocks_nb(lba as usize, &mut req, buffer, &mut resp) }
            .map_err(device_error)?;
        if self.wait_used(&mut device, Some(token)).is_none() {
            return Err(BlockError::Timeout);
        }
        // SAFETY: the same buffers as `write_blocks_nb` got.
        unsafe { device.complete_write_blocks(token, &req, buffer, &mut resp) }
            .map_err(device_error)
    }

    fn flush(&self) -> Result<(), BlockError> {
        // virtio-drivers has no non-blocking flush: this waits as long as
        // the crate does (see the crate documentation).
        self.device.lock().flush().map_err(device_error)
    }

    fn read_batch(&self, requests: &mut [BlockRequest<'_>]) {
        self.read_queued(requests, usize::MAX, &mut |_, _| {});
    }

    /// Up to `depth` requests (and no more than the queue holds) in the
    /// available ring at once; a used one is replaced by the next at once.
    fn read_queued(
        &self,
        requests: &mut [BlockRequest<'_>],
        depth: usize,
        observer: &mut dyn FnMut(usize, RequestEvent),
    ) {
        for (index, request) in requests.iter_mut().enumerate() {
            request.result = self
                .check_request(request.lba, request.buffer.len())
                .map(|_| ());
            if request.result.is_err() {
                observer(index, RequestEvent::Completed);
            }
        }
        let mut device = self.device.lock();
        // Fixed slots (never reallocated while requests are in flight).
        let mut slots: Vec<Slot> = Vec::new();
        slots.resize_with(self.in_flight.min(requests.len()).min(depth.max(1)), || {
            None
        });
        let mut next = 0;
        loop {
            // Fill free slots, until the ring has no room left.
            let mut busy = slots.iter().filter(|s| s.is_some()).count();
            let mut ring_full = false;
            for slot in slots.iter_mut().filter(|s| s.is_none()) {
                if ring_full {
                    break;
                }
                while next < requests.len() && requests[next].result.is_err() {
                    next += 1;
                }
                let Some(request) = requests.get_mut(next) else {
                    break;
                };
                let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
                // SAFETY: the request's buffer is not touched until its
                // completion below; req/resp live in `slots`, which does
                // not move.
                match unsafe {
                    device.read_blocks_nb(request.lba as usize, &mut req, request.buffer, &mut resp)
                } {
                    Ok(token) => {
                        *slot = Some((token, next, req, resp));
                        observer(next, RequestEvent::Submitted);
                        busy += 1;
                    }
                    // No descriptors left (without indirect descriptors a
                    // request takes three): this request waits for one in
                    // flight to complete. With none in flight it fails.
                    Err(virtio_drivers::Error::QueueFull) if busy > 0 => {
                        ring_full = true;
                        continue;
                    }
                    Err(e) => {
                        request.result = Err(device_error(e));
                        observer(next, RequestEvent::Completed);
                    }
                }
                next += 1;
            }
            if slots.iter().all(Option::is_none) {
                return;
            }
            // Wait for any in-flight request to complete.
            let Some(token) = self.wait_used(&mut device, None) else {
                give_up(requests, &mut slots, next, BlockError::Timeout, observer);
                return;
            };
            let Some(slot) = slots
                .iter_mut()
                .find(|s| s.as_ref().is_some_and(|(t, ..)| *t == token))
            else {
                log::error!(target: "virtio", "{}: used token {token} unknown", self.name);
                give_up(
                    requests,
                    &mut slots,
                    next,
                    BlockError::Device("used ring names an unknown request"),
                    observer,
                );
                return;
            };
            let (token, index, req, mut resp) = slot.take().expect("found above");
            let request = &mut requests[index];
            // SAFETY: the same buffers as `read_blocks_nb` got for `token`.
            request.result =
                unsafe { device.complete_read_blocks(token, &req, request.buffer, &mut resp) }
                    .map_err(device_error);
            observer(index, RequestEvent::Completed);
        }
    }
}
