//! What the GIC ITS and the redistributors need in memory, worked out from
//! their ID registers, and the base registers that hand it to them
//! (ARM IHI 0069: `GITS_TYPER` 12.19.22, `GITS_BASER<n>` 12.19.1,
//! `GITS_CBASER` 12.19.2, `GICR_PROPBASER` 12.11.31, `GICR_PENDBASER`
//! 12.11.30). Pure: register values in, register values and sizes out, so
//! the arithmetic is tested on the host.

/// The first LPI INTID.
pub const FIRST_LPI: u32 = 8192;
/// LPI INTIDs Stratus uses: kernel-core's dispatch table stops at 9216.
pub const MAX_LPIS: u32 = 1024;
/// INTID bits the LPI configuration and pending tables cover: 14 bits
/// (INTIDs below 16384), the least that holds LPIs at all.
pub const LPI_ID_BITS: u32 = 14;
/// Events per device: each device's ITT holds this many (a power of two).
pub const EVENTS_PER_DEVICE: u32 = 64;
/// Device ids a flat device table is sized for at most: PCI requester ids
/// (16 bits); IORT output bases beyond need a two-level table (not done).
pub const MAX_DEVICE_ID_BITS: u32 = 16;
/// `GITS_BASER<n>.Size` is 8 bits: at most 256 pages per table.
const MAX_TABLE_PAGES: u64 = 256;
/// The command queue: 64 KiB (2048 commands), 64 KiB aligned.
pub const COMMAND_QUEUE_BYTES: u64 = 0x10000;

/// What `GITS_TYPER` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItsTyper {
    /// Physical LPIs supported (bit 0).
    pub physical: bool,
    /// Bytes per ITT entry (bits 7:4, plus one).
    pub itt_entry_bytes: u32,
    /// Event id bits (bits 12:8, plus one).
    pub event_id_bits: u32,
    /// Device id bits (bits 17:13, plus one).
    pub device_id_bits: u32,
    /// MAPC names redistributors by physical address (bit 19), else by
    /// processor number.
    pub physical_target_addresses: bool,
    /// Collections held in the ITS itself (bits 31:24).
    pub hardware_collections: u32,
    /// Collection id bits: bits 35:32 plus one when `CIL` (bit 36), else 16.
    pub collection_id_bits: u32,
}

impl ItsTyper {
    /// Decodes `GITS_TYPER`.
    pub fn decode(typer: u64) -> Self {
        let field = |hi: u32, lo: u32| ((typer >> lo) & ((1 << (hi - lo + 1)) - 1)) as u32;
        Self {
            physical: field(0, 0) == 1,
            itt_entry_bytes: field(7, 4) + 1,
            event_id_bits: field(12, 8) + 1,
            device_id_bits: field(17, 13) + 1,
            physical_target_addresses: field(19, 19) == 1,
            hardware_collections: field(31, 24),
            collection_id_bits: if field(36, 36) == 1 {
                field(35, 32) + 1
            } else {
                16
            },
        }
    }

    /// Bytes of one device's ITT for [`EVENTS_PER_DEVICE`] events, rounded
    /// up to the 256 bytes ITTs are aligned to.
    pub fn itt_bytes(&self) -> u64 {
        (u64::from(EVENTS_PER_DEVICE) * u64::from(self.itt_entry_bytes)).next_multiple_of(256)
    }
}

/// What a `GITS_BASER<n>` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// Type 0: not implemented.
    None,
    /// Type 1: the device table.
    Devices,
    /// Type 2: vPEs (GICv4), not used.
    Vpes,
    /// Type 4: the interrupt collection table.
    Collections,
    /// A reserved type.
    Reserved(u8),
}

/// A `GITS_BASER<n>` as read at reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Baser {
    /// The table type (bits 58:56).
    pub kind: TableKind,
    /// Bytes per entry (bits 52:48, plus one).
    pub entry_bytes: u64,
    /// Page size (bits 9:8): 4, 16 or 64 KiB.
    pub page_bytes: u64,
}

impl Baser {
    /// Decodes a `GITS_BASER<n>`.
    pub fn decode(value: u64) -> Self {
        let kind = match (value >> 56) & 7 {
            0 => TableKind::None,
            1 => TableKind::Devices,
            2 => TableKind::Vpes,
            4 => TableKind::Collections,
            other => TableKind::Reserved(other as u8),
        };
        Self {
            kind,
            entry_bytes: ((value >> 48) & 0x1f) + 1,
            page_bytes: match (value >> 8) & 3 {
                0 => 0x1000,
                1 => 0x4000,
                _ => 0x10000,
            },
        }
    }

    /// A flat table for `ids` entries: whole pages, at most 256 of them.
    /// `covered` says how many ids the table holds (fewer than asked when
    /// the 256 pages run out).
    pub fn layout(&self, ids: u64) -> TableLayout {
        let wanted = ids.max(1).saturating_mul(self.entry_bytes);
        let pages = wanted.div_ceil(self.page_bytes).clamp(1, MAX_TABLE_PAGES);
        let bytes = pages * self.page_bytes;
        TableLayout {
            pages,
            bytes,
            covered: bytes / self.entry_bytes,
        }
    }

