//! `blockbench-linux DEVICE SECONDS`: the block read workloads of the demo
//! kernel's `bench=block`, run by a Linux guest on a block device, for the
//! comparison `make bench` prints (see `ci/linux_guest.py`).
//!
//! Every read is `pread(2)` on a descriptor opened with `O_DIRECT` (no page
//! cache: each read reaches the device) into a 4 KiB-aligned buffer, timed
//! with `CLOCK_MONOTONIC` (`Instant`). Queue depth 32 is 32 threads, each
//! with its own descriptor, doing one read at a time: 32 reads are
//! submitted whenever 32 threads are blocked in `pread` (what fio's `psync`
//! engine with 32 jobs does). A sampler thread reads
//! `/sys/block/<dev>/inflight` every 10 ms, so the report shows how many
//! reads the kernel really had in flight. Each workload prints one line in
//! the format of `stratus_blockbench::Line` with the prefix `linux`.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use stratus_blockbench::{Line, Offsets, Summary, Workload};

#[cfg(target_arch = "x86_64")]
const O_DIRECT: i32 = 0o40000;
#[cfg(target_arch = "aarch64")]
const O_DIRECT: i32 = 0o200000;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const O_DIRECT: i32 = 0;

/// The seed of stream `i` (the kernel side uses the same ones).
fn seed(workload: Workload, stream: usize) -> u64 {
    0x5354_5241_5455_5300 + (workload as u64) * 1000 + stream as u64
}

fn open(device: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(O_DIRECT)
        .open(device)
}

/// A buffer of `len` bytes at a 4 KiB boundary inside `backing`.
fn aligned(backing: &mut Vec<u8>, len: usize) -> &mut [u8] {
    backing.resize(len + 4096, 0);
    let skip = backing.as_ptr().align_offset(4096);
    &mut backing[skip..skip + len]
}

/// One stream: reads until `stop`, returns the latencies (ns) and errors.
fn stream(
    device: &Path,
    workload: Workload,
    slots: u64,
    index: usize,
    stop: &AtomicBool,
    deadline: Instant,
) -> (Vec<u64>, u64) {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let Ok(file) = open(device) else {
        return (latencies, 1);
    };
    let size = workload.request_bytes();
    let mut backing = Vec::new();
    let buffer = aligned(&mut backing, size);
    let mut offsets = Offsets::new(seed(workload, index), slots, workload.random());
    loop {
        let start = Instant::now();
        if start >= deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        let at = offsets.next_slot() * size as u64;
        match file.read_at(buffer, at) {
            Ok(n) if n == size => latencies.push(start.elapsed().as_nanos() as u64),
            _ => errors += 1,
        }
    }
    (latencies, errors)
}

fn run(device: &Path, name: &str, capacity: u64, workload: Workload, seconds: u64) {
    let slots = capacity / workload.request_bytes() as u64;
    let stop = AtomicBool::new(false);
    let samples = AtomicU64::new(0);
    let sampled = AtomicU64::new(0);
    let inflight_path = format!("/sys/block/{name}/inflight");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                // "reads writes"
                let reads = std::fs::read_to_string(&inflight_path)
                    .ok()
                    .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok());
                if let Some(reads) = reads {
                    samples.fetch_add(1, Ordering::Relaxed);
                    sampled.fetch_add(reads, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let workers: Vec<_> = (0..workload.depth())
            .map(|i| {
                let stop = &stop;
                scope.spawn(move || stream(device, workload, slots, i, stop, deadline))
            })
            .collect();
        for worker in workers {
            let (l, e) = worker.join().unwrap_or_default();
            latencies.extend(l);
            errors += e;
        }
        elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.join();
    });
    let summary = Summary::new(
        &mut latencies,
        workload.request_bytes(),
        elapsed.as_nanos() as u64,
    );
    let n = samples.load(Ordering::Relaxed).max(1);
    println!(
        "{}",
        Line {
            prefix: "linux",
            disk: name,
            workload,
            summary,
            inflight_hundredths: sampled.load(Ordering::Relaxed) * 100 / n,
            errors,
        }
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: blockbench-linux /dev/DEVICE SECONDS");
        std::process::exit(2);
    }
    let device = Path::new(&args[1]);
    let seconds: u64 = args[2].parse().unwrap_or(3);
    let name = device
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("disk")
        .to_string();
    let capacity = match File::open(device).and_then(|mut f| f.seek(SeekFrom::End(0))) {
        Ok(c) => c,
        Err(e) => {
            println!("linux: bench block disk={name} error=\"{e}\"");
            return;
        }
    };
    for workload in Workload::ALL {
        run(device, &name, capacity, workload, seconds);
    }
}
