//! The block device interface: what a file system or a test needs of a
//! disk, knowing nothing of NVMe or virtio.
//!
//! Addresses are in logical blocks of [`BlockDevice::block_size`] bytes;
//! buffers are whole blocks. A request that reaches past the end of the
//! device fails with [`BlockError::OutOfRange`] before anything is sent to
//! the device.

use core::fmt;

/// Why a block operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The request reaches past the last block.
    OutOfRange {
        /// First block asked for.
        lba: u64,
        /// Blocks asked for.
        blocks: u64,
        /// Blocks the device has.
        capacity: u64,
    },
    /// The buffer is not a whole number of blocks, or is empty.
    BadLength(usize),
    /// The device did not complete the request within its bound.
    Timeout,
    /// No memory for the transfer.
    NoMemory,
    /// The device reported an error: its name as the specification gives it.
    Device(&'static str),
    /// The device is read-only.
    ReadOnly,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange {
                lba,
                blocks,
                capacity,
            } => write!(
                f,
                "blocks {lba}..{} are past the end of the device ({capacity} blocks)",
                lba.saturating_add(*blocks)
            ),
            Self::BadLength(len) => write!(f, "a buffer of {len} bytes is not whole blocks"),
            Self::Timeout => f.write_str("the device did not answer in time"),
            Self::NoMemory => f.write_str("no memory for the transfer"),
            Self::Device(name) => write!(f, "device error: {name}"),
            Self::ReadOnly => f.write_str("the device is read-only"),
        }
    }
}

/// One read in a batch ([`BlockDevice::read_batch`]).
#[derive(Debug)]
pub struct BlockRequest<'a> {
    /// First block.
    pub lba: u64,
    /// Where the data goes (whole blocks).
    pub buffer: &'a mut [u8],
    /// Filled in when the batch returns.
    pub result: Result<(), BlockError>,
}

/// A disk.
pub trait BlockDevice: Send + Sync {
    /// A short name for logs (`nvme0n1`, `virtio-blk0`).
    fn name(&self) -> &str;

    /// Bytes per logical block.
    fn block_size(&self) -> u32;

    /// Number of logical blocks.
    fn capacity_blocks(&self) -> u64;

    /// Hardware queues the driver uses (one per CPU where the device allows).
    fn queue_count(&self) -> usize;

    /// Reads whole blocks starting at `lba` into `buffer`.
    fn read(&self, lba: u64, buffer: &mut [u8]) -> Result<(), BlockError>;

    /// Writes whole blocks starting at `lba` from `buffer`.
    fn write(&self, lba: u64, buffer: &[u8]) -> Result<(), BlockError>;

    /// Makes every completed write durable.
    fn flush(&self) -> Result<(), BlockError>;

    /// Submits every read of `requests` before waiting for any, so that the
    /// device sees them all at once (queue depth `requests.len()`, up to
    /// what the queue holds), then waits for all. Each request's `result`
    /// says how it went. The default reads one after the other.
    fn read_batch(&self, requests: &mut [BlockRequest<'_>]) {
        for request in requests {
            request.result = self.read(request.lba, request.buffer);
        }
    }

    /// Checks a request against the device's size and block size: the
    /// number of blocks it covers.
    fn check_request(&self, lba: u64, len: usize) -> Result<u64, BlockError> {
        let size = self.block_size() as usize;
        if len == 0 || size == 0 || !len.is_multiple_of(size) {
            return Err(BlockError::BadLength(len));
        }
        let blocks = (len / size) as u64;
        let capacity = self.capacity_blocks();
        match lba.checked_add(blocks) {
            Some(end) if end <= capacity => Ok(blocks),
            _ => Err(BlockError::OutOfRange {
                lba,
                blocks,
                capacity,
            }),
        }
    }
}
