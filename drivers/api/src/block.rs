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

/// What [`BlockDevice::read_queued`] reports about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestEvent {
    /// The request (its first command) was handed to the device.
    Submitted,
    /// The request's result is known (the last of its commands ended, or
    /// it was refused).
    Completed,
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

    /// Reads every request of `requests` with at most `depth` of them in
    /// flight at any time (at least one): whenever one completes the next is
    /// submitted, so a long list holds the device at that queue depth
    /// throughout, unlike [`BlockDevice::read_batch`], whose depth falls as
    /// the batch drains. `observer(index, event)` is told when request
    /// `index` goes to the device ([`RequestEvent::Submitted`], for a
    /// request split into several commands: its first) and when its result
    /// is known ([`RequestEvent::Completed`]); a request refused before
    /// submission is only reported completed. Benchmarks time requests with
    /// it. The default runs `read_batch` on groups of `depth` requests,
    /// reporting each group submitted before and completed after its batch.
    fn read_queued(
        &self,
        requests: &mut [BlockRequest<'_>],
        depth: usize,
        observer: &mut dyn FnMut(usize, RequestEvent),
    ) {
        let depth = depth.max(1);
        for (group, chunk) in requests.chunks_mut(depth).enumerate() {
            let first = group * depth;
            for index in first..first + chunk.len() {
                observer(index, RequestEvent::Submitted);
            }
            self.read_batch(chunk);
            for index in first..first + chunk.len() {
                observer(index, RequestEvent::Completed);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// A device with the trait's default batch methods that counts reads.
    struct Counting {
        reads: AtomicUsize,
    }

    impl BlockDevice for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn block_size(&self) -> u32 {
            512
        }
        fn capacity_blocks(&self) -> u64 {
            100
        }
        fn queue_count(&self) -> usize {
            1
        }
        fn read(&self, lba: u64, buffer: &mut [u8]) -> Result<(), BlockError> {
            self.check_request(lba, buffer.len())?;
            self.reads.fetch_add(1, Ordering::Relaxed);
            buffer.fill(lba as u8);
            Ok(())
        }
        fn write(&self, _lba: u64, _buffer: &[u8]) -> Result<(), BlockError> {
            Err(BlockError::ReadOnly)
        }
        fn flush(&self) -> Result<(), BlockError> {
            Ok(())
        }
    }

    #[test]
    fn default_read_queued_reports_every_request_in_groups_of_depth() {
        let device = Counting {
            reads: AtomicUsize::new(0),
        };
        let mut buffers = vec![[0u8; 512]; 10];
        let mut requests: Vec<BlockRequest<'_>> = buffers
            .iter_mut()
            .enumerate()
            .map(|(i, b)| BlockRequest {
                lba: if i == 9 { 100 } else { i as u64 },
                buffer: b,
                result: Ok(()),
            })
            .collect();
        let mut events = Vec::new();
        let mut in_flight = 0usize;
        let mut most = 0usize;
        device.read_queued(&mut requests, 4, &mut |index, event| {
            match event {
                RequestEvent::Submitted => in_flight += 1,
                RequestEvent::Completed => in_flight -= 1,
            }
            most = most.max(in_flight);
            events.push((index, event));
        });
        assert_eq!(most, 4);
        assert_eq!(events.len(), 20);
        assert_eq!(events[0], (0, RequestEvent::Submitted));
        assert_eq!(events[4], (0, RequestEvent::Completed));
        assert!(requests[..9].iter().all(|r| r.result.is_ok()));
        assert!(matches!(
            requests[9].result,
            Err(BlockError::OutOfRange { .. })
        ));
        assert_eq!(device.reads.load(Ordering::Relaxed), 9);
        drop(requests);
        assert_eq!(buffers[3][0], 3);
    }
}
