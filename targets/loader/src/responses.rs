//! Response structures, written byte by byte into a bump arena.
//!
//! The arena is a buffer in bootloader-reclaimable memory whose physical address is
//! known. Every pointer handed to the kernel is an HHDM virtual address
//! (`physical + hhdm_offset`), as the protocol's "General Notes" require, except
//! where a base revision says otherwise (the caller decides those).
//!
//! Layouts follow `limine.h` (PROTOCOL.md): all members are naturally aligned
//! 64-bit words unless noted, responses start with a `revision` word.

use core::fmt;

use crate::memory_map::Entry;

/// The arena is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaFull {
    /// Bytes asked for.
    pub wanted: usize,
    /// Bytes left.
    pub left: usize,
}

impl fmt::Display for ArenaFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "response arena full: {} bytes wanted, {} left",
            self.wanted, self.left
        )
    }
}

/// A bump allocator over a buffer at a known physical address.
pub struct Arena<'a> {
    buf: &'a mut [u8],
    phys_base: u64,
    hhdm_offset: u64,
    used: usize,
}

/// Where an allocation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Offset in the arena.
    pub offset: usize,
    /// Physical address.
    pub phys: u64,
    /// HHDM virtual address (what the kernel is given).
    pub virt: u64,
}

impl<'a> Arena<'a> {
    /// An arena over `buf`, which lives at physical address `phys_base`.
    pub fn new(buf: &'a mut [u8], phys_base: u64, hhdm_offset: u64) -> Self {
        Self {
            buf,
            phys_base,
            hhdm_offset,
            used: 0,
        }
    }

    /// Bytes handed out so far.
    #[must_use]
    pub fn used(&self) -> usize {
        self.used
    }

    /// The HHDM offset pointers are made with.
    #[must_use]
    pub fn hhdm_offset(&self) -> u64 {
        self.hhdm_offset
    }

    /// Allocates `size` zeroed bytes aligned to `align` (a power of two).
    ///
    /// # Errors
    ///
    /// [`ArenaFull`] if the buffer is exhausted.
    pub fn alloc(&mut self, size: usize, align: usize) -> Result<Block, ArenaFull> {
        let phys_now = self.phys_base + self.used as u64;
        let pad = (phys_now.wrapping_neg() & (align as u64 - 1)) as usize;
        let left = self.buf.len() - self.used;
        if pad.saturating_add(size) > left {
            return Err(ArenaFull { wanted: size, left });
        }
        let offset = self.used + pad;
        self.buf[offset..offset + size].fill(0);
        self.used = offset + size;
        let phys = self.phys_base + offset as u64;
        Ok(Block {
            offset,
            phys,
            virt: phys + self.hhdm_offset,
        })
    }

    /// Mutable view of an allocation.
    pub fn bytes(&mut self, block: Block, len: usize) -> &mut [u8] {
        &mut self.buf[block.offset..block.offset + len]
    }

    /// Writes `value` at `offset` bytes into `block`.
    pub fn put_u64(&mut self, block: Block, offset: usize, value: u64) {
        let at = block.offset + offset;
        self.buf[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    /// Allocates and fills a structure made of 64-bit words; returns its address.
    ///
    /// # Errors
    ///
    /// [`ArenaFull`].
    pub fn words(&mut self, words: &[u64]) -> Result<Block, ArenaFull> {
        let block = self.alloc(words.len() * 8, 8)?;
        for (i, &w) in words.iter().enumerate() {
            self.put_u64(block, i * 8, w);
        }
        Ok(block)
    }

    /// Copies `s` plus a terminating NUL; returns its address.
    ///
    /// # Errors
    ///
    /// [`ArenaFull`].
    pub fn c_string(&mut self, s: &[u8]) -> Result<Block, ArenaFull> {
        let block = self.alloc(s.len() + 1, 1)?;
        self.bytes(block, s.len()).copy_from_slice(s);
        Ok(block)
    }
}

/// `LIMINE_FIRMWARE_TYPE_UEFI64`.
pub const FIRMWARE_TYPE_UEFI64: u64 = 2;
/// `LIMINE_FRAMEBUFFER_RGB`.
pub const FRAMEBUFFER_RGB: u8 = 1;
/// Size of `struct limine_framebuffer` (response revision 1).
pub const FRAMEBUFFER_SIZE: usize = 80;
/// Size of `struct limine_video_mode` (33 bytes of members, padded to 8).
pub const VIDEO_MODE_SIZE: usize = 40;
/// Size of `struct limine_file`.
pub const FILE_SIZE: usize = 112;
/// Size of `struct limine_memmap_entry`.
pub const MEMMAP_ENTRY_SIZE: usize = 24;

/// A linear framebuffer, as GOP describes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framebuffer {
    /// Physical address of the pixels.
    pub phys: u64,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Bytes per line.
    pub pitch: u64,
    /// Bits per pixel.
    pub bpp: u16,
    /// Red mask size and shift.
    pub red: (u8, u8),
    /// Green mask size and shift.
    pub green: (u8, u8),
    /// Blue mask size and shift.
    pub blue: (u8, u8),
}

impl Framebuffer {
    /// Bytes the framebuffer spans (`pitch * height`, as Limine reserves it).
    #[must_use]
    pub fn size(&self) -> u64 {
        self.pitch.saturating_mul(self.height)
    }