    /// The value that hands the table at `phys` (aligned to the page
    /// size) laid out as `layout` to the ITS: valid, flat, write-back
    /// cacheable, inner shareable, type and entry size as read.
    pub fn value(&self, read: u64, layout: &TableLayout, phys: u64) -> u64 {
        let address = if self.page_bytes == 0x10000 {
            // 64 KiB pages: PA[47:16] in place, PA[51:48] in bits 15:12.
            (phys & 0x0000_ffff_ffff_0000) | (((phys >> 48) & 0xf) << 12)
        } else {
            phys & 0x0000_ffff_ffff_f000
        };
        let kept = read & (0x7 << 56 | 0x1f << 48 | 0x3 << 8);
        VALID | INNER_WRITE_BACK | kept | address | INNER_SHAREABLE | (layout.pages - 1)
    }
}

/// A flat ITS table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLayout {
    /// Pages of the table's page size.
    pub pages: u64,
    /// Bytes (pages times page size).
    pub bytes: u64,
    /// Entries it holds.
    pub covered: u64,
}

/// Bit 63 of the base registers: valid.
const VALID: u64 = 1 << 63;
/// Bits 61:59 (ITS registers) = 0b111: normal, inner write-back,
/// read- and write-allocate.
const INNER_WRITE_BACK: u64 = 0b111 << 59;
/// Bits 11:10 = 0b01: inner shareable.
const INNER_SHAREABLE: u64 = 0b01 << 10;
/// Bits 11:10: shareability.
pub const SHAREABILITY_MASK: u64 = 0b11 << 10;
/// Bits 9:7 (redistributor registers) = 0b111: inner write-back.
const GICR_INNER_WRITE_BACK: u64 = 0b111 << 7;

/// `GITS_CBASER` for a command queue of `bytes` (a multiple of 4 KiB, at
/// most 1 MiB) at `phys` (64 KiB aligned).
pub fn cbaser_value(phys: u64, bytes: u64) -> u64 {
    VALID
        | INNER_WRITE_BACK
        | (phys & 0x000f_ffff_ffff_f000)
        | INNER_SHAREABLE
        | ((bytes / 0x1000).clamp(1, 256) - 1)
}

/// Bytes of the LPI configuration table for `id_bits` INTID bits: one byte
/// per LPI.
pub fn lpi_config_bytes(id_bits: u32) -> u64 {
    (1u64 << id_bits).saturating_sub(u64::from(FIRST_LPI))
}

/// Bytes of one LPI pending table for `id_bits` INTID bits: one bit per
/// INTID, the first 1 KiB (SGIs to SPIs) included.
pub fn lpi_pending_bytes(id_bits: u32) -> u64 {
    (1u64 << id_bits) / 8
}

/// `GICR_PROPBASER` for the configuration table at `phys` (4 KiB aligned)
/// covering `id_bits` INTID bits.
pub fn propbaser_value(phys: u64, id_bits: u32) -> u64 {
    (phys & 0x000f_ffff_ffff_f000)
        | INNER_SHAREABLE
        | GICR_INNER_WRITE_BACK
        | u64::from(id_bits - 1)
}

/// `GICR_PENDBASER` for the pending table at `phys` (64 KiB aligned), which
/// the caller zeroed (PTZ, bit 62, tells the redistributor so).
pub fn pendbaser_value(phys: u64) -> u64 {
    (1 << 62) | (phys & 0x000f_ffff_ffff_0000) | INNER_SHAREABLE | GICR_INNER_WRITE_BACK
}

/// An LPI configuration table entry (5.1.1 "LPI Configuration tables"):
/// priority in bits 7:2, bit 1 RES1, bit 0 enable.
pub fn lpi_config_byte(priority: u8, enabled: bool) -> u8 {
    (priority & 0xfc) | 0b10 | u8::from(enabled)
}

