//! Device tree blob checks and the removal of `memory` nodes.
//!
//! The protocol says `memory@...` nodes are removed from the DTB handed to the
//! kernel (the memory map is authoritative). Rewriting the structure block in place
//! with `FDT_NOP` tokens deletes a node without moving anything (Devicetree
//! Specification 0.4, 5.4.1: "FDT_NOP ... shall be ignored by any program parsing
//! the device tree").

use core::fmt;

/// `0xd00dfeed`, big-endian, at offset 0.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the header fields this module reads.
pub const HEADER_SIZE: usize = 40;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// A malformed blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// Shorter than the header.
    Truncated,
    /// The magic number is wrong.
    BadMagic,
    /// `totalsize` or the structure block lie outside the buffer.
    BadSize,
    /// The structure block does not parse.
    BadStructure {
        /// Offset of the offending token from the blob's start.
        offset: usize,
    },
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated => f.write_str("device tree blob shorter than its header"),
            Self::BadMagic => f.write_str("device tree blob has a bad magic number"),
            Self::BadSize => f.write_str("device tree blob sizes exceed the blob"),
            Self::BadStructure { offset } => {
                write!(
                    f,
                    "device tree structure block malformed at offset {offset:#x}"
                )
            }
        }
    }
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// `totalsize` from a header (the first [`HEADER_SIZE`] bytes suffice).
///
/// # Errors
///
/// [`FdtError::Truncated`] or [`FdtError::BadMagic`].
pub fn total_size(header: &[u8]) -> Result<u32, FdtError> {
    if header.len() < HEADER_SIZE {
        return Err(FdtError::Truncated);
    }
    if be32(header, 0) != Some(FDT_MAGIC) {
        return Err(FdtError::BadMagic);
    }
    be32(header, 4).ok_or(FdtError::Truncated)
}

fn is_memory_node(name: &[u8]) -> bool {
    name == b"memory" || name.starts_with(b"memory@")
}

