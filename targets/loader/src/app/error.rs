//! Everything that stops the loader before the handoff, with the message printed
//! and the status returned to the firmware.

use core::fmt;

use stratus_loader::MAX_CMDLINE_FILE;
use stratus_loader::elf::ElfError;
use stratus_loader::fdt::FdtError;
use stratus_loader::memory_map::MapFull;
use stratus_loader::pages::PageRequest;
use stratus_loader::paging::PagingError;
use stratus_loader::reloc::RelocError;
use stratus_loader::requests::ScanError;
use stratus_loader::responses::ArenaFull;
use uefi::Status;

/// A reason not to boot.
#[derive(Debug)]
pub enum LoaderError {
    /// The volume the loader came from cannot be opened.
    Volume(Status),
    /// The kernel file does not exist.
    KernelNotFound(&'static str),
    /// The kernel file exists but cannot be read.
    KernelRead(&'static str, Status),
    /// The kernel file is larger than the loader accepts.
    KernelTooLarge(&'static str, u64),
    /// The command-line file exists but cannot be read.
    CmdlineRead(&'static str, Status),
    /// The command-line file is larger than the loader accepts.
    CmdlineTooLarge(&'static str, u64),
    /// The kernel is not an ELF file this loader can boot.
    BadElf(&'static str, ElfError),
    /// The kernel's relocations cannot be applied.
    Relocation(&'static str, RelocError),
    /// The kernel's Limine requests cannot be honoured.
    Requests(&'static str, ScanError),
    /// The kernel's paging mode request cannot be met.
    PagingMode {
        /// `min_mode` asked for.
        min: u64,
        /// `max_mode` asked for.
        max: u64,
    },
    /// The entry point request names an address the kernel cannot start at.
    EntryPoint(ElfError),
    /// Page allocation failed.
    OutOfMemory {
        /// What the memory was for.
        what: &'static str,
        /// Pages asked for, with their alignment.
        request: PageRequest,
        /// Firmware status.
        status: Status,
    },
    /// The firmware memory map cannot be read.
    MemoryMap(Status),
    /// The memory map does not fit the space reserved for it.
    MapFull(MapFull),
    /// Page tables cannot be built.
    Paging(PagingError),
    /// The response area is too small.
    Arena(ArenaFull),
    /// The device tree blob is malformed.
    Dtb(FdtError),
    /// The CPU runs at an exception level the protocol cannot start from.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    ExceptionLevel(u64),
}

impl LoaderError {
    /// Status returned to the firmware.
    pub fn status(&self) -> Status {
        match self {
            Self::KernelNotFound(_) => Status::NOT_FOUND,
            Self::Volume(s) | Self::KernelRead(_, s) | Self::CmdlineRead(_, s) => *s,
            Self::BadElf(..) | Self::Relocation(..) | Self::Requests(..) | Self::EntryPoint(_) => {
                Status::LOAD_ERROR
            }
            Self::KernelTooLarge(..) | Self::CmdlineTooLarge(..) => Status::BAD_BUFFER_SIZE,
            Self::OutOfMemory { .. } | Self::MapFull(_) | Self::Arena(_) => {
                Status::OUT_OF_RESOURCES
            }
            Self::MemoryMap(s) => *s,
            Self::Paging(_) | Self::PagingMode { .. } | Self::ExceptionLevel(_) => {
                Status::UNSUPPORTED
            }
            Self::Dtb(_) => Status::COMPROMISED_DATA,
        }
    }
}

impl fmt::Display for LoaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Volume(s) => write!(
                f,
                "cannot open the volume the loader was started from ({s:?})"
            ),
            Self::KernelNotFound(path) => write!(f, "kernel file {path} not found"),
            Self::KernelRead(path, s) => write!(f, "cannot read kernel file {path} ({s:?})"),
            Self::KernelTooLarge(path, size) => write!(
                f,
                "kernel file {path} is {size} bytes, more than the loader accepts"
            ),
            Self::CmdlineTooLarge(path, size) => write!(
                f,
                "command-line file {path} is {size} bytes, more than the loader accepts \
                 ({MAX_CMDLINE_FILE})"
            ),
            Self::CmdlineRead(path, s) => {
                write!(f, "cannot read command-line file {path} ({s:?})")
            }
            Self::BadElf(path, e) => write!(f, "kernel {path} is not a valid ELF: {e}"),
            Self::Relocation(path, e) => {
                write!(f, "kernel {path} cannot be relocated: {e}")
            }
            Self::Requests(path, e) => {
                write!(
                    f,
                    "kernel {path} has Limine requests that cannot be honoured: {e}"
                )
            }
            Self::PagingMode { min, max } => write!(
                f,
                "kernel needs paging mode {min}..={max}; only 4-level paging (mode 0) is \
                 available"
            ),
            Self::EntryPoint(e) => write!(f, "Limine entry point request refused: {e}"),
            Self::OutOfMemory {
                what,
                request,
                status,
            } => write!(f, "cannot allocate {request} for {what} ({status:?})"),
            Self::MemoryMap(s) => write!(f, "cannot read the firmware memory map ({s:?})"),
            Self::MapFull(e) => write!(f, "{e}"),
            Self::Paging(e) => write!(f, "cannot build page tables: {e}"),
            Self::Arena(e) => write!(f, "{e}"),
            Self::Dtb(e) => write!(f, "{e}"),
            Self::ExceptionLevel(el) => write!(
                f,
                "running at EL{el}; a Limine kernel must be started from EL1 or EL2"
            ),
        }
    }
}

impl From<ArenaFull> for LoaderError {
    fn from(e: ArenaFull) -> Self {
        Self::Arena(e)
    }
}

impl From<PagingError> for LoaderError {
    fn from(e: PagingError) -> Self {
        Self::Paging(e)
    }
}

impl From<MapFull> for LoaderError {
    fn from(e: MapFull) -> Self {
        Self::MapFull(e)
    }
}
