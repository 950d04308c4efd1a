//! The UEFI application: load `\boot\kernel-<arch>`, answer its Limine requests,
//! build its page tables, exit boot services and jump.
//!
//! Everything that can fail is checked while boot services still run, so errors
//! are printed (`stratus-loader: error: ...`), shown for 2 s, and returned to the
//! firmware. After `ExitBootServices` only things sized and checked beforehand
//! happen; should one fail anyway, the loader prints on COM1 (x86) and powers off.

mod console;
mod entropy;
mod error;
mod files;
mod firmware;
mod memory;

#[cfg(target_arch = "aarch64")]
#[path = "aarch64.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "x86_64.rs"]
mod arch;

unsafe extern "C" {
    /// Bounds of the handoff trampoline, emitted by the arch module's assembly.
    static stratus_trampoline_start: u8;
    static stratus_trampoline_end: u8;
}

/// Physical range of the trampoline code (identity-mapped by UEFI).
pub fn trampoline() -> (u64, u64) {
    let start = &raw const stratus_trampoline_start as u64;
    let end = &raw const stratus_trampoline_end as u64;
    (start, end - start)
}

use core::convert::Infallible;
use core::time::Duration;

use stratus_loader::elf::{self, MAX_SEGMENTS};
use stratus_loader::memory_map::{
    self, EfiRegion, Entry, LOADER_EXECUTABLE_TYPE, LOADER_RECLAIMABLE_TYPE, Options,
};
use stratus_loader::paging::{self, AddressSpace, FramePool, KernelSegment, Plan};
use stratus_loader::reloc;
use stratus_loader::requests::{self, Feature, Request};
use stratus_loader::responses::{self, Arena, Block, FileInfo, MemmapSlot};
use stratus_loader::{Arch, PAGE_SIZE, align_down, align_up, command_line, fdt};
use uefi::boot::{self, MemoryType};
use uefi::mem::memory_map::MemoryMap;
use uefi::runtime::{self, ResetType};
use uefi::{CStr16, Status, cstr16, entry};

use console::println;
use error::LoaderError;
use memory::Pages;

const ARCH: Arch = Arch::native();
const LOADER_NAME: &[u8] = b"Stratus";
const LOADER_VERSION: &[u8] = env!("CARGO_PKG_VERSION").as_bytes();

#[cfg(target_arch = "x86_64")]
mod paths {
    use super::{CStr16, cstr16};
    pub const KERNEL: &CStr16 = cstr16!("\\boot\\kernel-x86-64");
    pub const KERNEL_DISPLAY: &str = "\\boot\\kernel-x86-64";
    pub const KERNEL_PROTOCOL: &[u8] = b"/boot/kernel-x86-64";
}
#[cfg(target_arch = "aarch64")]
mod paths {
    use super::{CStr16, cstr16};
    pub const KERNEL: &CStr16 = cstr16!("\\boot\\kernel-aarch64");
    pub const KERNEL_DISPLAY: &str = "\\boot\\kernel-aarch64";
    pub const KERNEL_PROTOCOL: &[u8] = b"/boot/kernel-aarch64";
}
const CMDLINE: &CStr16 = cstr16!("\\boot\\stratus.cmdline");
const CMDLINE_DISPLAY: &str = "\\boot\\stratus.cmdline";

/// Limine's default (and minimum) stack size.
const DEFAULT_STACK: u64 = 64 * 1024;
/// Largest device tree blob copied.
const MAX_DTB: u32 = 16 << 20;
/// Firmware MMIO ranges remembered for AArch64 device mappings.
const MAX_DEVICE_RANGES: usize = 64;
/// Page-table frames beyond the computed bound (the final memory map may have a
/// few more entries than the one the bound was computed from).
const PAGE_TABLE_SLACK: usize = 64;

#[entry]
fn efi_main() -> Status {
    let start = arch::counter();
    println!(
        "stratus-loader {} ({}): Limine boot protocol loader",
        env!("CARGO_PKG_VERSION"),
        ARCH.name()
    );
    let Err(e) = boot_kernel(start);
    println!("stratus-loader: error: {e}");
    boot::stall(Duration::from_secs(2));
    e.status()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if uefi::table::system_table_raw().is_some()
        && !EXITED.load(core::sync::atomic::Ordering::SeqCst)
    {
        println!("stratus-loader: error: internal error: {info}");
        boot::stall(Duration::from_secs(2));
        // SAFETY: returns control to the firmware with this image's handle;
        // nothing of ours is used afterwards.
        let _ = unsafe {
            boot::exit(
                boot::image_handle(),
                Status::ABORTED,
                0,
                core::ptr::null_mut(),
            )
        };
    }
    fatal("internal error after ExitBootServices")
}

