//! Submission and completion queue entries (NVMe Base Specification 2.0,
//! 4.2 and 4.6) and the commands the driver sends.

use crate::status::Status;

/// Bytes in a submission queue entry (CC.IOSQES = 6).
pub const SQE_SIZE: usize = 64;
/// Bytes in a completion queue entry (CC.IOCQES = 4).
pub const CQE_SIZE: usize = 16;

/// Admin command opcodes (5, figure 28).
pub mod admin {
    /// Delete I/O Submission Queue.
    pub const DELETE_IO_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub const CREATE_IO_SQ: u8 = 0x01;
    /// Delete I/O Completion Queue.
    pub const DELETE_IO_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub const CREATE_IO_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
}

/// NVM command set I/O opcodes (NVM Command Set Specification 1.0, 3).
pub mod io {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
}

/// Identify's Controller or Namespace Structure values (CDW10.CNS).
pub mod cns {
    /// Identify Namespace data structure for the NSID.
    pub const NAMESPACE: u32 = 0x00;
    /// Identify Controller data structure.
    pub const CONTROLLER: u32 = 0x01;
    /// Active namespace ID list (NSIDs above the given one).
    pub const ACTIVE_NAMESPACES: u32 = 0x02;
}

/// Feature identifiers for Set Features (5.27.1).
pub mod feature {
    /// Number of Queues.
    pub const NUMBER_OF_QUEUES: u32 = 0x07;
}

/// A submission queue entry as 16 dwords.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// The dwords, CDW0 first.
    pub dwords: [u32; 16],
}

impl Command {
    /// A command with opcode `opcode` for namespace `nsid`; the command id
    /// is set at submission.
    pub fn new(opcode: u8, nsid: u32) -> Self {
        let mut dwords = [0; 16];
        dwords[0] = u32::from(opcode);
        dwords[1] = nsid;
        Self { dwords }
    }

    /// The opcode (CDW0 bits 7:0).
    pub fn opcode(&self) -> u8 {
        self.dwords[0] as u8
    }

    /// Sets the command identifier (CDW0 bits 31:16).
    pub fn set_command_id(&mut self, id: u16) {
        self.dwords[0] = (self.dwords[0] & 0xffff) | u32::from(id) << 16;
    }

    /// The command identifier.
    pub fn command_id(&self) -> u16 {
        (self.dwords[0] >> 16) as u16
    }

    /// Sets PRP entry 1 and 2 (DPTR, CDW6..9).
    pub fn set_prps(&mut self, prp1: u64, prp2: u64) {
        self.dwords[6] = prp1 as u32;
        self.dwords[7] = (prp1 >> 32) as u32;
        self.dwords[8] = prp2 as u32;
        self.dwords[9] = (prp2 >> 32) as u32;
    }

    /// PRP entries 1 and 2.
    pub fn prps(&self) -> (u64, u64) {
        (
            u64::from(self.dwords[6]) | u64::from(self.dwords[7]) << 32,
            u64::from(self.dwords[8]) | u64::from(self.dwords[9]) << 32,
        )
    }

    /// Sets CDW10 and up from `values`.
    pub fn with_cdw(mut self, first: usize, values: &[u32]) -> Self {
        for (i, value) in values.iter().enumerate() {
            if let Some(dword) = self.dwords.get_mut(first + i) {
                *dword = *value;
            }
        }
        self
    }

    /// Identify with `cns` for `nsid` (5.17).
    pub fn identify(cns: u32, nsid: u32) -> Self {
        Self::new(admin::IDENTIFY, nsid).with_cdw(10, &[cns])
    }

    /// Set Features Number of Queues asking for `queues` I/O submission and
    /// completion queues (5.27.1.5; 0-based counts).
    pub fn set_queue_count(queues: u16) -> Self {
        let n = u32::from(queues.max(1) - 1);
        Self::new(admin::SET_FEATURES, 0).with_cdw(10, &[feature::NUMBER_OF_QUEUES, n << 16 | n])
    }

    /// Create I/O Completion Queue `id` of `entries` entries, physically
    /// contiguous, raising MSI-X entry `vector` when `interrupts` (5.4).
    pub fn create_io_cq(id: u16, entries: u16, vector: u16, interrupts: bool) -> Self {
        let size = u32::from(entries.saturating_sub(1));
        let flags = u32::from(vector) << 16 | u32::from(interrupts) << 1 | 1;
        Self::new(admin::CREATE_IO_CQ, 0).with_cdw(10, &[size << 16 | u32::from(id), flags])
    }

    /// Create I/O Submission Queue `id` of `entries` entries, physically
    /// contiguous, completing on completion queue `cq` (5.5).
    pub fn create_io_sq(id: u16, entries: u16, cq: u16) -> Self {
        let size = u32::from(entries.saturating_sub(1));
        Self::new(admin::CREATE_IO_SQ, 0)
            .with_cdw(10, &[size << 16 | u32::from(id), u32::from(cq) << 16 | 1])
    }

