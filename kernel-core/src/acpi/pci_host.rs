//! PCI host bridges from the DSDT and SSDTs: their segment, bus range and
//! the windows through which their I/O space reaches the CPU.
//!
//! A PCI I/O BAR holds a PCI I/O port. On x86 that is a CPU port; on Arm
//! there is no port space and the host bridge decodes a window of memory
//! as PCI I/O. Only ACPI says where: the host bridge device (`_HID` or
//! `_CID` `PNP0A08`, PCI Express, or `PNP0A03`, PCI) lists in its `_CRS`
//! resource template the ranges it forwards, and an I/O range's Address
//! Space Descriptor (QWord, DWord, Word or Extended; ACPI 6.5, 6.4.3.5)
//! carries a translation offset: the address on the primary (CPU) side is
//! the PCI port plus that offset. QEMU's `virt` says
//! `DWordIO(0x0000-0xffff, translation 0x3eff0000)`; q35 says ports
//! `0x0-0xcf7` and `0xd00-0xffff`, untranslated.
//!
//! The namespace comes from [`aml_scan`](super::aml_scan) (a bounded walk,
//! no interpreter); the resource template is decoded here, bounded by its
//! buffer. A `_CRS` that a method computes is reported, never guessed at.

use super::aml_scan::{AmlPath, AmlValue, Namespace, NotStatic, Stop, package_constants};
use super::tables::HEADER_LEN;
use alloc::vec::Vec;
use core::fmt;

/// `_HID`/`_CID` of a PCI Express root bridge.
const PCIE_HOST: &[u8] = b"PNP0A08";
/// `_HID`/`_CID` of a PCI root bridge.
const PCI_HOST: &[u8] = b"PNP0A03";

/// Small resource item: End Tag (ACPI 6.5, 6.4.2.9).
const END_TAG: u8 = 0x0f;
/// Large resource items: Address Space Descriptors (6.4.3.5).
const DWORD_ADDRESS: u8 = 0x07;
const WORD_ADDRESS: u8 = 0x08;
const QWORD_ADDRESS: u8 = 0x0a;
const EXTENDED_ADDRESS: u8 = 0x0b;
/// Resource Type of an Address Space Descriptor.
const RESOURCE_IO: u8 = 1;
const RESOURCE_BUS: u8 = 2;
/// General Flags bit 0: the device consumes (1) or produces (0) the range.
const CONSUMER: u8 = 1 << 0;
/// I/O Type Specific Flags bit 4: translation type (primary side is memory).
const IO_TYPE_TRANSLATION: u8 = 1 << 4;
/// I/O Type Specific Flags bit 5: sparse translation.
const IO_SPARSE_TRANSLATION: u8 = 1 << 5;

/// A range of PCI I/O ports a host bridge forwards, and where the CPU
/// reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoWindow {
    /// First PCI I/O port.
    pub pci_start: u64,
    /// Last PCI I/O port.
    pub pci_end: u64,
    /// Added to a PCI port to give the CPU-side address.
    pub translation: u64,
    /// The descriptor says the primary side is memory (`_TTP`,
    /// TypeTranslation). Arm firmware (QEMU virt) leaves it clear while
    /// meaning memory, since an Arm CPU has no I/O space.
    pub type_translation: bool,
}

impl IoWindow {
    /// The window as `stratus-pci` translates I/O BARs through it.
    pub fn pci_window(&self) -> stratus_pci::IoWindow {
        stratus_pci::IoWindow {
            pci_start: self.pci_start,
            pci_end: self.pci_end,
            translation: self.translation,
        }
    }

    /// The CPU-side address of PCI port `port`, when the window holds
    /// `port..port + len` (`stratus_pci::IoWindow::cpu_address`).
    pub fn cpu_address(&self, port: u64, len: u64) -> Option<u64> {
        self.pci_window().cpu_address(port, len)
    }
}

impl fmt::Display for IoWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "io {:#x}-{:#x}", self.pci_start, self.pci_end)?;
        if self.translation != 0 {
            write!(f, "+{:#x}", self.translation)?;
        }
        Ok(())
    }
}

/// A PCI host bridge the namespace declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciHostBridge {
    /// Its path (`\_SB.PCI0`).
    pub path: AmlPath,
    /// `_SEG` (0 when absent).
    pub segment: u16,
    /// Bus numbers: the `_CRS` bus range, else `_BBN` (0 when absent) only.
    pub buses: (u8, u8),
    /// The I/O windows `_CRS` lists (producer ranges only).
    pub io_windows: Vec<IoWindow>,
    /// Why `_CRS` could not be read, when it could not (the bridge is still
    /// listed, without windows).
    pub crs_error: Option<CrsError>,
}

