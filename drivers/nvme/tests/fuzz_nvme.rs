//! Fuzz targets: what an NVMe controller hands the driver. Identify data
//! (controller, namespace, active namespace list) and completion queue
//! entries.

use stratus_driver_api::dma::host::HostDma;
use stratus_driver_api::services::host::HostServices;
use stratus_driver_api::{CachePolicy, IoMem};
use stratus_nvme::command::{Command, io};
use stratus_nvme::identify::{ControllerIdentity, NamespaceIdentity, active_namespaces};
use stratus_nvme::queue::QueuePair;
use stratus_nvme::regs::Capabilities;

fn identify_corpus() -> Vec<Vec<u8>> {
    let mut controller = vec![0u8; 4096];
    controller[4..24].copy_from_slice(b"stratus-nvme0       ");
    controller[24..64].copy_from_slice(&[b' '; 40]);
    controller[24..38].copy_from_slice(b"QEMU NVMe Ctrl");
    controller[64..72].copy_from_slice(b"10.0.2  ");
    controller[77] = 7;
    controller[516..520].copy_from_slice(&256u32.to_le_bytes());
    let mut namespace = vec![0u8; 4096];
    namespace[0..8].copy_from_slice(&262_144u64.to_le_bytes());
    namespace[25] = 7;
    namespace[26] = 0x04;
    for i in 0..8 {
        let lbads: u32 = if i < 4 { 9 } else { 12 };
        let format = lbads << 16 | [0, 8, 16, 64][i % 4];
        namespace[128 + 4 * i..132 + 4 * i].copy_from_slice(&format.to_le_bytes());
    }
    let mut list = vec![0u8; 4096];
    for (i, id) in [1u32, 2, 5].iter().enumerate() {
        list[4 * i..4 * i + 4].copy_from_slice(&id.to_le_bytes());
    }
    vec![controller, namespace, list]
}

#[test]
fn fuzz_nvme_identify() {
    let corpus = identify_corpus();
    let corpus: Vec<&[u8]> = corpus.iter().map(Vec::as_slice).collect();
    stratus_fuzz::fuzz("nvme-identify", &corpus, |data| {
        let controller = ControllerIdentity::parse(data);
        let line = format!(
            "{} {} {}",
            controller.model, controller.serial, controller.firmware
        );
        assert!(line.chars().all(|c| c.is_ascii_graphic() || c == ' '));
        if let Some(limit) = controller.max_transfer_bytes(4096) {
            assert!(limit >= 8192);
        }
        if let Ok(ns) = NamespaceIdentity::parse(data) {
            assert!(ns.blocks > 0);
            assert!(ns.block_size.is_power_of_two() && (512..=65536).contains(&ns.block_size));
        }
        let ids: Vec<u32> = active_namespaces(data).collect();
        assert!(ids.len() <= data.len() / 4);
        assert!(ids.windows(2).all(|w| w[0] < w[1]) && !ids.contains(&0));
    });
}

#[test]
fn fuzz_nvme_completions() {
    static DMA: HostDma = HostDma {
        outstanding: std::sync::atomic::AtomicUsize::new(0),
    };
    let services = HostServices::new(&DMA);
    let caps = Capabilities::decode(0xff | 1 << 37);
    let mut doorbells = vec![0u64; 0x2000 / 8];
    // SAFETY: `doorbells` stands in for the register block and outlives
    // `regs`.
    let regs = unsafe {
        IoMem::new(
            doorbells.as_mut_ptr() as usize,
            0,
            0x2000,
            CachePolicy::Uncached,
        )
    };
    // Eight completions for commands 0..7 in phase 1, as a controller
    // would post them after eight submissions.
    let mut valid = vec![0u8; 8 * 16];
    for i in 0..8u32 {
        let dw2 = ((i + 1) % 16) | (1 << 16);
        let dw3 = i | 1 << 16;
        valid[16 * i as usize + 8..16 * i as usize + 12].copy_from_slice(&dw2.to_le_bytes());
        valid[16 * i as usize + 12..16 * i as usize + 16].copy_from_slice(&dw3.to_le_bytes());
    }
    stratus_fuzz::fuzz("nvme-completions", &[&valid], |entries| {
        let mut queue = QueuePair::new(1, 16, 4096, &caps, &services).unwrap();
        for _ in 0..8 {
            let slot = queue.free_slot().unwrap();
            queue
                .push(slot, Command::read_write(io::READ, 1, 0, 1))
                .unwrap();
        }
        let cq = queue.cq_bus_address() as *mut u8;
        let len = entries.len().min(16 * 16);
        // SAFETY: the completion ring is 16 entries of 16 bytes (at least
        // 256 bytes of the buffer), the bus address of `HostDma` is its
        // virtual address, and nothing else touches it now.
        unsafe { core::ptr::copy_nonoverlapping(entries.as_ptr(), cq, len) };
        let reaped = queue.reap(&regs).unwrap();
        assert!(reaped <= 16);
        let mut done = 0;
        for slot in 0..queue.depth() as u16 {
            done += usize::from(queue.take_completion(slot).is_some());
        }
        assert!(done <= 8, "only eight commands were in flight");
        assert_eq!(queue.in_flight() + done, 8);
    });
    assert_eq!(
        DMA.outstanding.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}
