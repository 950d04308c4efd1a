//! The IORT (IO remapping table, Arm DEN 0049): which ITS group a PCI root
//! complex's MSIs reach, directly or through an SMMU, and how requester ids
//! become ITS device ids. MSI-X on aarch64 needs exactly this. The `acpi`
//! crate 5.x has no IORT support.

use super::bytes::{u8_at, u16_at, u32_at, u64_at};
use alloc::vec::Vec;
use core::fmt;

/// Where an id mapping sends ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IortTarget {
    /// The ITS group at this index of [`Iort::its_groups`].
    ItsGroup(usize),
    /// The SMMU at this index of [`Iort::smmus`].
    Smmu(usize),
    /// Another kind of node, at this offset in the table.
    Other(u32),
}

/// One range of input ids mapped to output ids of another node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMapping {
    /// First input id.
    pub input_base: u32,
    /// Number of ids in the range minus one (the table's encoding).
    pub id_count_minus_one: u32,
    /// Output id of `input_base`.
    pub output_base: u32,
    /// The node the output ids belong to.
    pub target: IortTarget,
    /// Every input maps to `output_base` (flag bit 0).
    pub single: bool,
}

impl IdMapping {
    /// The output id for `id`, when `id` is in this mapping's input range.
    pub fn map(&self, id: u32) -> Option<u32> {
        if self.single {
            return Some(self.output_base);
        }
        let delta = id.checked_sub(self.input_base)?;
        if delta > self.id_count_minus_one {
            return None;
        }
        // A range whose outputs run past 32 bits is broken: no id.
        self.output_base.checked_add(delta)
    }
}

/// An ITS group: the ITSs (by MADT GIC ITS id) that MSIs may target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItsGroup {
    /// Offset of the node in the table.
    pub offset: u32,
    /// GIC ITS ids.
    pub its_ids: Vec<u32>,
}

/// A PCI root complex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootComplex {
    /// Its PCI segment.
    pub segment: u32,
    /// Requester id (bus/device/function) to stream or device id mappings.
    pub id_mappings: Vec<IdMapping>,
}

/// An SMMU (v1/v2 or v3) between devices and the ITS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Smmu {
    /// Offset of the node in the table.
    pub offset: u32,
    /// 3 for SMMUv3, 2 for SMMUv1/v2.
    pub version: u8,
    /// Physical base of its registers.
    pub base: u64,
    /// Stream id to device id mappings.
    pub id_mappings: Vec<IdMapping>,
}

/// What the IORT describes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Iort {
    /// ITS groups.
    pub its_groups: Vec<ItsGroup>,
    /// PCI root complexes.
    pub root_complexes: Vec<RootComplex>,
    /// SMMUs.
    pub smmus: Vec<Smmu>,
    /// Named components (platform devices), not decoded further.
    pub named_components: usize,
    /// Nodes of other types (PMCG, reserved memory ranges...).
    pub other_nodes: usize,
}

impl Iort {
    /// The ITS group and device id that MSIs of requester id `rid` on PCI
    /// segment `segment` reach, following at most one SMMU.
    pub fn msi_target(&self, segment: u32, rid: u32) -> Option<(usize, u32)> {
        let rc = self.root_complexes.iter().find(|r| r.segment == segment)?;
        let (target, id) = map_through(&rc.id_mappings, rid)?;
        match target {
            IortTarget::ItsGroup(group) => Some((group, id)),
            IortTarget::Smmu(smmu) => match map_through(&self.smmus.get(smmu)?.id_mappings, id)? {
                (IortTarget::ItsGroup(group), device) => Some((group, device)),
                _ => None,
            },
            IortTarget::Other(_) => None,
        }
    }
}

/// Follows the first mapping whose input range holds `id`. Single mappings
/// (flag bit 0) name the node's own MSIs, not those of the ids behind it,
/// so they never translate an id (DEN 0049, 3.4).
fn map_through(mappings: &[IdMapping], id: u32) -> Option<(IortTarget, u32)> {
    mappings
        .iter()
        .filter(|m| !m.single)
        .find_map(|m| Some((m.target, m.map(id)?)))
}

