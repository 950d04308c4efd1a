//! Stream-optimized VMDK (VMware "Virtual Disk Format 5.0", section "Stream-Optimized
//! Compressed Sparse Extents"): the subformat AWS snapshot import takes.
//!
//! Layout written here, in 512-byte sectors:
//! ```text
//! header (gdOffset = GD_AT_END) | descriptor | grains: marker {lba, size} + zlib data,
//! one per non-zero 64 KiB grain | per grain table: marker + table | marker + grain
//! directory | footer marker + footer (header with the real gdOffset) | end-of-stream
//! ```

use std::io::Write;

use crate::ImageError;

/// Sectors per grain (64 KiB grains, the usual choice).
pub const GRAIN_SECTORS: u64 = 128;
/// Grain table entries per grain table.
pub const GTES_PER_GT: u64 = 512;
const SECTOR: usize = 512;
const GRAIN_BYTES: usize = GRAIN_SECTORS as usize * SECTOR;
/// Grain directory "at the end of the stream": the footer holds the real offset.
const GD_AT_END: u64 = u64::MAX;
/// Newline detection, compressed grains, markers.
const FLAGS: u32 = 1 | (1 << 16) | (1 << 17);
/// Marker types.
const MARKER_EOS: u32 = 0;
const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
const MARKER_FOOTER: u32 = 3;

/// Grain tables needed for `capacity_sectors` (one grain directory entry each).
pub fn grain_tables(capacity_sectors: u64) -> u64 {
    capacity_sectors.div_ceil(GRAIN_SECTORS * GTES_PER_GT)
}

/// The sparse extent header sector (also used as the footer).
fn header(capacity_sectors: u64, descriptor_sectors: u64, gd_offset: u64) -> [u8; SECTOR] {
    let mut h = [0u8; SECTOR];
    h[0..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&3u32.to_le_bytes()); // version 3: stream-optimized
    h[8..12].copy_from_slice(&FLAGS.to_le_bytes());
    h[12..20].copy_from_slice(&capacity_sectors.to_le_bytes());
    h[20..28].copy_from_slice(&GRAIN_SECTORS.to_le_bytes());
    h[28..36].copy_from_slice(&1u64.to_le_bytes()); // descriptor at sector 1
    h[36..44].copy_from_slice(&descriptor_sectors.to_le_bytes());
    h[44..48].copy_from_slice(&(GTES_PER_GT as u32).to_le_bytes());
    // 48..56: no redundant grain directory.
    h[56..64].copy_from_slice(&gd_offset.to_le_bytes());
    h[64..72].copy_from_slice(&(1 + descriptor_sectors).to_le_bytes()); // overhead
    h[72] = 0; // clean shutdown
    h[73..77].copy_from_slice(b"\n \r\n"); // newline-corruption detection characters
    h[77..79].copy_from_slice(&1u16.to_le_bytes()); // deflate
    h
}

/// A metadata marker sector: `sectors` of metadata of `kind` follow.
fn marker(sectors: u64, kind: u32) -> [u8; SECTOR] {
    let mut m = [0u8; SECTOR];
    m[0..8].copy_from_slice(&sectors.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

/// The embedded text descriptor, padded to whole sectors.
fn descriptor(capacity_sectors: u64, cid: u32, file_name: &str) -> Vec<u8> {
    let (cylinders, heads, sectors) = (capacity_sectors / (16 * 63), 16, 63);
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID={cid:08x}\nparentCID=ffffffff\n\
createType=\"streamOptimized\"\n\n# Extent description\nRW {capacity_sectors} SPARSE \"{file_name}\"\n\n\
# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"{cylinders}\"\n\
ddb.geometry.heads = \"{heads}\"\nddb.geometry.sectors = \"{sectors}\"\nddb.adapterType = \"ide\"\n"
    );
    let mut bytes = text.into_bytes();
    bytes.resize(bytes.len().div_ceil(SECTOR) * SECTOR, 0);
    bytes
}

fn pad_to_sector(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(SECTOR) * SECTOR, 0);
}