/// Replaces every top-level `memory` / `memory@...` node with `FDT_NOP` tokens;
/// returns how many nodes were removed.
///
/// # Errors
///
/// See [`FdtError`]; the blob is left unchanged when the structure is malformed
/// before the first change (changes are only made to nodes parsed completely).
pub fn remove_memory_nodes(blob: &mut [u8]) -> Result<usize, FdtError> {
    let total = total_size(blob)? as usize;
    if total > blob.len() {
        return Err(FdtError::BadSize);
    }
    let off_struct = be32(blob, 8).ok_or(FdtError::Truncated)? as usize;
    let size_struct = be32(blob, 36).ok_or(FdtError::Truncated)? as usize;
    let end = off_struct
        .checked_add(size_struct)
        .ok_or(FdtError::BadSize)?;
    if end > total {
        return Err(FdtError::BadSize);
    }

    let mut removed = 0;
    let mut pos = off_struct;
    let mut depth = 0usize;
    // Start of the memory node being skipped, with the depth it opened at.
    let mut doomed: Option<(usize, usize)> = None;
    loop {
        let bad = FdtError::BadStructure { offset: pos };
        if pos + 4 > end {
            return Err(bad);
        }
        let token = be32(blob, pos).ok_or(bad)?;
        let start = pos;
        pos += 4;
        match token {
            FDT_BEGIN_NODE => {
                let name_len = blob[pos..end].iter().position(|&b| b == 0).ok_or(bad)?;
                if depth == 1 && doomed.is_none() && is_memory_node(&blob[pos..pos + name_len]) {
                    doomed = Some((start, depth));
                }
                pos = (pos + name_len + 1 + 3) & !3;
                depth += 1;
            }
            FDT_END_NODE => {
                depth = depth.checked_sub(1).ok_or(bad)?;
                if let Some((from, at)) = doomed
                    && at == depth
                {
                    for word in blob[from..pos].chunks_exact_mut(4) {
                        word.copy_from_slice(&FDT_NOP.to_be_bytes());
                    }
                    doomed = None;
                    removed += 1;
                }
            }
            FDT_PROP => {
                let len = be32(blob, pos).ok_or(bad)? as usize;
                pos = pos
                    .checked_add(8 + len + 3)
                    .map(|p| p & !3)
                    .filter(|&p| p <= end)
                    .ok_or(bad)?;
            }
            FDT_NOP => {}
            FDT_END => return Ok(removed),
            _ => return Err(bad),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Builder(Vec<u8>);
    impl Builder {
        fn tok(&mut self, t: u32) {
            self.0.extend(t.to_be_bytes());
        }
        fn begin(&mut self, name: &str) {
            self.tok(FDT_BEGIN_NODE);
            self.0.extend(name.as_bytes());
            self.0.push(0);
            while !self.0.len().is_multiple_of(4) {
                self.0.push(0);
            }
        }
        fn prop(&mut self, value: &[u8]) {
            self.tok(FDT_PROP);
            self.0.extend((value.len() as u32).to_be_bytes());
            self.0.extend(0u32.to_be_bytes());
            self.0.extend(value);
            while !self.0.len().is_multiple_of(4) {
                self.0.push(0);
            }
        }
    }

    fn blob() -> Vec<u8> {
        let mut s = Builder(Vec::new());
        s.begin("");
        s.prop(b"\x00\x00\x00\x02");
        s.begin("memory@40000000");
        s.prop(&[0u8; 16]);
        s.tok(FDT_END_NODE);
        s.begin("cpus");
        s.begin("memory@0"); // not top level: kept
        s.tok(FDT_END_NODE);
        s.tok(FDT_END_NODE);
        s.begin("memory");
        s.tok(FDT_END_NODE);
        s.begin("pl011@9000000");
        s.prop(b"x");
        s.tok(FDT_END_NODE);
        s.tok(FDT_END_NODE);
        s.tok(FDT_END);
        let structure = s.0;
        let mut b = vec![0u8; HEADER_SIZE];
        let total = (HEADER_SIZE + structure.len()) as u32;
        b[0..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&total.to_be_bytes());
        b[8..12].copy_from_slice(&(HEADER_SIZE as u32).to_be_bytes());
        b[36..40].copy_from_slice(&(structure.len() as u32).to_be_bytes());
        b.extend(structure);
        b
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn removes_top_level_memory_nodes() {
        let mut b = blob();
        assert_eq!(total_size(&b), Ok(b.len() as u32));
        assert_eq!(remove_memory_nodes(&mut b), Ok(2));
        assert!(!contains(&b, b"memory@40000000"));
        assert!(contains(&b, b"memory@0"));
        assert!(contains(&b, b"pl011@9000000"));
        // Still well formed, and nothing left to remove.
        assert_eq!(remove_memory_nodes(&mut b), Ok(0));
    }

    #[test]
    fn rejects_malformed_blobs() {
        assert_eq!(total_size(&[0; 8]), Err(FdtError::Truncated));
        let mut b = blob();
        b[0] = 0;
        assert_eq!(remove_memory_nodes(&mut b), Err(FdtError::BadMagic));
        let mut b = blob();
        let n = b.len();
        b[4..8].copy_from_slice(&((n + 4) as u32).to_be_bytes());
        assert_eq!(remove_memory_nodes(&mut b), Err(FdtError::BadSize));
        let mut b = blob();
        b[HEADER_SIZE..HEADER_SIZE + 4].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(
            remove_memory_nodes(&mut b),
            Err(FdtError::BadStructure {
                offset: HEADER_SIZE
            })
        );
        // Truncated structure (no FDT_END) must not run off the end.
        let mut b = blob();
        let n = b.len();
        b[36..40].copy_from_slice(&((n - HEADER_SIZE - 8) as u32).to_be_bytes());
        assert!(matches!(
            remove_memory_nodes(&mut b),
            Err(FdtError::BadStructure { .. })
        ));
    }
}