    /// Derives `(size, shift)` from a contiguous channel mask.
    #[must_use]
    pub fn mask_to_size_shift(mask: u32) -> (u8, u8) {
        if mask == 0 {
            return (0, 0);
        }
        let shift = mask.trailing_zeros();
        ((mask >> shift).trailing_ones() as u8, shift as u8)
    }
}

/// Memory model and the red, green and blue mask sizes and shifts, as both the
/// framebuffer and its video mode list them.
fn pixel_format(fb: &Framebuffer) -> [u8; 7] {
    [
        FRAMEBUFFER_RGB,
        fb.red.0,
        fb.red.1,
        fb.green.0,
        fb.green.1,
        fb.blue.0,
        fb.blue.1,
    ]
}

/// Writes a framebuffer response (revision 1: one framebuffer with one video mode,
/// its current one, and no EDID); returns the response block.
///
/// # Errors
///
/// [`ArenaFull`].
pub fn framebuffer(arena: &mut Arena<'_>, fb: &Framebuffer) -> Result<Block, ArenaFull> {
    let hhdm = arena.hhdm_offset();
    let mode = arena.alloc(VIDEO_MODE_SIZE, 8)?;
    arena.put_u64(mode, 0, fb.pitch);
    arena.put_u64(mode, 8, fb.width);
    arena.put_u64(mode, 16, fb.height);
    let b = arena.bytes(mode, VIDEO_MODE_SIZE);
    b[24..26].copy_from_slice(&fb.bpp.to_le_bytes());
    b[26..33].copy_from_slice(&pixel_format(fb));
    let modes = arena.words(&[mode.virt])?;

    let s = arena.alloc(FRAMEBUFFER_SIZE, 8)?;
    arena.put_u64(s, 0, fb.phys + hhdm);
    arena.put_u64(s, 8, fb.width);
    arena.put_u64(s, 16, fb.height);
    arena.put_u64(s, 24, fb.pitch);
    let b = arena.bytes(s, FRAMEBUFFER_SIZE);
    b[32..34].copy_from_slice(&fb.bpp.to_le_bytes());
    b[34..41].copy_from_slice(&pixel_format(fb));
    // 41..48 unused, 48 edid_size = 0, 56 edid = NULL.
    arena.put_u64(s, 64, 1);
    arena.put_u64(s, 72, modes.virt);
    let list = arena.words(&[s.virt])?;
    arena.words(&[1, 1, list.virt])
}

/// What goes into a `struct limine_file`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileInfo {
    /// Physical address of the file's contents (4 KiB aligned).
    pub phys: u64,
    /// Size in bytes.
    pub size: u64,
    /// Virtual address of the NUL-terminated path (leading slash).
    pub path: u64,
    /// Virtual address of the NUL-terminated command line.
    pub cmdline: u64,
    /// 1-based GPT/MBR partition index, 0 if unknown.
    pub partition_index: u32,
    /// MBR disk id, 0 if unknown.
    pub mbr_disk_id: u32,
    /// GPT partition GUID in EFI byte order (same layout as `limine_uuid`).
    pub gpt_part_uuid: [u8; 16],
}