impl PciHostBridge {
    /// Whether the bridge decodes bus `bus` of segment `segment`.
    pub fn serves(&self, segment: u16, bus: u8) -> bool {
        self.segment == segment && (self.buses.0..=self.buses.1).contains(&bus)
    }
}

impl fmt::Display for PciHostBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seg {} bus {:02x}-{:02x}",
            self.path, self.segment, self.buses.0, self.buses.1
        )?;
        for window in &self.io_windows {
            write!(f, " {window}")?;
        }
        if let Some(e) = &self.crs_error {
            write!(f, " (_CRS: {e})")?;
        }
        Ok(())
    }
}

/// Why a host bridge's `_CRS` gave nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrsError {
    /// `_CRS` is not a constant buffer (see [`NotStatic`]).
    NotStatic(NotStatic),
    /// A resource item runs past the buffer.
    Truncated {
        /// Offset of the item in the buffer.
        offset: usize,
    },
    /// An Address Space Descriptor shorter than its type needs.
    ShortDescriptor {
        /// Offset of the item in the buffer.
        offset: usize,
        /// Its length field.
        length: u16,
    },
    /// The buffer ends without an End Tag.
    NoEndTag,
    /// An I/O range whose minimum lies above its maximum, whose length
    /// disagrees with them, or whose translated end overflows 64 bits.
    BadRange {
        /// Offset of the descriptor in the buffer.
        offset: usize,
    },
    /// An I/O range with sparse translation, which Stratus does not do.
    SparseTranslation {
        /// Offset of the descriptor in the buffer.
        offset: usize,
    },
}

impl fmt::Display for CrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotStatic(e) => e.fmt(f),
            Self::Truncated { offset } => {
                write!(f, "resource item at byte {offset} runs past the buffer")
            }
            Self::ShortDescriptor { offset, length } => write!(
                f,
                "address space descriptor at byte {offset} has length {length}, too short"
            ),
            Self::NoEndTag => f.write_str("no end tag"),
            Self::BadRange { offset } => {
                write!(f, "I/O range at byte {offset} is inconsistent")
            }
            Self::SparseTranslation { offset } => write!(
                f,
                "I/O range at byte {offset} uses sparse translation (not supported)"
            ),
        }
    }
}

/// What the namespace says about PCI host bridges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PciHosts {
    /// Every host bridge, in namespace order.
    pub bridges: Vec<PciHostBridge>,
    /// Where the namespace walk stopped early (a host bridge may hide
    /// there); the first few.
    pub stopped: Vec<Stop>,
    /// How many scopes stopped early in all.
    pub stopped_count: usize,
}

/// Stops kept in [`PciHosts::stopped`].
const STOPS_KEPT: usize = 4;

impl PciHosts {
    /// The bridge that decodes bus `bus` of segment `segment`.
    pub fn bridge_for(&self, segment: u16, bus: u8) -> Option<&PciHostBridge> {
        self.bridges.iter().find(|b| b.serves(segment, bus))
    }
}

/// The host bridges of a DSDT and its SSDTs (whole tables, header
/// included; a table shorter than its header adds nothing).
pub fn find<'t>(tables: impl IntoIterator<Item = &'t [u8]>) -> PciHosts {
    let mut ns = Namespace::new();
    for table in tables {
        ns.scan(table.get(HEADER_LEN..).unwrap_or_default());
    }
    from_namespace(&ns)
}

/// The host bridges of a scanned namespace.
pub fn from_namespace(ns: &Namespace<'_>) -> PciHosts {
    let mut hosts = PciHosts {
        stopped: ns.stopped.iter().take(STOPS_KEPT).copied().collect(),
        stopped_count: ns.stopped.len(),
        ..PciHosts::default()
    };
    for device in &ns.devices {
        if !is_host_bridge(ns, device) || hosts.bridges.iter().any(|b| &b.path == device) {
            continue;
        }
        let integer = |name: &[u8; 4]| match ns.get(device, name) {
            Some(AmlValue::Integer(v)) => Some(v),
            _ => None,
        };
        let segment = integer(b"_SEG").map_or(0, |v| v as u16);
        let bbn = integer(b"_BBN").map_or(0, |v| v as u8);
        let mut bridge = PciHostBridge {
            path: device.clone(),
            segment,
            buses: (bbn, bbn),
            io_windows: Vec::new(),
            crs_error: None,
        };
        match ns
            .static_buffer(device, b"_CRS")
            .map_err(CrsError::NotStatic)
            .and_then(resources)
        {
            Ok(resources) => {
                bridge.io_windows = resources.io_windows;
                if let Some(buses) = resources.buses {
                    bridge.buses = buses;
                }
            }
            Err(e) => bridge.crs_error = Some(e),
        }
        hosts.bridges.push(bridge);
    }
    hosts
}

