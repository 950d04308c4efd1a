//! A repair for the `fatfs` crate (0.3.6, the newest release): `create_dir` writes a
//! long-file-name entry in front of each new directory's `.` and `..` entries, so they
//! are not the first two slots, which FAT requires and `fsck.fat` reports. After the
//! files are written this walks the directory tree and rewrites each directory's first
//! four slots from `[LFN, ".", LFN, ".."]` to `[".", "..", deleted, deleted]`. It also
//! points `..` of a top-level directory at cluster 0, FAT's name for the root (`fatfs`
//! writes the root's real cluster).

use crate::ImageError;

const ENTRY: usize = 32;
const ATTR_LFN: u8 = 0x0F;
const ATTR_DIRECTORY: u8 = 0x10;
const DELETED: u8 = 0xE5;
/// How deep the walk goes, how many clusters of one directory it reads, and how many
/// directories it visits in all (a corrupt tree may loop).
const MAX_DEPTH: usize = 8;
const MAX_DIR_CLUSTERS: usize = 64;
const MAX_DIRS: usize = 4096;

/// The geometry of a FAT32 volume, from its boot sector.
struct Fat32 {
    cluster_bytes: usize,
    fat_offset: usize,
    data_offset: usize,
    root_cluster: u32,
}

impl Fat32 {
    fn read(volume: &[u8]) -> Result<Fat32, ImageError> {
        let bad = || ImageError::Fat("boot sector geometry out of range".into());
        let b = volume.get(..512).ok_or_else(bad)?;
        let bytes_per_sector = usize::from(u16::from_le_bytes([b[11], b[12]]));
        let reserved = usize::from(u16::from_le_bytes([b[14], b[15]]));
        let fats = usize::from(b[16]);
        let sectors_per_fat = u32::from_le_bytes([b[36], b[37], b[38], b[39]]) as usize;
        let fs = Fat32 {
            cluster_bytes: bytes_per_sector * usize::from(b[13]),
            fat_offset: reserved * bytes_per_sector,
            data_offset: (reserved + fats * sectors_per_fat) * bytes_per_sector,
            root_cluster: u32::from_le_bytes([b[44], b[45], b[46], b[47]]),
        };
        if fs.cluster_bytes < ENTRY * 4 || fs.data_offset >= volume.len() {
            return Err(bad());
        }
        Ok(fs)
    }

    fn cluster_range(&self, volume: &[u8], cluster: u32) -> Option<std::ops::Range<usize>> {
        let start = self.data_offset + (cluster.checked_sub(2)? as usize) * self.cluster_bytes;
        let end = start + self.cluster_bytes;
        (end <= volume.len()).then_some(start..end)
    }

    fn next_cluster(&self, volume: &[u8], cluster: u32) -> Option<u32> {
        let at = self.fat_offset + cluster as usize * 4;
        let e = volume.get(at..at + 4)?;
        let next = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) & 0x0FFF_FFFF;
        (2..0x0FFF_FFF7).contains(&next).then_some(next)
    }
}

/// Puts `.` and `..` first in every directory below the root of the FAT32 `volume`.
pub fn fix_dot_entries(volume: &mut [u8]) -> Result<(), ImageError> {
    let fs = Fat32::read(volume)?;
    let mut pending = vec![(fs.root_cluster, 0usize)];
    // (directory cluster, depth: 0 is the root, 1 its children)
    let mut visited = 0;
    while let Some((dir, depth)) = pending.pop() {
        visited += 1;
        if visited > MAX_DIRS {
            return Err(ImageError::Fat(
                "more directories than an image holds".into(),
            ));
        }
        let mut cluster = Some(dir);
        for _ in 0..MAX_DIR_CLUSTERS {
            let Some(c) = cluster else { break };
            let range = fs
                .cluster_range(volume, c)
                .ok_or_else(|| ImageError::Fat("directory cluster out of range".into()))?;
            for e in volume[range].chunks(ENTRY) {
                let (first, attr) = (e[0], e[11]);
                if first == 0 {
                    break;
                }
                if first == DELETED
                    || attr == ATTR_LFN
                    || attr & ATTR_DIRECTORY == 0
                    || first == b'.'
                {
                    continue;
                }
                if depth + 1 > MAX_DEPTH {
                    return Err(ImageError::Fat("directories nested too deep".into()));
                }
                let child = u32::from(u16::from_le_bytes([e[20], e[21]])) << 16
                    | u32::from(u16::from_le_bytes([e[26], e[27]]));
                pending.push((child, depth + 1));
            }
            cluster = fs.next_cluster(volume, c);
        }
        if dir != fs.root_cluster {
            let range = fs
                .cluster_range(volume, dir)
                .ok_or_else(|| ImageError::Fat("directory cluster out of range".into()))?;
            move_dots_first(&mut volume[range], depth == 1);
        }
    }
    Ok(())
}

