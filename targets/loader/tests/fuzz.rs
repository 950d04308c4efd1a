//! Fuzz targets for every loader parser that takes outside input: the kernel ELF
//! file (and its relocations), the Limine requests in the loaded image, the firmware memory map (and the
//! page tables built from it), the device tree blob, the ACPI tables walked for
//! I/O APICs and the command-line file. Run by `cargo test` (a short seeded pass)
//! and `make fuzz` (a long one); see `ci/fuzz`.

use stratus_fuzz::fuzz;
use stratus_loader::acpi::{self, BytesAt, MAX_IOAPICS};
use stratus_loader::elf::{self, ET_DYN, ET_EXEC, PF_R, PF_W, PF_X, PT_DYNAMIC, PT_LOAD};
use stratus_loader::memory_map::{self, EfiRegion, Entry, Options};
use stratus_loader::paging::{self, AddressSpace, Format, FramePool, KernelSegment, Plan};
use stratus_loader::reloc;
use stratus_loader::requests::{self, Feature};
use stratus_loader::{Arch, PAGE_SIZE, command_line, fdt};

/// Largest image a fuzz input may make the ELF target load (keeps runs fast).
const MAX_FUZZ_IMAGE: u64 = 1 << 22;
/// Most page-table frames a fuzz input may make the memory-map target build.
const MAX_FUZZ_FRAMES: usize = 2048;

const BASE: u64 = elf::HIGHER_HALF_BASE;