/// Whether `_HID` or `_CID` (an id or a package of ids) names a PCI or
/// PCI Express root bridge.
fn is_host_bridge(ns: &Namespace<'_>, device: &AmlPath) -> bool {
    let is_pci = |id: AmlValue<'_>| match id {
        AmlValue::Integer(v) => {
            let id = eisa_id(v as u32);
            id == PCIE_HOST || id == PCI_HOST
        }
        AmlValue::String(s) => s == PCIE_HOST || s == PCI_HOST,
        _ => false,
    };
    [b"_HID", b"_CID"]
        .iter()
        .filter_map(|name| ns.get(device, name))
        .any(|id| match id {
            AmlValue::Package(body) => package_constants(body).any(is_pci),
            id => is_pci(id),
        })
}

/// The text of a compressed EISA id (`EisaId("PNP0A08")` = 0x080ad041 as
/// AML stores it: three 5-bit letters, then four hex digits, big-endian).
pub fn eisa_id(value: u32) -> [u8; 7] {
    let v = value.swap_bytes();
    let letter = |shift: u32| b'@' + ((v >> shift) & 0x1f) as u8;
    let hex = |shift: u32| b"0123456789ABCDEF"[((v >> shift) & 0xf) as usize];
    [
        letter(26),
        letter(21),
        letter(16),
        hex(12),
        hex(8),
        hex(4),
        hex(0),
    ]
}

/// What a host bridge's resource template says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeResources {
    /// The bus range it produces, if it lists one.
    pub buses: Option<(u8, u8)>,
    /// The I/O windows it produces.
    pub io_windows: Vec<IoWindow>,
}

/// Decodes a resource template (ACPI 6.5, 6.4): small and large items up
/// to the End Tag, each bounded by the buffer. Producer Address Space
/// Descriptors for I/O become windows, one for bus numbers the bus range;
/// everything else is stepped over.
pub fn resources(buffer: &[u8]) -> Result<BridgeResources, CrsError> {
    let mut out = BridgeResources::default();
    let mut at = 0;
    while at < buffer.len() {
        let tag = buffer[at];
        if tag & 0x80 == 0 {
            // Small item: tag in bits 6:3, length in bits 2:0.
            let len = 1 + usize::from(tag & 0x07);
            if at + len > buffer.len() {
                return Err(CrsError::Truncated { offset: at });
            }
            if (tag >> 3) & 0x0f == END_TAG {
                return Ok(out);
            }
            at += len;
            continue;
        }
        let header = buffer
            .get(at + 1..at + 3)
            .ok_or(CrsError::Truncated { offset: at })?;
        let length = u16::from_le_bytes([header[0], header[1]]);
        let item_end = at + 3 + usize::from(length);
        let item = buffer
            .get(at..item_end)
            .ok_or(CrsError::Truncated { offset: at })?;
        if let Some(space) = address_space(tag & 0x7f, item, at)? {
            match space.resource_type {
                RESOURCE_IO if space.general_flags & CONSUMER == 0 => {
                    out.io_windows.push(io_window(&space, at)?);
                }
                RESOURCE_BUS if space.general_flags & CONSUMER == 0 => {
                    let start = u8::try_from(space.min).unwrap_or(u8::MAX);
                    let end = u8::try_from(space.max).unwrap_or(u8::MAX);
                    if start <= end {
                        out.buses.get_or_insert((start, end));
                    }
                }
                _ => {}
            }
        }
        at = item_end;
    }
    Err(CrsError::NoEndTag)
}

/// The fields of an Address Space Descriptor, widened to 64 bits.
struct AddressSpace {
    resource_type: u8,
    general_flags: u8,
    type_flags: u8,
    min: u64,
    max: u64,
    translation: u64,
    length: u64,
}

/// Decodes large item `kind` as an Address Space Descriptor; `None` for
/// other large items.
fn address_space(kind: u8, item: &[u8], offset: usize) -> Result<Option<AddressSpace>, CrsError> {
    // (minimum item length with the 3-byte header, field width, offset of
    // the granularity field)
    let (min_len, width, fields) = match kind {
        WORD_ADDRESS => (16, 2, 6),
        DWORD_ADDRESS => (26, 4, 6),
        QWORD_ADDRESS => (46, 8, 6),
        EXTENDED_ADDRESS => (56, 8, 8),
        _ => return Ok(None),
    };
    if item.len() < min_len {
        return Err(CrsError::ShortDescriptor {
            offset,
            length: (item.len() - 3) as u16,
        });
    }
    let field = |index: usize| {
        let start = fields + index * width;
        item[start..start + width]
            .iter()
            .rev()
            .fold(0u64, |v, &b| (v << 8) | u64::from(b))
    };
    Ok(Some(AddressSpace {
        resource_type: item[3],
        general_flags: item[4],
        type_flags: item[5],
        // Field 0 is the granularity.
        min: field(1),
        max: field(2),
        translation: field(3),
        length: field(4),
    }))
}

