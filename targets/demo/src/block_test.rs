//! `test=block`: a write, flush and read-back self-test of every disk the
//! PCI drivers brought up.
//!
//! A disk that holds a partition table (an MBR boot signature in block 0,
//! or a GPT header in block 1: the boot disk among them) is named and left
//! alone. On every other disk the test writes [`SCRATCH_BYTES`] at byte
//! offset [`SCRATCH_OFFSET`], each 8-byte word the little-endian value
//! `offset ^ PATTERN_MAGIC` (its own byte offset from the start of the
//! disk, so a write that lands in the wrong place is caught), flushes,
//! reads it back whole and as a batch of 4 KiB reads (queue depth up to
//! 64), and checks that a read past the end is refused. `ci/qemu_test.py`
//! then finds the same pattern in the disk file after QEMU has exited.

use crate::platform::kernel_core::logger;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use stratus_driver_api::{BlockDevice, BlockError, BlockRequest};

/// Where the scratch region starts, in bytes.
pub const SCRATCH_OFFSET: u64 = 1 << 20;
/// Its length in bytes.
pub const SCRATCH_BYTES: usize = 256 * 1024;
/// XORed into each word's offset ("STRATUS!").
pub const PATTERN_MAGIC: u64 = 0x5354_5241_5455_5321;
/// The size of each read of the batch.
const BATCH_READ_BYTES: usize = 4096;

/// How one disk fared.
enum Outcome {
    Passed,
    LeftAlone,
    Failed,
}

/// Runs the test on every disk; true when at least one disk was tested and
/// none failed.
pub fn run(devices: &[Arc<dyn BlockDevice>]) -> bool {
    let (mut tested, mut skipped, mut failed) = (0, 0, 0);
    for device in devices {
        match test_one(device.as_ref()) {
            Outcome::Passed => tested += 1,
            Outcome::LeftAlone => skipped += 1,
            Outcome::Failed => {
                tested += 1;
                failed += 1
            }
        }
    }
    logger::write_raw(format_args!(
        "stratus: block devices={} tested={tested} left_alone={skipped} failed={failed}\n",
        devices.len()
    ));
    tested > 0 && failed == 0
}

/// The pattern for the bytes from disk offset `start`.
fn fill(buffer: &mut [u8], start: u64) {
    for (i, word) in buffer.chunks_exact_mut(8).enumerate() {
        let offset = start + (i * 8) as u64;
        word.copy_from_slice(&(offset ^ PATTERN_MAGIC).to_le_bytes());
    }
}

/// The partition table the first two blocks show, if any: a GPT header in
/// block 1 (its protective MBR aside), else an MBR boot signature.
pub(crate) fn partition_table(first_blocks: &[u8], block_size: usize) -> Option<&'static str> {
    if first_blocks.get(block_size..block_size + 8) == Some(b"EFI PART") {
        Some("GPT")
    } else if first_blocks.get(510..512) == Some(&[0x55, 0xaa]) {
        Some("MBR")
    } else {
        None
    }
}

fn test_one(device: &dyn BlockDevice) -> Outcome {
    let name = device.name();
    let size = device.block_size() as usize;
    let capacity = device.capacity_blocks();
    let fail = |what: &str, e: BlockError| {
        logger::write_raw(format_args!(
            "stratus: block name={name} {what} failed: {e}\n"
        ));
        Outcome::Failed
    };
    if size == 0
        || !SCRATCH_BYTES.is_multiple_of(size)
        || !SCRATCH_OFFSET.is_multiple_of(size as u64)
    {
        logger::write_raw(format_args!(
            "stratus: block name={name} block size {size} does not divide the scratch region; left alone\n"
        ));
        return Outcome::LeftAlone;
    }
    if capacity.saturating_mul(size as u64) < SCRATCH_OFFSET + SCRATCH_BYTES as u64 {
        logger::write_raw(format_args!(
            "stratus: block name={name} is smaller than the scratch region; left alone\n"
        ));
        return Outcome::LeftAlone;
    }
    let mut first = vec![0u8; 2 * size];
    if let Err(e) = device.read(0, &mut first) {
        return fail("reading blocks 0-1", e);
    }
    if let Some(table) = partition_table(&first, size) {
        logger::write_raw(format_args!(
            "stratus: block name={name} holds a partition table ({table}); left alone\n"
        ));
        return Outcome::LeftAlone;
    }
    let lba = SCRATCH_OFFSET / size as u64;
    let mut pattern = vec![0u8; SCRATCH_BYTES];
    fill(&mut pattern, SCRATCH_OFFSET);
    if let Err(e) = device.write(lba, &pattern) {
        return fail("write", e);
    }
    if let Err(e) = device.flush() {
        return fail("flush", e);
    }
    let mut back = vec![0u8; SCRATCH_BYTES];
    if let Err(e) = device.read(lba, &mut back) {
        return fail("read", e);
    }
    let whole = mismatch(&pattern, &back);
    // The same region again as a batch of 4 KiB reads, all submitted at once.
    let mut back = vec![0u8; SCRATCH_BYTES];
    let per_read = BATCH_READ_BYTES.max(size);
    let mut requests: Vec<BlockRequest<'_>> = back
        .chunks_mut(per_read)
        .enumerate()
        .map(|(i, buffer)| BlockRequest {
            lba: lba + (i * per_read / size) as u64,
            buffer,
            result: Ok(()),
        })
        .collect();
    device.read_batch(&mut requests);
    let batch_error = requests.iter().find_map(|r| r.result.err());
    drop(requests);
    let batch = mismatch(&pattern, &back);
    let mut tail = vec![0u8; 2 * size];
    let past_end = match device.read(capacity - 1, &mut tail) {
        Err(BlockError::OutOfRange { .. }) => "refused",
        Err(_) => "wrong-error",
        Ok(()) => "allowed",
    };
    let ok = whole.is_none() && batch.is_none() && batch_error.is_none() && past_end == "refused";
    let show = |m: Option<usize>| match m {
        None => alloc::string::String::from("ok"),
        Some(at) => alloc::format!("mismatch-at-{:#x}", SCRATCH_OFFSET + at as u64),
    };
    logger::write_raw(format_args!(
        "stratus: block name={name} block_size={size} blocks={capacity} written={SCRATCH_BYTES} \
         pattern={} batch={}{} past_end={past_end} result={}\n",
        show(whole),
        show(batch),
        batch_error.map_or(alloc::string::String::new(), |e| alloc::format!(
            " batch_error=\"{e}\""
        )),
        if ok { "ok" } else { "failed" }
    ));
    if ok { Outcome::Passed } else { Outcome::Failed }
}

/// The first byte where `got` differs from `want`.
fn mismatch(want: &[u8], got: &[u8]) -> Option<usize> {
    want.iter().zip(got).position(|(a, b)| a != b)
}
