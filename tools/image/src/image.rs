//! The one Stratus disk image: a GPT disk whose single EFI system partition (FAT32,
//! from 1 MiB to the end) holds both loaders, both kernels and their command line, so
//! the same file boots on x86_64 and aarch64 UEFI firmware.
//!
//! ESP layout (kernel names use Limine's `${ARCH}` spelling so one `limine.conf` line
//! serves both architectures):
//! ```text
//! /EFI/BOOT/BOOTX64.EFI   /EFI/BOOT/BOOTAA64.EFI
//! /boot/kernel-x86-64     /boot/kernel-aarch64     /boot/stratus.cmdline
//! /boot/limine/limine.conf                         /limine.conf
//! ```

use std::io::{Cursor, Write};

use crate::ImageError;
use crate::gpt::{self, ESP_FIRST_LBA, ESP_TYPE, Guid, Partition, SECTOR};

/// Bytes in a MiB.
pub const MIB: u64 = 1 << 20;
/// The default and smallest image size: a 63 MiB ESP still has more than the 65525
/// clusters FAT32 needs with 512-byte clusters.
pub const MIN_SIZE_MIB: u64 = 64;
/// The ESP's volume label.
const VOLUME_LABEL: [u8; 11] = *b"STRATUS    ";

/// The two architectures an image serves, with the names each part of the boot chain
/// uses for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86_64: OVMF, `BOOTX64.EFI`, `/boot/kernel-x86-64`.
    X86_64,
    /// aarch64: AAVMF, `BOOTAA64.EFI`, `/boot/kernel-aarch64`.
    Aarch64,
}

impl Arch {
    /// Both architectures, x86_64 first.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The Rust spelling (`x86_64`, `aarch64`), as in target triples.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Parses the Rust spelling.
    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The removable-media boot file the firmware looks for.
    pub fn boot_file(self) -> &'static str {
        match self {
            Arch::X86_64 => "EFI/BOOT/BOOTX64.EFI",
            Arch::Aarch64 => "EFI/BOOT/BOOTAA64.EFI",
        }
    }

    /// Where the kernel lives on the ESP (Limine's `${ARCH}`: `x86-64`, `aarch64`).
    pub fn kernel_file(self) -> &'static str {
        match self {
            Arch::X86_64 => "boot/kernel-x86-64",
            Arch::Aarch64 => "boot/kernel-aarch64",
        }
    }
}

/// What goes into an image. `None` leaves a file out (for tests of the loader's errors).
#[derive(Clone, Debug, Default)]
pub struct ImageContents {
    /// Kernel ELF for x86_64.
    pub kernel_x86_64: Option<Vec<u8>>,
    /// Kernel ELF for aarch64.
    pub kernel_aarch64: Option<Vec<u8>>,
    /// `BOOTX64.EFI`: our loader or genuine Limine.
    pub loader_x86_64: Option<Vec<u8>>,
    /// `BOOTAA64.EFI`: our loader or genuine Limine.
    pub loader_aarch64: Option<Vec<u8>>,
    /// Kernel command line, any bytes but a line break, passed on unchanged.
    pub cmdline: Vec<u8>,
}

impl ImageContents {
    /// Every file of the ESP as (path, bytes), directories implied by the paths.
    pub fn files(&self) -> Result<Vec<(&'static str, Vec<u8>)>, ImageError> {
        let conf = limine_conf(&self.cmdline)?;
        let mut files = Vec::new();
        let parts = [
            (Arch::X86_64.boot_file(), &self.loader_x86_64),
            (Arch::Aarch64.boot_file(), &self.loader_aarch64),
            (Arch::X86_64.kernel_file(), &self.kernel_x86_64),
            (Arch::Aarch64.kernel_file(), &self.kernel_aarch64),
        ];
        for (path, data) in parts {
            if let Some(data) = data {
                files.push((path, data.clone()));
            }
        }
        // One line, no trailing newline: the loader passes the bytes through unchanged.
        files.push(("boot/stratus.cmdline", self.cmdline.clone()));
        files.push(("boot/limine/limine.conf", conf.clone()));
        files.push(("limine.conf", conf));
        Ok(files)
    }
}