/// Why an IORT cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IortError {
    /// The table is shorter than its fixed part.
    TooShort(usize),
    /// A node lies (partly) outside the table.
    BadNode {
        /// Its offset.
        offset: usize,
    },
    /// A node's id mapping array lies outside the node.
    BadMappings {
        /// The node's offset.
        offset: usize,
    },
}

impl fmt::Display for IortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "table too short ({n} bytes)"),
            Self::BadNode { offset } => write!(f, "node at offset {offset} does not fit"),
            Self::BadMappings { offset } => {
                write!(f, "id mappings of the node at offset {offset} do not fit")
            }
        }
    }
}

const NODE_HEADER: usize = 16;
const MAPPING_LEN: usize = 20;
/// Node types (DEN 0049, table 4).
const ITS_GROUP: u8 = 0;
const NAMED_COMPONENT: u8 = 1;
const ROOT_COMPLEX: u8 = 2;
const SMMU_V1_V2: u8 = 3;
const SMMU_V3: u8 = 4;

/// A node as found, before its mappings are resolved.
struct RawNode<'a> {
    offset: usize,
    kind: u8,
    bytes: &'a [u8],
}

/// Decodes an IORT from its bytes (header included).
pub fn parse(table: &[u8]) -> Result<Iort, IortError> {
    let count = u32_at(table, 36).ok_or(IortError::TooShort(table.len()))?;
    let first = u32_at(table, 40).ok_or(IortError::TooShort(table.len()))? as usize;
    let mut nodes = Vec::new();
    let mut offset = first;
    for _ in 0..count {
        let bad = IortError::BadNode { offset };
        let length = usize::from(u16_at(table, offset + 1).ok_or(bad)?);
        if length < NODE_HEADER || offset < 48 {
            return Err(bad);
        }
        let bytes = table
            .get(offset..offset.checked_add(length).ok_or(bad)?)
            .ok_or(bad)?;
        nodes.push(RawNode {
            offset,
            kind: bytes[0],
            bytes,
        });
        offset += length;
    }
    let mut iort = Iort::default();
    // ITS groups and SMMUs first, so that mappings can name them by index.
    for node in &nodes {
        let bad = IortError::BadNode {
            offset: node.offset,
        };
        match node.kind {
            ITS_GROUP => {
                let n = u32_at(node.bytes, 16).ok_or(bad)? as usize;
                let ids = (0..n)
                    .map(|i| u32_at(node.bytes, 20 + 4 * i).ok_or(bad))
                    .collect::<Result<Vec<_>, _>>()?;
                iort.its_groups.push(ItsGroup {
                    offset: node.offset as u32,
                    its_ids: ids,
                });
            }
            SMMU_V1_V2 | SMMU_V3 => iort.smmus.push(Smmu {
                offset: node.offset as u32,
                version: if node.kind == SMMU_V3 { 3 } else { 2 },
                base: u64_at(node.bytes, 16).ok_or(bad)?,
                id_mappings: Vec::new(),
            }),
            _ => {}
        }
    }
    for node in &nodes {
        let bad = IortError::BadNode {
            offset: node.offset,
        };
        match node.kind {
            ROOT_COMPLEX => {
                let segment = u32_at(node.bytes, 28).ok_or(bad)?;
                let id_mappings = mappings(node, &iort)?;
                iort.root_complexes.push(RootComplex {
                    segment,
                    id_mappings,
                });
            }
            SMMU_V1_V2 | SMMU_V3 => {
                let resolved = mappings(node, &iort)?;
                if let Some(smmu) = iort
                    .smmus
                    .iter_mut()
                    .find(|s| s.offset as usize == node.offset)
                {
                    smmu.id_mappings = resolved;
                }
            }
            NAMED_COMPONENT => iort.named_components += 1,
            ITS_GROUP => {}
            _ => iort.other_nodes += 1,
        }
    }
    Ok(iort)
}