/// Writes a `struct limine_file` (revision 0, generic media); returns its block.
///
/// # Errors
///
/// [`ArenaFull`].
pub fn file(arena: &mut Arena<'_>, info: &FileInfo) -> Result<Block, ArenaFull> {
    let hhdm = arena.hhdm_offset();
    let s = arena.alloc(FILE_SIZE, 8)?;
    arena.put_u64(s, 8, info.phys + hhdm);
    arena.put_u64(s, 16, info.size);
    arena.put_u64(s, 24, info.path);
    arena.put_u64(s, 32, info.cmdline);
    let b = arena.bytes(s, FILE_SIZE);
    // 40 media_type = GENERIC, 44 unused, 48 tftp_ip, 52 tftp_port.
    b[56..60].copy_from_slice(&info.partition_index.to_le_bytes());
    b[60..64].copy_from_slice(&info.mbr_disk_id.to_le_bytes());
    // 64 gpt_disk_uuid (unknown), 80 gpt_part_uuid, 96 part_uuid (unknown).
    b[80..96].copy_from_slice(&info.gpt_part_uuid);
    Ok(s)
}

/// Space for a memory map response written after `ExitBootServices`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemmapSlot {
    response: Block,
    list: Block,
    entries: Block,
    capacity: usize,
}

impl MemmapSlot {
    /// Reserves room for up to `capacity` entries.
    ///
    /// # Errors
    ///
    /// [`ArenaFull`].
    pub fn reserve(arena: &mut Arena<'_>, capacity: usize) -> Result<Self, ArenaFull> {
        Ok(Self {
            response: arena.alloc(24, 8)?,
            list: arena.alloc(capacity * 8, 8)?,
            entries: arena.alloc(capacity * MEMMAP_ENTRY_SIZE, 8)?,
            capacity,
        })
    }

    /// Entries this slot holds at most.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Writes the response for `entries` (at most `capacity`, extra ones are
    /// dropped) and returns its virtual address.
    pub fn fill(&self, arena: &mut Arena<'_>, entries: &[Entry]) -> u64 {
        let n = entries.len().min(self.capacity);
        for (i, e) in entries[..n].iter().enumerate() {
            let at = i * MEMMAP_ENTRY_SIZE;
            arena.put_u64(self.entries, at, e.base);
            arena.put_u64(self.entries, at + 8, e.length);
            arena.put_u64(self.entries, at + 16, e.kind);
            arena.put_u64(self.list, i * 8, self.entries.virt + at as u64);
        }
        arena.put_u64(self.response, 0, 0);
        arena.put_u64(self.response, 8, n as u64);
        arena.put_u64(self.response, 16, self.list.virt);
        self.response.virt
    }
}

/// The GDT Limine guarantees at entry (null, 16-bit code/data, 32-bit code/data,
/// 64-bit code/data): kernel code selector `0x28`, data `0x30`.
pub const GDT: [u64; 7] = [
    0,
    0x0000_9a00_0000_ffff,
    0x0000_9200_0000_ffff,
    0x00cf_9a00_0000_ffff,
    0x00cf_9200_0000_ffff,
    0x0020_9a00_0000_0000,
    0x0000_9200_0000_0000,
];
/// 64-bit code selector at entry.
pub const KERNEL_CS: u16 = 0x28;
/// 64-bit data selector at entry.
pub const KERNEL_DS: u16 = 0x30;

