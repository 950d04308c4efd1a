//! GUID partition table (UEFI 2.10 section 5.3) with a protective MBR (section 5.2.3).
//!
//! Written by hand rather than with the `gpt` crate: the image tool lays out one
//! partition at a fixed place in a buffer, and the GCP export must *grow* an existing
//! image (move the backup header to the new end, the job of `sgdisk -e`), which needs
//! the header fields themselves. Both fit in this module.

use crate::ImageError;

/// Bytes per logical block: every image Stratus writes uses 512-byte sectors.
pub const SECTOR: u64 = 512;
/// Partition entries in each array (the UEFI minimum, 16 KiB).
const ENTRY_COUNT: u32 = 128;
/// Bytes per partition entry.
const ENTRY_SIZE: u32 = 128;
/// Sectors taken by one partition entry array.
const ARRAY_SECTORS: u64 = (ENTRY_COUNT as u64 * ENTRY_SIZE as u64) / SECTOR;
/// Size of the header fields covered by the header CRC.
const HEADER_SIZE: u32 = 92;
/// "EFI PART"
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Revision 1.0.
const REVISION: u32 = 0x0001_0000;
/// First LBA of the EFI system partition: 1 MiB, where every tool aligns partitions.
pub const ESP_FIRST_LBA: u64 = 2048;

/// The EFI system partition type, C12A7328-F81F-11D2-BA4B-00A0C93EC93B.
pub const ESP_TYPE: Guid = Guid::parse_const("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");

/// A GUID in its on-disk byte order (first three fields little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses the textual form `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX` at compile time.
    pub const fn parse_const(text: &str) -> Guid {
        let t = text.as_bytes();
        assert!(t.len() == 36, "GUID text must be 36 characters");
        let mut hex = [0u8; 16];
        let mut i = 0;
        let mut n = 0;
        while i < 36 {
            if t[i] == b'-' {
                i += 1;
                continue;
            }
            hex[n] = (nibble(t[i]) << 4) | nibble(t[i + 1]);
            n += 1;
            i += 2;
        }
        // Data1 (4 bytes), Data2, Data3 (2 bytes each) are stored little-endian.
        Guid([
            hex[3], hex[2], hex[1], hex[0], hex[5], hex[4], hex[7], hex[6], hex[8], hex[9],
            hex[10], hex[11], hex[12], hex[13], hex[14], hex[15],
        ])
    }

    /// A random (version 4, RFC 9562) GUID from 16 random bytes.
    pub fn from_random(mut bytes: [u8; 16]) -> Guid {
        // Version nibble 4 in Data3 (stored little-endian: byte 7 is its high byte).
        bytes[7] = (bytes[7] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Guid(bytes)
    }
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not a hex digit in GUID text"),
    }
}

/// One partition to place in the table.
#[derive(Clone, Debug)]
pub struct Partition {
    /// Partition type GUID.
    pub type_guid: Guid,
    /// Unique partition GUID.
    pub unique_guid: Guid,
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive).
    pub last_lba: u64,
    /// Name, at most 36 UTF-16 code units.
    pub name: String,
}

/// First usable LBA after the protective MBR, the header and the entry array.
pub const fn first_usable_lba() -> u64 {
    2 + ARRAY_SECTORS
}

/// Last usable LBA of a disk of `sectors` sectors (before the backup array and header).
pub const fn last_usable_lba(sectors: u64) -> u64 {
    sectors - 2 - ARRAY_SECTORS
}

/// Writes the protective MBR, primary and backup GPT for `partitions` into `disk`
/// (whose length is the disk size, a multiple of [`SECTOR`]).
pub fn write(disk: &mut [u8], disk_guid: Guid, partitions: &[Partition]) -> Result<(), ImageError> {
    let sectors = disk.len() as u64 / SECTOR;
    if !(disk.len() as u64).is_multiple_of(SECTOR)
        || sectors < first_usable_lba() + ARRAY_SECTORS + 2
    {
        return Err(ImageError::DiskTooSmall {
            bytes: disk.len() as u64,
        });
    }
    if partitions.len() > ENTRY_COUNT as usize {
        return Err(ImageError::Gpt("more partitions than entries"));
    }
    let mut array = vec![0u8; (ARRAY_SECTORS * SECTOR) as usize];
    for (i, p) in partitions.iter().enumerate() {
        if p.first_lba < first_usable_lba()
            || p.last_lba > last_usable_lba(sectors)
            || p.first_lba > p.last_lba
        {
            return Err(ImageError::Gpt("partition outside the usable sectors"));
        }
        let e = &mut array[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
        e[0..16].copy_from_slice(&p.type_guid.0);
        e[16..32].copy_from_slice(&p.unique_guid.0);
        e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
        e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
        let name: Vec<u16> = p.name.encode_utf16().collect();
        if name.len() > 36 {
            return Err(ImageError::Gpt(
                "partition name longer than 36 UTF-16 units",
            ));
        }
        for (j, unit) in name.iter().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
        }
    }
    write_protective_mbr(disk, sectors);
    let fields = HeaderFields {
        disk_guid,
        last_usable: last_usable_lba(sectors),
        array_crc: crc32fast::hash(&array),
    };
    place_tables(disk, sectors, &fields, &array);
    Ok(())
}

