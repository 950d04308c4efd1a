//! Fixed VHD (Microsoft "Virtual Hard Disk Image Format Specification" 1.0): the raw
//! disk followed by a 512-byte footer. Azure takes only this subformat, with a virtual
//! size that is a whole number of MiB.

use crate::ImageError;
use crate::image::MIB;

/// Bytes in the footer.
pub const FOOTER_SIZE: usize = 512;
/// Seconds from the Unix epoch to the VHD epoch (2000-01-01 00:00:00 UTC).
const VHD_EPOCH_UNIX: u64 = 946_684_800;

/// The footer for a fixed disk of `size` bytes (a positive multiple of 1 MiB).
/// `unix_time` is the creation time, `unique_id` the disk's identifier.
///
/// Creator application `qem2` is what `qemu-img convert -O vpc -o
/// subformat=fixed,force_size` writes, the conversion Azure documents. Readers use the
/// footer's current size for it instead of the CHS geometry (which, for sizes that are
/// not a whole number of cylinders, would cut off the end of the disk and with it the
/// backup GPT).
pub fn footer(
    size: u64,
    unix_time: u64,
    unique_id: [u8; 16],
) -> Result<[u8; FOOTER_SIZE], ImageError> {
    if size == 0 || !size.is_multiple_of(MIB) {
        return Err(ImageError::NotWholeMib { bytes: size });
    }
    let mut f = [0u8; FOOTER_SIZE];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit, always set
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // format version 1.0
    f[16..24].copy_from_slice(&u64::MAX.to_be_bytes()); // data offset: none for fixed disks
    let stamp = u32::try_from(unix_time.saturating_sub(VHD_EPOCH_UNIX)).unwrap_or(u32::MAX);
    f[24..28].copy_from_slice(&stamp.to_be_bytes());
    f[28..32].copy_from_slice(b"qem2");
    f[32..36].copy_from_slice(&0x0005_0003u32.to_be_bytes()); // creator version
    f[36..40].copy_from_slice(b"Wi2k"); // creator host OS
    f[40..48].copy_from_slice(&size.to_be_bytes()); // original size
    f[48..56].copy_from_slice(&size.to_be_bytes()); // current size
    let (cylinders, heads, sectors) = geometry(size / 512);
    f[56..58].copy_from_slice(&cylinders.to_be_bytes());
    f[58] = heads;
    f[59] = sectors;
    f[60..64].copy_from_slice(&2u32.to_be_bytes()); // disk type: fixed
    f[68..84].copy_from_slice(&unique_id);
    let sum = checksum(&f);
    f[64..68].copy_from_slice(&sum.to_be_bytes());
    Ok(f)
}

/// One's complement of the byte sum of the footer without its checksum field.
pub fn checksum(footer: &[u8; FOOTER_SIZE]) -> u32 {
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum
}

/// CHS geometry for `total_sectors`, the algorithm of the specification's appendix.
pub fn geometry(total_sectors: u64) -> (u16, u8, u8) {
    let total = total_sectors.min(65535 * 16 * 255);
    let (spt, heads, cyl_times_heads) = if total >= 65535 * 16 * 63 {
        (255, 16, total / 255)
    } else {
        let mut spt = 17;
        let mut cth = total / spt;
        let mut heads = cth.div_ceil(1024);
        if heads < 4 {
            heads = 4;
        }
        if cth >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if cth >= heads * 1024 {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
        (spt, heads, cth)
    };
    ((cyl_times_heads / heads) as u16, heads as u8, spt as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_fields_and_checksum() {
        let f = footer(64 * MIB, VHD_EPOCH_UNIX + 10, [5; 16]).unwrap();
        assert_eq!(&f[0..8], b"conectix");
        assert_eq!(&f[48..56], &(64 * MIB).to_be_bytes());
        assert_eq!(&f[60..64], &2u32.to_be_bytes());
        assert_eq!(&f[24..28], &10u32.to_be_bytes());
        // The checksum makes the byte sum of the whole footer 0xFFFFFFFF.
        let stored = u32::from_be_bytes([f[64], f[65], f[66], f[67]]);
        let rest: u32 = f
            .iter()
            .enumerate()
            .filter(|(i, _)| !(64..68).contains(i))
            .map(|(_, &b)| u32::from(b))
            .sum();
        assert_eq!(stored.wrapping_add(rest), u32::MAX);
        let mut bad = f;
        bad[100] = 1;
        assert_ne!(checksum(&bad), stored);
    }

    #[test]
    fn size_must_be_whole_mib() {
        assert_eq!(
            footer(64 * MIB + 512, 0, [0; 16]),
            Err(ImageError::NotWholeMib {
                bytes: 64 * MIB + 512
            })
        );
        assert!(footer(0, 0, [0; 16]).is_err());
    }

    #[test]
    fn geometry_matches_the_specification() {
        // 64 MiB: 17 sectors per track, 8 heads.
        assert_eq!(geometry(131_072), (963, 8, 17));
        // 127 GiB and above: the maximum (65535, 16, 255).
        assert_eq!(geometry(1 << 40), (65535, 16, 255));
        // 1 GiB: 63 sectors per track.
        assert_eq!(geometry(2_097_152), (2080, 16, 63));
    }
}
