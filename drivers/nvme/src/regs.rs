//! Controller registers (NVMe Base Specification 2.0, 3.1.3) and their
//! fields.
//!
//! Offsets are from the start of BAR0. The doorbells follow at 0x1000, one
//! pair (submission tail, completion head) per queue, spaced by the stride
//! CAP.DSTRD gives.

use core::time::Duration;

/// CAP, Controller Capabilities (64 bits, 3.1.3.1).
pub const CAP: usize = 0x00;
/// VS, Version (32 bits, 3.1.3.2).
pub const VS: usize = 0x08;
/// INTMS, Interrupt Mask Set (32 bits, 3.1.3.3; pin and MSI only).
pub const INTMS: usize = 0x0c;
/// CC, Controller Configuration (32 bits, 3.1.3.5).
pub const CC: usize = 0x14;
/// CSTS, Controller Status (32 bits, 3.1.3.6).
pub const CSTS: usize = 0x1c;
/// AQA, Admin Queue Attributes (32 bits, 3.1.3.8).
pub const AQA: usize = 0x24;
/// ASQ, Admin Submission Queue base address (64 bits, 3.1.3.9).
pub const ASQ: usize = 0x28;
/// ACQ, Admin Completion Queue base address (64 bits, 3.1.3.10).
pub const ACQ: usize = 0x30;
/// The first doorbell: queue 0's submission queue tail (3.1.3.19).
pub const DOORBELLS: usize = 0x1000;

/// CC.EN: enable.
pub const CC_EN: u32 = 1 << 0;
/// CSTS.RDY: ready.
pub const CSTS_RDY: u32 = 1 << 0;
/// CSTS.CFS: controller fatal status.
pub const CSTS_CFS: u32 = 1 << 1;

/// CC.SHN = 01b: normal shutdown notification.
pub const CC_SHN_NORMAL: u32 = 1 << 14;
/// CSTS.SHST (bits 3:2).
pub const CSTS_SHST_MASK: u32 = 3 << 2;
/// CSTS.SHST = 10b: shutdown processing complete.
pub const CSTS_SHST_COMPLETE: u32 = 2 << 2;

/// The memory page size the driver uses (CC.MPS = 0: 4 KiB).
pub const PAGE_SIZE: usize = 4096;

/// CAP decoded: what the driver needs of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Largest queue the controller supports, in entries (CAP.MQES + 1).
    pub max_queue_entries: u32,
    /// Bytes between doorbells (4 << CAP.DSTRD).
    pub doorbell_stride: usize,
    /// Worst-case time to become ready or not ready (CAP.TO, 500 ms units;
    /// a zero is taken as one unit).
    pub ready_timeout: Duration,
    /// The NVM command set is supported (CAP.CSS bit 0).
    pub nvm_command_set: bool,
    /// Smallest memory page size, in bytes (4 KiB << CAP.MPSMIN).
    pub min_page_size: u64,
    /// Largest memory page size, in bytes (4 KiB << CAP.MPSMAX).
    pub max_page_size: u64,
}

impl Capabilities {
    /// Decodes the CAP register.
    pub fn decode(cap: u64) -> Self {
        let timeout_units = ((cap >> 24) & 0xff).max(1);
        Self {
            max_queue_entries: (cap & 0xffff) as u32 + 1,
            doorbell_stride: 4 << ((cap >> 32) & 0xf),
            ready_timeout: Duration::from_millis(500 * timeout_units),
            nvm_command_set: (cap >> 37) & 1 != 0,
            min_page_size: 4096 << ((cap >> 48) & 0xf),
            max_page_size: 4096 << ((cap >> 52) & 0xf),
        }
    }

    /// Offset of queue `queue`'s submission tail doorbell.
    pub fn sq_tail_doorbell(&self, queue: u16) -> usize {
        DOORBELLS + 2 * usize::from(queue) * self.doorbell_stride
    }

    /// Offset of queue `queue`'s completion head doorbell.
    pub fn cq_head_doorbell(&self, queue: u16) -> usize {
        DOORBELLS + (2 * usize::from(queue) + 1) * self.doorbell_stride
    }
}

/// The CC value that enables the controller with the NVM command set
/// (CC.CSS = 000b), 4 KiB pages (CC.MPS = 0), round-robin arbitration,
/// 64-byte submission entries (CC.IOSQES = 6) and 16-byte completion
/// entries (CC.IOCQES = 4).
pub const CC_ENABLE_NVM: u32 = CC_EN | (6 << 16) | (4 << 20);

/// The AQA value for admin queues of `entries` entries each.
pub fn admin_queue_attributes(entries: u16) -> u32 {
    let size = u32::from(entries.saturating_sub(1)) & 0xfff;
    size << 16 | size
}

/// A version register as `major.minor.tertiary`.
pub fn version(vs: u32) -> (u16, u8, u8) {
    ((vs >> 16) as u16, (vs >> 8) as u8, vs as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_of_qemu_and_of_a_strided_controller() {
        // QEMU 10: MQES 2047, CQR, TO 15 (7.5 s), CSS NVM + admin only,
        // MPSMIN 0, MPSMAX 4.
        let cap = 0x0040_0000_0f01_07ff_u64 | (1 << 37) | (4 << 52);
        let c = Capabilities::decode(cap);
        assert_eq!(c.max_queue_entries, 2048);
        assert_eq!(c.ready_timeout, Duration::from_millis(7500));
        assert!(c.nvm_command_set);
        assert_eq!(c.doorbell_stride, 4);
        assert_eq!(c.min_page_size, 4096);
        assert_eq!(c.max_page_size, 65536);
        assert_eq!(c.sq_tail_doorbell(0), 0x1000);
        assert_eq!(c.cq_head_doorbell(0), 0x1004);
        assert_eq!(c.sq_tail_doorbell(3), 0x1018);

        let strided = Capabilities::decode(2 << 32);
        assert_eq!(strided.doorbell_stride, 16);
        assert_eq!(strided.cq_head_doorbell(1), 0x1000 + 3 * 16);
        assert_eq!(strided.max_queue_entries, 1);
        assert!(!strided.nvm_command_set);
        // TO = 0 still waits one unit.
        assert_eq!(strided.ready_timeout, Duration::from_millis(500));
    }

    #[test]
    fn controller_configuration_and_admin_attributes() {
        assert_eq!(CC_ENABLE_NVM, 0x0046_0001);
        assert_eq!(admin_queue_attributes(32), 0x001f_001f);
        assert_eq!(admin_queue_attributes(0), 0);
        assert_eq!(version(0x0001_0400), (1, 4, 0));
    }
}
