//! Finding the kernel's requests and its base revision tag.
//!
//! Limine scans the loaded image (from its physical base over
//! `image_size_before_bss`, 8 bytes at a time) twice: once for the base revision
//! tag, once for requests. A start marker resets what was found so far, an end
//! marker stops the scan; so only tags and requests between the last start marker
//! and the first end marker count when markers are present. Base revision 2 made
//! honouring the markers mandatory; Limine honours them for every revision, and so
//! do we. Two requests with the same id are refused, as is a second base revision
//! tag, and more than [`MAX_REQUESTS`] requests.
//!
//! The image is a byte slice here; offsets are relative to its start.

use core::fmt;

use crate::MAX_BASE_REVISION;

/// First two words of every request id.
pub const COMMON_MAGIC: [u64; 2] = [0xc7b1_dd30_df4c_8b88, 0x0a82_e883_a194_f07b];
/// First two words of a base revision tag; the third is the requested revision.
pub const BASE_REVISION_MAGIC: [u64; 2] = [0xf956_2b2d_5c95_a6c8, 0x6a7b_3849_4453_6bdc];
/// Requests start marker.
pub const REQUESTS_START_MARKER: [u64; 4] = [
    0xf6b8_f4b3_9de7_d1ae,
    0xfab9_1a69_40fc_b9cf,
    0x785c_6ed0_15d3_e316,
    0x181e_920a_7852_b9d9,
];
/// Requests end marker.
pub const REQUESTS_END_MARKER: [u64; 2] = [0xadc0_e053_1bb1_0d03, 0x9572_709f_3176_4c62];
/// Most requests Limine accepts (`MAX_REQUESTS`).
pub const MAX_REQUESTS: usize = 128;

/// Byte offset of `revision` in every request.
pub const REQUEST_REVISION_OFFSET: usize = 32;
/// Byte offset of the `response` pointer in every request.
pub const REQUEST_RESPONSE_OFFSET: usize = 40;
/// Byte offset of the first request-specific member.
pub const REQUEST_EXTRA_OFFSET: usize = 48;

/// Features this loader knows, with the last two words of their ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Bootloader name and version.
    BootloaderInfo,
    /// Firmware type (always UEFI 64-bit here).
    FirmwareType,
    /// Size of the entry stack.
    StackSize,
    /// Higher half direct map offset.
    Hhdm,
    /// Framebuffers (from GOP).
    Framebuffer,
    /// Paging mode (4-level only here).
    PagingMode,
    /// Multiprocessor start-up (not implemented: left without response).
    Mp,
    /// Memory map.
    MemoryMap,
    /// Entry point override.
    EntryPoint,
    /// The executable file (called kernel file in Limine 8.x).
    ExecutableFile,
    /// Modules (none are loaded: left without response).
    Module,
    /// ACPI RSDP.
    Rsdp,
    /// SMBIOS entry points.
    Smbios,
    /// EFI system table.
    EfiSystemTable,
    /// EFI memory map.
    EfiMemoryMap,
    /// Date at boot (boot time in Limine 8.x).
    DateAtBoot,
    /// Executable physical and virtual base (kernel address in Limine 8.x).
    ExecutableAddress,
    /// Device tree blob.
    Dtb,
    /// Executable command line (Limine 9.x; answered too, it costs nothing).
    ExecutableCmdline,
}

impl Feature {
    /// Every feature, for lookups.
    pub const ALL: [Self; 19] = [
        Self::BootloaderInfo,
        Self::FirmwareType,
        Self::StackSize,
        Self::Hhdm,
        Self::Framebuffer,
        Self::PagingMode,
        Self::Mp,
        Self::MemoryMap,
        Self::EntryPoint,
        Self::ExecutableFile,
        Self::Module,
        Self::Rsdp,
        Self::Smbios,
        Self::EfiSystemTable,
        Self::EfiMemoryMap,
        Self::DateAtBoot,
        Self::ExecutableAddress,
        Self::Dtb,
        Self::ExecutableCmdline,
    ];

