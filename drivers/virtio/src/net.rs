//! The virtio-net driver and its `NetDevice` (virtio 1.2, 5.1).
//!
//! virtio-drivers' `VirtIONetRaw` negotiates features and runs the two
//! virtqueues (receive 0, transmit 1) over [`ModernPciTransport`]; this
//! driver owns the frame memory. Receive and transmit buffers are two DMA
//! pools registered as device-visible with the `Hal`, so frames reach the
//! device without a bounce copy: every receive buffer is posted once at
//! probe and posted again as soon as its frame has been copied out.
//!
//! Interrupts: MSI-X entry 0 for the receive queue, 1 for transmit, both
//! to the probing CPU; the handler only counts (the waiting stack collects
//! the frames). Without MSI-X (no ITS, GICv2) the device is polled and
//! [`NetDevice::receive_interrupts`] says so.

use crate::hal::{self, StratusHal};
use crate::interrupts::{QueueInterrupts, bring_up};
use crate::transport::ModernPciTransport;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use stratus_driver_api::{DmaBuffer, DriverServices, IoMem, NetDevice, NetError};
use stratus_pci::{PciDriver, PciFunction, Probed};
use virtio_drivers::device::net::VirtIONetRaw;

/// Descriptors per queue (QEMU offers 256; each receive buffer takes one).
const QUEUE_SIZE: usize = 128;
/// Bytes per frame buffer: the 12-byte virtio-net header and a 1514-byte
/// frame, rounded up so two buffers share a page.
const BUFFER_BYTES: usize = 2048;
/// virtio-net's receive and transmit queue indices (5.1.2).
const RECEIVE_QUEUE: u16 = 0;
const TRANSMIT_QUEUE: u16 = 1;
/// Device configuration: `status` (5.1.4), and its link-up bit.
const CONFIG_STATUS: usize = 6;
const STATUS_LINK_UP: u16 = 1;
/// The MTU without VIRTIO_NET_F_MTU (which the crate does not negotiate).
const DEFAULT_MTU: usize = 1500;

/// Receive and transmit interrupts taken, every virtio-net device together.
pub static NET_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

fn on_interrupt(_device: usize) {
    NET_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
}

static DEVICES: AtomicUsize = AtomicUsize::new(0);

/// Claims virtio network functions (modern 1af4:1041, transitional 1af4:1000).
#[derive(Debug, Default)]
pub struct VirtioNetDriver;

type Raw = VirtIONetRaw<StratusHal, ModernPciTransport, QUEUE_SIZE>;

impl PciDriver for VirtioNetDriver {
    fn name(&self) -> &'static str {
        "virtio-net"
    }

    fn claims(&self, function: &PciFunction) -> bool {
        crate::transport::claims(function, virtio_drivers::transport::DeviceType::Network)
    }

    fn probe(
        &self,
        function: PciFunction,
        services: &'static dyn DriverServices,
    ) -> Result<Probed, String> {
        let index = DEVICES.fetch_add(1, Ordering::Relaxed);
        let name = format!("virtio-net{index}");
        let (transport, interrupts) = bring_up(
            &function,
            services,
            &name,
            &[RECEIVE_QUEUE, TRANSMIT_QUEUE],
            on_interrupt,
            index,
        )?;
        let config = transport.device_config();
        let raw = Raw::new(transport).map_err(|e| format!("virtio-net setup: {e}"))?;
        let pool_bytes = QUEUE_SIZE * BUFFER_BYTES;
        let rx_pool = services
            .allocate_dma(pool_bytes)
            .map_err(|e| format!("receive buffers: {e}"))?;
        let tx_pool = services
            .allocate_dma(pool_bytes)
            .map_err(|e| format!("transmit buffers: {e}"))?;
        hal::register_device_visible(&rx_pool);
        hal::register_device_visible(&tx_pool);
        let mut inner = Inner {
            raw,
            rx_pool,
            tx_pool,
            rx_slot_of_token: vec![u16::MAX; QUEUE_SIZE],
            tx_slot_of_token: vec![u16::MAX; QUEUE_SIZE],
            tx_len: vec![0; QUEUE_SIZE],
            tx_free: (0..QUEUE_SIZE as u16).rev().collect(),
            counters: Counters::default(),
        };
        for slot in 0..QUEUE_SIZE as u16 {
            inner.post_receive(slot)?;
        }
        let mac = inner.raw.mac_address();
        // A vector the device refused is logged by the transport; that queue is
        // then served when the stack wakes on its timer.
        let polled = interrupts.is_none();
        let device = VirtioNet {
            name,
            mac,
            config,
            polled,
            _interrupts: interrupts,
            inner: spin::Mutex::new(inner),
        };
        log::info!(
            target: "virtio",
            "{} at {}: mac {} mtu {} link {} queues of {QUEUE_SIZE}, {}",
            device.name,
            function.address,
            MacAddress(mac),
            DEFAULT_MTU,
            if device.link_up() { "up" } else { "down" },
            if polled { "polled" } else { "MSI-X receive and transmit interrupts" }
        );
        Ok(Probed::Net(vec![Arc::new(device)]))
    }
}