fn words(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A base revision tag and a few requests between the start and end markers.
fn requests_block() -> Vec<u8> {
    let mut w = requests::REQUESTS_START_MARKER.to_vec();
    w.extend_from_slice(&requests::BASE_REVISION_MAGIC);
    w.push(2);
    for (feature, extra) in [
        (Feature::Hhdm, &[][..]),
        (Feature::StackSize, &[0x10000][..]),
        (Feature::EntryPoint, &[BASE + 0x40][..]),
        (Feature::MemoryMap, &[][..]),
    ] {
        w.extend_from_slice(&requests::COMMON_MAGIC);
        w.extend_from_slice(&feature.id());
        w.extend_from_slice(&[0, 0]);
        w.extend_from_slice(extra);
    }
    w.extend_from_slice(&requests::REQUESTS_END_MARKER);
    words(&w)
}

/// An ELF64 kernel: text (with the requests) and data+bss, as our linker
/// script lays it out.
fn elf_kernel(machine: u16, e_type: u16) -> Vec<u8> {
    let phdrs: [[u64; 7]; 3] = [
        [
            PT_LOAD.into(),
            (PF_R | PF_X).into(),
            0x1000,
            BASE,
            0x1000,
            0x1000,
            0x1000,
        ],
        [
            PT_LOAD.into(),
            (PF_R | PF_W).into(),
            0x2000,
            BASE + 0x1000,
            0x800,
            0x3000,
            0x1000,
        ],
        [
            PT_DYNAMIC.into(),
            (PF_R | PF_W).into(),
            0x2400,
            BASE + 0x1400,
            0x40,
            0x40,
            8,
        ],
    ];
    let mut f = vec![0u8; 0x3000];
    elf::write_headers(&mut f, machine, e_type, BASE + 0x10, &phdrs);
    let block = requests_block();
    f[0x1100..0x1100 + block.len()].copy_from_slice(&block);
    // Dynamic table at BASE + 0x1400, two RELATIVE relocations right after it.
    let relative = u64::from(if machine == elf::EM_X86_64 {
        reloc::R_X86_64_RELATIVE
    } else {
        reloc::R_AARCH64_RELATIVE
    });
    let dynamic = words(&[
        reloc::DT_RELA,
        BASE + 0x1440,
        reloc::DT_RELASZ,
        2 * reloc::RELA_SIZE,
        reloc::DT_RELAENT,
        reloc::RELA_SIZE,
        0,
        0,
        BASE + 0x1600,
        relative,
        BASE + 0x10,
        BASE + 0x1608,
        relative,
        BASE + 0x1000,
    ]);
    f[0x2400..0x2400 + dynamic.len()].copy_from_slice(&dynamic);
    f
}

/// What the loader does with a kernel file before the handoff, minus firmware.
fn load_kernel(input: &[u8], arch: Arch) {
    let Ok(exe) = elf::parse(input, arch) else {
        return;
    };
    assert!(exe.image_size % PAGE_SIZE == 0 && exe.image_size > 0);
    assert!(exe.virtual_base >= elf::HIGHER_HALF_BASE);
    assert!(exe.scan_start <= exe.scan_end && exe.scan_end <= exe.image_size);
    assert!(exe.check_entry(exe.entry).is_ok());
    if exe.image_size > MAX_FUZZ_IMAGE {
        return;
    }
    let mut image = vec![0u8; exe.image_size as usize];
    exe.load_into(input, &mut image)
        .expect("image sized by parse");
    answer_requests(&mut image, exe.scan_start as usize, exe.scan_end as usize);
}

/// Scans an image for requests and writes responses as the loader does.
fn answer_requests(image: &mut [u8], start: usize, end: usize) {
    let Ok(scan) = requests::scan(image, start, end) else {
        return;
    };
    assert!(scan.base_revision <= stratus_loader::MAX_BASE_REVISION);
    scan.answer_base_revision(image);
    for r in scan.requests() {
        assert!(r.offset + requests::REQUEST_EXTRA_OFFSET <= image.len());
        let _ = requests::extra(image, r, 0);
        let _ = requests::extra(image, r, 2);
        requests::set_response(image, r, 0xffff_8000_0000_1000);
    }
}

#[test]
fn fuzz_elf() {
    let x86 = elf_kernel(elf::EM_X86_64, ET_EXEC);
    let pie = elf_kernel(elf::EM_X86_64, ET_DYN);
    let arm = elf_kernel(elf::EM_AARCH64, ET_DYN);
    // The corpus reaches the request scan: every entry is a valid kernel.
    for (file, arch) in [
        (&x86, Arch::X86_64),
        (&pie, Arch::X86_64),
        (&arm, Arch::Aarch64),
    ] {
        let exe = elf::parse(file, arch).expect("corpus kernel parses");
        let mut image = vec![0u8; exe.image_size as usize];
        exe.load_into(file, &mut image).unwrap();
        let scan = requests::scan(&image, exe.scan_start as usize, exe.scan_end as usize);
        assert_eq!(scan.map(|s| s.requests().len()), Ok(4));
        let applied = reloc::apply(&exe, &mut image, arch, 0x20_0000);
        assert_eq!(applied, Ok(if exe.relocatable { 2 } else { 0 }));
    }
    fuzz("elf", &[&x86, &pie, &arm], |input| {
        load_kernel(input, Arch::X86_64);
        load_kernel(input, Arch::Aarch64);
    });
}

#[test]
fn fuzz_requests() {
    let block = requests_block();
    let mut twice = block.clone();
    twice.extend_from_slice(&block);
    fuzz("requests", &[&block, &twice], |input| {
        let mut image = input.to_vec();
        let len = image.len();
        answer_requests(&mut image, 0, len);
        // Unaligned starts and ends past the image are clamped, never read past.
        answer_requests(&mut image, 3, len + 100);
    });
}

/// Memory map regions from bytes: 20 per region (type, base, pages).
fn regions(input: &[u8]) -> Vec<EfiRegion> {
    input
        .chunks_exact(20)
        .map(|c| EfiRegion {
            ty: u32::from_le_bytes(c[0..4].try_into().unwrap()),
            base: u64::from_le_bytes(c[4..12].try_into().unwrap()),
            pages: u64::from_le_bytes(c[12..20].try_into().unwrap()),
        })
        .collect()
}

fn region_bytes(r: &[(u32, u64, u64)]) -> Vec<u8> {
    r.iter()
        .flat_map(|&(ty, base, pages)| {
            let mut v = ty.to_le_bytes().to_vec();
            v.extend_from_slice(&base.to_le_bytes());
            v.extend_from_slice(&pages.to_le_bytes());
            v
        })
        .collect()
}

const KERNEL_SEGMENTS: [KernelSegment; 2] = [
    KernelSegment {
        va: BASE,
        len: 0x2000,
        writable: false,
        executable: true,
    },
    KernelSegment {
        va: BASE + 0x2000,
        len: 0x1000,
        writable: true,
        executable: false,
    },
];

/// Translates a memory map and builds the handoff page tables from it.
fn map_and_page(input: &[u8], arch: Arch, base_revision: u64) {
    let regions = regions(input);
    let mut out = vec![Entry::default(); 2 * regions.len() + 8];
    let options = Options {
        framebuffer: Some((0x8000_0000, 0x30_0000)),
        keep_first_page: base_revision >= 3,
    };
    let Ok(n) = memory_map::translate(regions.iter().copied(), options, &mut out) else {
        return;
    };
    let map = &out[..n];
    for pair in map.windows(2) {
        assert!(pair[0].base <= pair[1].base, "not sorted: {pair:x?}");
    }
    for e in map.iter().filter(|e| e.kind == memory_map::kind::USABLE) {
        assert!(e.base % PAGE_SIZE == 0 && e.length % PAGE_SIZE == 0 && e.length > 0);
    }
    let plan = Plan {
        arch,
        base_revision,
        hhdm_offset: arch.hhdm_offset(),
        memmap: map,
        device_ranges: &[(0x900_0000, 0x1000)],
        kernel_phys: 0x20_0000,
        kernel_virt: BASE,
        segments: &KERNEL_SEGMENTS,
        trampoline: (0x1000_0000, 0x1000),
        gib_pages: true,
    };
    if plan.check_hhdm(Some(48)).is_err() {
        return;
    }
    let bound = plan.frames_bound();
    if bound > MAX_FUZZ_FRAMES {
        return;
    }
    let format = match arch {
        Arch::X86_64 => Format::X86_64 {
            nx: true,
            pat: true,
        },
        Arch::Aarch64 => Format::Aarch64,
    };
    let mut frames = vec![0u64; bound * 512];
    let mut space = AddressSpace::new(FramePool::new(&mut frames, 0x4000_0000), format)
        .expect("the bound covers the roots");
    let built = paging::build(&plan, &mut space).expect("the bound covers the tables");
    assert!(built.frames_used <= bound);
}

#[test]
fn fuzz_memory_map() {
    let ovmf_like = region_bytes(&[
        (7, 0, 0xa0),
        (0, 0xa0_000, 0x60),
        (7, 0x10_0000, 0x7000),
        (2, 0x710_0000, 0x100),
        (4, 0x720_0000, 0x10),
        (0x8000_5302, 0x730_0000, 0x20),
        (9, 0x7ee_0000, 0x10),
        (10, 0x7ef_0000, 0x10),
        (5, 0x7f0_0000, 0x100),
        (11, 0xfec0_0000, 1),
        (7, 0x1_0000_0000, 0x4_0000),
    ]);
    let messy = region_bytes(&[
        (7, 0x1234, 3),
        (7, 0x1000, 0x10),
        (0, 0x3000, 2),
        (7, u64::MAX - 0xfff, 5),
    ]);
    fuzz("memory-map", &[&ovmf_like, &messy], |input| {
        for (arch, rev) in [(Arch::X86_64, 2), (Arch::Aarch64, 0), (Arch::X86_64, 3)] {
            map_and_page(input, arch, rev);
        }
    });
}

#[test]
fn fuzz_fdt() {
    // QEMU 10.0's `virt,gic-version=3` device tree (`-M virt,dumpdtb=`), with the
    // padding after the strings block cut off.
    let virt: &[u8] = include_bytes!("data/qemu-virt-gicv3.dtb");
    let mut removed_once = virt.to_vec();
    fdt::remove_memory_nodes(&mut removed_once).expect("QEMU's blob parses");
    fuzz("fdt", &[virt, &removed_once], |input| {
        if let Ok(size) = fdt::total_size(input) {
            let _ = size;
        }
        let mut blob = input.to_vec();
        if fdt::remove_memory_nodes(&mut blob).is_ok() {
            // What is left parses again and has nothing more to remove.
            assert_eq!(fdt::remove_memory_nodes(&mut blob), Ok(0));
        }
    });
}

/// RSDP at 0, XSDT at 0x40 listing a FACP and a MADT with two I/O APICs.
fn acpi_tables() -> Vec<u8> {
    let mut m = vec![0u8; 0x200];
    let put = |m: &mut [u8], at: usize, b: &[u8]| m[at..at + b.len()].copy_from_slice(b);
    put(&mut m, 0, b"RSD PTR ");
    m[15] = 2;
    put(&mut m, 16, &0x40u32.to_le_bytes());
    put(&mut m, 24, &0x40u64.to_le_bytes());
    put(&mut m, 0x40, b"XSDT");
    put(&mut m, 0x44, &52u32.to_le_bytes());
    put(&mut m, 0x64, &0x80u64.to_le_bytes());
    put(&mut m, 0x6c, &0x100u64.to_le_bytes());
    put(&mut m, 0x80, b"FACP");
    put(&mut m, 0x84, &36u32.to_le_bytes());
    put(&mut m, 0x100, b"APIC");
    put(&mut m, 0x104, &(44u32 + 8 + 12 + 12).to_le_bytes());
    put(&mut m, 0x12c, &[0, 8, 0, 0, 1, 0, 0, 0]);
    put(&mut m, 0x134, &[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
    put(
        &mut m,
        0x140,
        &[1, 12, 1, 0, 0, 0x10, 0xc0, 0xfe, 24, 0, 0, 0],
    );
    m
}

#[test]
fn fuzz_acpi() {
    let tables = acpi_tables();
    let mut out = [0; MAX_IOAPICS];
    assert_eq!(
        acpi::ioapics(
            &BytesAt {
                base: 0,
                bytes: &tables
            },
            0,
            &mut out
        ),
        2
    );
    fuzz("acpi", &[&tables], |input| {
        let mut out = [0; MAX_IOAPICS];
        // At address 0 (pointers inside the input resolve), and in the last bytes of
        // the address space (every pointer computation is near overflow).
        let top = (u64::MAX - input.len() as u64).saturating_add(1);
        for base in [0, top] {
            let mem = BytesAt { base, bytes: input };
            let n = acpi::ioapics(&mem, base, &mut out);
            assert!(n <= MAX_IOAPICS);
        }
    });
}

#[test]
fn fuzz_command_line() {
    let mut long = vec![b'x'; 5000];
    long.extend_from_slice(b" exit=qemu\r\nsecond line");
    fuzz(
        "command-line",
        &[b"exit=qemu test=panic\n", &long],
        |input| {
            let line = command_line(input);
            assert!(input.starts_with(line));
            assert!(!line.iter().any(|&b| b == b'\n' || b == b'\r' || b == 0));
            // Cut only at a line ending or NUL.
            if line.len() < input.len() {
                assert!(matches!(input[line.len()], b'\n' | b'\r' | 0));
            }
        },
    );
}