/// LPI INTIDs to hand out: from [`FIRST_LPI`], as many as tables of
/// `id_bits` INTID bits cover, at most [`MAX_LPIS`].
pub fn lpi_range(id_bits: u32) -> core::ops::Range<u32> {
    let covered = lpi_config_bytes(id_bits).min(u64::from(MAX_LPIS)) as u32;
    FIRST_LPI..FIRST_LPI + covered
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `GITS_TYPER` shaped like QEMU 10's ITS (its boot line reports
    /// 12-byte ITT entries and processor-number targets): physical, 16
    /// event id bits, 16 device id bits, PTA 0, HCC 0, CIL 1 with 16
    /// collection id bits.
    const QEMU_TYPER: u64 = 1 | (11 << 4) | (15 << 8) | (15 << 13) | (1 << 36) | (15 << 32);

    #[test]
    fn typer_fields() {
        let t = ItsTyper::decode(QEMU_TYPER);
        assert!(t.physical);
        assert_eq!(t.itt_entry_bytes, 12);
        assert_eq!(t.event_id_bits, 16);
        assert_eq!(t.device_id_bits, 16);
        assert!(!t.physical_target_addresses);
        assert_eq!(t.hardware_collections, 0);
        assert_eq!(t.collection_id_bits, 16);
        assert_eq!(
            t.itt_bytes(),
            768,
            "64 events of 12 bytes, a multiple of 256"
        );
        // An 8-byte entry, PTA, 32 hardware collections, no CIL.
        let t = ItsTyper::decode((7 << 4) | (1 << 19) | (32 << 24) | (3 << 32));
        assert_eq!((t.itt_entry_bytes, t.itt_bytes()), (8, 512));
        assert!(t.physical_target_addresses);
        assert_eq!(t.hardware_collections, 32);
        assert_eq!(t.collection_id_bits, 16, "CIDbits counts only with CIL");
        // ITTs are 256-byte aligned: a 3-byte entry still takes 256.
        assert_eq!(ItsTyper::decode(2 << 4).itt_bytes(), 256);
    }

    #[test]
    fn device_table_of_qemu_and_of_small_pages() {
        // A device table with 64 KiB pages and 8-byte entries (what QEMU's
        // ITS source sets at reset).
        let read = (1 << 56) | (7 << 48) | (2 << 8);
        let b = Baser::decode(read);
        assert_eq!(
            (b.kind, b.entry_bytes, b.page_bytes),
            (TableKind::Devices, 8, 0x10000)
        );
        let l = b.layout(1 << 16);
        assert_eq!(
            l,
            TableLayout {
                pages: 8,
                bytes: 0x8_0000,
                covered: 1 << 16
            }
        );
        let v = b.value(read, &l, 0x4_4000_0000);
        assert_eq!(v >> 63, 1, "valid");
        assert_eq!((v >> 62) & 1, 0, "flat");
        assert_eq!((v >> 56) & 7, 1, "type kept");
        assert_eq!((v >> 48) & 0x1f, 7, "entry size kept");
        assert_eq!(v & 0xff, 7, "eight pages");
        assert_eq!((v >> 8) & 3, 2, "page size kept");
        assert_eq!((v >> 10) & 3, 1, "inner shareable");
        assert_eq!(v & 0x0000_ffff_ffff_0000, 0x4_4000_0000);
        // A 52-bit address with 64 KiB pages: PA[51:48] in bits 15:12.
        let high = b.value(read, &l, 0x000a_0000_1234_0000);
        assert_eq!((high >> 12) & 0xf, 0xa);
        assert_eq!(high & 0x0000_ffff_ffff_0000, 0x1234_0000);

        // 4 KiB pages, 32-byte entries: 2^16 devices would need 512 pages;
        // the table stops at 256 and says how many ids it covers.
        let b = Baser::decode((1 << 56) | (31 << 48));
        let l = b.layout(1 << 16);
        assert_eq!((l.pages, l.bytes, l.covered), (256, 0x10_0000, 0x8000));
        assert_eq!(b.value(0, &l, 0x8000_1000) & 0xff, 255);
        assert_eq!(
            b.value(0, &l, 0x8000_1000) & 0x0000_ffff_ffff_f000,
            0x8000_1000
        );
    }

    #[test]
    fn collection_table_is_at_least_a_page() {
        let read = (4 << 56) | (7 << 48) | (1 << 8);
        let b = Baser::decode(read);
        assert_eq!((b.kind, b.page_bytes), (TableKind::Collections, 0x4000));
        assert_eq!(
            b.layout(4),
            TableLayout {
                pages: 1,
                bytes: 0x4000,
                covered: 0x800
            }
        );
        assert_eq!(b.layout(0).pages, 1);
        assert_eq!(Baser::decode(0).kind, TableKind::None);
        assert_eq!(Baser::decode(3 << 56).kind, TableKind::Reserved(3));
    }

    #[test]
    fn queue_and_redistributor_tables() {
        let c = cbaser_value(0x4_0001_0000, COMMAND_QUEUE_BYTES);
        assert_eq!(c >> 63, 1);
        assert_eq!(c & 0xff, 15, "sixteen 4 KiB pages");
        assert_eq!(c & 0x000f_ffff_ffff_f000, 0x4_0001_0000);
        assert_eq!((c >> 10) & 3, 1);

        assert_eq!(lpi_config_bytes(LPI_ID_BITS), 8192);
        assert_eq!(lpi_pending_bytes(LPI_ID_BITS), 2048);
        let p = propbaser_value(0x4000_3000, LPI_ID_BITS);
        assert_eq!(p & 0x1f, 13, "IDbits holds bits minus one");
        assert_eq!(p & 0x000f_ffff_ffff_f000, 0x4000_3000);
        assert_eq!((p >> 7) & 7, 0b111);
        let q = pendbaser_value(0x4001_0000);
        assert_eq!(q >> 62 & 1, 1, "PTZ");
        assert_eq!(q & 0x000f_ffff_ffff_0000, 0x4001_0000);

        assert_eq!(lpi_config_byte(0x80, true), 0x83);
        assert_eq!(lpi_config_byte(0x81, false), 0x82);
        assert_eq!(lpi_range(LPI_ID_BITS), 8192..9216);
        assert_eq!(lpi_range(13), 8192..8192, "13 bits hold no LPI");
        assert_eq!(lpi_range(4), 8192..8192);
    }
}