/// Rewrites `[LFN, ".", LFN, ".."]` at the start of a directory cluster; anything else
/// is left as it is. `parent_is_root`: `..` gets cluster 0.
fn move_dots_first(cluster: &mut [u8], parent_is_root: bool) {
    let slot = |i: usize| i * ENTRY..(i + 1) * ENTRY;
    let is_lfn = |c: &[u8], i: usize| c[i * ENTRY + 11] == ATTR_LFN;
    let name_is = |c: &[u8], i: usize, name: &[u8; 11]| &c[i * ENTRY..i * ENTRY + 11] == name;
    if !(is_lfn(cluster, 0)
        && name_is(cluster, 1, b".          ")
        && is_lfn(cluster, 2)
        && name_is(cluster, 3, b"..         "))
    {
        return;
    }
    let dot = cluster[slot(1)].to_vec();
    let mut dotdot = cluster[slot(3)].to_vec();
    if parent_is_root {
        dotdot[20..22].fill(0);
        dotdot[26..28].fill(0);
    }
    cluster[slot(0)].copy_from_slice(&dot);
    cluster[slot(1)].copy_from_slice(&dotdot);
    for i in [2, 3] {
        cluster[slot(i)].fill(0);
        cluster[i * ENTRY] = DELETED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_move_to_the_front() {
        let mut c = vec![0u8; 512];
        c[11] = ATTR_LFN;
        c[32..43].copy_from_slice(b".          ");
        c[43] = ATTR_DIRECTORY;
        c[64 + 11] = ATTR_LFN;
        c[96..107].copy_from_slice(b"..         ");
        c[107] = ATTR_DIRECTORY;
        c[96 + 26] = 2;
        c[128..139].copy_from_slice(b"FILE    TXT");
        move_dots_first(&mut c, true);
        assert_eq!(&c[0..11], b".          ");
        assert_eq!(c[32 + 26], 0);
        assert_eq!(&c[32..43], b"..         ");
        assert_eq!(c[64], DELETED);
        assert_eq!(c[96], DELETED);
        assert_eq!(&c[128..139], b"FILE    TXT");
        // A directory already in order is left alone.
        let before = c.clone();
        move_dots_first(&mut c, true);
        assert_eq!(c, before);
    }

    /// Seeded mutations of a real ESP's boot sector, FAT and directories end in Ok or an
    /// error, never a panic or a hang. (Not a `stratus_fuzz::fuzz` target: a FAT32
    /// volume is at least 32 MiB, far above its largest input.)
    #[test]
    fn mutated_volumes_never_panic() {
        let contents = crate::image::ImageContents {
            kernel_x86_64: Some(vec![1; 3000]),
            cmdline: b"x".to_vec(),
            ..Default::default()
        };
        let disk = crate::image::build(&contents, 64, [4; 36]).unwrap();
        let esp = &disk[2048 * 512..];
        let mut rng = stratus_fuzz::Rng::new(0xFA7);
        let mut next = || rng.next_u64();
        // The boot sector, the start of the FAT and the first directory clusters.
        let fat = Fat32::read(esp).unwrap();
        let hot = [
            0..512,
            fat.fat_offset..fat.fat_offset + 512,
            fat.data_offset..fat.data_offset + 4096,
        ];
        let mut volume = esp.to_vec();
        for _ in 0..150 {
            volume.copy_from_slice(esp);
            for _ in 0..1 + next() % 6 {
                let range = &hot[(next() % 3) as usize];
                let at = range.start + (next() % range.len() as u64) as usize;
                volume[at] = next() as u8;
            }
            let _ = fix_dot_entries(&mut volume);
        }
    }

    #[test]
    fn garbage_boot_sector_is_refused() {
        assert!(fix_dot_entries(&mut [0u8; 100]).is_err());
        assert!(fix_dot_entries(&mut [0u8; 1024]).is_err());
    }
}
