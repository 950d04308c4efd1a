//! x86_64: time stamp counter, CPU features, legacy PIC, and the handoff.

use core::arch::{asm, global_asm};
use core::time::Duration;

use stratus_loader::acpi;
use stratus_loader::paging::Format;
use uefi::boot;

use super::error::LoaderError;
use super::memory;

/// Reads the time stamp counter.
pub fn counter() -> u64 {
    // SAFETY: RDTSC only reads the counter; UEFI runs at CPL 0 so CR4.TSD
    // cannot fault.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Microseconds between two [`counter`] readings, calibrating the TSC against
/// the firmware's `Stall` (2 ms).
pub fn elapsed_us(start: u64, end: u64) -> u64 {
    let a = counter();
    boot::stall(Duration::from_micros(2000));
    let b = counter();
    let per_2ms = u128::from(b.wrapping_sub(a)).max(1);
    (u128::from(end.wrapping_sub(start)) * 2000 / per_2ms) as u64
}

fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    // SAFETY: CPUID exists on every x86_64 CPU and only reads identification data.
    #[allow(unused_unsafe)]
    let r = unsafe { core::arch::x86_64::__cpuid(leaf) };
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// CPU features the page tables depend on.
pub struct Cpu {
    /// Descriptor format (NX, PAT).
    pub format: Format,
    /// 1 GiB pages (`pdpe1gb`).
    pub gib_pages: bool,
    /// MAXPHYADDR.
    pub max_phys_bits: Option<u32>,
}

/// Detects the features (as Limine does with CPUID).
pub fn cpu() -> Cpu {
    let max_ext = cpuid(0x8000_0000).0;
    let ext = if max_ext >= 0x8000_0001 {
        cpuid(0x8000_0001).3
    } else {
        0
    };
    let phys_bits = if max_ext >= 0x8000_0008 {
        cpuid(0x8000_0008).0 & 0xff
    } else {
        36
    };
    Cpu {
        format: Format::X86_64 {
            nx: ext & (1 << 20) != 0,
            pat: cpuid(1).3 & (1 << 16) != 0,
        },
        gib_pages: ext & (1 << 26) != 0,
        max_phys_bits: Some(phys_bits),
    }
}

/// Anything that must hold before boot services end.
pub fn check_cpu() -> Result<(), LoaderError> {
    Ok(())
}

/// Cache maintenance for freshly written code: nothing to do on x86.
pub fn sync_code(_phys: u64, _len: usize) {}

/// Masks every IRQ of both legacy 8259 PICs (as Limine does before entry).
pub fn mask_legacy_pic() {
    // SAFETY: writes to the PIC interrupt mask registers (ports 0x21, 0xa1) only
    // mask interrupts; boot services have ended and the firmware no longer
    // relies on them.
    unsafe {
        asm!("out 0x21, al", "out 0xa1, al", in("al") 0xffu8, options(nomem, nostack));
    }
}

/// The I/O APICs to quieten before entry.
pub struct IoApics {
    base: [u64; acpi::MAX_IOAPICS],
    count: usize,
}

/// Finds the I/O APICs through the RSDP (while firmware memory is still ours to
/// read).
pub fn find_ioapics(rsdp: Option<u64>) -> IoApics {
    let mut base = [0; acpi::MAX_IOAPICS];
    let read = |phys: u64, buf: &mut [u8]| {
        if phys == 0 || phys.saturating_add(buf.len() as u64) > 1 << 48 {
            return false;
        }
        // SAFETY: the address comes from the firmware's ACPI tables, which
        // describe memory it reserved for them; UEFI identity-maps it.
        buf.copy_from_slice(unsafe { memory::firmware_bytes(phys, buf.len()) });
        true
    };
    let count = rsdp.map_or(0, |r| acpi::ioapics(&read, r, &mut base));
    IoApics { base, count }
}

/// Masks every redirection entry with fixed or lowest-priority delivery, as
/// Limine does before entry.
pub fn mask_ioapics(ioapics: &IoApics) {
    for &base in &ioapics.base[..ioapics.count] {
        let sel = base as *mut u32;
        let win = (base + 0x10) as *mut u32;
        // SAFETY: IOREGSEL/IOWIN of an I/O APIC the MADT lists, identity-mapped
        // by the firmware's page tables still in use; index 1 is the version
        // register.
        let version = unsafe {
            sel.write_volatile(1);
            win.read_volatile()
        };
        let max = (version >> 16) & 0xff;
        for i in 0..=max {
            // SAFETY: as above; index 0x10 + 2i is the low word of entry i.
            unsafe {
                sel.write_volatile(0x10 + 2 * i);
                let low = win.read_volatile();
                if acpi::should_mask(low) {
                    win.write_volatile(low | 1 << 16);
                }
            }
        }
    }
}

/// Writes a message to COM1 (port 0x3f8) without the firmware; used only when
/// something fails after `ExitBootServices`.
pub fn emergency_print(msg: &str) {
    for &b in msg.as_bytes() {
        for _ in 0..100_000 {
            let lsr: u8;
            // SAFETY: reading the 16550 line status register has no side effects.
            unsafe { asm!("in al, dx", out("al") lsr, in("dx") 0x3fdu16, options(nomem, nostack)) };
            if lsr & 0x20 != 0 {
                break;
            }
        }
        // SAFETY: writing the transmit holding register sends one byte.
        unsafe { asm!("out dx, al", in("al") b, in("dx") 0x3f8u16, options(nomem, nostack)) };
    }
}

/// Everything the trampoline needs, read into registers before anything changes.
#[repr(C)]
pub struct Handoff {
    /// Physical address of the PML4.
    pub cr3: u64,
    /// Kernel entry point.
    pub entry: u64,
    /// Top of the kernel stack (HHDM address, 16-byte aligned).
    pub stack_top: u64,
    /// HHDM address of the GDT pseudo-descriptor.
    pub gdtr: u64,
    /// HHDM offset.
    pub hhdm: u64,
    /// Non-zero: clear the lower half of the PML4 before entry (base revision >= 1).
    pub unmap_lower_half: u64,
    /// Non-zero: set EFER.NXE.
    pub nx: u64,
    /// Non-zero: program the PAT with Limine's layout.
    pub pat: u64,
}

// The trampoline runs from its identity mapping across the CR3 switch, then from
// its HHDM alias. Layout of `Handoff` above: offsets 0..56. Sequence as in Limine's
// `limine_spinup_32` (64-bit part): PAT, EFER.NXE, CR3, CR0/CR4, GDT and segment
// registers (CS 0x28, data 0x30), jump to the higher half, optionally clear the
// lower half, push a 0 return address on the new stack, zero the general purpose
// registers and IRETQ to the entry point with IF = 0, DF = 0.
global_asm!(
    ".section .text",
    ".balign 16",
    ".global stratus_trampoline_start",
    ".global stratus_trampoline_end",
    ".global stratus_handoff",
    "stratus_trampoline_start:",
    "stratus_handoff:",
    "cli",
    "cld",
    "mov r8, [rdi]",
    "mov r9, [rdi + 8]",
    "mov r10, [rdi + 16]",
    "mov r11, [rdi + 24]",
    "mov r12, [rdi + 32]",
    "mov r13, [rdi + 40]",
    "mov r14, [rdi + 48]",
    "mov r15, [rdi + 56]",
    "test r15, r15",
    "jz 2f",
    "mov ecx, 0x277",
    "mov eax, 0x00070406",
    "mov edx, 0x00000105",
    "wrmsr",
    "2:",
    "test r14, r14",
    "jz 3f",
    "mov ecx, 0xc0000080",
    "rdmsr",
    "bts eax, 11",
    "wrmsr",
    "3:",
    "mov cr3, r8",
    // CR0 = PG | WP | ET | PE and CR4 = PAE, the values Limine's trip through
    // 32-bit mode leaves (so x87 works, SSE does not, under both loaders).
    "mov eax, 0x80010011",
    "mov cr0, rax",
    "mov eax, 0x20",
    "mov cr4, rax",
    "lgdt [r11]",
    "mov eax, 0x30",
    "mov ds, ax",
    "mov es, ax",
    "mov fs, ax",
    "mov gs, ax",
    "mov ss, ax",
    "lea rax, [rip + 4f]",
    "add rax, r12",
    "jmp rax",
    "4:",
    "test r13, r13",
    "jz 5f",
    "lea rdi, [r8 + r12]",
    "mov ecx, 256",
    "xor eax, eax",
    "rep stosq",
    "mov cr3, r8",
    "5:",
    "mov rsp, r10",
    "push 0",
    "mov r10, rsp",
    "push 0x30",
    "push r10",
    "pushfq",
    "push 0x28",
    "push r9",
    "xor eax, eax",
    "xor ebx, ebx",
    "xor ecx, ecx",
    "xor edx, edx",
    "xor esi, esi",
    "xor edi, edi",
    "xor ebp, ebp",
    "xor r8d, r8d",
    "xor r9d, r9d",
    "xor r10d, r10d",
    "xor r11d, r11d",
    "xor r12d, r12d",
    "xor r13d, r13d",
    "xor r14d, r14d",
    "xor r15d, r15d",
    "iretq",
    "stratus_trampoline_end:",
);

unsafe extern "sysv64" {
    fn stratus_handoff(args: *const Handoff) -> !;
}

/// Switches to the kernel's page tables and enters it.
///
/// # Safety
///
/// Boot services must have ended; `args` must describe page tables that map the
/// trampoline at its physical address and at its HHDM alias, the GDT, the stack
/// and the kernel, all in memory nothing else uses.
pub unsafe fn enter(args: &Handoff, ioapics: &IoApics) -> ! {
    mask_legacy_pic();
    mask_ioapics(ioapics);
    // SAFETY: the caller's contract is the trampoline's contract.
    unsafe { stratus_handoff(args) }
}