/// The `limine.conf` for genuine Limine 8.x: one entry, the kernel picked by `${ARCH}`.
/// `kernel_path`, not `path`: Limine 8.2 knows only `kernel_path`, later versions both.
/// A `nokaslr` word on the command line adds `kaslr: no`.
pub fn limine_conf(cmdline: &[u8]) -> Result<Vec<u8>, ImageError> {
    if cmdline.iter().any(|&b| b == b'\n' || b == b'\r') {
        return Err(ImageError::CmdlineHasLineBreak);
    }
    let mut conf =
        b"# Stratus boot entry for genuine Limine (8.x). ${ARCH} is x86-64 or aarch64.\n\
timeout: 0\n\
\n\
/Stratus\n\
\x20   protocol: limine\n\
\x20   kernel_path: boot():/boot/kernel-${ARCH}\n\
\x20   cmdline: "
            .to_vec();
    conf.extend_from_slice(cmdline);
    conf.push(b'\n');
    // `nokaslr` keeps the kernel at its link address under our loader; Limine's
    // spelling of the same is the entry option `kaslr: no`.
    if cmdline
        .split(|b| b.is_ascii_whitespace())
        .any(|word| word == b"nokaslr")
    {
        conf.extend_from_slice(b"    kaslr: no\n");
    }
    Ok(conf)
}

/// Builds the raw disk image of `size_mib` MiB in memory.
/// `random` supplies 36 bytes: the disk GUID, the ESP's GUID and its FAT volume id.
pub fn build(
    contents: &ImageContents,
    size_mib: u64,
    random: [u8; 36],
) -> Result<Vec<u8>, ImageError> {
    if size_mib < MIN_SIZE_MIB {
        return Err(ImageError::SizeTooSmall { mib: size_mib });
    }
    let files = contents.files()?;
    let bytes = size_mib
        .checked_mul(MIB)
        .ok_or(ImageError::SizeTooSmall { mib: size_mib })?;
    let mut disk =
        vec![0u8; usize::try_from(bytes).map_err(|_| ImageError::SizeTooSmall { mib: size_mib })?];
    let sectors = bytes / SECTOR;
    let esp = Partition {
        type_guid: ESP_TYPE,
        unique_guid: Guid::from_random(random[16..32].try_into().unwrap_or_default()),
        first_lba: ESP_FIRST_LBA,
        last_lba: gpt::last_usable_lba(sectors),
        name: "EFI system partition".into(),
    };
    let esp_range = (esp.first_lba * SECTOR) as usize..((esp.last_lba + 1) * SECTOR) as usize;
    gpt::write(
        &mut disk,
        Guid::from_random(random[..16].try_into().unwrap_or_default()),
        &[esp],
    )?;
    let volume_id = u32::from_le_bytes([random[32], random[33], random[34], random[35]]);
    write_fat32(&mut disk[esp_range], volume_id, &files)?;
    Ok(disk)
}

/// Formats `partition` as FAT32 and writes `files` into it.
fn write_fat32(
    partition: &mut [u8],
    volume_id: u32,
    files: &[(&str, Vec<u8>)],
) -> Result<(), ImageError> {
    let fat = |e: std::io::Error| ImageError::Fat(e.to_string());
    let options = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .bytes_per_cluster(512)
        .volume_id(volume_id)
        .volume_label(VOLUME_LABEL);
    fatfs::format_volume(Cursor::new(&mut *partition), options).map_err(fat)?;
    let fs = fatfs::FileSystem::new(Cursor::new(&mut *partition), fatfs::FsOptions::new())
        .map_err(fat)?;
    {
        let root = fs.root_dir();
        for (path, data) in files {
            // Create each parent directory once (open_dir fails while it is missing).
            let mut dir = root.clone();
            let mut parts: Vec<&str> = path.split('/').collect();
            let name = parts.pop().unwrap_or_default();
            for part in parts {
                dir = match dir.open_dir(part) {
                    Ok(d) => d,
                    Err(_) => dir.create_dir(part).map_err(fat)?,
                };
            }
            let mut file = dir.create_file(name).map_err(fat)?;
            file.truncate().map_err(fat)?;
            file.write_all(data).map_err(fat)?;
            file.flush().map_err(fat)?;
        }
    }
    // Counting the free clusters fills in the FSInfo sector's summary on unmount.
    fs.stats().map_err(fat)?;
    fs.unmount().map_err(fat)?;
    crate::fat_dots::fix_dot_entries(partition)
}

