//! `stratus-image`: builds the one Stratus disk image (GPT, FAT32 EFI system partition,
//! both architectures' loaders and kernels), boots kernels in QEMU, and exports the
//! formats AWS, GCP and Azure import. No mtools, sgdisk or mkfs needed: the GPT is
//! written here ([`gpt`]), the FAT32 file system by the `fatfs` crate.
//!
//! The command-line tool (`src/main.rs`) is a thin layer over these modules; see
//! `docs/image-tool.md` for its use.

#![forbid(unsafe_code)]

pub mod cloud;
pub mod fat_dots;
pub mod gcp;
pub mod gpt;
pub mod image;
pub mod output;
pub mod qemu;
pub mod vhd;
pub mod vmdk;

use std::fmt;

/// Everything that can go wrong while building or converting an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The requested image size is below the minimum (64 MiB: FAT32 needs clusters).
    SizeTooSmall {
        /// The size asked for.
        mib: u64,
    },
    /// A disk too small to hold a GPT.
    DiskTooSmall {
        /// Its size.
        bytes: u64,
    },
    /// A size that must be a whole number of MiB is not.
    NotWholeMib {
        /// The size.
        bytes: u64,
    },
    /// A size that must be a whole number of 512-byte sectors is not.
    NotWholeSectors {
        /// The size.
        bytes: u64,
    },
    /// Something exceeds what a format can express.
    TooLarge(&'static str),
    /// The kernel command line holds a line break (it must be one line).
    CmdlineHasLineBreak,
    /// A GPT that this tool cannot use, and why.
    Gpt(&'static str),
    /// The FAT file system library failed.
    Fat(String),
    /// Reading or writing a file failed.
    Io(String),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::SizeTooSmall { mib } => {
                write!(
                    f,
                    "image size {mib} MiB is too small (at least {} MiB)",
                    image::MIN_SIZE_MIB
                )
            }
            ImageError::DiskTooSmall { bytes } => {
                write!(f, "a disk of {bytes} bytes cannot hold a GPT")
            }
            ImageError::NotWholeMib { bytes } => {
                write!(f, "size {bytes} is not a whole number of MiB")
            }
            ImageError::NotWholeSectors { bytes } => {
                write!(f, "size {bytes} is not a whole number of sectors")
            }
            ImageError::TooLarge(what) => write!(f, "too large: {what}"),
            ImageError::CmdlineHasLineBreak => {
                write!(f, "the kernel command line must be one line")
            }
            ImageError::Gpt(why) => write!(f, "GPT: {why}"),
            ImageError::Fat(why) => write!(f, "FAT: {why}"),
            ImageError::Io(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ImageError {}
