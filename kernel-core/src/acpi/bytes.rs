//! Bounded little-endian reads from table bytes: every read past the end is
//! `None`, never a panic, so parsers can be fed any bytes.

/// A byte at `at`.
pub fn u8_at(bytes: &[u8], at: usize) -> Option<u8> {
    bytes.get(at).copied()
}

/// A little-endian `u16` at `at`.
pub fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    array_at(bytes, at).map(u16::from_le_bytes)
}

/// A little-endian `u32` at `at`.
pub fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    array_at(bytes, at).map(u32::from_le_bytes)
}

/// A little-endian `u64` at `at`.
pub fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    array_at(bytes, at).map(u64::from_le_bytes)
}

/// `N` bytes at `at`.
pub fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// True when the bytes sum to zero (modulo 256), as ACPI checksums require.
pub fn sums_to_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)) == 0
}

/// A generic address structure (ACPI 6.5, 5.2.3.2): where a register is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenericAddress {
    /// Address space: 0 system memory, 1 system I/O, ...
    pub space: u8,
    /// Register width in bits.
    pub bit_width: u8,
    /// Bit offset of the register at the address.
    pub bit_offset: u8,
    /// Access size: 0 undefined, 1 byte, 2 word, 3 dword, 4 qword.
    pub access_size: u8,
    /// The address.
    pub address: u64,
}

impl GenericAddress {
    /// System memory.
    pub const MEMORY: u8 = 0;
    /// System I/O ports.
    pub const IO: u8 = 1;

    /// The 12-byte structure at `at`; `None` when it does not fit or its
    /// address is zero (ACPI's "not present").
    pub fn at(bytes: &[u8], at: usize) -> Option<Self> {
        let g = Self {
            space: u8_at(bytes, at)?,
            bit_width: u8_at(bytes, at + 1)?,
            bit_offset: u8_at(bytes, at + 2)?,
            access_size: u8_at(bytes, at + 3)?,
            address: u64_at(bytes, at + 4)?,
        };
        (g.address != 0).then_some(g)
    }

    /// The I/O port, when the register is in I/O space below 64 KiB.
    pub fn io_port(&self) -> Option<u16> {
        if self.space == Self::IO {
            u16::try_from(self.address).ok()
        } else {
            None
        }
    }
}

/// Entries of a table laid out as `type: u8, length: u8, ...` records (MADT)
/// or with a 16-bit length at offset 1 (GTDT platform timers): yields
/// `(type, entry bytes)` and stops with an error at an entry whose length is
/// too short to move on or that runs past the end.
pub fn entries(bytes: &[u8], start: usize, wide_length: bool) -> EntryIter<'_> {
    EntryIter {
        bytes,
        at: start,
        wide_length,
    }
}

/// Iterator returned by [`entries`].
pub struct EntryIter<'a> {
    bytes: &'a [u8],
    at: usize,
    wide_length: bool,
}

/// An entry whose length field cannot be right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEntry {
    /// Offset of the entry in the table.
    pub offset: usize,
    /// Its type.
    pub kind: u8,
    /// Its length field.
    pub length: usize,
}

impl<'a> Iterator for EntryIter<'a> {
    type Item = Result<(u8, &'a [u8], usize), BadEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let offset = self.at;
        let kind = self.bytes[offset];
        let length = if self.wide_length {
            u16_at(self.bytes, offset + 1).map(usize::from)
        } else {
            u8_at(self.bytes, offset + 1).map(usize::from)
        };
        let min = if self.wide_length { 3 } else { 2 };
        let entry = length
            .filter(|&l| l >= min)
            .and_then(|l| self.bytes.get(offset..offset.checked_add(l)?));
        match entry {
            Some(entry) => {
                self.at = offset + entry.len();
                Some(Ok((kind, entry, offset)))
            }
            None => {
                self.at = self.bytes.len();
                Some(Err(BadEntry {
                    offset,
                    kind,
                    length: length.unwrap_or(0),
                }))
            }
        }
    }
}

/// A table with a valid-looking header (no checksum) for parser unit tests.
#[cfg(test)]
pub(crate) fn test_table(signature: &[u8; 4], revision: u8, body: &[u8]) -> alloc::vec::Vec<u8> {
    let mut t = alloc::vec::Vec::new();
    t.extend_from_slice(signature);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.resize(36, 0);
    t.extend_from_slice(body);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_are_none() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(u32_at(&b, 1), Some(0x0504_0302));
        assert_eq!(u32_at(&b, 2), None);
        assert_eq!(u64_at(&b, usize::MAX), None);
    }

    #[test]
    fn entry_of_length_below_two_stops_the_walk() {
        let b = [0u8, 8, 0, 0, 0, 0, 0, 0, 1, 0, 9];
        let got: alloc::vec::Vec<_> = entries(&b, 0, false).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert_eq!(
            got[1],
            Err(BadEntry {
                offset: 8,
                kind: 1,
                length: 0
            })
        );
    }
}
