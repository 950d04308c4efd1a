//! Identify data structures (NVMe Base Specification 2.0, 5.17.2; NVM
//! Command Set Specification 1.0, 4.1.5), read from the 4 KiB the
//! controller returns. Everything here is device input: lengths are fixed
//! by the buffer, values are checked before use.

use core::fmt;

/// Bytes of every Identify data structure.
pub const IDENTIFY_SIZE: usize = 4096;

/// A fixed-width ASCII field of the Identify Controller structure, spaces
/// padded: shown with the padding trimmed and anything but printable
/// ASCII as `?`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AsciiField<const N: usize>(pub [u8; N]);

impl<const N: usize> AsciiField<N> {
    fn from(data: &[u8], offset: usize) -> Self {
        let mut bytes = [b' '; N];
        if let Some(field) = data.get(offset..offset + N) {
            bytes.copy_from_slice(field);
        }
        Self(bytes)
    }

    /// The field without trailing spaces and NULs.
    fn trimmed(&self) -> &[u8] {
        let end = self
            .0
            .iter()
            .rposition(|b| *b != b' ' && *b != 0)
            .map_or(0, |i| i + 1);
        let start = self.0[..end].iter().position(|b| *b != b' ').unwrap_or(end);
        &self.0[start..end]
    }
}

impl<const N: usize> fmt::Display for AsciiField<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for byte in self.trimmed() {
            let c = if byte.is_ascii_graphic() || *byte == b' ' {
                char::from(*byte)
            } else {
                '?'
            };
            f.write_char(c)?;
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for AsciiField<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// What the driver uses of Identify Controller (CNS 01h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControllerIdentity {
    /// PCI vendor id (VID).
    pub vendor_id: u16,
    /// Serial number (SN); the EBS volume id on AWS.
    pub serial: AsciiField<20>,
    /// Model number (MN).
    pub model: AsciiField<40>,
    /// Firmware revision (FR).
    pub firmware: AsciiField<8>,
    /// Maximum data transfer size as a power of two of the minimum page
    /// size (MDTS); 0 means no limit.
    pub max_transfer_shift: u8,
    /// Number of namespaces (NN): the largest namespace id.
    pub namespace_count: u32,
}

fn le_u16(data: &[u8], offset: usize) -> u16 {
    let mut bytes = [0; 2];
    if let Some(field) = data.get(offset..offset + 2) {
        bytes.copy_from_slice(field);
    }
    u16::from_le_bytes(bytes)
}

fn le_u32(data: &[u8], offset: usize) -> u32 {
    let mut bytes = [0; 4];
    if let Some(field) = data.get(offset..offset + 4) {
        bytes.copy_from_slice(field);
    }
    u32::from_le_bytes(bytes)
}

fn le_u64(data: &[u8], offset: usize) -> u64 {
    u64::from(le_u32(data, offset)) | u64::from(le_u32(data, offset + 4)) << 32
}

impl ControllerIdentity {
    /// Reads the structure; bytes missing from a short `data` read as
    /// zeros (spaces for the strings).
    pub fn parse(data: &[u8]) -> Self {
        Self {
            vendor_id: le_u16(data, 0),
            serial: AsciiField::from(data, 4),
            model: AsciiField::from(data, 24),
            firmware: AsciiField::from(data, 64),
            max_transfer_shift: data.get(77).copied().unwrap_or(0),
            namespace_count: le_u32(data, 516),
        }
    }

    /// Largest transfer in bytes for a minimum page size of
    /// `min_page_size`, `None` when the controller sets no limit.
    pub fn max_transfer_bytes(&self, min_page_size: u64) -> Option<u64> {
        match self.max_transfer_shift {
            0 => None,
            shift if u32::from(shift) >= min_page_size.leading_zeros() => Some(u64::MAX),
            shift => Some(min_page_size << shift),
        }
    }
}

/// Why a namespace cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceError {
    /// Its size is zero (an inactive or unformatted namespace).
    Empty,
    /// The LBA format in use is past the formats the namespace lists.
    BadFormatIndex(u8),
    /// The block size (2^LBADS) is below 512 bytes or above 64 KiB.
    BadBlockSize(u8),
    /// The format carries metadata with each block, which this driver
    /// does not transfer.
    Metadata(u16),
}

impl fmt::Display for NamespaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("it has no blocks"),
            Self::BadFormatIndex(i) => write!(f, "LBA format {i} in use is not listed"),
            Self::BadBlockSize(s) => write!(f, "a block size of 2^{s} bytes is not supported"),
            Self::Metadata(ms) => write!(f, "its format carries {ms} bytes of metadata per block"),
        }
    }
}

/// What the driver uses of Identify Namespace (CNS 00h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceIdentity {
    /// Namespace size in logical blocks (NSZE).
    pub blocks: u64,
    /// Bytes per logical block, from the LBA format in use (FLBAS).
    pub block_size: u32,
}

/// The first LBA Format entry (LBAF0) of Identify Namespace.
const LBA_FORMATS: usize = 128;

impl NamespaceIdentity {
    /// Reads and checks the structure.
    pub fn parse(data: &[u8]) -> Result<Self, NamespaceError> {
        let blocks = le_u64(data, 0);
        if blocks == 0 {
            return Err(NamespaceError::Empty);
        }
        let formats = data.get(25).copied().unwrap_or(0).saturating_add(1);
        let flbas = data.get(26).copied().unwrap_or(0);
        // FLBAS bits 3:0, with bits 6:5 as the upper bits when more than
        // 16 formats are listed.
        let index = (flbas & 0xf) | ((flbas >> 5) & 3) << 4;
        if index >= formats || index >= 64 {
            return Err(NamespaceError::BadFormatIndex(index));
        }
        let format = le_u32(data, LBA_FORMATS + 4 * usize::from(index));
        let metadata = format as u16;
        let lbads = (format >> 16) as u8;
        if !(9..=16).contains(&lbads) {
            return Err(NamespaceError::BadBlockSize(lbads));
        }
        if metadata != 0 {
            return Err(NamespaceError::Metadata(metadata));
        }
        Ok(Self {
            blocks,
            block_size: 1 << lbads,
        })
    }

    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }
}

