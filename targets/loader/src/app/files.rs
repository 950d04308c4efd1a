//! Reading the kernel and its command line from the loader's own volume.

use stratus_loader::memory_map::{LOADER_EXECUTABLE_TYPE, LOADER_RECLAIMABLE_TYPE};
use stratus_loader::{MAX_CMDLINE_FILE, PAGE_SIZE};
use uefi::proto::media::file::{Directory, File, FileAttribute, FileMode, RegularFile};
use uefi::{CStr16, Status};

use super::error::LoaderError;
use super::memory::Pages;

/// Largest kernel file accepted.
pub const MAX_KERNEL_SIZE: u64 = 1 << 30;

/// A file loaded into pages of the "executable and modules" type.
pub struct LoadedFile {
    /// The pages (4 KiB aligned, as the protocol's `limine_file` requires).
    pub pages: Pages,
    /// File size in bytes.
    pub size: usize,
}

fn open(root: &mut Directory, path: &CStr16) -> Result<Option<RegularFile>, Status> {
    match root.open(path, FileMode::Read, FileAttribute::empty()) {
        Ok(handle) => Ok(handle.into_regular_file()),
        Err(e) if e.status() == Status::NOT_FOUND => Ok(None),
        Err(e) => Err(e.status()),
    }
}

fn size_of_file(file: &mut RegularFile) -> Result<u64, Status> {
    file.set_position(RegularFile::END_OF_FILE)
        .map_err(|e| e.status())?;
    let size = file.get_position().map_err(|e| e.status())?;
    file.set_position(0).map_err(|e| e.status())?;
    Ok(size)
}

fn read_all(file: &mut RegularFile, buf: &mut [u8]) -> Result<usize, Status> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read(&mut buf[done..]).map_err(|e| e.status())?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Why a file could not be loaded.
enum FileError {
    /// The firmware failed to open or read it.
    Read(Status),
    /// It is larger than the caller accepts (its size).
    TooLarge(u64),
    /// No memory for it.
    Memory(LoaderError),
}

/// Loads the whole file at `path` into pages of type `ty`; `None` when it does
/// not exist.
fn load(
    root: &mut Directory,
    path: &CStr16,
    max_size: u64,
    ty: u32,
    what: &'static str,
) -> Result<Option<LoadedFile>, FileError> {
    let Some(mut file) = open(root, path).map_err(FileError::Read)? else {
        return Ok(None);
    };
    let size = size_of_file(&mut file).map_err(FileError::Read)?;
    if size > max_size {
        return Err(FileError::TooLarge(size));
    }
    let mut pages = Pages::alloc(size.div_ceil(PAGE_SIZE), ty, what).map_err(FileError::Memory)?;
    let size = size as usize;
    let read = read_all(&mut file, &mut pages.bytes()[..size]).map_err(FileError::Read)?;
    if read != size {
        return Err(FileError::Read(Status::END_OF_FILE));
    }
    Ok(Some(LoadedFile { pages, size }))
}

/// Reads the kernel at `path` (`display` is the same path for messages).
pub fn read_kernel(
    root: &mut Directory,
    path: &CStr16,
    display: &'static str,
) -> Result<LoadedFile, LoaderError> {
    match load(
        root,
        path,
        MAX_KERNEL_SIZE,
        LOADER_EXECUTABLE_TYPE,
        "the kernel file",
    ) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(LoaderError::KernelNotFound(display)),
        Err(FileError::Read(s)) => Err(LoaderError::KernelRead(display, s)),
        Err(FileError::TooLarge(size)) => Err(LoaderError::KernelTooLarge(display, size)),
        Err(FileError::Memory(e)) => Err(e),
    }
}

/// Reads the whole command-line file at `path`, however long (up to
/// [`MAX_CMDLINE_FILE`]); `None` when it is absent.
pub fn read_cmdline(
    root: &mut Directory,
    path: &CStr16,
    display: &'static str,
) -> Result<Option<LoadedFile>, LoaderError> {
    load(
        root,
        path,
        MAX_CMDLINE_FILE as u64,
        LOADER_RECLAIMABLE_TYPE,
        "the command line",
    )
    .map_err(|e| match e {
        FileError::Read(s) => LoaderError::CmdlineRead(display, s),
        FileError::TooLarge(size) => LoaderError::CmdlineTooLarge(display, size),
        FileError::Memory(e) => e,
    })
}