    /// Read or Write (`opcode`) of `blocks` blocks from `lba` of namespace
    /// `nsid` (NVM Command Set 3.2.4, 3.2.6). `blocks` is 1..=65536.
    pub fn read_write(opcode: u8, nsid: u32, lba: u64, blocks: u32) -> Self {
        Self::new(opcode, nsid).with_cdw(
            10,
            &[lba as u32, (lba >> 32) as u32, blocks.saturating_sub(1)],
        )
    }

    /// The starting LBA of a Read or Write.
    pub fn lba(&self) -> u64 {
        u64::from(self.dwords[10]) | u64::from(self.dwords[11]) << 32
    }

    /// The block count of a Read or Write.
    pub fn blocks(&self) -> u32 {
        (self.dwords[12] & 0xffff) + 1
    }

    /// The entry as bytes, little-endian, for the submission queue.
    pub fn to_bytes(&self) -> [u8; SQE_SIZE] {
        let mut bytes = [0; SQE_SIZE];
        for (chunk, dword) in bytes.chunks_exact_mut(4).zip(self.dwords) {
            chunk.copy_from_slice(&dword.to_le_bytes());
        }
        bytes
    }

    /// An entry read back from its bytes (the fake controller's side).
    pub fn from_bytes(bytes: &[u8; SQE_SIZE]) -> Self {
        let mut dwords = [0; 16];
        for (dword, chunk) in dwords.iter_mut().zip(bytes.chunks_exact(4)) {
            *dword = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Self { dwords }
    }
}

/// A completion queue entry (4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Command specific result (DW0).
    pub result: u32,
    /// Submission queue head pointer when the command completed (DW2 15:0).
    pub sq_head: u16,
    /// Submission queue the command came from (DW2 31:16).
    pub sq_id: u16,
    /// The command identifier (DW3 15:0).
    pub command_id: u16,
    /// The phase tag (DW3 bit 16).
    pub phase: bool,
    /// The status field (DW3 31:17).
    pub status: Status,
}

impl Completion {
    /// Decodes the four dwords of an entry.
    pub fn decode(dwords: [u32; 4]) -> Self {
        Self {
            result: dwords[0],
            sq_head: dwords[2] as u16,
            sq_id: (dwords[2] >> 16) as u16,
            command_id: dwords[3] as u16,
            phase: dwords[3] & (1 << 16) != 0,
            status: Status::from_field((dwords[3] >> 17) as u16),
        }
    }

    /// The four dwords (the fake controller's side).
    pub fn encode(&self) -> [u32; 4] {
        [
            self.result,
            0,
            u32::from(self.sq_head) | u32::from(self.sq_id) << 16,
            u32::from(self.command_id)
                | u32::from(self.phase) << 16
                | u32::from(self.status.field()) << 17,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_put_their_fields_where_the_spec_says() {
        let mut read = Command::read_write(io::READ, 1, 0x1_2345_6789, 8);
        read.set_command_id(0xbeef);
        read.set_prps(0x1000, 0xdead_0000_2000);
        assert_eq!(read.dwords[0], 0xbeef_0002);
        assert_eq!(read.dwords[1], 1);
        assert_eq!(read.dwords[10..13], [0x2345_6789, 1, 7]);
        assert_eq!(read.dwords[6..10], [0x1000, 0, 0x2000, 0xdead]);
        assert_eq!(
            (read.lba(), read.blocks(), read.command_id()),
            (0x1_2345_6789, 8, 0xbeef)
        );
        assert_eq!(Command::from_bytes(&read.to_bytes()), read);

        let cq = Command::create_io_cq(3, 64, 3, true);
        assert_eq!(cq.dwords[10], 63 << 16 | 3);
        assert_eq!(cq.dwords[11], 3 << 16 | 0b11);
        let polled = Command::create_io_cq(1, 64, 0, false);
        assert_eq!(polled.dwords[11], 1);
        let sq = Command::create_io_sq(3, 64, 3);
        assert_eq!(sq.dwords[11], 3 << 16 | 1);
        let queues = Command::set_queue_count(4);
        assert_eq!(queues.dwords[10..12], [7, 3 << 16 | 3]);
        assert_eq!(Command::identify(cns::ACTIVE_NAMESPACES, 0).dwords[10], 2);
    }

    #[test]
    fn completions_round_trip() {
        let dwords = [7, 0, 5 << 16 | 12, 0x42 | 1 << 16 | (0x0281 << 17)];
        let c = Completion::decode(dwords);
        assert_eq!(
            (c.result, c.sq_head, c.sq_id, c.command_id),
            (7, 12, 5, 0x42)
        );
        assert!(c.phase);
        assert_eq!(c.status.code_type, 2);
        assert_eq!(c.status.code, 0x81);
        assert_eq!(c.encode(), dwords);
    }
}
