//! `blockbench-linux DEVICE SECONDS`: the block read workloads of the demo
//! kernel's `bench=block`, run by a Linux guest on a block device, for the
//! comparison `make bench` prints (see `ci/linux_guest.py`).
//!
//! Every read goes to a descriptor opened with `O_DIRECT` (no page cache:
//! each read reaches the device) into a 4 KiB-aligned buffer, and is timed
//! with `CLOCK_MONOTONIC` (`Instant`) from submission to completion.
//!
//! * depth 1 (`rand4k-qd1`, `seq128k-qd1`): `pread(2)` in a loop;
//! * depth 32 (`rand4k-qd32`): Linux native AIO from one thread, what fio's
//!   `libaio` engine with `iodepth=32` does: 32 reads submitted with
//!   `io_submit(2)`, then `io_getevents(2)` for at least one completion and
//!   each completed read replaced at once (one `io_submit` for all of them);
//! * depth 32 with threads (`rand4k-qd32-threads`): 32 threads, each with
//!   its own descriptor, doing `pread` one at a time (fio's `psync` with 32
//!   jobs). Shown too because it is how a program without AIO reaches the
//!   depth; it costs a context switch per read.
//!
//! A sampler thread reads the disk's `inflight` counters in sysfs every
//! 10 ms (the multipath head `nvme0n1` counts nothing itself: its paths
//! `nvme0c*n1` are read too), so each report says how many reads the
//! kernel really had in flight. Each workload prints one line in the format
//! of `stratus_blockbench::Line` with the prefix `linux`.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use stratus_blockbench::{Line, MAX_SAMPLES, Offsets, Summary, Workload};

#[cfg(target_arch = "x86_64")]
const O_DIRECT: i32 = 0o40000;
#[cfg(target_arch = "aarch64")]
const O_DIRECT: i32 = 0o200000;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const O_DIRECT: i32 = 0;

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

/// What one run gives: latencies (ns) and failed reads.
type Outcome = (Vec<u64>, u64);