static EXITED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Failure after `ExitBootServices`: say so where possible and power off.
fn fatal(msg: &str) -> ! {
    arch::emergency_print("stratus-loader: fatal: ");
    arch::emergency_print(msg);
    arch::emergency_print("\r\n");
    runtime::reset(ResetType::SHUTDOWN, Status::ABORTED, None)
}

fn pages_for(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(PAGE_SIZE)
}

fn regions(map: &impl MemoryMap) -> impl Iterator<Item = EfiRegion> + '_ {
    map.entries().map(|d| EfiRegion {
        ty: d.ty.0,
        base: d.phys_start,
        pages: d.page_count,
    })
}

fn device_ranges(map: &impl MemoryMap, out: &mut [(u64, u64); MAX_DEVICE_RANGES]) -> usize {
    let mut n = 0;
    for r in regions(map).filter(|r| memory_map::is_mmio(r.ty)) {
        if n == out.len() {
            break;
        }
        out[n] = (r.base, r.pages.saturating_mul(PAGE_SIZE));
        n += 1;
    }
    n
}

/// How the kernel is placed: its slide and, for the handoff line, why
/// (`off` for a kernel that is not relocatable or a `nokaslr` command line,
/// else the entropy source).
fn placement(exe: &elf::Executable, cmdline: &[u8]) -> (u64, &'static str) {
    if !exe.relocatable || reloc::max_slide(exe) == 0 {
        return (0, "none");
    }
    if reloc::kaslr_disabled(cmdline) {
        return (0, "off");
    }
    let (bits, source) = entropy::random_u64();
    (reloc::choose_slide(exe, bits), source.name())
}

/// Points `request` (if the kernel made it) at a response of 64-bit words.
fn respond(
    img: &mut [u8],
    arena: &mut Arena<'_>,
    request: Option<&Request>,
    words: &[u64],
) -> Result<(), LoaderError> {
    if let Some(r) = request {
        let block = arena.words(words)?;
        requests::set_response(img, r, block.virt);
    }
    Ok(())
}

