//! Reading the kernel and its command line from the loader's own volume.

use stratus_loader::PAGE_SIZE;
use stratus_loader::memory_map::LOADER_EXECUTABLE_TYPE;
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

/// Reads the kernel at `path` (`display` is the same path for messages).
pub fn read_kernel(
    root: &mut Directory,
    path: &CStr16,
    display: &'static str,
) -> Result<LoadedFile, LoaderError> {
    let mut file = open(root, path)
        .map_err(|s| LoaderError::KernelRead(display, s))?
        .ok_or(LoaderError::KernelNotFound(display))?;
    let size = size_of_file(&mut file).map_err(|s| LoaderError::KernelRead(display, s))?;
    if size > MAX_KERNEL_SIZE {
        return Err(LoaderError::KernelTooLarge(display, size));
    }
    let mut pages = Pages::alloc(
        size.div_ceil(PAGE_SIZE),
        LOADER_EXECUTABLE_TYPE,
        "the kernel file",
    )?;
    let size = size as usize;
    let read = read_all(&mut file, &mut pages.bytes()[..size])
        .map_err(|s| LoaderError::KernelRead(display, s))?;
    if read != size {
        return Err(LoaderError::KernelRead(display, Status::END_OF_FILE));
    }
    Ok(LoadedFile { pages, size })
}

/// Reads up to `buf.len()` bytes of an optional small file; 0 when it is absent.
pub fn read_optional(
    root: &mut Directory,
    path: &CStr16,
    display: &'static str,
    buf: &mut [u8],
) -> Result<usize, LoaderError> {
    match open(root, path).map_err(|s| LoaderError::CmdlineRead(display, s))? {
        None => Ok(0),
        Some(mut file) => {
            read_all(&mut file, buf).map_err(|s| LoaderError::CmdlineRead(display, s))
        }
    }
}