/// Namespace ids of an active namespace list (CNS 02h): ascending, non-zero,
/// ending at the first zero. Ids that are not ascending end the list (a
/// corrupt list cannot loop or repeat).
pub fn active_namespaces(data: &[u8]) -> impl Iterator<Item = u32> + '_ {
    let mut last = 0;
    data.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .take_while(move |&id| {
            let ok = id > last && id != u32::MAX;
            last = id;
            ok
        })
}

/// Test data: Identify structures as a controller would return them.
#[cfg(test)]
pub mod build {
    extern crate std;
    use super::IDENTIFY_SIZE;
    use std::vec;
    use std::vec::Vec;

    fn put(data: &mut [u8], offset: usize, text: &str, width: usize) {
        let field = &mut data[offset..offset + width];
        field.fill(b' ');
        field[..text.len()].copy_from_slice(text.as_bytes());
    }

    /// Identify Controller with these strings, MDTS and NN.
    pub fn controller(model: &str, serial: &str, firmware: &str, mdts: u8, nn: u32) -> Vec<u8> {
        let mut data = vec![0; IDENTIFY_SIZE];
        data[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        put(&mut data, 4, serial, 20);
        put(&mut data, 24, model, 40);
        put(&mut data, 64, firmware, 8);
        data[77] = mdts;
        data[516..520].copy_from_slice(&nn.to_le_bytes());
        data
    }

    /// Identify Namespace of `blocks` blocks of 2^`lbads` bytes, using LBA
    /// format 1 (format 0 is 512 bytes, as QEMU lists them).
    pub fn namespace(blocks: u64, lbads: u8) -> Vec<u8> {
        let mut data = vec![0; IDENTIFY_SIZE];
        data[0..8].copy_from_slice(&blocks.to_le_bytes());
        data[8..16].copy_from_slice(&blocks.to_le_bytes());
        data[25] = 1;
        data[26] = 1;
        data[128..132].copy_from_slice(&(9u32 << 16).to_le_bytes());
        data[132..136].copy_from_slice(&(u32::from(lbads) << 16).to_le_bytes());
        data
    }

    /// An active namespace list.
    pub fn namespace_list(ids: &[u32]) -> Vec<u8> {
        let mut data = vec![0; IDENTIFY_SIZE];
        for (i, id) in ids.iter().enumerate() {
            data[4 * i..4 * i + 4].copy_from_slice(&id.to_le_bytes());
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn controller_strings_are_trimmed_and_made_printable() {
        let mut data = build::controller("QEMU NVMe Ctrl", "stratus-nvme0", "10.0.2", 7, 256);
        let id = ControllerIdentity::parse(&data);
        assert_eq!(id.model.to_string(), "QEMU NVMe Ctrl");
        assert_eq!(id.serial.to_string(), "stratus-nvme0");
        assert_eq!(id.firmware.to_string(), "10.0.2");
        assert_eq!(id.namespace_count, 256);
        assert_eq!(id.max_transfer_bytes(4096), Some(512 * 1024));
        data[24] = 0x07;
        data[25] = 0xff;
        assert_eq!(
            ControllerIdentity::parse(&data).model.to_string(),
            "??MU NVMe Ctrl"
        );
        // A short buffer reads as empty fields, not a panic.
        let short = ControllerIdentity::parse(&data[..30]);
        assert_eq!(short.model.to_string(), "");
        assert_eq!(short.max_transfer_bytes(4096), None);
        assert_eq!(
            ControllerIdentity::parse(&build::controller("m", "s", "f", 63, 1))
                .max_transfer_bytes(4096),
            Some(u64::MAX)
        );
    }

    #[test]
    fn namespace_block_size_comes_from_the_format_in_use() {
        let ns = NamespaceIdentity::parse(&build::namespace(2048, 12)).unwrap();
        assert_eq!(
            (ns.blocks, ns.block_size, ns.bytes()),
            (2048, 4096, 8 << 20)
        );
        let mut data = build::namespace(2048, 12);
        data[26] = 0; // format 0: 512 bytes
        assert_eq!(NamespaceIdentity::parse(&data).unwrap().block_size, 512);
        data[26] = 2;
        assert_eq!(
            NamespaceIdentity::parse(&data),
            Err(NamespaceError::BadFormatIndex(2))
        );
        data[26] = 1;
        data[134] = 3;
        assert_eq!(
            NamespaceIdentity::parse(&data),
            Err(NamespaceError::BadBlockSize(3))
        );
        data[134] = 12;
        data[132] = 8;
        assert_eq!(
            NamespaceIdentity::parse(&data),
            Err(NamespaceError::Metadata(8))
        );
        assert_eq!(
            NamespaceIdentity::parse(&build::namespace(0, 9)),
            Err(NamespaceError::Empty)
        );
    }

    #[test]
    fn the_active_list_ends_at_zero_or_disorder() {
        let ids: std::vec::Vec<u32> =
            active_namespaces(&build::namespace_list(&[1, 2, 7])).collect();
        assert_eq!(ids, [1, 2, 7]);
        let ids: std::vec::Vec<u32> =
            active_namespaces(&build::namespace_list(&[3, 2, 9])).collect();
        assert_eq!(ids, [3]);
        assert_eq!(active_namespaces(&[1, 0, 0]).count(), 0);
    }
}