    /// The 3rd and 4th words of the request id (PROTOCOL.md, "Feature List").
    #[must_use]
    pub const fn id(self) -> [u64; 2] {
        match self {
            Self::BootloaderInfo => [0xf550_38d8_e2a1_202f, 0x2794_26fc_f5f5_9740],
            Self::FirmwareType => [0x8c2f_75d9_0bef_28a8, 0x7045_a468_8eac_00c3],
            Self::StackSize => [0x224e_f046_0a8e_8926, 0xe1cb_0fc2_5f46_ea3d],
            Self::Hhdm => [0x48dc_f1cb_8ad2_b852, 0x6398_4e95_9a98_244b],
            Self::Framebuffer => [0x9d58_27dc_d881_dd75, 0xa314_8604_f6fa_b11b],
            Self::PagingMode => [0x95c1_a0ed_ab09_44cb, 0xa4e5_cb38_42f7_488a],
            Self::Mp => [0x95a6_7b81_9a1b_857e, 0xa0b6_1b72_3b6a_73e0],
            Self::MemoryMap => [0x67cf_3d9d_378a_806f, 0xe304_acdf_c50c_3c62],
            Self::EntryPoint => [0x13d8_6c03_5a1c_d3e1, 0x2b0c_aa89_d8f3_026a],
            Self::ExecutableFile => [0xad97_e90e_83f1_ed67, 0x31eb_5d1c_5ff2_3b69],
            Self::Module => [0x3e7e_2797_02be_32af, 0xca1c_4f3b_d128_0cee],
            Self::Rsdp => [0xc5e7_7b6b_397e_7b43, 0x2763_7845_accd_cf3c],
            Self::Smbios => [0x9e90_46f1_1e09_5391, 0xaa4a_520f_efbd_e5ee],
            Self::EfiSystemTable => [0x5ceb_a516_3eaa_f6d6, 0x0a69_8161_0cf6_5fcc],
            Self::EfiMemoryMap => [0x7df6_2a43_1d68_72d5, 0xa4fc_dfb3_e573_06c8],
            Self::DateAtBoot => [0x5027_46e1_84c0_88aa, 0xfbc5_ec83_e632_7893],
            Self::ExecutableAddress => [0x71ba_7686_3cc5_5f63, 0xb264_4a48_c516_a487],
            Self::Dtb => [0xb40d_db48_fb54_bac7, 0x5450_8149_3f81_ffb7],
            Self::ExecutableCmdline => [0x4b16_1536_e598_651e, 0xb390_ad4a_2f1f_303a],
        }
    }

    /// The feature with this id, if the loader knows it.
    #[must_use]
    pub fn from_id(id: [u64; 2]) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.id() == id)
    }
}

/// A request found in the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Byte offset of the request's first id word in the image.
    pub offset: usize,
    /// The 3rd and 4th id words.
    pub id: [u64; 2],
    /// The request's `revision` member.
    pub revision: u64,
}

/// The kernel's base revision tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseRevisionTag {
    /// Byte offset of the tag's first word in the image.
    pub offset: usize,
    /// The revision the kernel asked for (the tag's 3rd word).
    pub requested: u64,
}

/// Why the requests cannot be honoured (Limine refuses to boot in these cases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// A second base revision tag.
    DuplicateBaseRevision {
        /// Offset of the second tag.
        offset: usize,
    },
    /// Two requests with the same id.
    DuplicateRequest {
        /// The 3rd and 4th id words.
        id: [u64; 2],
        /// Offset of the second request.
        offset: usize,
    },
    /// More than [`MAX_REQUESTS`] requests.
    TooManyRequests,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::DuplicateBaseRevision { offset } => {
                write!(f, "duplicate base revision tag at image offset {offset:#x}")
            }
            Self::DuplicateRequest { id, offset } => write!(
                f,
                "duplicate request id {:#018x} {:#018x} at image offset {offset:#x}",
                id[0], id[1]
            ),
            Self::TooManyRequests => write!(f, "more than {MAX_REQUESTS} requests"),
        }
    }
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// The base revision the kernel is booted with.
    pub base_revision: u64,
    /// The tag, if the kernel has one (no tag means revision 0).
    pub tag: Option<BaseRevisionTag>,
    /// Whether the requested revision is supported (then the tag's 3rd word is
    /// set to 0).
    pub supported: bool,
    requests: [Request; MAX_REQUESTS],
    count: usize,
}

/// Reads the little-endian word at `offset`, if it lies inside `image`.
#[must_use]
pub fn read_u64(image: &[u8], offset: usize) -> Option<u64> {
    let bytes = image.get(offset..offset.checked_add(8)?)?;
    let mut v = [0u8; 8];
    v.copy_from_slice(bytes);
    Some(u64::from_le_bytes(v))
}

/// Writes a little-endian word at `offset`; `false` if it does not fit.
pub fn write_u64(image: &mut [u8], offset: usize, value: u64) -> bool {
    let Some(end) = offset.checked_add(8) else {
        return false;
    };
    match image.get_mut(offset..end) {
        Some(bytes) => {
            bytes.copy_from_slice(&value.to_le_bytes());
            true
        }
        None => false,
    }
}

fn matches(image: &[u8], offset: usize, words: &[u64]) -> bool {
    words
        .iter()
        .enumerate()
        .all(|(i, &w)| read_u64(image, offset + 8 * i) == Some(w))
}