/// A MAC address as `52:54:00:12:34:56`.
struct MacAddress([u8; 6]);

impl core::fmt::Display for MacAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Frames and errors seen by one device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames received and handed to the stack.
    pub received: u64,
    /// Frames queued for transmission.
    pub transmitted: u64,
    /// Received frames dropped (too large for the caller's buffer, or a
    /// device error).
    pub receive_dropped: u64,
    /// Transmissions refused because every buffer was in flight.
    pub transmit_busy: u64,
}

struct Inner {
    raw: Raw,
    rx_pool: DmaBuffer,
    tx_pool: DmaBuffer,
    /// Which pool slot a posted token (head descriptor) stands for.
    rx_slot_of_token: Vec<u16>,
    tx_slot_of_token: Vec<u16>,
    /// Bytes handed to the device per transmit slot (header and frame).
    tx_len: Vec<usize>,
    tx_free: Vec<u16>,
    counters: Counters,
}

/// The frame buffer `slot` of `pool`.
fn buffer(pool: &mut DmaBuffer, slot: u16) -> &mut [u8] {
    let start = usize::from(slot) * BUFFER_BYTES;
    assert!(start + BUFFER_BYTES <= pool.len());
    // SAFETY: the range lies inside the pool, which lives as long as the
    // device (and so as `Inner`); the pool is borrowed mutably for the
    // slice's life, so no other slice of it exists meanwhile. A slot posted
    // to the device is not touched again until the device gives it back.
    unsafe { core::slice::from_raw_parts_mut(pool.as_ptr().add(start), BUFFER_BYTES) }
}

fn device_error(e: virtio_drivers::Error) -> NetError {
    use virtio_drivers::Error;
    NetError::Device(match e {
        Error::QueueFull => "queue full",
        Error::NotReady => "not ready",
        Error::InvalidParam => "invalid parameter",
        Error::IoError => "I/O error",
        Error::DmaError => "DMA error",
        _ => "virtio error",
    })
}

impl Inner {
    fn post_receive(&mut self, slot: u16) -> Result<(), String> {
        let buf = buffer(&mut self.rx_pool, slot);
        // SAFETY: the slot's buffer stays untouched until its token is
        // completed in `receive` (and lives as long as the device).
        let token = unsafe { self.raw.receive_begin(buf) }
            .map_err(|e| format!("posting receive buffer {slot}: {e}"))?;
        self.rx_slot_of_token[usize::from(token)] = slot;
        Ok(())
    }

    fn reclaim_transmitted(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let slot = self.tx_slot_of_token[usize::from(token)];
            let len = self.tx_len[usize::from(slot)];
            let buf = &buffer(&mut self.tx_pool, slot)[..len];
            // SAFETY: the same buffer `transmit_begin` got for `token`.
            if let Err(e) = unsafe { self.raw.transmit_complete(token, buf) } {
                log::warn!(target: "virtio", "transmit completion {token}: {e}");
            }
            self.tx_free.push(slot);
        }
    }
}