/// The node's id mappings with their output references resolved.
fn mappings(node: &RawNode<'_>, iort: &Iort) -> Result<Vec<IdMapping>, IortError> {
    let bad = IortError::BadMappings {
        offset: node.offset,
    };
    let count = u32_at(node.bytes, 8).ok_or(bad)? as usize;
    let start = u32_at(node.bytes, 12).ok_or(bad)? as usize;
    if count == 0 {
        return Ok(Vec::new());
    }
    let end = count
        .checked_mul(MAPPING_LEN)
        .and_then(|n| n.checked_add(start))
        .ok_or(bad)?;
    let array = node.bytes.get(start..end).ok_or(bad)?;
    Ok(array
        .chunks_exact(MAPPING_LEN)
        .map(|m| {
            let reference = u32_at(m, 12).unwrap_or(0);
            IdMapping {
                input_base: u32_at(m, 0).unwrap_or(0),
                id_count_minus_one: u32_at(m, 4).unwrap_or(0),
                output_base: u32_at(m, 8).unwrap_or(0),
                target: resolve(iort, reference),
                single: u8_at(m, 16).unwrap_or(0) & 1 != 0,
            }
        })
        .collect())
}

fn resolve(iort: &Iort, reference: u32) -> IortTarget {
    if let Some(i) = iort.its_groups.iter().position(|g| g.offset == reference) {
        IortTarget::ItsGroup(i)
    } else if let Some(i) = iort.smmus.iter().position(|s| s.offset == reference) {
        IortTarget::Smmu(i)
    } else {
        IortTarget::Other(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::bytes::test_table;
    use alloc::vec::Vec;

    fn node(kind: u8, fields: &[u8], mappings: &[[u32; 5]]) -> Vec<u8> {
        let start = 16 + fields.len();
        let length = start + 20 * mappings.len();
        let mut n = alloc::vec![kind];
        n.extend_from_slice(&(length as u16).to_le_bytes());
        n.push(0);
        n.extend_from_slice(&0u32.to_le_bytes());
        n.extend_from_slice(&(mappings.len() as u32).to_le_bytes());
        n.extend_from_slice(&(start as u32).to_le_bytes());
        n.extend_from_slice(fields);
        for m in mappings {
            for v in m {
                n.extend_from_slice(&v.to_le_bytes());
            }
        }
        n
    }

    /// Root complex on segment 1 -> SMMUv3 (stream id = rid + 0x10000)
    /// -> ITS group 0 (device id = stream id).
    fn with_smmu() -> Vec<u8> {
        let its = node(ITS_GROUP, &[1, 0, 0, 0, 7, 0, 0, 0], &[]);
        let its_at = 48u32;
        let smmu_at = its_at + its.len() as u32;
        let mut smmu_fields = alloc::vec![0u8; 52];
        smmu_fields[..8].copy_from_slice(&0x0905_0000u64.to_le_bytes());
        let smmu = node(
            SMMU_V3,
            &smmu_fields,
            &[[0x10000, 0xffff, 0x10000, its_at, 0]],
        );
        let mut rc_fields = alloc::vec![0u8; 20];
        rc_fields[12..16].copy_from_slice(&1u32.to_le_bytes());
        let rc = node(
            ROOT_COMPLEX,
            &rc_fields,
            &[[0, 0xffff, 0x10000, smmu_at, 0]],
        );
        let mut body = Vec::new();
        body.extend_from_slice(&3u32.to_le_bytes());
        body.extend_from_slice(&48u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&its);
        body.extend_from_slice(&smmu);
        body.extend_from_slice(&rc);
        test_table(b"IORT", 3, &body)
    }

    #[test]
    fn msi_through_an_smmu() {
        let iort = parse(&with_smmu()).unwrap();
        assert_eq!(iort.its_groups[0].its_ids, [7]);
        assert_eq!(iort.smmus[0].base, 0x0905_0000);
        assert_eq!(
            iort.root_complexes[0].id_mappings[0].target,
            IortTarget::Smmu(0)
        );
        assert_eq!(iort.msi_target(1, 0x0100), Some((0, 0x10100)));
        assert_eq!(iort.msi_target(0, 0x0100), None);
    }

    #[test]
    fn mappings_outside_their_node_are_refused() {
        let mut t = with_smmu();
        let rc_at = t.len() - (16 + 20 + 20);
        // The root complex's mapping array offset points past the node.
        t[rc_at + 12..rc_at + 16].copy_from_slice(&200u32.to_le_bytes());
        assert_eq!(parse(&t), Err(IortError::BadMappings { offset: rc_at }));
        t[36..40].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(parse(&t), Err(IortError::BadNode { .. })));
    }
}
