//! The driver end to end against the fake controller: probe, identify,
//! queues, transfers, and controllers that misbehave.

extern crate std;

use crate::command::io;
use crate::fake::{Behaviour, Fixture, cap, describe};
use crate::status::{Status, code_type};
use crate::{NvmeDriver, NvmeError};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::time::Instant;
use stratus_driver_api::{BlockDevice, BlockError, BlockRequest, RequestEvent};
use stratus_pci::{PciDriver, Probed};

fn probe(fixture: &Fixture) -> Vec<Arc<dyn BlockDevice>> {
    let driver = NvmeDriver::new();
    assert!(driver.claims(&fixture.function));
    match driver.probe(fixture.function.clone(), fixture.services) {
        Ok(Probed::Block(devices)) => devices,
        Ok(Probed::Other | Probed::Net(_)) => panic!("an NVMe controller gives block devices"),
        Err(e) => panic!("probe failed: {e}"),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn probe_names_one_device_per_namespace_with_its_size() {
    let fixture = Fixture::new(
        Behaviour {
            namespaces: vec![(2048, 9), (256, 12)],
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    let summary: Vec<(&str, u32, u64)> = devices
        .iter()
        .map(|d| (d.name(), d.block_size(), d.capacity_blocks()))
        .collect();
    assert_eq!(summary, [("nvme0n1", 512, 2048), ("nvme0n2", 4096, 256)]);
    assert_eq!(devices[0].queue_count(), 1);
    let command = fixture.config.command.load(Ordering::SeqCst);
    assert_eq!(
        command & 0b110,
        0b110,
        "memory decoding and bus mastering on"
    );
    assert_eq!(fixture.fake.observed.enables.load(Ordering::SeqCst), 1);
    assert_eq!(fixture.fake.observed.shutdowns.load(Ordering::SeqCst), 0);
    drop(devices);
    // Dropping the last device shuts the controller down, disables it and
    // frees its memory.
    assert_eq!(fixture.fake.observed.shutdowns.load(Ordering::SeqCst), 1);
    assert_eq!(fixture.fake.register(crate::regs::CC), 0);
    assert_eq!(fixture.dma_pages(), 0);
}

#[test]
fn writes_land_on_the_disk_and_read_back() {
    let fixture = Fixture::new(
        Behaviour {
            namespaces: vec![(2048, 9), (256, 12)],
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    let data = pattern(3 * 512, 1);
    devices[0].write(5, &data).unwrap();
    assert_eq!(fixture.disk(1, 5 * 512..8 * 512), data);
    let mut back = vec![0u8; 3 * 512];
    devices[0].read(5, &mut back).unwrap();
    assert_eq!(back, data);
    // The second namespace is separate, with 4 KiB blocks.
    let data = pattern(8192, 2);
    devices[1].write(254, &data).unwrap();
    assert_eq!(fixture.disk(2, 254 * 4096..256 * 4096), data);
    assert_eq!(fixture.disk(1, 254 * 512..256 * 512), vec![0; 1024]);
    devices[1].flush().unwrap();
    let last = fixture
        .io_commands()
        .last()
        .map(|(_, c)| (c.opcode(), c.dwords[1]));
    assert_eq!(last, Some((io::FLUSH, 2)));
}

#[test]
fn large_transfers_use_prp_lists_and_split_at_the_transfer_limit() {
    // MDTS 5: 128 KiB, the driver's own limit too.
    let fixture = Fixture::new(
        Behaviour {
            namespaces: vec![(4096, 9)],
            mdts: 5,
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    let data = pattern(300 * 1024, 3);
    devices[0].write(10, &data).unwrap();
    assert_eq!(fixture.disk(1, 10 * 512..10 * 512 + data.len()), data);
    let mut back = vec![0u8; data.len()];
    devices[0].read(10, &mut back).unwrap();
    assert!(back == data, "read back differs");
    let sizes: Vec<(u8, u64, u32)> = fixture
        .io_commands()
        .iter()
        .map(|(_, c)| (c.opcode(), c.lba(), c.blocks()))
        .collect();
    assert_eq!(
        sizes,
        [
            (io::WRITE, 10, 256),
            (io::WRITE, 266, 256),
            (io::WRITE, 522, 88),
            (io::READ, 10, 256),
            (io::READ, 266, 256),
            (io::READ, 522, 88),
        ]
    );
}

#[test]
fn a_smaller_mdts_lowers_the_transfer_limit() {
    // MDTS 2: 16 KiB per command.
    let fixture = Fixture::new(
        Behaviour {
            mdts: 2,
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    let mut buffer = vec![0u8; 40 * 1024];
    devices[0].read(0, &mut buffer).unwrap();
    let blocks: Vec<u32> = fixture
        .io_commands()
        .iter()
        .map(|(_, c)| c.blocks())
        .collect();
    assert_eq!(blocks, [32, 32, 16]);
}

#[test]
fn requests_past_the_end_are_refused_before_anything_is_sent() {
    let fixture = Fixture::new(Behaviour::default(), 1);
    let devices = probe(&fixture);
    let mut buffer = vec![0u8; 1024];
    assert_eq!(
        devices[0].read(2047, &mut buffer),
        Err(BlockError::OutOfRange {
            lba: 2047,
            blocks: 2,
            capacity: 2048
        })
    );
    assert!(matches!(
        devices[0].write(u64::MAX, &buffer),
        Err(BlockError::OutOfRange { .. })
    ));
    assert_eq!(
        devices[0].read(0, &mut buffer[..100]),
        Err(BlockError::BadLength(100))
    );
    assert!(fixture.io_commands().is_empty());
    // The last block itself is fine.
    devices[0].read(2046, &mut buffer).unwrap();
    assert_eq!(fixture.io_commands().len(), 1);
}

#[test]
fn a_batch_keeps_32_reads_in_flight() {
    let fixture = Fixture::new(
        Behaviour {
            namespaces: vec![(4096, 12)],
            hold_until: 32,
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    let data = pattern(32 * 4096, 4);
    fixture.fake.observed.disks.lock().unwrap()[0][..data.len()].copy_from_slice(&data);
    let mut buffers = vec![vec![0u8; 4096]; 32];
    let mut requests: Vec<BlockRequest<'_>> = buffers
        .iter_mut()
        .enumerate()
        .map(|(i, buffer)| BlockRequest {
            lba: 31 - i as u64,
            buffer,
            result: Err(BlockError::Timeout),
        })
        .collect();
    let start = Instant::now();
    devices[0].read_batch(&mut requests);
    for request in &requests {
        assert_eq!(request.result, Ok(()));
    }
    drop(requests);
    for (i, buffer) in buffers.iter().enumerate() {
        let lba = 31 - i;
        assert!(
            buffer[..] == data[lba * 4096..(lba + 1) * 4096],
            "request {i}"
        );
    }
    // The fake held every completion until it saw 32 commands waiting:
    // had the driver waited for each, it would have seen one at a time and
    // the batch would have taken the fake's two-second patience per command
    // (the bound here leaves room for a loaded host).
    assert_eq!(fixture.fake.observed.max_pending.load(Ordering::SeqCst), 32);
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}

#[test]
fn read_queued_keeps_the_depth_asked_for_and_no_more() {
    let fixture = Fixture::new(
        Behaviour {
            namespaces: vec![(4096, 12)],
            hold_until: 8,
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    let data = pattern(200 * 4096, 7);
    fixture.fake.observed.disks.lock().unwrap()[0][..data.len()].copy_from_slice(&data);
    let mut buffers = vec![vec![0u8; 4096]; 200];
    // Request 199 is past the end: refused, reported completed only.
    let mut requests: Vec<BlockRequest<'_>> = buffers
        .iter_mut()
        .enumerate()
        .map(|(i, buffer)| BlockRequest {
            lba: if i == 199 {
                1 << 20
            } else {
                (i * 7 % 199) as u64
            },
            buffer,
            result: Err(BlockError::Timeout),
        })
        .collect();
    let (mut in_flight, mut most) = (0usize, 0usize);
    let mut submitted = vec![0usize; 200];
    let mut completed = vec![0usize; 200];
    devices[0].read_queued(&mut requests, 8, &mut |index, event| match event {
        RequestEvent::Submitted => {
            submitted[index] += 1;
            in_flight += 1;
            most = most.max(in_flight);
        }
        RequestEvent::Completed => {
            completed[index] += 1;
            in_flight = in_flight.saturating_sub(usize::from(submitted[index] > 0));
        }
    });
    assert_eq!(most, 8);
    assert!(completed.iter().all(|&c| c == 1));
    assert!(submitted[..199].iter().all(|&s| s == 1));
    assert_eq!(submitted[199], 0);
    assert!(matches!(
        requests[199].result,
        Err(BlockError::OutOfRange { .. })
    ));
    assert!(requests[..199].iter().all(|r| r.result == Ok(())));
    drop(requests);
    for (i, buffer) in buffers.iter().take(199).enumerate() {
        let lba = i * 7 % 199;
        assert!(
            buffer[..] == data[lba * 4096..(lba + 1) * 4096],
            "request {i}"
        );
    }
    // The fake waits (up to two seconds) for 8 commands before it completes
    // any: it saw 8 at a time, never more.
    assert_eq!(fixture.fake.observed.max_pending.load(Ordering::SeqCst), 8);
}

#[test]
fn a_long_request_is_one_submission_and_one_completion() {
    let fixture = Fixture::new(Behaviour::default(), 1);
    let devices = probe(&fixture);
    let mut big = vec![0u8; 300 * 1024];
    let mut small = vec![0u8; 4096];
    let mut requests = [
        BlockRequest {
            lba: 0,
            buffer: &mut big,
            result: Err(BlockError::Timeout),
        },
        BlockRequest {
            lba: 1000,
            buffer: &mut small,
            result: Err(BlockError::Timeout),
        },
    ];
    let mut events = Vec::new();
    devices[0].read_queued(&mut requests, 2, &mut |index, event| {
        events.push((index, event))
    });
    assert!(requests.iter().all(|r| r.result == Ok(())));
    // Three commands for the first request, one for the second.
    assert_eq!(fixture.io_commands().len(), 4);
    let count = |want: (usize, RequestEvent)| events.iter().filter(|e| **e == want).count();
    assert_eq!(count((0, RequestEvent::Submitted)), 1);
    assert_eq!(count((0, RequestEvent::Completed)), 1);
    assert_eq!(count((1, RequestEvent::Submitted)), 1);
    assert_eq!(count((1, RequestEvent::Completed)), 1);
    assert_eq!(events[0], (0, RequestEvent::Submitted));
}

#[test]
fn a_batch_reports_each_request_on_its_own() {
    let fixture = Fixture::new(Behaviour::default(), 1);
    let devices = probe(&fixture);
    let (mut a, mut b, mut c) = (vec![0u8; 512], vec![0u8; 1024], vec![0u8; 100]);
    let mut requests = [
        BlockRequest {
            lba: 0,
            buffer: &mut a,
            result: Err(BlockError::Timeout),
        },
        BlockRequest {
            lba: 2047,
            buffer: &mut b,
            result: Err(BlockError::Timeout),
        },
        BlockRequest {
            lba: 1,
            buffer: &mut c,
            result: Err(BlockError::Timeout),
        },
    ];
    devices[0].read_batch(&mut requests);
    assert_eq!(requests[0].result, Ok(()));
    assert!(matches!(
        requests[1].result,
        Err(BlockError::OutOfRange { .. })
    ));
    assert_eq!(requests[2].result, Err(BlockError::BadLength(100)));
    assert_eq!(fixture.io_commands().len(), 1);
}

#[test]
fn many_commands_wrap_both_rings_and_their_phase() {
    let fixture = Fixture::new(Behaviour::default(), 1);
    let devices = probe(&fixture);
    // 200 commands through 64-entry rings: three wraps, phase flipped each
    // time; the fake stalls on a full completion queue, so this also needs
    // the driver's completion head doorbell writes.
    for i in 0..200u64 {
        let data = pattern(512, i as u8);
        devices[0].write(i, &data).unwrap();
        let mut back = vec![0u8; 512];
        devices[0].read(i, &mut back).unwrap();
        assert_eq!(back, data, "block {i}");
    }
    assert_eq!(fixture.io_commands().len(), 400);
}

#[test]
fn each_cpu_submits_on_its_own_queue_up_to_what_is_granted() {
    let fixture = Fixture::new(
        Behaviour {
            queues_granted: 3,
            ..Behaviour::default()
        },
        4,
    );
    let devices = probe(&fixture);
    assert_eq!(devices[0].queue_count(), 3);
    let mut buffer = vec![0u8; 512];
    for cpu in 0..4 {
        fixture.services.cpu.store(cpu, Ordering::SeqCst);
        devices[0].read(cpu as u64, &mut buffer).unwrap();
    }
    let queues: Vec<u16> = fixture.io_commands().iter().map(|(q, _)| *q).collect();
    assert_eq!(queues, [1, 2, 3, 1]);
}

#[test]
fn failed_commands_carry_the_specification_name() {
    let fixture = Fixture::new(
        Behaviour {
            fail_io: Some((io::READ, Status::new(code_type::MEDIA, 0x81))),
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    let mut buffer = vec![0u8; 512];
    assert_eq!(
        devices[0].read(0, &mut buffer),
        Err(BlockError::Device("Unrecovered Read Error"))
    );
    // Writes still work, and the queue is usable after the error.
    devices[0].write(0, &buffer).unwrap();
    assert_eq!(
        devices[0].read(1, &mut buffer),
        Err(BlockError::Device("Unrecovered Read Error"))
    );
}

#[test]
fn the_device_range_check_is_the_controllers_too() {
    // A namespace that shrank behind the driver's back: the controller's
    // own LBA Out of Range comes back by name.
    let fixture = Fixture::new(
        Behaviour {
            fail_io: Some((io::WRITE, Status::new(code_type::GENERIC, 0x80))),
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    assert_eq!(
        devices[0].write(0, &[0u8; 512]),
        Err(BlockError::Device("LBA Out of Range"))
    );
}

fn probe_with(driver: &NvmeDriver, fixture: &Fixture) -> Vec<Arc<dyn BlockDevice>> {
    match driver.probe(fixture.function.clone(), fixture.services) {
        Ok(Probed::Block(devices)) => devices,
        _ => panic!("probe failed"),
    }
}

#[test]
fn a_command_that_never_completes_times_out() {
    let fixture = Fixture::new(
        Behaviour {
            ignore_io: true,
            ..Behaviour::default()
        },
        1,
    );
    let bound = Duration::from_millis(300);
    let devices = probe_with(&NvmeDriver::with_command_timeout(bound), &fixture);
    let start = Instant::now();
    let mut buffer = vec![0u8; 512];
    assert_eq!(devices[0].read(0, &mut buffer), Err(BlockError::Timeout));
    let waited = start.elapsed();
    assert!(waited >= bound && waited.as_secs() < 10, "{waited:?}");
    assert_eq!(NvmeDriver::new().command_timeout(), Duration::from_secs(5));
}

#[test]
fn a_queue_full_of_commands_that_never_complete_fails_new_ones_in_time() {
    let fixture = Fixture::new(
        Behaviour {
            ignore_io: true,
            ..Behaviour::default()
        },
        1,
    );
    let bound = Duration::from_millis(200);
    let devices = probe_with(&NvmeDriver::with_command_timeout(bound), &fixture);
    // 70 reads: 63 fill the queue's slots and time out; their slots stay
    // out of use (the controller might still write their buffers), so the
    // other 7 find no slot and give up after the bound too.
    let mut buffers = vec![vec![0u8; 512]; 70];
    let mut requests: Vec<BlockRequest<'_>> = buffers
        .iter_mut()
        .enumerate()
        .map(|(i, buffer)| BlockRequest {
            lba: i as u64,
            buffer,
            result: Ok(()),
        })
        .collect();
    let start = Instant::now();
    devices[0].read_batch(&mut requests);
    assert!(
        requests
            .iter()
            .all(|r| r.result == Err(BlockError::Timeout))
    );
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    assert_eq!(fixture.io_commands().len(), 63);
    // A later request does not hang either.
    let start = Instant::now();
    assert_eq!(
        devices[0].read(0, &mut [0u8; 512]),
        Err(BlockError::Timeout)
    );
    assert!(start.elapsed() >= bound && start.elapsed().as_secs() < 10);
    assert_eq!(fixture.io_commands().len(), 63);
}

#[test]
fn a_controller_allowing_the_largest_queues_gets_64_entries() {
    // CAP.MQES = 0xffff: 65536 entries, which does not fit the driver's
    // 16-bit entry counts.
    let fixture = Fixture::new(
        Behaviour {
            cap: cap(2048, 2) | 0xffff,
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    let mut buffer = vec![0u8; 512];
    devices[0].read(0, &mut buffer).unwrap();
}

#[test]
fn a_controller_that_never_becomes_ready_is_given_up_on_after_cap_to() {
    let fixture = Fixture::new(
        Behaviour {
            cap: cap(2048, 1),
            never_ready: true,
            ..Behaviour::default()
        },
        1,
    );
    let driver = NvmeDriver::new();
    let start = Instant::now();
    let error = driver
        .bring_up(&fixture.function, fixture.services)
        .unwrap_err();
    let waited = start.elapsed();
    assert_eq!(
        error,
        NvmeError::ReadyTimeout {
            ready: true,
            waited_ms: 500
        }
    );
    assert!(
        waited.as_millis() >= 500 && waited.as_secs() < 10,
        "{waited:?}"
    );
    let message = match driver.probe(fixture.function.clone(), fixture.services) {
        Err(message) => message,
        Ok(_) => panic!("probe of a controller that is never ready succeeded"),
    };
    assert_eq!(
        message,
        "nvme at 0000:00:04.0: CSTS.RDY did not become 1 within 500 ms (CAP.TO)"
    );
    assert_eq!(fixture.dma_pages(), 0, "the admin queues were freed");
}

#[test]
fn a_fatal_status_on_enable_is_named() {
    let fixture = Fixture::new(
        Behaviour {
            fatal_on_enable: true,
            ..Behaviour::default()
        },
        1,
    );
    let error = NvmeDriver::new()
        .bring_up(&fixture.function, fixture.services)
        .unwrap_err();
    assert_eq!(error, NvmeError::ControllerFatal { during: "enable" });
    assert_eq!(
        describe(error),
        "controller fatal status (CSTS.CFS) during enable"
    );
}

#[test]
fn controllers_without_the_nvm_command_set_are_refused() {
    let fixture = Fixture::new(
        Behaviour {
            cap: cap(2048, 2) & !(1 << 37),
            ..Behaviour::default()
        },
        1,
    );
    let error = NvmeDriver::new()
        .bring_up(&fixture.function, fixture.services)
        .unwrap_err();
    assert_eq!(error, NvmeError::NoNvmCommandSet);
    assert_eq!(fixture.fake.observed.enables.load(Ordering::SeqCst), 0);
}

#[test]
fn registers_reading_all_ones_are_named() {
    let fixture = Fixture::new(
        Behaviour {
            cap: u64::MAX,
            ..Behaviour::default()
        },
        1,
    );
    let error = NvmeDriver::new()
        .bring_up(&fixture.function, fixture.services)
        .unwrap_err();
    assert_eq!(error, NvmeError::NotResponding);
}

#[test]
fn without_an_active_namespace_list_ids_up_to_nn_are_tried() {
    let fixture = Fixture::new(
        Behaviour {
            namespace_list: false,
            namespaces: vec![(64, 9), (0, 9), (32, 9), (32, 3)],
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    // Namespace 2 has no blocks, namespace 4 has 8-byte blocks: skipped.
    let names: Vec<&str> = devices.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["nvme0n1", "nvme0n3"]);
}

#[test]
fn only_nvme_functions_are_claimed_and_controllers_are_numbered() {
    let fixture = Fixture::new(Behaviour::default(), 1);
    let driver = NvmeDriver::new();
    let mut ahci = fixture.function.clone();
    ahci.class = (0x01, 0x06, 0x01);
    assert!(!driver.claims(&ahci));
    let mut aws = fixture.function.clone();
    (aws.vendor_id, aws.device_id) = (0x1d0f, 0x8061);
    assert!(driver.claims(&aws));
    let first = driver
        .bring_up(&fixture.function, fixture.services)
        .unwrap();
    assert_eq!(first[0].name(), "nvme0n1");
    drop(first);
    let second = driver
        .bring_up(&fixture.function, fixture.services)
        .unwrap();
    assert_eq!(second[0].name(), "nvme1n1");
    assert_eq!(fixture.fake.observed.enables.load(Ordering::SeqCst), 2);
}

/// Log records of every test in this binary, as `target: message`.
static LOG: std::sync::Mutex<Vec<std::string::String>> = std::sync::Mutex::new(Vec::new());

struct CaptureLog;

impl log::Log for CaptureLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = std::format!("{}: {}", record.target(), record.args());
        LOG.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

#[test]
fn the_identify_line_reads_like_nvme_list() {
    static LOGGER: CaptureLog = CaptureLog;
    // Another test may have installed it first.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
    let fixture = Fixture::new(
        Behaviour {
            namespaces: vec![(2048, 9), (256, 12)],
            ..Behaviour::default()
        },
        1,
    );
    let devices = probe(&fixture);
    assert_eq!(devices.len(), 2);
    let log = LOG.lock().unwrap();
    for expected in [
        r#"nvme: nvme0 model "Stratus Fake NVMe" serial "fake-serial-0001" fw "1.0""#,
        "nvme: nvme0 1 I/O queue(s) of depth 63, polled, transfers up to 128 KiB",
        "nvme: nvme0n1 2048 blocks of 512 bytes (1 MiB)",
        "nvme: nvme0n2 256 blocks of 4096 bytes (1 MiB)",
    ] {
        assert!(
            log.iter().any(|l| l == expected),
            "no line {expected:?} in {log:#?}"
        );
    }
    // (The once-per-boot polling warning may have come from another test
    // before this logger was installed.)
}