/// Reads a file back from an image built by [`build`] (for tests and `stratus-image ls`).
pub fn read_file(disk: &[u8], path: &str) -> Result<Vec<u8>, ImageError> {
    use std::io::Read;
    let gpt = gpt::read_primary(disk)?;
    let start = (ESP_FIRST_LBA * SECTOR) as usize;
    let end = ((gpt.highest_used_lba + 1) * SECTOR) as usize;
    let esp = disk
        .get(start..end)
        .ok_or(ImageError::Gpt("ESP beyond the end of the image"))?;
    let fat = |e: std::io::Error| ImageError::Fat(format!("{path}: {e}"));
    let fs =
        fatfs::FileSystem::new(Cursor::new(esp.to_vec()), fatfs::FsOptions::new()).map_err(fat)?;
    let mut file = fs.root_dir().open_file(path).map_err(fat)?;
    let mut out = Vec::new();
    file.read_to_end(&mut out).map_err(fat)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(cmdline: &[u8]) -> ImageContents {
        ImageContents {
            kernel_x86_64: Some(b"\x7fELF x86".to_vec()),
            kernel_aarch64: None,
            loader_x86_64: Some(vec![0x4d; 70_000]),
            loader_aarch64: Some(b"MZ aa64".to_vec()),
            cmdline: cmdline.to_vec(),
        }
    }

    #[test]
    fn limine_conf_carries_the_cmdline_verbatim() {
        let conf = limine_conf(b"a \"b\" $HOME `x` \\").unwrap();
        let text = String::from_utf8(conf).unwrap();
        assert!(text.contains("    kernel_path: boot():/boot/kernel-${ARCH}\n"));
        assert!(text.contains("timeout: 0\n"));
        assert!(text.ends_with("    cmdline: a \"b\" $HOME `x` \\\n"));
        assert!(!text.contains("kaslr"));
        let conf = limine_conf(b"exit=qemu nokaslr").unwrap();
        assert!(conf.ends_with(b"    cmdline: exit=qemu nokaslr\n    kaslr: no\n"));
        assert!(!limine_conf(b"nokaslrx").unwrap().ends_with(b"kaslr: no\n"));
        assert_eq!(limine_conf(b"a\nb"), Err(ImageError::CmdlineHasLineBreak));
        assert_eq!(limine_conf(b"a\rb"), Err(ImageError::CmdlineHasLineBreak));
    }

    #[test]
    fn image_holds_the_files_and_leaves_out_missing_ones() {
        let cmdline = b"x\"; touch FILE; echo \"$(id) \xff";
        let disk = build(&contents(cmdline), 64, [3; 36]).unwrap();
        assert_eq!(disk.len() as u64, 64 * MIB);
        assert_eq!(read_file(&disk, "boot/stratus.cmdline").unwrap(), cmdline);
        assert_eq!(
            read_file(&disk, "EFI/BOOT/BOOTX64.EFI").unwrap(),
            vec![0x4d; 70_000]
        );
        assert_eq!(
            read_file(&disk, "EFI/BOOT/BOOTAA64.EFI").unwrap(),
            b"MZ aa64"
        );
        assert_eq!(
            read_file(&disk, "boot/kernel-x86-64").unwrap(),
            b"\x7fELF x86"
        );
        assert!(read_file(&disk, "boot/kernel-aarch64").is_err());
        let conf = read_file(&disk, "limine.conf").unwrap();
        assert_eq!(conf, read_file(&disk, "boot/limine/limine.conf").unwrap());
        assert!(conf.ends_with(b"cmdline: x\"; touch FILE; echo \"$(id) \xff\n"));
    }

    #[test]
    fn esp_is_fat32() {
        let disk = build(&contents(b""), 64, [1; 36]).unwrap();
        let esp = &disk[(ESP_FIRST_LBA * SECTOR) as usize..];
        assert_eq!(&esp[82..90], b"FAT32   ");
        assert_eq!(&esp[510..512], &[0x55, 0xAA]);
    }

    #[test]
    fn too_small_is_refused() {
        assert_eq!(
            build(&contents(b""), 32, [0; 36]),
            Err(ImageError::SizeTooSmall { mib: 32 })
        );
    }
}