/// Converts a raw disk (its length a multiple of 512) into a stream-optimized VMDK.
/// Zero grains are left out (their grain table entry stays 0: reads as zeros).
pub fn from_raw(raw: &[u8], cid: u32, file_name: &str) -> Result<Vec<u8>, ImageError> {
    if raw.is_empty() || !raw.len().is_multiple_of(SECTOR) {
        return Err(ImageError::NotWholeSectors {
            bytes: raw.len() as u64,
        });
    }
    let capacity = (raw.len() / SECTOR) as u64;
    let desc = descriptor(capacity, cid, file_name);
    let desc_sectors = (desc.len() / SECTOR) as u64;
    let mut out = Vec::with_capacity(raw.len() / 4);
    out.extend_from_slice(&header(capacity, desc_sectors, GD_AT_END));
    out.extend_from_slice(&desc);

    let tables = grain_tables(capacity);
    let mut gt = vec![0u32; (tables * GTES_PER_GT) as usize];
    for (index, grain) in raw.chunks(GRAIN_BYTES).enumerate() {
        if grain.iter().all(|&b| b == 0) {
            continue;
        }
        // The last grain may be short: compress it padded to a full grain.
        let mut full = grain.to_vec();
        full.resize(GRAIN_BYTES, 0);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&full)
            .map_err(|e| ImageError::Io(format!("deflate: {e}")))?;
        let data = z
            .finish()
            .map_err(|e| ImageError::Io(format!("deflate: {e}")))?;
        gt[index] = sector_of(&out)?;
        out.extend_from_slice(&(index as u64 * GRAIN_SECTORS).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&data);
        pad_to_sector(&mut out);
    }
    let gt_sectors = GTES_PER_GT * 4 / SECTOR as u64;
    let mut gd = Vec::with_capacity(tables as usize);
    for table in gt.chunks(GTES_PER_GT as usize) {
        out.extend_from_slice(&marker(gt_sectors, MARKER_GT));
        gd.push(sector_of(&out)?);
        for entry in table {
            out.extend_from_slice(&entry.to_le_bytes());
        }
    }
    let gd_sectors = (tables * 4).div_ceil(SECTOR as u64);
    out.extend_from_slice(&marker(gd_sectors, MARKER_GD));
    let gd_offset = u64::from(sector_of(&out)?);
    for entry in &gd {
        out.extend_from_slice(&entry.to_le_bytes());
    }
    pad_to_sector(&mut out);
    out.extend_from_slice(&marker(1, MARKER_FOOTER));
    out.extend_from_slice(&header(capacity, desc_sectors, gd_offset));
    out.extend_from_slice(&marker(0, MARKER_EOS));
    Ok(out)
}

/// The sector at the end of `out` (the next one to be written), as a 32-bit entry.
fn sector_of(out: &[u8]) -> Result<u32, ImageError> {
    u32::try_from(out.len() / SECTOR).map_err(|_| ImageError::TooLarge("VMDK over 2 TiB"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn le64(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn grain_math() {
        // 64 MiB: 1024 grains of 64 KiB, two grain tables of 512 entries.
        assert_eq!(grain_tables(131_072), 2);
        assert_eq!(grain_tables(131_073), 3);
        assert_eq!(grain_tables(1), 1);
    }

    /// Reads a grain back the way a VMDK reader does: footer -> GD -> GT -> marker -> data.
    fn read_grain(vmdk: &[u8], grain: usize) -> Option<Vec<u8>> {
        let footer = &vmdk[vmdk.len() - 1024..vmdk.len() - 512];
        assert_eq!(&footer[0..4], b"KDMV");
        let gd = le64(footer, 56) as usize * SECTOR;
        let gt = le32(vmdk, gd + 4 * (grain / GTES_PER_GT as usize)) as usize * SECTOR;
        let at = le32(vmdk, gt + 4 * (grain % GTES_PER_GT as usize)) as usize * SECTOR;
        if at == 0 {
            return None;
        }
        assert_eq!(le64(vmdk, at), grain as u64 * GRAIN_SECTORS);
        let len = le32(vmdk, at + 8) as usize;
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&vmdk[at + 12..at + 12 + len])
            .read_to_end(&mut out)
            .unwrap();
        Some(out)
    }

    #[test]
    fn grains_round_trip_and_zero_grains_are_left_out() {
        let mut raw = vec![0u8; 600 * GRAIN_BYTES];
        raw[5] = 1;
        raw[513 * GRAIN_BYTES + 77] = 9;
        let vmdk = from_raw(&raw, 0x1234, "x.vmdk").unwrap();
        assert_eq!(vmdk.len() % SECTOR, 0);
        assert_eq!(&vmdk[0..4], b"KDMV");
        assert_eq!(le64(&vmdk, 56), GD_AT_END);
        assert_eq!(le64(&vmdk, 12), 600 * GRAIN_SECTORS);
        assert_eq!(read_grain(&vmdk, 0).unwrap(), &raw[..GRAIN_BYTES]);
        assert_eq!(
            read_grain(&vmdk, 513).unwrap(),
            &raw[513 * GRAIN_BYTES..514 * GRAIN_BYTES]
        );
        assert_eq!(read_grain(&vmdk, 1), None);
        // End of stream: footer marker, footer, an all-zero EOS marker.
        let end = vmdk.len();
        assert_eq!(le32(&vmdk, end - 1536 + 12), MARKER_FOOTER);
        assert!(vmdk[end - 512..].iter().all(|&b| b == 0));
        let desc = String::from_utf8_lossy(&vmdk[512..1024]);
        assert!(desc.contains("createType=\"streamOptimized\""));
        assert!(desc.contains("RW 76800 SPARSE \"x.vmdk\""));
    }

    #[test]
    fn odd_sizes_are_refused() {
        assert!(from_raw(&[0u8; 100], 0, "x").is_err());
        assert!(from_raw(&[], 0, "x").is_err());
    }
}
