//! GCP image import: a file named `disk.raw` in a gzip-compressed tar in GNU `oldgnu`
//! format with the file stored sparse (GNU tar manual, "Sparse Formats" and the
//! `oldgnu` header layout), the disk a whole number of GiB.

use std::io::Write;

use crate::ImageError;
use crate::gpt::{self, SECTOR};

/// Bytes in a GiB.
pub const GIB: u64 = 1 << 30;
/// Granularity of the sparse map: holes are runs of zero 4 KiB blocks.
const BLOCK: usize = 4096;
/// Sparse entries in the main header, and in each extension header.
const MAIN_ENTRIES: usize = 4;
const EXT_ENTRIES: usize = 21;

/// A disk given as its size and the regions that may hold data (sorted, disjoint);
/// everything else is zero.
pub struct SparseDisk<'a> {
    /// Size of the disk in bytes.
    pub size: u64,
    /// (offset, bytes) regions.
    pub regions: Vec<(u64, std::borrow::Cow<'a, [u8]>)>,
}

/// The raw image grown to the next whole GiB (at least 1 GiB), its GPT moved to the
/// new end as `sgdisk -e` would: a new primary header and protective MBR, the old
/// backup cleared, the backup array and header in the last 33 sectors.
pub fn grow_to_gib(raw: &[u8]) -> Result<SparseDisk<'_>, ImageError> {
    let size = (raw.len() as u64).div_ceil(GIB).max(1) * GIB;
    if size == raw.len() as u64 {
        return Ok(SparseDisk {
            size,
            regions: vec![(0, raw.into())],
        });
    }
    gpt::read_primary(raw)?;
    if (raw.len() as u64) < 2 * gpt::first_usable_lba() * SECTOR {
        return Err(ImageError::DiskTooSmall {
            bytes: raw.len() as u64,
        });
    }
    let mut head = raw.to_vec();
    let old_backup = head.len() - (gpt::BACKUP_SECTORS * SECTOR) as usize;
    head[old_backup..].fill(0);
    let tail = gpt::grow(&mut head[..(34 * SECTOR) as usize], size / SECTOR)?;
    let tail_at = size - tail.len() as u64;
    Ok(SparseDisk {
        size,
        regions: vec![(0, head.into()), (tail_at, tail.into())],
    })
}

/// The data chunks of a disk: (offset, bytes) of the non-zero 4 KiB blocks, merged.
pub fn data_chunks<'d>(disk: &'d SparseDisk<'_>) -> Vec<(u64, &'d [u8])> {
    let mut chunks = Vec::new();
    for (base, bytes) in &disk.regions {
        // Runs of non-zero blocks within this region, as byte ranges.
        let mut run: Option<(usize, usize)> = None;
        for start in (0..bytes.len()).step_by(BLOCK) {
            let end = (start + BLOCK).min(bytes.len());
            if bytes[start..end].iter().all(|&b| b == 0) {
                if let Some((s, e)) = run.take() {
                    chunks.push((base + s as u64, &bytes[s..e]));
                }
            } else {
                run = Some((run.map_or(start, |(s, _)| s), end));
            }
        }
        if let Some((s, e)) = run {
            chunks.push((base + s as u64, &bytes[s..e]));
        }
    }
    chunks
}

/// An octal number field of `width` bytes, NUL-terminated.
fn octal(field: &mut [u8], value: u64) -> Result<(), ImageError> {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() > digits {
        return Err(ImageError::TooLarge(
            "number too large for a tar header field",
        ));
    }
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    Ok(())
}

/// The sparse map entries: the data chunks, and a final empty entry at the end of the
/// file when it ends in a hole (as GNU tar writes it).
fn sparse_map(disk: &SparseDisk<'_>, chunks: &[(u64, &[u8])]) -> Vec<(u64, u64)> {
    let mut map: Vec<(u64, u64)> = chunks.iter().map(|(o, c)| (*o, c.len() as u64)).collect();
    if map.last().is_none_or(|(o, n)| o + n < disk.size) {
        map.push((disk.size, 0));
    }
    map
}

fn put_entries(block: &mut [u8], at: usize, entries: &[(u64, u64)]) -> Result<(), ImageError> {
    for (i, (offset, bytes)) in entries.iter().enumerate() {
        let e = at + i * 24;
        octal(&mut block[e..e + 12], *offset)?;
        octal(&mut block[e + 12..e + 24], *bytes)?;
    }
    Ok(())
}