/// One stream of `pread`s until `deadline`.
fn pread_stream(
    device: &Path,
    workload: Workload,
    slots: u64,
    stream: usize,
    deadline: Instant,
) -> Outcome {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let Ok(file) = open(device) else {
        return (latencies, 1);
    };
    let size = workload.request_bytes();
    let mut backing = Vec::new();
    let buffer = aligned(&mut backing, size);
    let mut offsets = Offsets::new(workload.seed(stream), slots, workload.random());
    loop {
        let start = Instant::now();
        if start >= deadline || latencies.len() >= MAX_SAMPLES / workload.depth() {
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

/// Linux native AIO (`linux/aio_abi.h`) through raw system calls: std has
/// no binding and the helper takes no crates.
mod aio {
    /// `struct iocb`, little-endian layout.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub struct Iocb {
        pub data: u64,
        pub key: u32,
        pub rw_flags: u32,
        pub opcode: u16,
        pub reqprio: i16,
        pub fildes: u32,
        pub buf: u64,
        pub nbytes: u64,
        pub offset: i64,
        pub reserved2: u64,
        pub flags: u32,
        pub resfd: u32,
    }

    /// `struct io_event`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub struct IoEvent {
        pub data: u64,
        pub obj: u64,
        pub res: i64,
        pub res2: i64,
    }

    /// `struct timespec`.
    #[repr(C)]
    pub struct Timespec {
        pub sec: i64,
        pub nsec: i64,
    }

    pub const IOCB_CMD_PREAD: u16 = 0;

    #[cfg(target_arch = "x86_64")]
    mod nr {
        pub const IO_SETUP: usize = 206;
        pub const IO_DESTROY: usize = 207;
        pub const IO_GETEVENTS: usize = 208;
        pub const IO_SUBMIT: usize = 209;
    }
    #[cfg(target_arch = "aarch64")]
    mod nr {
        pub const IO_SETUP: usize = 0;
        pub const IO_DESTROY: usize = 1;
        pub const IO_SUBMIT: usize = 2;
        pub const IO_GETEVENTS: usize = 4;
    }

    /// A system call with up to five arguments; the raw return value
    /// (negative errno on failure).
    ///
    /// # Safety
    /// The arguments must be what call `n` expects; pointers among them
    /// must be valid for what the kernel reads and writes through them.
    #[cfg(target_arch = "x86_64")]
    unsafe fn syscall5(n: usize, a: [usize; 5]) -> isize {
        let ret: isize;
        // SAFETY: the Linux x86_64 system call convention; the caller
        // vouches for the arguments. rcx and r11 are clobbered by `syscall`.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") n as isize => ret,
                in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3], in("r8") a[4],
                lateout("rcx") _, lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// As above, for aarch64.
    ///
    /// # Safety
    /// As above.
    #[cfg(target_arch = "aarch64")]
    unsafe fn syscall5(n: usize, a: [usize; 5]) -> isize {
        let ret: isize;
        // SAFETY: the Linux aarch64 system call convention (`svc #0`, the
        // number in x8); the caller vouches for the arguments.
        unsafe {
            core::arch::asm!(
                "svc #0",
                in("x8") n,
                inlateout("x0") a[0] as isize => ret,
                in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4],
                options(nostack),
            );
        }
        ret
    }

    /// An AIO context (`io_setup`), destroyed on drop.
    pub struct Context(usize);

    impl Context {
        pub fn new(events: usize) -> Result<Self, isize> {
            let mut ctx: usize = 0;
            // SAFETY: io_setup(nr_events, ctx_idp) writes the context id to
            // `ctx`, which lives across the call.
            let r = unsafe { syscall5(nr::IO_SETUP, [events, &raw mut ctx as usize, 0, 0, 0]) };
            if r < 0 { Err(r) } else { Ok(Self(ctx)) }
        }

        /// Submits `iocbs`; the number accepted or a negative errno.
        ///
        /// # Safety
        /// Each iocb's buffer must stay valid and untouched until its
        /// completion is returned by [`Context::get_events`].
        pub unsafe fn submit(&self, iocbs: &[*mut Iocb]) -> isize {
            // SAFETY: io_submit(ctx, nr, iocbpp): the pointer array and the
            // iocbs are valid for the call; buffers per the contract above.
            unsafe {
                syscall5(
                    nr::IO_SUBMIT,
                    [self.0, iocbs.len(), iocbs.as_ptr() as usize, 0, 0],
                )
            }
        }

        /// Waits (at most `timeout`) for at least `min` completions.
        pub fn get_events(&self, min: usize, events: &mut [IoEvent], timeout: Timespec) -> isize {
            // SAFETY: io_getevents(ctx, min_nr, nr, events, timeout) writes
            // at most `events.len()` entries into `events`.
            unsafe {
                syscall5(
                    nr::IO_GETEVENTS,
                    [
                        self.0,
                        min,
                        events.len(),
                        events.as_mut_ptr() as usize,
                        &raw const timeout as usize,
                    ],
                )
            }
        }
    }

    impl Drop for Context {
        fn drop(&mut self) {
            // SAFETY: io_destroy(ctx) of a context this value owns; it
            // waits for (or cancels) whatever is still in flight.
            unsafe { syscall5(nr::IO_DESTROY, [self.0, 0, 0, 0, 0]) };
        }
    }
}

