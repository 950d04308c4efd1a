//! Reading the flattened device tree (FDT) the loader hands over, for the
//! machines that describe themselves with one instead of ACPI (QEMU virt with
//! `acpi=off`, many Arm boards): the console (`/chosen/stdout-path`) and the
//! PSCI conduit (`/psci` `method`).
//!
//! The blob comes from firmware, so every offset and length is checked and a
//! malformed tree gives an error, never a panic or an out-of-bounds read.
//! Format: Devicetree Specification v0.4, chapter 5 ("Flattened Devicetree
//! (DTB) Format"): a header, a structure block of big-endian tokens and a
//! strings block of property names.
//!
//! Why not the `fdt` crate: its 0.1.5 release panics on hostile blobs (for
//! instance an empty `stdout-path` value is sliced with `len() - 1`, and a
//! missing `/chosen` node is an `expect`), and ignores the `:options` suffix
//! of `stdout-path`; its 0.2 is an alpha. The reader needed here is small.

use crate::boot_info::{MemoryKind, MemoryMap};
use crate::console::{ConsoleDescriptor, UartKind, UartRegisters};
use core::fmt;
use stratus_arch::PsciConduit;

/// `magic` of an FDT header.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the header fields read here (up to `size_dt_struct`).
pub const HEADER_SIZE: usize = 40;
/// Largest tree accepted (the Stratus loader's limit too). QEMU's trees hold
/// about 8 KiB in a 1 MiB `totalsize`; firmware may grow them further.
pub const MAX_TREE_SIZE: usize = 16 << 20;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Deepest node nesting followed; real trees stay under ten levels.
const MAX_DEPTH: usize = 32;

/// The tree at physical `phys`, read through the direct map at
/// `hhdm_offset`, after checking that header and blob lie inside one region
/// `memory_map` lists as RAM the loader maps under every base revision
/// (usable, loader-reclaimable, kernel and modules).
///
/// # Safety
/// The loader must map those regions at `hhdm_offset` (Limine protocol), and
/// nothing may write the blob while the returned slice lives.
pub unsafe fn direct_map_blob(
    phys: u64,
    hhdm_offset: u64,
    memory_map: &MemoryMap,
) -> Result<&'static [u8], DtError> {
    let inside_ram = |len: usize| {
        memory_map.regions().iter().any(|r| {
            matches!(
                r.kind,
                MemoryKind::Usable | MemoryKind::LoaderReclaimable | MemoryKind::KernelAndModules
            ) && r.base <= phys
                && phys
                    .checked_add(len as u64)
                    .is_some_and(|end| end <= r.end())
        })
    };
    if !inside_ram(HEADER_SIZE) {
        return Err(DtError::NotInRam);
    }
    let virt = phys.wrapping_add(hhdm_offset) as *const u8;
    // SAFETY: the header lies in RAM the loader maps at `hhdm_offset` (checked).
    let size = total_size(unsafe { core::slice::from_raw_parts(virt, HEADER_SIZE) })?;
    if !inside_ram(size) {
        return Err(DtError::NotInRam);
    }
    // SAFETY: as above, for the whole blob (checked); the caller guarantees
    // nothing writes it.
    Ok(unsafe { core::slice::from_raw_parts(virt, size) })
}

/// Why a device tree could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtError {
    /// Shorter than its header, or the header's `totalsize` is out of range.
    Truncated,
    /// The magic number is wrong.
    BadMagic(u32),
    /// The blob is not in RAM the direct map covers.
    NotInRam,
    /// A block lies outside the blob.
    BadBlock,
    /// A token, name or property runs past the structure block, or the
    /// nesting is wrong.
    Malformed,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtError::Truncated => f.write_str("device tree truncated"),
            DtError::BadMagic(m) => write!(f, "device tree magic {m:#x} is wrong"),
            DtError::NotInRam => f.write_str("device tree outside the RAM the direct map covers"),
            DtError::BadBlock => f.write_str("device tree block outside the blob"),
            DtError::Malformed => f.write_str("device tree structure is malformed"),
        }
    }
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The size a tree says it has (`totalsize`), from its first bytes.
pub fn total_size(header: &[u8]) -> Result<usize, DtError> {
    let magic = be32(header, 0).ok_or(DtError::Truncated)?;
    if magic != FDT_MAGIC {
        return Err(DtError::BadMagic(magic));
    }
    let size = be32(header, 4).ok_or(DtError::Truncated)? as usize;
    if !(HEADER_SIZE..=MAX_TREE_SIZE).contains(&size) {
        return Err(DtError::Truncated);
    }
    Ok(size)
}