/// The headers of `name` stored sparse: the `oldgnu` header (type 'S') and its
/// extension headers.
pub fn sparse_headers(
    name: &str,
    disk: &SparseDisk<'_>,
    chunks: &[(u64, &[u8])],
    mtime: u64,
) -> Result<Vec<u8>, ImageError> {
    let map = sparse_map(disk, chunks);
    let stored: u64 = chunks.iter().map(|(_, c)| c.len() as u64).sum();
    let mut h = [0u8; 512];
    if name.len() > 99 {
        return Err(ImageError::TooLarge("tar member name"));
    }
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644)?;
    octal(&mut h[108..116], 0)?;
    octal(&mut h[116..124], 0)?;
    octal(&mut h[124..136], stored)?;
    octal(&mut h[136..148], mtime)?;
    h[156] = b'S';
    h[257..265].copy_from_slice(b"ustar  \0"); // oldgnu magic and version
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    let (first, rest) = map.split_at(map.len().min(MAIN_ENTRIES));
    put_entries(&mut h, 386, first)?;
    h[482] = u8::from(!rest.is_empty());
    octal(&mut h[483..495], disk.size)?;
    // Checksum: byte sum with the checksum field read as spaces; six digits, NUL, space.
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum)?;
    h[155] = b' ';
    let mut out = h.to_vec();
    let groups: Vec<&[(u64, u64)]> = rest.chunks(EXT_ENTRIES).collect();
    for (i, group) in groups.iter().enumerate() {
        let mut ext = [0u8; 512];
        put_entries(&mut ext, 0, group)?;
        ext[504] = u8::from(i + 1 < groups.len());
        out.extend_from_slice(&ext);
    }
    Ok(out)
}

/// Writes `disk` as `disk.raw` in a gzip-compressed `oldgnu` sparse tar to `out`.
pub fn write_tar_gz<W: Write>(disk: &SparseDisk<'_>, mtime: u64, out: W) -> Result<W, ImageError> {
    let io = |e: std::io::Error| ImageError::Io(format!("tar.gz: {e}"));
    let chunks = data_chunks(disk);
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&sparse_headers("disk.raw", disk, &chunks, mtime)?)
        .map_err(io)?;
    let mut stored = 0usize;
    for (_, c) in &chunks {
        gz.write_all(c).map_err(io)?;
        stored += c.len();
    }
    let pad = stored.div_ceil(512) * 512 - stored;
    gz.write_all(&vec![0u8; pad + 1024]).map_err(io)?; // data padding, two end blocks
    gz.finish().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn octal_at(b: &[u8], at: usize, len: usize) -> u64 {
        let text = std::str::from_utf8(&b[at..at + len])
            .unwrap()
            .trim_end_matches('\0')
            .trim();
        u64::from_str_radix(text, 8).unwrap()
    }

    #[test]
    fn chunks_merge_adjacent_blocks_and_skip_holes() {
        let mut data = vec![0u8; 10 * BLOCK];
        data[0] = 1;
        data[BLOCK + 5] = 1;
        data[7 * BLOCK] = 1;
        let disk = SparseDisk {
            size: 1 << 20,
            regions: vec![(0, Cow::Borrowed(&data))],
        };
        let chunks: Vec<(u64, usize)> = data_chunks(&disk)
            .iter()
            .map(|(o, c)| (*o, c.len()))
            .collect();
        assert_eq!(chunks, vec![(0, 2 * BLOCK), (7 * BLOCK as u64, BLOCK)]);
        assert_eq!(
            sparse_map(&disk, &data_chunks(&disk)).last(),
            Some(&(1 << 20, 0))
        );
    }

    #[test]
    fn header_is_oldgnu_sparse_with_extensions() {
        // 30 separate chunks: 4 in the main header, 21 + 6 (and the end entry) in two extensions.
        let mut data = vec![0u8; 60 * BLOCK];
        for i in 0..30 {
            data[2 * i * BLOCK] = 1;
        }
        let disk = SparseDisk {
            size: GIB,
            regions: vec![(0, Cow::Borrowed(&data))],
        };
        let chunks = data_chunks(&disk);
        assert_eq!(chunks.len(), 30);
        let h = sparse_headers("disk.raw", &disk, &chunks, 0).unwrap();
        assert_eq!(h.len(), 3 * 512);
        assert_eq!(h[156], b'S');
        assert_eq!(&h[257..265], b"ustar  \0");
        assert_eq!(octal_at(&h, 124, 12), 30 * BLOCK as u64);
        assert_eq!(octal_at(&h, 483, 12), GIB);
        assert_eq!(octal_at(&h, 386 + 24, 12), 2 * BLOCK as u64);
        assert_eq!(h[482], 1);
        assert_eq!(h[512 + 504], 1);
        assert_eq!(h[1024 + 504], 0);
        // Checksum as tar computes it.
        let mut copy = h[..512].to_vec();
        copy[148..156].fill(b' ');
        assert_eq!(
            octal_at(&h, 148, 7),
            copy.iter().map(|&b| u64::from(b)).sum::<u64>()
        );
    }

    #[test]
    fn growing_keeps_data_and_places_the_backup_at_the_end() {
        let disk = crate::image::build(&Default::default(), 64, [2; 36]).unwrap();
        let grown = grow_to_gib(&disk).unwrap();
        assert_eq!(grown.size, GIB);
        let (at, tail) = &grown.regions[1];
        assert_eq!(*at + tail.len() as u64, GIB);
        assert_eq!(&tail[tail.len() - 512..tail.len() - 504], b"EFI PART");
        let head = &grown.regions[0].1;
        assert_eq!(
            gpt::read_primary(head).unwrap().alternate_lba,
            GIB / 512 - 1
        );
        let old_backup = disk.len() - 33 * 512;
        assert_eq!(&head[2048 * 512..old_backup], &disk[2048 * 512..old_backup]);
        assert!(head[old_backup..].iter().all(|&b| b == 0));
    }
}