/// Scans `image[start..end]` (8-byte steps from `start`) like Limine 8.x does.
///
/// Words are read from `image` as a whole, so a tag or request straddling `end`
/// is still seen, as in Limine; nothing outside `image` is ever read.
///
/// # Errors
///
/// See [`ScanError`].
pub fn scan(image: &[u8], start: usize, end: usize) -> Result<Scan, ScanError> {
    let end = end.min(image.len());
    let positions = || (start..end).step_by(8).take_while(move |&i| i + 8 <= end);

    // Pass 1: the base revision tag.
    let mut tag = None;
    for i in positions() {
        if matches(image, i, &REQUESTS_START_MARKER) {
            tag = None;
            continue;
        }
        if matches(image, i, &REQUESTS_END_MARKER) {
            break;
        }
        if matches(image, i, &BASE_REVISION_MAGIC)
            && let Some(requested) = read_u64(image, i + 16)
        {
            if tag.is_some() {
                return Err(ScanError::DuplicateBaseRevision { offset: i });
            }
            tag = Some(BaseRevisionTag {
                offset: i,
                requested,
            });
        }
    }

    // Pass 2: requests.
    let mut requests = [Request::default(); MAX_REQUESTS];
    let mut count = 0;
    for i in positions() {
        if matches(image, i, &REQUESTS_START_MARKER) {
            count = 0;
            continue;
        }
        if matches(image, i, &REQUESTS_END_MARKER) {
            break;
        }
        if !matches(image, i, &COMMON_MAGIC) {
            continue;
        }
        // A request has at least id, revision and response; a truncated one at
        // the very end of the image cannot be answered and is ignored.
        let (Some(id2), Some(id3), Some(revision)) = (
            read_u64(image, i + 16),
            read_u64(image, i + 24),
            read_u64(image, i + REQUEST_REVISION_OFFSET),
        ) else {
            continue;
        };
        if i + REQUEST_EXTRA_OFFSET > image.len() {
            continue;
        }
        let id = [id2, id3];
        if count == MAX_REQUESTS {
            return Err(ScanError::TooManyRequests);
        }
        if requests[..count].iter().any(|r| r.id == id) {
            return Err(ScanError::DuplicateRequest { id, offset: i });
        }
        requests[count] = Request {
            offset: i,
            id,
            revision,
        };
        count += 1;
    }

    let (base_revision, supported) = match tag {
        None => (0, true),
        Some(t) if t.requested <= MAX_BASE_REVISION => (t.requested, true),
        Some(_) => (MAX_BASE_REVISION, false),
    };
    Ok(Scan {
        base_revision,
        tag,
        supported,
        requests,
        count,
    })
}

impl Scan {
    /// All requests found, in image order.
    #[must_use]
    pub fn requests(&self) -> &[Request] {
        &self.requests[..self.count]
    }

    /// The request for `feature`, if the kernel made one.
    #[must_use]
    pub fn find(&self, feature: Feature) -> Option<&Request> {
        self.requests().iter().find(|r| r.id == feature.id())
    }

    /// Updates the kernel's base revision tag: the 3rd word becomes 0 when the
    /// requested revision is supported, and the 2nd word says which revision the
    /// kernel was loaded with (what `limine::BaseRevision::loaded_revision` reads).
    pub fn answer_base_revision(&self, image: &mut [u8]) {
        if let Some(tag) = self.tag {
            write_u64(image, tag.offset + 8, self.base_revision);
            if self.supported {
                write_u64(image, tag.offset + 16, 0);
            }
        }
    }
}

/// Points `request`'s response member at `response` (a virtual address).
pub fn set_response(image: &mut [u8], request: &Request, response: u64) {
    write_u64(image, request.offset + REQUEST_RESPONSE_OFFSET, response);
}