/// The header fields that are the same in the primary and the backup header.
struct HeaderFields {
    disk_guid: Guid,
    last_usable: u64,
    array_crc: u32,
}

/// Writes the primary header and array at LBA 1-33 and the backup array and header at
/// the last 33 sectors of a disk of `sectors` sectors.
fn place_tables(disk: &mut [u8], sectors: u64, f: &HeaderFields, array: &[u8]) {
    let last = sectors - 1;
    let backup_array = last - ARRAY_SECTORS;
    let primary = header(1, last, 2, f);
    let backup = header(last, 1, backup_array, f);
    put(disk, 1, &primary);
    put(disk, 2, array);
    put(disk, backup_array, array);
    put(disk, last, &backup);
}

fn put(disk: &mut [u8], lba: u64, bytes: &[u8]) {
    let at = (lba * SECTOR) as usize;
    disk[at..at + bytes.len()].copy_from_slice(bytes);
}

/// One GPT header sector.
fn header(
    my_lba: u64,
    alternate_lba: u64,
    array_lba: u64,
    f: &HeaderFields,
) -> [u8; SECTOR as usize] {
    let mut h = [0u8; SECTOR as usize];
    h[0..8].copy_from_slice(SIGNATURE);
    h[8..12].copy_from_slice(&REVISION.to_le_bytes());
    h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
    // 16..20: header CRC, 20..24: reserved.
    h[24..32].copy_from_slice(&my_lba.to_le_bytes());
    h[32..40].copy_from_slice(&alternate_lba.to_le_bytes());
    h[40..48].copy_from_slice(&first_usable_lba().to_le_bytes());
    h[48..56].copy_from_slice(&f.last_usable.to_le_bytes());
    h[56..72].copy_from_slice(&f.disk_guid.0);
    h[72..80].copy_from_slice(&array_lba.to_le_bytes());
    h[80..84].copy_from_slice(&ENTRY_COUNT.to_le_bytes());
    h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
    h[88..92].copy_from_slice(&f.array_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..HEADER_SIZE as usize]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// LBA 0: one partition of type 0xEE covering the disk (or 2^32-1 sectors of it).
fn write_protective_mbr(disk: &mut [u8], sectors: u64) {
    let mbr = &mut disk[..SECTOR as usize];
    mbr.fill(0);
    let entry = &mut mbr[446..462];
    entry[0] = 0; // not bootable
    entry[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    entry[4] = 0xEE; // GPT protective
    entry[5..8].copy_from_slice(&chs(sectors - 1)); // CHS of the last sector
    entry[8..12].copy_from_slice(&1u32.to_le_bytes());
    let size = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    entry[12..16].copy_from_slice(&size.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
}

/// The MBR's CHS encoding of `lba` with the usual 255 heads and 63 sectors per track,
/// or 0xFFFFFF when the cylinder does not fit in 10 bits (UEFI 2.10 table 5-4).
fn chs(lba: u64) -> [u8; 3] {
    let (heads, sectors) = (255, 63);
    let cylinder = lba / (heads * sectors);
    if cylinder > 1023 {
        return [0xFF, 0xFF, 0xFF];
    }
    let head = (lba / sectors) % heads;
    let sector = lba % sectors + 1;
    [
        head as u8,
        (sector as u8) | (((cylinder >> 8) as u8) << 6),
        cylinder as u8,
    ]
}

/// What [`read_primary`] found in a disk's primary GPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryGpt {
    /// The disk GUID.
    pub disk_guid: Guid,
    /// The last usable LBA the header states.
    pub last_usable: u64,
    /// The LBA of the backup header the primary points to.
    pub alternate_lba: u64,
    /// The partition entry array (all entries).
    pub array: Vec<u8>,
    /// The highest last LBA of any used entry (0 when there is none).
    pub highest_used_lba: u64,
}

/// Reads and checks the primary GPT header and entry array of `disk` (the first
/// sectors of an image are enough when the array follows the header, as it does in
/// every image this tool writes). Everything is checked before it is used: signature,
/// header size, both CRCs and that the array lies where this tool can rewrite it.
pub fn read_primary(disk: &[u8]) -> Result<PrimaryGpt, ImageError> {
    let h = disk
        .get(SECTOR as usize..2 * SECTOR as usize)
        .ok_or(ImageError::Gpt("image shorter than two sectors"))?;
    if &h[0..8] != SIGNATURE {
        return Err(ImageError::Gpt("no GPT header at LBA 1"));
    }
    let size = le32(h, 12);
    if size != HEADER_SIZE {
        return Err(ImageError::Gpt("GPT header size is not 92"));
    }
    let mut copy = h[..HEADER_SIZE as usize].to_vec();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy) != le32(h, 16) {
        return Err(ImageError::Gpt("GPT header CRC mismatch"));
    }
    if le64(h, 24) != 1
        || le64(h, 72) != 2
        || le32(h, 80) != ENTRY_COUNT
        || le32(h, 84) != ENTRY_SIZE
    {
        return Err(ImageError::Gpt(
            "GPT layout other than 128 entries of 128 bytes at LBA 2",
        ));
    }
    let array_bytes = (ARRAY_SECTORS * SECTOR) as usize;
    let array = disk
        .get(2 * SECTOR as usize..2 * SECTOR as usize + array_bytes)
        .ok_or(ImageError::Gpt(
            "image ends inside the partition entry array",
        ))?
        .to_vec();
    if crc32fast::hash(&array) != le32(h, 88) {
        return Err(ImageError::Gpt("partition entry array CRC mismatch"));
    }
    let highest_used_lba = array
        .chunks(ENTRY_SIZE as usize)
        .filter(|e| e[0..16].iter().any(|&b| b != 0))
        .map(|e| le64(e, 40))
        .max()
        .unwrap_or(0);
    let mut disk_guid = [0u8; 16];
    disk_guid.copy_from_slice(&h[56..72]);
    Ok(PrimaryGpt {
        disk_guid: Guid(disk_guid),
        last_usable: le64(h, 48),
        alternate_lba: le64(h, 32),
        array,
        highest_used_lba,
    })
}

/// Rewrites the GPT of an image grown to `new_sectors`: the protective MBR and the
/// primary header in `head` (the image's first 34 sectors) and returns the backup array
/// and header to put in the last 33 sectors. The old backup (at the old end) is for the
/// caller to clear. Partitions do not move; the usable area grows to the new end.
pub fn grow(head: &mut [u8], new_sectors: u64) -> Result<Vec<u8>, ImageError> {
    if (head.len() as u64) < first_usable_lba() * SECTOR {
        return Err(ImageError::Gpt("fewer than 34 sectors given to grow"));
    }
    let gpt = read_primary(head)?;
    if new_sectors <= gpt.alternate_lba || gpt.highest_used_lba > last_usable_lba(new_sectors) {
        return Err(ImageError::Gpt("the new size is not larger than the disk"));
    }
    let fields = HeaderFields {
        disk_guid: gpt.disk_guid,
        last_usable: last_usable_lba(new_sectors),
        array_crc: crc32fast::hash(&gpt.array),
    };
    write_protective_mbr(head, new_sectors);
    let last = new_sectors - 1;
    put(head, 1, &header(1, last, 2, &fields));
    let mut tail = gpt.array.clone();
    tail.extend_from_slice(&header(last, 1, last - ARRAY_SECTORS, &fields));
    Ok(tail)
}

/// Sectors at the end of a disk that hold the backup array and header.
pub const BACKUP_SECTORS: u64 = ARRAY_SECTORS + 1;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn disk_with_esp(bytes: usize) -> Vec<u8> {
        let mut disk = vec![0u8; bytes];
        let sectors = (bytes as u64) / SECTOR;
        let esp = Partition {
            type_guid: ESP_TYPE,
            unique_guid: Guid::from_random([7; 16]),
            first_lba: ESP_FIRST_LBA,
            last_lba: last_usable_lba(sectors),
            name: "EFI system partition".into(),
        };
        write(&mut disk, Guid::from_random([9; 16]), &[esp]).unwrap();
        disk
    }

    #[test]
    fn esp_type_guid_is_stored_mixed_endian() {
        assert_eq!(
            ESP_TYPE.0,
            [
                0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
                0xC9, 0x3B
            ]
        );
    }

    #[test]
    fn primary_and_backup_headers_point_at_each_other() {
        let disk = disk_with_esp(4 * MIB);
        let sectors = (4 * MIB) as u64 / SECTOR;
        let gpt = read_primary(&disk).unwrap();
        assert_eq!(gpt.alternate_lba, sectors - 1);
        assert_eq!(gpt.last_usable, sectors - 34);
        assert_eq!(gpt.highest_used_lba, sectors - 34);
        let backup = &disk[((sectors - 1) * SECTOR) as usize..];
        assert_eq!(&backup[0..8], SIGNATURE);
        assert_eq!(le64(backup, 24), sectors - 1);
        assert_eq!(le64(backup, 32), 1);
        assert_eq!(le64(backup, 72), sectors - 33);
        let backup_array =
            &disk[((sectors - 33) * SECTOR) as usize..((sectors - 1) * SECTOR) as usize];
        assert_eq!(backup_array, &gpt.array[..]);
    }

    #[test]
    fn protective_mbr_covers_the_disk() {
        let disk = disk_with_esp(4 * MIB);
        assert_eq!(&disk[510..512], &[0x55, 0xAA]);
        assert_eq!(disk[446 + 4], 0xEE);
        assert_eq!(le32(&disk, 446 + 8), 1);
        assert_eq!(le32(&disk, 446 + 12), (4 * MIB / 512 - 1) as u32);
    }

    #[test]
    fn protective_mbr_chs_end_as_sgdisk_writes_it() {
        // 1 GiB: cylinder 130, head 138, sector 8 (what sgdisk -e writes).
        assert_eq!(chs(2_097_151), [0x8A, 0x08, 0x82]);
        // Beyond 1024 cylinders (about 8 GiB): the "not representable" marker.
        assert_eq!(chs(1 << 30), [0xFF, 0xFF, 0xFF]);
    }

    #[test]
    fn corrupt_header_is_refused() {
        let mut disk = disk_with_esp(4 * MIB);
        disk[512 + 40] ^= 1;
        assert_eq!(
            read_primary(&disk),
            Err(ImageError::Gpt("GPT header CRC mismatch"))
        );
        let mut disk = disk_with_esp(4 * MIB);
        disk[1024 + 3] ^= 1;
        assert_eq!(
            read_primary(&disk),
            Err(ImageError::Gpt("partition entry array CRC mismatch"))
        );
        assert!(read_primary(&[0u8; 700]).is_err());
    }

    #[test]
    fn grow_moves_backup_to_the_new_end() {
        let mut disk = disk_with_esp(4 * MIB);
        let before = read_primary(&disk).unwrap();
        let new_sectors = (8 * MIB) as u64 / SECTOR;
        let tail = grow(&mut disk[..34 * 512], new_sectors).unwrap();
        assert_eq!(tail.len() as u64, BACKUP_SECTORS * SECTOR);
        let after = read_primary(&disk).unwrap();
        assert_eq!(after.alternate_lba, new_sectors - 1);
        assert_eq!(after.last_usable, new_sectors - 34);
        assert_eq!(after.array, before.array);
        assert_eq!(after.disk_guid, before.disk_guid);
        let backup = &tail[(ARRAY_SECTORS * SECTOR) as usize..];
        assert_eq!(le64(backup, 24), new_sectors - 1);
        // Shrinking is refused.
        assert!(grow(&mut disk[..34 * 512], 1000).is_err());
    }

    #[test]
    fn partition_outside_usable_area_is_refused() {
        let mut disk = vec![0u8; 4 * MIB];
        let p = Partition {
            type_guid: ESP_TYPE,
            unique_guid: Guid([1; 16]),
            first_lba: 2048,
            last_lba: (4 * MIB / 512) as u64 - 1,
            name: "x".into(),
        };
        assert!(write(&mut disk, Guid([2; 16]), &[p]).is_err());
    }
}