/// A validated device tree blob.
#[derive(Clone, Copy, Debug)]
pub struct DeviceTree<'a> {
    structs: &'a [u8],
    strings: &'a [u8],
}

/// A node: where its properties start in the structure block, and the
/// properties of its parent (for `#address-cells` and `#size-cells`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    props: usize,
    parent_props: Option<usize>,
}

/// One structure-block token.
enum Token<'a> {
    Begin(&'a [u8]),
    End,
    Prop { name_offset: u32, value: &'a [u8] },
    Nop,
    Finish,
}

impl<'a> DeviceTree<'a> {
    /// Checks the header and the block bounds of `blob`.
    pub fn parse(blob: &'a [u8]) -> Result<Self, DtError> {
        let size = total_size(blob)?;
        let blob = blob.get(..size).ok_or(DtError::Truncated)?;
        let field = |i: usize| {
            be32(blob, 4 * i)
                .map(|v| v as usize)
                .ok_or(DtError::Truncated)
        };
        let block = |offset: usize, len: usize| {
            blob.get(offset..offset.checked_add(len).ok_or(DtError::BadBlock)?)
                .ok_or(DtError::BadBlock)
        };
        let structs = block(field(2)?, field(9)?)?;
        let strings = block(field(3)?, field(8)?)?;
        Ok(Self { structs, strings })
    }

    /// The token at `at` and the offset after it.
    fn token(&self, at: usize) -> Result<(Token<'a>, usize), DtError> {
        let kind = be32(self.structs, at).ok_or(DtError::Malformed)?;
        let next = at + 4;
        match kind {
            FDT_BEGIN_NODE => {
                let rest = self.structs.get(next..).ok_or(DtError::Malformed)?;
                let len = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(DtError::Malformed)?;
                Ok((Token::Begin(&rest[..len]), align4(next + len + 1)))
            }
            FDT_END_NODE => Ok((Token::End, next)),
            FDT_PROP => {
                let len = be32(self.structs, next).ok_or(DtError::Malformed)? as usize;
                let name_offset = be32(self.structs, next + 4).ok_or(DtError::Malformed)?;
                let start = next + 8;
                let value = start
                    .checked_add(len)
                    .and_then(|end| self.structs.get(start..end))
                    .ok_or(DtError::Malformed)?;
                Ok((Token::Prop { name_offset, value }, align4(start + len)))
            }
            FDT_NOP => Ok((Token::Nop, next)),
            FDT_END => Ok((Token::Finish, next)),
            _ => Err(DtError::Malformed),
        }
    }

    /// The NUL-terminated string at `offset` in the strings block.
    fn string(&self, offset: u32) -> Option<&'a [u8]> {
        let rest = self.strings.get(offset as usize..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..len])
    }

    /// The node at `path` (absolute, `/` separated; a component without a
    /// unit address matches a node name with one, as in `/psci`).
    pub fn find_node(&self, path: &str) -> Result<Option<Node>, DtError> {
        let want: &[u8] = path.as_bytes();
        let components = || want.split(|&b| b == b'/').filter(|c| !c.is_empty());
        let wanted = components().count();
        // props offset of each open node; how many leading nodes match.
        let mut open = [0usize; MAX_DEPTH];
        let mut depth = 0usize;
        let mut matched = 0usize;
        let mut at = 0usize;
        loop {
            let (token, next) = self.token(at)?;
            match token {
                Token::Begin(name) => {
                    if depth == MAX_DEPTH {
                        return Err(DtError::Malformed);
                    }
                    open[depth] = next;
                    // The root node (depth 0) has an empty name.
                    let component = depth.checked_sub(1).and_then(|i| components().nth(i));
                    if depth == 0
                        || (matched == depth && component.is_some_and(|c| name_matches(name, c)))
                    {
                        matched = depth + 1;
                    }
                    depth += 1;
                    if matched == depth && depth == wanted + 1 {
                        return Ok(Some(Node {
                            props: next,
                            parent_props: depth.checked_sub(2).map(|i| open[i]),
                        }));
                    }
                }
                Token::End => {
                    depth = depth.checked_sub(1).ok_or(DtError::Malformed)?;
                    matched = matched.min(depth);
                    if depth == 0 {
                        return Ok(None);
                    }
                }
                Token::Finish => return Ok(None),
                Token::Prop { .. } | Token::Nop => {}
            }
            at = next;
        }
    }

    /// The value of property `name` of `node`.
    pub fn property(&self, node: Node, name: &str) -> Result<Option<&'a [u8]>, DtError> {
        self.property_at(node.props, name)
    }

    fn property_at(&self, props: usize, name: &str) -> Result<Option<&'a [u8]>, DtError> {
        let mut at = props;
        loop {
            let (token, next) = self.token(at)?;
            match token {
                Token::Prop { name_offset, value } => {
                    if self.string(name_offset) == Some(name.as_bytes()) {
                        return Ok(Some(value));
                    }
                }
                Token::Nop => {}
                // Properties come before child nodes.
                Token::Begin(_) | Token::End | Token::Finish => return Ok(None),
            }
            at = next;
        }
    }

    /// `#address-cells` and `#size-cells` that apply to `node`'s `reg`
    /// (its parent's; 2 and 1 when absent, as the specification says).
    fn reg_cells(&self, node: Node) -> Result<(usize, usize), DtError> {
        let cells = |name, default| -> Result<usize, DtError> {
            Ok(match node.parent_props {
                Some(p) => self
                    .property_at(p, name)?
                    .and_then(|v| be32(v, 0))
                    .map_or(default, |v| v as usize),
                None => default,
            })
        };
        Ok((cells("#address-cells", 2)?, cells("#size-cells", 1)?))
    }

    /// The first (address, size) pair of `node`'s `reg`.
    pub fn first_reg(&self, node: Node) -> Result<Option<(u64, u64)>, DtError> {
        let (address_cells, size_cells) = self.reg_cells(node)?;
        if address_cells > 2 || size_cells > 2 {
            return Ok(None);
        }
        let Some(reg) = self.property(node, "reg")? else {
            return Ok(None);
        };
        let number = |cells: &[u8]| {
            cells
                .chunks(4)
                .fold(0u64, |n, c| n << 32 | be32(c, 0).map_or(0, u64::from))
        };
        let (a, s) = (4 * address_cells, 4 * size_cells);
        match (reg.get(..a), reg.get(a..a + s)) {
            (Some(address), Some(size)) if address_cells > 0 => {
                Ok(Some((number(address), number(size))))
            }
            _ => Ok(None),
        }
    }

    /// Whether `node`'s `compatible` list holds `what`.
    pub fn is_compatible(&self, node: Node, what: &str) -> Result<bool, DtError> {
        Ok(self
            .property(node, "compatible")?
            .is_some_and(|list| list.split(|&b| b == 0).any(|c| c == what.as_bytes())))
    }
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn name_matches(name: &[u8], component: &[u8]) -> bool {
    name == component
        || (!component.contains(&b'@') && name.split(|&b| b == b'@').next() == Some(component))
}