/// Reads the request-specific member `index` (0 = the first after `response`);
/// `None` if it lies outside the image.
#[must_use]
pub fn extra(image: &[u8], request: &Request, index: usize) -> Option<u64> {
    read_u64(image, request.offset + REQUEST_EXTRA_OFFSET + 8 * index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_to_bytes(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn request(feature: Feature, revision: u64, extra: &[u64]) -> Vec<u64> {
        let id = feature.id();
        let mut v = vec![COMMON_MAGIC[0], COMMON_MAGIC[1], id[0], id[1], revision, 0];
        v.extend_from_slice(extra);
        v
    }

    fn tag(rev: u64) -> Vec<u64> {
        vec![BASE_REVISION_MAGIC[0], BASE_REVISION_MAGIC[1], rev]
    }

    #[test]
    fn finds_requests_and_tag_without_markers() {
        let mut w = vec![0u64; 3];
        w.extend(tag(2));
        w.push(0xdead);
        w.extend(request(Feature::Hhdm, 0, &[]));
        w.extend(request(Feature::StackSize, 0, &[0x10_0000]));
        w.extend([0u64; 4]);
        let mut image = words_to_bytes(&w);
        let s = scan(&image, 0, image.len()).unwrap();
        assert_eq!(s.base_revision, 2);
        assert!(s.supported);
        assert_eq!(
            s.tag,
            Some(BaseRevisionTag {
                offset: 24,
                requested: 2
            })
        );
        assert_eq!(s.requests().len(), 2);
        let hhdm = *s.find(Feature::Hhdm).unwrap();
        assert_eq!(hhdm.offset, 56);
        let stack = *s.find(Feature::StackSize).unwrap();
        assert_eq!(extra(&image, &stack, 0), Some(0x10_0000));
        assert!(s.find(Feature::MemoryMap).is_none());

        s.answer_base_revision(&mut image);
        assert_eq!(read_u64(&image, 24 + 8), Some(2));
        assert_eq!(read_u64(&image, 24 + 16), Some(0));
        set_response(&mut image, &hhdm, 0xffff_8000_0000_1000);
        assert_eq!(read_u64(&image, 56 + 40), Some(0xffff_8000_0000_1000));
    }

    #[test]
    fn markers_delimit_the_scan() {
        let mut w = Vec::new();
        // Before the start marker: ignored (reset by the marker).
        w.extend(tag(1));
        w.extend(request(Feature::Rsdp, 0, &[]));
        w.extend(REQUESTS_START_MARKER);
        w.extend(tag(3));
        w.extend(request(Feature::MemoryMap, 0, &[]));
        w.extend(REQUESTS_END_MARKER);
        // After the end marker: ignored.
        w.extend(request(Feature::Hhdm, 0, &[]));
        w.extend(tag(0));
        let image = words_to_bytes(&w);
        let s = scan(&image, 0, image.len()).unwrap();
        assert_eq!(s.base_revision, 3);
        assert_eq!(s.requests().len(), 1);
        assert!(s.find(Feature::MemoryMap).is_some());
        assert!(s.find(Feature::Rsdp).is_none());
        assert!(s.find(Feature::Hhdm).is_none());
    }

    #[test]
    fn unsupported_revision_is_loaded_with_the_highest() {
        let mut w = tag(7);
        w.push(0);
        let mut image = words_to_bytes(&w);
        let s = scan(&image, 0, image.len()).unwrap();
        assert_eq!(s.base_revision, MAX_BASE_REVISION);
        assert!(!s.supported);
        s.answer_base_revision(&mut image);
        // 3rd word unchanged, 2nd word = revision used.
        assert_eq!(read_u64(&image, 16), Some(7));
        assert_eq!(read_u64(&image, 8), Some(MAX_BASE_REVISION));
    }

    #[test]
    fn no_tag_means_revision_zero() {
        let image = words_to_bytes(&request(Feature::Hhdm, 0, &[]));
        let s = scan(&image, 0, image.len()).unwrap();
        assert_eq!(s.base_revision, 0);
        assert!(s.tag.is_none());
    }

    #[test]
    fn duplicates_are_refused() {
        let mut w = request(Feature::Hhdm, 0, &[]);
        w.extend(request(Feature::Hhdm, 1, &[]));
        let image = words_to_bytes(&w);
        assert_eq!(
            scan(&image, 0, image.len()),
            Err(ScanError::DuplicateRequest {
                id: Feature::Hhdm.id(),
                offset: 48
            })
        );
        let mut w = tag(2);
        w.extend(tag(2));
        let image = words_to_bytes(&w);
        assert_eq!(
            scan(&image, 0, image.len()),
            Err(ScanError::DuplicateBaseRevision { offset: 24 })
        );
    }

    #[test]
    fn too_many_requests() {
        let mut w = Vec::new();
        for i in 0..=MAX_REQUESTS as u64 {
            w.extend([COMMON_MAGIC[0], COMMON_MAGIC[1], i, i, 0, 0]);
        }
        let image = words_to_bytes(&w);
        assert_eq!(
            scan(&image, 0, image.len()),
            Err(ScanError::TooManyRequests)
        );
    }

    #[test]
    fn scan_range_and_truncation_are_respected() {
        let mut w = vec![0u64];
        w.extend(request(Feature::Hhdm, 0, &[]));
        let image = words_to_bytes(&w);
        // Range starting after the request: nothing found.
        assert_eq!(scan(&image, 16, image.len()).unwrap().requests().len(), 0);
        // A request whose response member is cut off is ignored, never read past.
        let cut = &image[..image.len() - 8];
        assert_eq!(scan(cut, 0, cut.len()).unwrap().requests().len(), 0);
        // Unaligned garbage lengths do not panic.
        assert!(scan(&image[..13], 0, 13).is_ok());
        assert!(scan(&image, 0, 10_000).is_ok());
    }

    #[test]
    fn feature_ids_round_trip() {
        for f in Feature::ALL {
            assert_eq!(Feature::from_id(f.id()), Some(f));
        }
        assert_eq!(Feature::from_id([1, 2]), None);
    }
}