/// Depth `workload.depth()` from one thread with native AIO until
/// `deadline`.
fn aio_stream(device: &Path, workload: Workload, slots: u64, deadline: Instant) -> Outcome {
    let depth = workload.depth();
    let size = workload.request_bytes();
    let mut latencies = Vec::with_capacity(1 << 18);
    let mut errors = 0u64;
    let (Ok(file), Ok(ctx)) = (open(device), aio::Context::new(depth)) else {
        return (latencies, 1);
    };
    let mut backing = Vec::new();
    let buffers = aligned(&mut backing, depth * size);
    let base = buffers.as_mut_ptr() as u64;
    let mut offsets = Offsets::new(workload.seed(0), slots, workload.random());
    let mut iocbs = vec![aio::Iocb::default(); depth];
    let mut started = vec![Instant::now(); depth];
    let mut in_flight = 0usize;
    let fd = file.as_raw_fd() as u32;
    let mut arm = |slot: usize, iocb: &mut aio::Iocb| {
        *iocb = aio::Iocb {
            data: slot as u64,
            opcode: aio::IOCB_CMD_PREAD,
            fildes: fd,
            buf: base + (slot * size) as u64,
            nbytes: size as u64,
            offset: (offsets.next_slot() * size as u64) as i64,
            ..aio::Iocb::default()
        };
    };
    let mut ready: Vec<*mut aio::Iocb> = Vec::with_capacity(depth);
    for (slot, iocb) in iocbs.iter_mut().enumerate() {
        arm(slot, iocb);
        ready.push(iocb);
    }
    let mut events = vec![aio::IoEvent::default(); depth];
    loop {
        if !ready.is_empty() {
            let now = Instant::now();
            for &p in &ready {
                // SAFETY: `p` points into `iocbs`, alive and not moved.
                started[unsafe { (*p).data } as usize] = now;
            }
            // SAFETY: every buffer lies in `backing`, which outlives the
            // context (dropped, and so drained, before it); a slot's buffer
            // is reused only after its completion came back.
            let n = unsafe { ctx.submit(&ready) };
            if n < 0 {
                errors += ready.len() as u64;
                break;
            }
            in_flight += n as usize;
            // Any not accepted are dropped (not counted as done).
            errors += (ready.len() - n as usize) as u64;
            ready.clear();
        }
        if in_flight == 0 {
            break;
        }
        let got = ctx.get_events(1, &mut events, aio::Timespec { sec: 5, nsec: 0 });
        if got <= 0 {
            errors += in_flight as u64;
            break;
        }
        let now = Instant::now();
        for event in &events[..got as usize] {
            in_flight -= 1;
            let slot = event.data as usize;
            if event.res == size as i64 {
                latencies.push((now - started[slot]).as_nanos() as u64);
            } else {
                errors += 1;
            }
            if now < deadline && latencies.len() < MAX_SAMPLES {
                arm(slot, &mut iocbs[slot]);
                ready.push(&raw mut iocbs[slot]);
            }
        }
    }
    drop(ctx);
    (latencies, errors)
}

/// The sysfs `inflight` files that count `name`'s reads: its own, and for a
/// multipath NVMe head (`nvme0n1`) those of its paths (`nvme0c0n1`, ...).
fn inflight_files(name: &str) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from(format!("/sys/block/{name}/inflight"))];
    if let Some(rest) = name.strip_prefix("nvme")
        && let Some((controller, namespace)) = rest.split_once('n')
        && let Ok(entries) = std::fs::read_dir("/sys/block")
    {
        for entry in entries.flatten() {
            let path = entry.file_name();
            let Some(path) = path.to_str() else { continue };
            if let Some(tail) = path.strip_prefix(&format!("nvme{controller}c"))
                && tail.split_once('n').is_some_and(|(_, ns)| ns == namespace)
            {
                files.push(entry.path().join("inflight"));
            }
        }
    }
    files
}

fn run(device: &Path, name: &str, capacity: u64, workload: Workload, seconds: u64) {
    let slots = capacity / workload.request_bytes() as u64;
    let stop = AtomicBool::new(false);
    let samples = AtomicU64::new(0);
    let sampled = AtomicU64::new(0);
    let files = inflight_files(name);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                // Each file: "reads writes".
                let reads: u64 = files
                    .iter()
                    .filter_map(|f| std::fs::read_to_string(f).ok())
                    .filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok())
                    .sum();
                samples.fetch_add(1, Ordering::Relaxed);
                sampled.fetch_add(reads, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let outcomes: Vec<Outcome> = match workload {
            Workload::Rand4kQd32 => vec![aio_stream(device, workload, slots, deadline)],
            _ => {
                let workers: Vec<_> = (0..workload.depth())
                    .map(|i| {
                        scope.spawn(move || pread_stream(device, workload, slots, i, deadline))
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().unwrap_or_default())
                    .collect()
            }
        };
        for (l, e) in outcomes {
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
    for workload in [
        Workload::Rand4kQd1,
        Workload::Rand4kQd32,
        Workload::Rand4kQd32Threads,
        Workload::Seq128kQd1,
    ] {
        run(device, &name, capacity, workload, seconds);
    }
}