/// Text up to the first NUL (property strings are NUL-terminated).
fn c_str(value: &[u8]) -> Option<&str> {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    core::str::from_utf8(&value[..end]).ok()
}

/// Why the device tree gave no console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtConsoleError {
    /// The tree itself is malformed.
    Tree(DtError),
    /// `/chosen/stdout-path` is missing or not text.
    NoStdoutPath,
    /// The path (or alias) names no node.
    NoSuchNode,
    /// The node is not a UART Stratus drives.
    Unsupported,
    /// The node has no usable `reg`.
    NoRegisters,
}

impl From<DtError> for DtConsoleError {
    fn from(e: DtError) -> Self {
        DtConsoleError::Tree(e)
    }
}

impl fmt::Display for DtConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtConsoleError::Tree(e) => write!(f, "{e}"),
            DtConsoleError::NoStdoutPath => f.write_str("no /chosen/stdout-path"),
            DtConsoleError::NoSuchNode => f.write_str("stdout-path names no node"),
            DtConsoleError::Unsupported => f.write_str("stdout-path node is not a supported UART"),
            DtConsoleError::NoRegisters => f.write_str("stdout-path node has no usable reg"),
        }
    }
}

/// What the device tree says about the machine, for the kernel's boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtSummary {
    /// The console `/chosen/stdout-path` names.
    pub console: Result<ConsoleDescriptor, DtConsoleError>,
    /// The PSCI conduit from `/psci` `method`.
    pub psci: Option<PsciConduit>,
}