/// A virtio network device.
pub struct VirtioNet {
    name: String,
    mac: [u8; 6],
    config: Option<IoMem>,
    polled: bool,
    _interrupts: Option<QueueInterrupts>,
    inner: spin::Mutex<Inner>,
}

impl VirtioNet {
    /// Frames and errors so far.
    pub fn counters(&self) -> Counters {
        self.inner.lock().counters
    }
}

// SAFETY: the transport's register windows and the pools are only used
// through the mutex, one CPU at a time; the registers and DMA memory may be
// reached from any CPU.
unsafe impl Send for VirtioNet {}
// SAFETY: as for `Send`: every access goes through the mutex (`config` is
// only read, with volatile accesses).
unsafe impl Sync for VirtioNet {}

impl NetDevice for VirtioNet {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        DEFAULT_MTU
    }

    fn link_up(&self) -> bool {
        // Without a configuration structure (no VIRTIO_NET_F_STATUS to
        // read), the link is taken to be up (5.1.4).
        self.config
            .as_ref()
            .and_then(|c| c.read::<u16>(CONFIG_STATUS).ok())
            .is_none_or(|status| status & STATUS_LINK_UP != 0)
    }

    fn queue_count(&self) -> usize {
        1
    }

    fn transmit(&self, frame: &[u8]) -> Result<(), NetError> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.reclaim_transmitted();
        let Some(slot) = inner.tx_free.pop() else {
            inner.counters.transmit_busy += 1;
            return Err(NetError::Busy);
        };
        let buf = buffer(&mut inner.tx_pool, slot);
        let header = match inner.raw.fill_buffer_header(buf) {
            Ok(header) => header,
            Err(e) => {
                inner.tx_free.push(slot);
                return Err(device_error(e));
            }
        };
        let len = header + frame.len();
        if len > BUFFER_BYTES {
            inner.tx_free.push(slot);
            return Err(NetError::TooLarge(frame.len()));
        }
        buf[header..len].copy_from_slice(frame);
        // SAFETY: the slot's buffer stays untouched until its completion is
        // reclaimed (`reclaim_transmitted`).
        match unsafe { inner.raw.transmit_begin(&buf[..len]) } {
            Ok(token) => {
                inner.tx_slot_of_token[usize::from(token)] = slot;
                inner.tx_len[usize::from(slot)] = len;
                inner.counters.transmitted += 1;
                Ok(())
            }
            Err(e) => {
                inner.tx_free.push(slot);
                Err(device_error(e))
            }
        }
    }

    fn receive(&self, out: &mut [u8]) -> Result<Option<usize>, NetError> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let Some(token) = inner.raw.poll_receive() else {
            return Ok(None);
        };
        let slot = inner.rx_slot_of_token[usize::from(token)];
        let buf = buffer(&mut inner.rx_pool, slot);
        // SAFETY: the same buffer `receive_begin` got for `token`.
        let completed = unsafe { inner.raw.receive_complete(token, buf) };
        let result = match completed {
            Ok((header, len)) if len <= out.len() && header + len <= BUFFER_BYTES => {
                out[..len].copy_from_slice(&buf[header..header + len]);
                inner.counters.received += 1;
                Ok(Some(len))
            }
            Ok((_, len)) => {
                inner.counters.receive_dropped += 1;
                Err(NetError::TooLarge(len))
            }
            Err(e) => {
                inner.counters.receive_dropped += 1;
                Err(device_error(e))
            }
        };
        if let Err(e) = inner.post_receive(slot) {
            log::error!(target: "virtio", "{}: {e}", self.name);
        }
        result
    }

    fn receive_pending(&self) -> bool {
        self.inner.lock().raw.poll_receive().is_some()
    }

    fn receive_interrupts(&self) -> bool {
        !self.polled
    }

    fn can_transmit(&self) -> bool {
        let mut inner = self.inner.lock();
        if inner.tx_free.is_empty() {
            inner.reclaim_transmitted();
        }
        !inner.tx_free.is_empty()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        hal::unregister_device_visible(&self.rx_pool);
        hal::unregister_device_visible(&self.tx_pool);
    }
}