#[allow(clippy::too_many_lines)]
fn boot_kernel(start: u64) -> Result<Infallible, LoaderError> {
    arch::check_cpu()?;

    // 1. The kernel file and the command line, from the loader's own volume.
    let (mut kernel, mut cmdline_file) = {
        let mut fs = boot::get_image_file_system(boot::image_handle())
            .map_err(|e| LoaderError::Volume(e.status()))?;
        let mut root = fs
            .open_volume()
            .map_err(|e| LoaderError::Volume(e.status()))?;
        let kernel = files::read_kernel(&mut root, paths::KERNEL, paths::KERNEL_DISPLAY)?;
        let cmdline = files::read_cmdline(&mut root, CMDLINE, CMDLINE_DISPLAY)?;
        (kernel, cmdline)
    };
    let cmdline = match cmdline_file.as_mut() {
        Some(f) => command_line(&f.pages.bytes()[..f.size]),
        None => &[],
    };
    let file_phys = kernel.pages.phys();
    let file_size = kernel.size;
    let file: &[u8] = &kernel.pages.bytes()[..file_size];

    // 2. ELF validation and loading.
    let bad_elf = |e| LoaderError::BadElf(paths::KERNEL_DISPLAY, e);
    let linked = elf::parse(file, ARCH).map_err(bad_elf)?;
    let (slide, kaslr) = placement(&linked, cmdline);
    let mut image = Pages::alloc_aligned(
        linked.image_pages(),
        linked.max_align,
        LOADER_EXECUTABLE_TYPE,
        "the kernel image",
    )?;
    let kernel_phys = image.phys();
    let image_len = image.len();
    let img = image.bytes();
    linked.load_into(file, img).map_err(bad_elf)?;
    reloc::apply(&linked, img, ARCH, slide)
        .map_err(|e| LoaderError::Relocation(paths::KERNEL_DISPLAY, e))?;
    // From here on, addresses are where the kernel runs.
    let exe = linked.slid(slide);

    // 3. Requests.
    let scan = requests::scan(img, exe.scan_start as usize, exe.scan_end as usize)
        .map_err(|e| LoaderError::Requests(paths::KERNEL_DISPLAY, e))?;
    scan.answer_base_revision(img);
    let rev = scan.base_revision;
    let hhdm = ARCH.hhdm_offset();
    // RSDP, SMBIOS and the EFI system table are physical under base revision 3.
    let firmware_pointer = |phys: u64| if rev == 3 { phys } else { phys + hhdm };

    let mut stack_size = DEFAULT_STACK;
    if let Some(r) = scan.find(Feature::StackSize) {
        stack_size = stack_size.max(requests::extra(img, r, 0).unwrap_or(0));
    }
    if let Some(r) = scan.find(Feature::PagingMode)
        && r.revision >= 1
    {
        let max = requests::extra(img, r, 1).unwrap_or(0);
        let min = requests::extra(img, r, 2).unwrap_or(0);
        if min > 0 || max < min {
            return Err(LoaderError::PagingMode { min, max });
        }
    }
    let mut entry = exe.entry;
    if let Some(r) = scan.find(Feature::EntryPoint) {
        let e = requests::extra(img, r, 0).unwrap_or(0);
        exe.check_entry(e).map_err(LoaderError::EntryPoint)?;
        entry = e;
    }

    // 4. What the firmware knows.
    let fw = firmware::collect();
    let cpu = arch::cpu();
    let ioapics = arch::find_ioapics(fw.rsdp);
    let dtb_size = fw
        .dtb
        // SAFETY: the firmware published a device tree at this address; its
        // header is at least `HEADER_SIZE` bytes.
        .map(|p| unsafe { memory::firmware_bytes(p, fdt::HEADER_SIZE) })
        .and_then(|h| fdt::total_size(h).ok())
        .filter(|&s| s as usize >= fdt::HEADER_SIZE && s <= MAX_DTB)
        .unwrap_or(0) as usize;

    // 5. Memory for everything handed over.
    let first_map = boot::memory_map(MemoryType::LOADER_DATA)
        .map_err(|e| LoaderError::MemoryMap(e.status()))?;
    let capacity = 2 * first_map.len() + 64;
    drop(first_map);
    let mut scratch = Pages::alloc(
        pages_for(capacity * size_of::<Entry>()),
        LOADER_RECLAIMABLE_TYPE,
        "the memory map",
    )?;
    let arena_size = 64 * 1024 + capacity * 32 + dtb_size + cmdline.len();
    let mut arena_pages = Pages::alloc(
        pages_for(arena_size),
        LOADER_RECLAIMABLE_TYPE,
        "boot responses",
    )?;
    let stack = Pages::alloc(
        stack_size.div_ceil(PAGE_SIZE),
        LOADER_RECLAIMABLE_TYPE,
        "the kernel stack",
    )?;
    let stack_top = stack.phys() + stack.len() as u64 + hhdm;

    let mut segments = [KernelSegment {
        va: 0,
        len: 0,
        writable: false,
        executable: false,
    }; MAX_SEGMENTS];
    for (slot, s) in segments.iter_mut().zip(exe.segments()) {
        *slot = KernelSegment {
            va: s.page_start(),
            len: s.page_end() - s.page_start(),
            writable: s.writable(),
            executable: s.executable(),
        };
    }
    let segments = &segments[..exe.segments().len()];
    let (tramp_start, tramp_len) = trampoline();
    let tramp_base = align_down(tramp_start, PAGE_SIZE);
    let tramp_end = align_up(tramp_start + tramp_len, PAGE_SIZE).unwrap_or(tramp_base);
    let fb_range = fw.framebuffer.map(|f| (f.phys, f.size()));
    let map_options = Options {
        framebuffer: fb_range,
        keep_first_page: rev >= 3,
    };
    let mut devices = [(0u64, 0u64); MAX_DEVICE_RANGES];

    // The page tables' size bound, from the memory map as it is now.
    let frames = {
        let map = boot::memory_map(MemoryType::LOADER_DATA)
            .map_err(|e| LoaderError::MemoryMap(e.status()))?;
        let entries = scratch.entries();
        let n = memory_map::translate(regions(&map), map_options, entries)?;
        let nd = device_ranges(&map, &mut devices);
        let plan = Plan {
            arch: ARCH,
            base_revision: rev,
            hhdm_offset: hhdm,
            memmap: &entries[..n],
            device_ranges: &devices[..nd],
            kernel_phys,
            kernel_virt: exe.virtual_base,
            segments,
            trampoline: (tramp_base, tramp_end - tramp_base),
            gib_pages: cpu.gib_pages,
        };
        plan.check_hhdm(cpu.max_phys_bits)?;
        plan.frames_bound() + PAGE_TABLE_SLACK
    };
    let mut pool = Pages::alloc(frames as u64, LOADER_RECLAIMABLE_TYPE, "page tables")?;

    // 6. Responses (all but the memory maps, which need the final map).
    let arena_phys = arena_pages.phys();
    let mut arena = Arena::new(arena_pages.bytes(), arena_phys, hhdm);
    let a = &mut arena;
    if let Some(r) = scan.find(Feature::BootloaderInfo) {
        let name = a.c_string(LOADER_NAME)?;
        let version = a.c_string(LOADER_VERSION)?;
        respond(img, a, Some(r), &[0, name.virt, version.virt])?;
    }
    respond(
        img,
        a,
        scan.find(Feature::FirmwareType),
        &[0, responses::FIRMWARE_TYPE_UEFI64],
    )?;
    respond(img, a, scan.find(Feature::StackSize), &[0])?;
    respond(img, a, scan.find(Feature::Hhdm), &[0, hhdm])?;
    respond(img, a, scan.find(Feature::PagingMode), &[0, 0])?;
    respond(img, a, scan.find(Feature::EntryPoint), &[0])?;
    respond(
        img,
        a,
        scan.find(Feature::ExecutableAddress),
        &[0, kernel_phys, exe.virtual_base],
    )?;
    if let (Some(r), Some(fb)) = (scan.find(Feature::Framebuffer), fw.framebuffer.as_ref()) {
        let block = responses::framebuffer(a, fb)?;
        requests::set_response(img, r, block.virt);
    }
    let cmdline_block = a.c_string(cmdline)?;
    if let Some(r) = scan.find(Feature::ExecutableFile) {
        let path = a.c_string(paths::KERNEL_PROTOCOL)?;
        let file = responses::file(
            a,
            &FileInfo {
                phys: file_phys,
                size: file_size as u64,
                path: path.virt,
                cmdline: cmdline_block.virt,
                partition_index: fw.partition_index,
                mbr_disk_id: fw.mbr_disk_id,
                gpt_part_uuid: fw.partition_guid,
            },
        )?;
        respond(img, a, Some(r), &[0, file.virt])?;
    }
    respond(
        img,
        a,
        scan.find(Feature::ExecutableCmdline),
        &[0, cmdline_block.virt],
    )?;
    if let Some(rsdp) = fw.rsdp {
        respond(
            img,
            a,
            scan.find(Feature::Rsdp),
            &[0, firmware_pointer(rsdp)],
        )?;
    }
    if fw.smbios32.is_some() || fw.smbios64.is_some() {
        let e32 = fw.smbios32.map_or(0, firmware_pointer);
        let e64 = fw.smbios64.map_or(0, firmware_pointer);
        respond(img, a, scan.find(Feature::Smbios), &[0, e32, e64])?;
    }
    if fw.system_table != 0 {
        respond(
            img,
            a,
            scan.find(Feature::EfiSystemTable),
            &[0, firmware_pointer(fw.system_table)],
        )?;
    }
    if let Some(t) = fw.boot_time {
        respond(img, a, scan.find(Feature::DateAtBoot), &[0, t as u64])?;
    }
    if let (Some(r), Some(phys), true) = (scan.find(Feature::Dtb), fw.dtb, dtb_size > 0) {
        let copy = a.alloc(dtb_size, 8)?;
        // SAFETY: the firmware published a device tree of `dtb_size` bytes here.
        let src = unsafe { memory::firmware_bytes(phys, dtb_size) };
        let dst = a.bytes(copy, dtb_size);
        dst.copy_from_slice(src);
        fdt::remove_memory_nodes(dst).map_err(LoaderError::Dtb)?;
        requests::set_response(img, r, a.words(&[0, copy.virt])?.virt);
    }
    let memmap_slot = match scan.find(Feature::MemoryMap) {
        Some(_) => Some(MemmapSlot::reserve(a, capacity)?),
        None => None,
    };
    let efi_memmap_block: Option<Block> = match scan.find(Feature::EfiMemoryMap) {
        Some(_) => Some(a.words(&[0; 5])?),
        None => None,
    };
    let gdtr = if ARCH == Arch::X86_64 {
        responses::gdt(a)?.virt
    } else {
        0
    };

    // 7. Last words, then leave boot services.
    arch::sync_code(kernel_phys, image_len);
    let end = arch::counter();
    println!(
        "stratus-loader: handoff elapsed_us={} kaslr={kaslr} slide={slide:#x}",
        arch::elapsed_us(start, end)
    );
    EXITED.store(true, core::sync::atomic::Ordering::SeqCst);
    // SAFETY: no protocol, pool allocation or console output of ours is used
    // after this point; all our pages were allocated with our own memory types.
    let final_map =
        unsafe { boot::exit_boot_services(Some(MemoryType::custom(LOADER_RECLAIMABLE_TYPE))) };

    // 8. The memory maps.
    let entries = scratch.entries();
    let Ok(n) = memory_map::translate(regions(&final_map), map_options, entries) else {
        fatal("memory map larger than reserved")
    };
    let entries = &entries[..n];
    if let (Some(slot), Some(r)) = (memmap_slot, scan.find(Feature::MemoryMap)) {
        let virt = slot.fill(a, entries);
        requests::set_response(img, r, virt);
    }
    if let (Some(block), Some(r)) = (efi_memmap_block, scan.find(Feature::EfiMemoryMap)) {
        let meta = final_map.meta();
        let buf = final_map.buffer().as_ptr() as u64;
        a.put_u64(block, 8, buf + hhdm);
        a.put_u64(block, 16, meta.map_size as u64);
        a.put_u64(block, 24, meta.desc_size as u64);
        a.put_u64(block, 32, u64::from(meta.desc_version));
        requests::set_response(img, r, block.virt);
    }

    // 9. Page tables from the final map.
    let nd = device_ranges(&final_map, &mut devices);
    let plan = Plan {
        arch: ARCH,
        base_revision: rev,
        hhdm_offset: hhdm,
        memmap: entries,
        device_ranges: &devices[..nd],
        kernel_phys,
        kernel_virt: exe.virtual_base,
        segments,
        trampoline: (tramp_base, tramp_end - tramp_base),
        gib_pages: cpu.gib_pages,
    };
    if plan.check_hhdm(cpu.max_phys_bits).is_err() {
        fatal("direct map does not fit");
    }
    let pool_phys = pool.phys();
    let Ok(mut space) = AddressSpace::new(FramePool::new(pool.words(), pool_phys), cpu.format)
    else {
        fatal("no page-table frames")
    };
    let Ok(built) = paging::build(&plan, &mut space) else {
        fatal("page-table frames exhausted")
    };
    handoff(&Handoff {
        entry,
        stack_top,
        hhdm,
        base_revision: rev,
        gdtr,
        built,
        has_framebuffer: fw.framebuffer.is_some(),
        cpu,
        ioapics,
    })
}