/// Reads the console and the PSCI conduit from a device tree blob.
pub fn summarize(blob: &[u8]) -> Result<DtSummary, DtError> {
    let tree = DeviceTree::parse(blob)?;
    Ok(DtSummary {
        console: stdout_console(&tree),
        psci: psci_conduit(&tree)?,
    })
}

/// The console `/chosen/stdout-path` names (a path or an alias, with an
/// optional `:options` suffix such as `:115200n8`).
pub fn stdout_console(tree: &DeviceTree<'_>) -> Result<ConsoleDescriptor, DtConsoleError> {
    let chosen = tree
        .find_node("/chosen")?
        .ok_or(DtConsoleError::NoStdoutPath)?;
    let value = tree
        .property(chosen, "stdout-path")?
        .and_then(c_str)
        .ok_or(DtConsoleError::NoStdoutPath)?;
    let path = value.split(':').next().unwrap_or("");
    let path = if path.starts_with('/') {
        path
    } else {
        let aliases = tree
            .find_node("/aliases")?
            .ok_or(DtConsoleError::NoSuchNode)?;
        tree.property(aliases, path)?
            .and_then(c_str)
            .filter(|p| p.starts_with('/'))
            .ok_or(DtConsoleError::NoSuchNode)?
    };
    let node = tree.find_node(path)?.ok_or(DtConsoleError::NoSuchNode)?;
    let kind =
        if tree.is_compatible(node, "arm,pl011")? || tree.is_compatible(node, "arm,sbsa-uart")? {
            UartKind::Pl011
        } else if tree.is_compatible(node, "ns16550a")? || tree.is_compatible(node, "ns16550")? {
            UartKind::Ns16550
        } else {
            return Err(DtConsoleError::Unsupported);
        };
    let (phys, _size) = tree.first_reg(node)?.ok_or(DtConsoleError::NoRegisters)?;
    if phys == 0 {
        return Err(DtConsoleError::NoRegisters);
    }
    let width = match kind {
        UartKind::Pl011 => 4,
        UartKind::Ns16550 => match tree
            .property(node, "reg-io-width")?
            .and_then(|v| be32(v, 0))
        {
            Some(4) => 4,
            _ => 1,
        },
    };
    Ok(ConsoleDescriptor {
        kind,
        registers: UartRegisters::Mmio { phys, width },
        baud: None,
    })
}

/// The PSCI conduit `/psci` names in `method` (`hvc` or `smc`).
pub fn psci_conduit(tree: &DeviceTree<'_>) -> Result<Option<PsciConduit>, DtError> {
    let Some(psci) = tree.find_node("/psci")? else {
        return Ok(None);
    };
    Ok(match tree.property(psci, "method")?.and_then(c_str) {
        Some("hvc") => Some(PsciConduit::Hvc),
        Some("smc") => Some(PsciConduit::Smc),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