fn io_window(space: &AddressSpace, offset: usize) -> Result<IoWindow, CrsError> {
    let type_translation = space.type_flags & IO_TYPE_TRANSLATION != 0;
    if type_translation && space.type_flags & IO_SPARSE_TRANSLATION != 0 {
        return Err(CrsError::SparseTranslation { offset });
    }
    let bad = CrsError::BadRange { offset };
    if space.min > space.max {
        return Err(bad);
    }
    // A length of zero leaves the size to min and max (a window that may
    // move); otherwise it must say the same as they do.
    let span = (space.max - space.min).checked_add(1);
    if space.length != 0 && span != Some(space.length) {
        return Err(bad);
    }
    space.max.checked_add(space.translation).ok_or(bad)?;
    Ok(IoWindow {
        pci_start: space.min,
        pci_end: space.max,
        translation: space.translation,
        type_translation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU virt's PCI0 `_CRS`, as its DSDT holds it: WordBusNumber 0-0xff,
    /// DWordMemory 0x10000000-0x3efeffff, DWordIO 0-0xffff translated by
    /// 0x3eff0000, QWordMemory 0x8000000000-0xffffffffff, End Tag.
    const VIRT_CRS: &[u8] = &[
        0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00,
        0x01, //
        0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0xff,
        0xff, 0xfe, 0x3e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x2e, //
        0x87, 0x17, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
        0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0x3e, 0x00, 0x00, 0x01, 0x00, //
        0x79, 0x00,
    ];

    #[test]
    fn decodes_qemu_virts_resource_template() {
        let r = resources(VIRT_CRS).unwrap();
        assert_eq!(r.buses, Some((0, 0xff)));
        assert_eq!(
            r.io_windows,
            [IoWindow {
                pci_start: 0,
                pci_end: 0xffff,
                translation: 0x3eff_0000,
                type_translation: false
            }]
        );
        assert_eq!(r.io_windows[0].cpu_address(0x1000, 8), Some(0x3eff_1000));
        assert_eq!(r.io_windows[0].cpu_address(0xfffc, 8), None);
        assert_eq!(r.io_windows[0].cpu_address(0x1000, 0), None);
    }

    #[test]
    fn eisa_ids() {
        assert_eq!(&eisa_id(0x080a_d041), b"PNP0A08");
        assert_eq!(&eisa_id(0x030a_d041), b"PNP0A03");
    }

    #[test]
    fn broken_templates_are_named() {
        // Cut inside the I/O descriptor.
        assert_eq!(
            resources(&VIRT_CRS[..50]),
            Err(CrsError::Truncated { offset: 42 })
        );
        // No end tag.
        assert_eq!(
            resources(&VIRT_CRS[..VIRT_CRS.len() - 2]),
            Err(CrsError::NoEndTag)
        );
        // A DWord descriptor claiming 4 bytes.
        assert_eq!(
            resources(&[0x87, 0x04, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x79, 0x00]),
            Err(CrsError::ShortDescriptor {
                offset: 0,
                length: 4
            })
        );
        // min above max, and a length that disagrees.
        let mut io = VIRT_CRS[42..68].to_vec();
        io.extend_from_slice(&[0x79, 0x00]);
        let mut swapped = io.clone();
        swapped[10..14].copy_from_slice(&0x2_0000u32.to_le_bytes());
        assert_eq!(resources(&swapped), Err(CrsError::BadRange { offset: 0 }));
        let mut long = io.clone();
        long[22..26].copy_from_slice(&0x2_0000u32.to_le_bytes());
        assert_eq!(resources(&long), Err(CrsError::BadRange { offset: 0 }));
        // Sparse translation.
        let mut sparse = io.clone();
        sparse[5] = IO_TYPE_TRANSLATION | IO_SPARSE_TRANSLATION;
        assert_eq!(
            resources(&sparse),
            Err(CrsError::SparseTranslation { offset: 0 })
        );
        // A consumer I/O range is the bridge's own, not a window.
        let mut consumer = io;
        consumer[4] |= CONSUMER;
        assert_eq!(resources(&consumer).unwrap().io_windows, []);
    }
}
