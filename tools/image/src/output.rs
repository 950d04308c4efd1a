//! Writing image files: sparse (runs of zeros become holes), through a temporary file
//! renamed into place, so a failed run never leaves a half-written image behind.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::ImageError;

/// Zero runs at least this long (and aligned to it) are left as holes.
const HOLE: usize = 64 * 1024;

/// Writes a file of `size` bytes holding `regions` (offset, bytes), zeros elsewhere.
pub fn write_sparse(path: &Path, size: u64, regions: &[(u64, &[u8])]) -> Result<(), ImageError> {
    let io =
        |what: &str, e: std::io::Error| ImageError::Io(format!("{what} {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory of", e))?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = Path::new(&tmp_name);
    let result = (|| {
        let mut file = File::create(tmp).map_err(|e| io("cannot create", e))?;
        file.set_len(size).map_err(|e| io("cannot size", e))?;
        for (offset, bytes) in regions {
            for (i, block) in bytes.chunks(HOLE).enumerate() {
                if block.iter().all(|&b| b == 0) {
                    continue;
                }
                file.seek(SeekFrom::Start(offset + (i * HOLE) as u64))
                    .map_err(|e| io("cannot seek in", e))?;
                file.write_all(block).map_err(|e| io("cannot write", e))?;
            }
        }
        file.sync_all().map_err(|e| io("cannot flush", e))?;
        std::fs::rename(tmp, path).map_err(|e| io("cannot rename into", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_regions_and_zeros() {
        let dir = std::env::temp_dir().join(format!("stratus-image-test-{}", std::process::id()));
        let path = dir.join("x.bin");
        let mut big = vec![0u8; 200 * 1024];
        big[150 * 1024] = 7;
        write_sparse(&path, 300 * 1024, &[(0, &big), (299 * 1024, b"end")]).unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), 300 * 1024);
        assert_eq!(back[150 * 1024], 7);
        assert_eq!(&back[299 * 1024..299 * 1024 + 3], b"end");
        assert_eq!(back.iter().filter(|&&b| b != 0).count(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