/// What the final switch needs.
struct Handoff {
    entry: u64,
    stack_top: u64,
    hhdm: u64,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    base_revision: u64,
    /// HHDM address of the GDT pseudo-descriptor (x86_64).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    gdtr: u64,
    built: paging::Built,
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    has_framebuffer: bool,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    cpu: arch::Cpu,
    ioapics: arch::IoApics,
}

#[cfg(target_arch = "x86_64")]
fn handoff(h: &Handoff) -> ! {
    let (nx, pat) = match h.cpu.format {
        paging::Format::X86_64 { nx, pat } => (nx, pat),
        paging::Format::Aarch64 => (false, false),
    };
    let args = arch::Handoff {
        cr3: h.built.lower_root,
        entry: h.entry,
        stack_top: h.stack_top & !0xf,
        gdtr: h.gdtr,
        hhdm: h.hhdm,
        unmap_lower_half: u64::from(h.base_revision >= 1),
        nx: u64::from(nx),
        pat: u64::from(pat),
    };
    // SAFETY: boot services have ended; the tables map the trampoline (identity
    // and HHDM), the GDT, the stack and the kernel, all in our own allocations.
    unsafe { arch::enter(&args, &h.ioapics) }
}

#[cfg(target_arch = "aarch64")]
fn handoff(h: &Handoff) -> ! {
    let args = arch::Handoff {
        entry: h.entry,
        stack_top: h.stack_top & !0xf,
        sctlr: paging::aarch64::SCTLR,
        mair: paging::aarch64::mair(h.has_framebuffer),
        tcr: paging::aarch64::tcr(arch::pa_range()),
        ttbr0_switch: h.built.lower_root,
        ttbr1: h.built.upper_root,
        hhdm: h.hhdm,
        ttbr0_final: h.built.final_lower_root,
    };
    // SAFETY: boot services have ended; the tables map the trampoline (identity
    // in TTBR0 and HHDM in TTBR1), the stack and the kernel, all in our own
    // allocations, and the kernel image was cleaned to the point of coherency.
    unsafe { arch::enter(&args, &h.ioapics) }
}
