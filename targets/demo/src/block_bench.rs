//! `bench=block`: read-only benchmark of every data disk (`make bench`).
//!
//! A disk holding a partition table (the boot disk among them; the same
//! test as `test=block`) is left alone, as is one whose block size does not
//! divide 4 KiB or that is smaller than 1 MiB. On each of the others three
//! workloads run for `bench_seconds=N` seconds each (default 3; or until
//! `stratus_blockbench::MAX_SAMPLES` reads), only reads:
//!
//! * `rand4k-qd1`: 4 KiB reads at random 4 KiB-aligned offsets, one after
//!   the other (`BlockDevice::read`);
//! * `rand4k-qd32`: the same with 32 in flight throughout
//!   (`BlockDevice::read_queued` at depth 32 over rounds of
//!   [`QD32_ROUND`] requests: a completed read's slot takes the next at
//!   once; the queue drains only at the end of each round);
//! * `seq128k-qd1`: 128 KiB reads from block 0 on, one after the other.
//!
//! Each request is timed on the kernel's monotonic clock (the CPU counter)
//! from its submission to its completion, the time-weighted mean of reads
//! in flight is kept, and one line per disk and workload is printed in the
//! format of `stratus_blockbench::Line` (`stratus: bench block disk=...
//! workload=... iops=... lat_median_us=... lat_p99_us=... mib_s=...`).

use crate::block_test::partition_table;
use crate::platform::kernel_core::{logger, time, timer};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use stratus_blockbench::{InflightMeter, Line, MAX_SAMPLES, Offsets, Summary, Workload};
use stratus_driver_api::{BlockDevice, BlockRequest, RequestEvent};

/// Requests per `read_queued` call at queue depth 32.
const QD32_ROUND: usize = 1024;
/// Smallest disk benchmarked.
const MIN_BYTES: u64 = 1 << 20;

/// Runs the benchmark on every disk of `devices`.
pub fn run(devices: &[Arc<dyn BlockDevice>], seconds: u64) {
    let (Some(hz), Some(_)) = (time::ticks_per_second(), timer::now_ticks()) else {
        return log::error!("bench: block: no monotonic clock");
    };
    for device in devices {
        bench_disk(device.as_ref(), hz, seconds.max(1));
    }
}

fn skip(name: &str, why: &str) {
    logger::write_raw(format_args!(
        "stratus: bench block disk={name} skipped={why}\n"
    ));
}

fn bench_disk(device: &dyn BlockDevice, hz: u64, seconds: u64) {
    let name = device.name();
    let block = device.block_size() as usize;
    if block == 0 || !4096usize.is_multiple_of(block) {
        return skip(name, "block-size");
    }
    if device.capacity_blocks().saturating_mul(block as u64) < MIN_BYTES {
        return skip(name, "too-small");
    }
    let mut first = vec![0u8; 2 * block];
    if device.read(0, &mut first).is_err() {
        return skip(name, "unreadable");
    }
    if partition_table(&first, block).is_some() {
        return skip(name, "partition-table");
    }
    for workload in Workload::ALL {
        bench_workload(device, workload, hz, seconds);
    }
}

fn now() -> u64 {
    timer::now_ticks().unwrap_or(0)
}

fn bench_workload(device: &dyn BlockDevice, workload: Workload, hz: u64, seconds: u64) {
    let block = device.block_size() as u64;
    let size = workload.request_bytes();
    let per_request = size as u64 / block;
    let slots = device.capacity_blocks() / per_request;
    let mut offsets = Offsets::new(workload.seed(0), slots, workload.random());
    let ns = |ticks: u64| (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64;
    let mut latencies: Vec<u64> = Vec::with_capacity(1 << 15);
    let mut meter = InflightMeter::new();
    let mut errors = 0u64;
    let start = now();
    let end = start + seconds * hz;
    if workload.depth() == 1 {
        let mut buffer = vec![0u8; size];
        while now() < end && latencies.len() < MAX_SAMPLES {
            let lba = offsets.next_slot() * per_request;
            let t0 = now();
            meter.change(t0, true);
            let result = device.read(lba, &mut buffer);
            let t1 = now();
            meter.change(t1, false);
            match result {
                Ok(()) => latencies.push(ns(t1 - t0)),
                Err(_) => errors += 1,
            }
        }
    } else {
        let mut buffers = vec![0u8; QD32_ROUND * size];
        // Per request of a round: when it was submitted, how long it took.
        let mut submitted = vec![None::<u64>; QD32_ROUND];
        let mut took = vec![None::<u64>; QD32_ROUND];
        while now() < end && latencies.len() < MAX_SAMPLES {
            let mut requests: Vec<BlockRequest<'_>> = buffers
                .chunks_mut(size)
                .map(|buffer| BlockRequest {
                    lba: offsets.next_slot() * per_request,
                    buffer,
                    result: Ok(()),
                })
                .collect();
            submitted.fill(None);
            took.fill(None);
            device.read_queued(&mut requests, workload.depth(), &mut |index, event| {
                let t = now();
                match event {
                    RequestEvent::Submitted => {
                        submitted[index] = Some(t);
                        meter.change(t, true);
                    }
                    RequestEvent::Completed => {
                        if let Some(at) = submitted[index] {
                            meter.change(t, false);
                            took[index] = Some(ns(t - at));
                        }
                    }
                }
            });
            for (request, took) in requests.iter().zip(&took) {
                match (request.result, took) {
                    (Ok(()), Some(latency)) => latencies.push(*latency),
                    _ => errors += 1,
                }
            }
        }
    }
    let elapsed = now() - start;
    let summary = Summary::new(&mut latencies, size, ns(elapsed));
    logger::write_raw(format_args!(
        "{}\n",
        Line {
            prefix: "stratus",
            disk: device.name(),
            workload,
            summary,
            inflight_hundredths: meter.mean_hundredths(),
            errors,
        }
    ));
}