/// Writes the GDT and a pseudo-descriptor (`lgdt` operand) pointing at its HHDM
/// address; returns the pseudo-descriptor's block.
///
/// # Errors
///
/// [`ArenaFull`].
pub fn gdt(arena: &mut Arena<'_>) -> Result<Block, ArenaFull> {
    let table = arena.words(&GDT)?;
    let gdtr = arena.alloc(16, 16)?;
    let limit = (GDT.len() * 8 - 1) as u16;
    let b = arena.bytes(gdtr, 10);
    b[0..2].copy_from_slice(&limit.to_le_bytes());
    b[2..10].copy_from_slice(&table.virt.to_le_bytes());
    Ok(gdtr)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HHDM: u64 = 0xffff_8000_0000_0000;

    fn word(buf: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(buf[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn arena_aligns_by_physical_address_and_reports_full() {
        let mut buf = vec![0xffu8; 64];
        let mut a = Arena::new(&mut buf, 0x1004, HHDM);
        let s = a.c_string(b"ab").unwrap();
        assert_eq!((s.offset, s.phys, s.virt), (0, 0x1004, HHDM + 0x1004));
        let w = a.words(&[7]).unwrap();
        // 0x1007 rounds up to 0x1008: offset 4.
        assert_eq!((w.offset, w.phys), (4, 0x1008));
        assert_eq!(a.used(), 12);
        assert_eq!(
            a.alloc(100, 8),
            Err(ArenaFull {
                wanted: 100,
                left: 52
            })
        );
        assert_eq!(&buf[0..3], b"ab\0");
        assert_eq!(word(&buf, 4), 7);
    }

    #[test]
    fn framebuffer_layout() {
        let mut buf = vec![0u8; 4096];
        let mut a = Arena::new(&mut buf, 0x10_0000, HHDM);
        let fb = Framebuffer {
            phys: 0x8000_0000,
            width: 1280,
            height: 800,
            pitch: 5120,
            bpp: 32,
            red: (8, 16),
            green: (8, 8),
            blue: (8, 0),
        };
        let resp = framebuffer(&mut a, &fb).unwrap();
        let off = |virt: u64| (virt - HHDM - 0x10_0000) as usize;
        let r = resp.offset;
        assert_eq!(word(&buf, r), 1); // revision
        assert_eq!(word(&buf, r + 8), 1); // count
        let list = off(word(&buf, r + 16));
        let s = off(word(&buf, list));
        assert_eq!(word(&buf, s), HHDM + 0x8000_0000);
        assert_eq!(word(&buf, s + 8), 1280);
        assert_eq!(word(&buf, s + 16), 800);
        assert_eq!(word(&buf, s + 24), 5120);
        assert_eq!(&buf[s + 32..s + 41], &[32, 0, 1, 8, 16, 8, 8, 8, 0]);
        assert_eq!(word(&buf, s + 48), 0); // edid_size
        assert_eq!(word(&buf, s + 64), 1); // mode_count
        let modes = off(word(&buf, s + 72));
        let m = off(word(&buf, modes));
        assert_eq!(word(&buf, m), 5120);
        assert_eq!(&buf[m + 24..m + 33], &[32, 0, 1, 8, 16, 8, 8, 8, 0]);
        assert_eq!(fb.size(), 5120 * 800);
        assert_eq!(Framebuffer::mask_to_size_shift(0x00ff_0000), (8, 16));
        assert_eq!(Framebuffer::mask_to_size_shift(0x0000_07e0), (6, 5));
        assert_eq!(Framebuffer::mask_to_size_shift(0), (0, 0));
    }

    #[test]
    fn file_layout() {
        let mut buf = vec![0u8; 512];
        let mut a = Arena::new(&mut buf, 0x2000, HHDM);
        let info = FileInfo {
            phys: 0x40_0000,
            size: 1234,
            path: HHDM + 0x2100,
            cmdline: HHDM + 0x2200,
            partition_index: 1,
            mbr_disk_id: 0,
            gpt_part_uuid: [9; 16],
        };
        let f = file(&mut a, &info).unwrap();
        let s = f.offset;
        assert_eq!(word(&buf, s), 0);
        assert_eq!(word(&buf, s + 8), HHDM + 0x40_0000);
        assert_eq!(word(&buf, s + 16), 1234);
        assert_eq!(word(&buf, s + 24), HHDM + 0x2100);
        assert_eq!(word(&buf, s + 32), HHDM + 0x2200);
        assert_eq!(&buf[s + 56..s + 60], &1u32.to_le_bytes());
        assert_eq!(&buf[s + 80..s + 96], &[9; 16]);
        assert!(buf[s + 96..s + 112].iter().all(|&b| b == 0));
    }

    #[test]
    fn memmap_slot_and_gdt() {
        let mut buf = vec![0u8; 1024];
        let mut a = Arena::new(&mut buf, 0x3000, HHDM);
        let slot = MemmapSlot::reserve(&mut a, 4).unwrap();
        let entries = [
            Entry {
                base: 0x1000,
                length: 0x9f000,
                kind: 0,
            },
            Entry {
                base: 0x10_0000,
                length: 0x1000,
                kind: 5,
            },
        ];
        let gdtr = gdt(&mut a).unwrap();
        let virt = slot.fill(&mut a, &entries);
        let r = (virt - HHDM - 0x3000) as usize;
        assert_eq!(word(&buf, r + 8), 2);
        let list = (word(&buf, r + 16) - HHDM - 0x3000) as usize;
        let e1 = (word(&buf, list + 8) - HHDM - 0x3000) as usize;
        assert_eq!(
            [word(&buf, e1), word(&buf, e1 + 8), word(&buf, e1 + 16)],
            [0x10_0000, 0x1000, 5]
        );
        let g = gdtr.offset;
        assert_eq!(u16::from_le_bytes([buf[g], buf[g + 1]]), 55);
        let table = (word(&buf, g + 2) - HHDM - 0x3000) as usize;
        assert_eq!(word(&buf, table + 0x28), 0x0020_9a00_0000_0000);
        assert_eq!(word(&buf, table + 0x30), 0x0000_9200_0000_0000);
    }
}
