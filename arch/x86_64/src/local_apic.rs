//! The local APIC in x2APIC mode (MSRs) when the CPU has it, xAPIC mode
//! (registers mapped with device attributes) otherwise (Intel SDM vol. 3A,
//! chapter 11).

use core::arch::x86_64::__cpuid;
use stratus_arch::InterruptError;
use stratus_arch::interrupts::MapRegisters;
use x86_64::registers::model_specific::Msr;

/// IA32_APIC_BASE: bit 11 global enable, bit 10 x2APIC mode.
const IA32_APIC_BASE: u32 = 0x1b;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const X2APIC_ENABLE: u64 = 1 << 10;
/// First x2APIC MSR; register at xAPIC offset `o` is MSR `0x800 + o / 16`.
const X2APIC_MSR_BASE: u32 = 0x800;

/// Register offsets in the xAPIC page (SDM table 11-1).
pub const ID: u32 = 0x20;
/// Task priority.
pub const TPR: u32 = 0x80;
/// End of interrupt.
pub const EOI: u32 = 0xb0;
/// Spurious interrupt vector (bit 8: APIC software enable).
pub const SVR: u32 = 0xf0;
/// Interrupt command, low half (x2APIC: the whole 64-bit ICR).
pub const ICR_LOW: u32 = 0x300;
/// Interrupt command, high half (xAPIC only).
pub const ICR_HIGH: u32 = 0x310;
/// LVT timer.
pub const LVT_TIMER: u32 = 0x320;
/// LVT LINT0.
pub const LVT_LINT0: u32 = 0x350;
/// LVT error.
pub const LVT_ERROR: u32 = 0x370;
/// Timer initial count.
pub const TIMER_INITIAL: u32 = 0x380;
/// Timer current count.
pub const TIMER_CURRENT: u32 = 0x390;
/// Timer divide configuration.
pub const TIMER_DIVIDE: u32 = 0x3e0;

/// LVT mask bit.
pub const LVT_MASKED: u32 = 1 << 16;
/// The spurious-interrupt vector; no EOI is sent for it.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// ICR delivery status (xAPIC: the previous IPI is still being sent).
const ICR_SEND_PENDING: u32 = 1 << 12;
/// ICR level assert.
pub const ICR_ASSERT: u32 = 1 << 14;
/// Polls of the ICR delivery status before giving up.
const ICR_POLLS: u32 = 100_000;

/// How this CPU's local APIC is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalApic {
    /// x2APIC mode: MSRs.
    X2Apic,
    /// xAPIC mode: the register page mapped at `virt`.
    XApic {
        /// Virtual address of the register page.
        virt: u64,
    },
}

static LOCAL_APIC: spin::Once<LocalApic> = spin::Once::new();

/// The boot CPU's local APIC, once [`init`] ran.
pub fn get() -> Option<LocalApic> {
    LOCAL_APIC.get().copied()
}

/// Whether CPUID says the CPU has x2APIC mode (leaf 1, ECX bit 21).
pub fn has_x2apic() -> bool {
    __cpuid(1).ecx & (1 << 21) != 0
}

/// Enables the local APIC (x2APIC mode when available, else the xAPIC page
/// at `phys` from the MADT mapped through `map`), masks its timer, LINT0 and
/// error entries and accepts every priority.
pub fn init(phys: u64, map: MapRegisters<'_>) -> Result<LocalApic, InterruptError> {
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU (all have an APIC);
    // reading it has no side effect.
    let base = unsafe { base_msr.read() };
    let firmware_x2apic = base & X2APIC_ENABLE != 0;
    let lapic = if has_x2apic() || firmware_x2apic {
        // SAFETY: x2APIC mode is supported (CPUID) or already on; setting
        // EN and EXTD together is the documented way in (SDM 11.12.5).
        unsafe { base_msr.write(base | APIC_GLOBAL_ENABLE | X2APIC_ENABLE) };
        LocalApic::X2Apic
    } else {
        let msr_phys = base & 0x000f_ffff_ffff_f000;
        if msr_phys != phys {
            log::warn!(target: "irq", "IA32_APIC_BASE says {msr_phys:#x}, MADT {phys:#x}; using the MADT");
        }
        let virt = map(phys, 0x1000).map_err(InterruptError::Map)?;
        // SAFETY: as above; enabling the APIC in xAPIC mode.
        unsafe { base_msr.write(base | APIC_GLOBAL_ENABLE) };
        LocalApic::XApic { virt }
    };
    configure(lapic);
    Ok(*LOCAL_APIC.call_once(|| lapic))
}

/// Accepts every priority, masks the timer, LINT0 and error entries, and
/// software-enables the APIC of the executing CPU.
fn configure(lapic: LocalApic) {
    lapic.write(TPR, 0);
    lapic.write(LVT_TIMER, LVT_MASKED);
    lapic.write(LVT_LINT0, LVT_MASKED);
    lapic.write(LVT_ERROR, LVT_MASKED);
    lapic.write(SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
}

/// Enables the executing secondary CPU's local APIC in the mode the boot
/// CPU chose ([`init`]): each CPU's APIC has its own enable bits, while the
/// xAPIC register page sits at the same address on every CPU.
pub fn init_secondary() -> Result<LocalApic, InterruptError> {
    let lapic = get().ok_or(InterruptError::WrongHardware)?;
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: as in `init`: the boot CPU found the mode supported; this
    // CPU is of the same kind.
    unsafe {
        let base = base_msr.read();
        let mode = match lapic {
            LocalApic::X2Apic => APIC_GLOBAL_ENABLE | X2APIC_ENABLE,
            LocalApic::XApic { .. } => APIC_GLOBAL_ENABLE,
        };
        base_msr.write(base | mode);
    }
    configure(lapic);
    Ok(lapic)
}

impl LocalApic {
    /// Reads the register at xAPIC offset `reg`.
    pub fn read(self, reg: u32) -> u32 {
        match self {
            // SAFETY: `reg` is an architectural APIC register and the APIC
            // is in x2APIC mode, where its MSR exists; reads of these
            // registers have no side effects.
            LocalApic::X2Apic => unsafe { Msr::new(X2APIC_MSR_BASE + reg / 16).read() as u32 },
            // SAFETY: the page at `virt` is the APIC's, mapped with device
            // attributes by `init`; `reg` is an aligned offset inside it.
            LocalApic::XApic { virt } => unsafe {
                core::ptr::read_volatile((virt + u64::from(reg)) as *const u32)
            },
        }
    }

    /// Writes the register at xAPIC offset `reg`.
    pub fn write(self, reg: u32, value: u32) {
        match self {
            // SAFETY: as in `read`; writes only program interrupt delivery.
            LocalApic::X2Apic => unsafe {
                Msr::new(X2APIC_MSR_BASE + reg / 16).write(u64::from(value))
            },
            // SAFETY: as in `read`.
            LocalApic::XApic { virt } => unsafe {
                core::ptr::write_volatile((virt + u64::from(reg)) as *mut u32, value)
            },
        }
    }

    /// This CPU's APIC id (32-bit x2APIC id, or the 8-bit xAPIC id).
    pub fn id(self) -> u32 {
        match self {
            LocalApic::X2Apic => self.read(ID),
            LocalApic::XApic { .. } => self.read(ID) >> 24,
        }
    }

    /// Signals end-of-interrupt.
    pub fn end_of_interrupt(self) {
        self.write(EOI, 0);
    }

    /// Sends fixed interrupt `vector` to the CPU with APIC id `target`.
    pub fn send_ipi(self, target: u32, vector: u8) -> Result<(), InterruptError> {
        self.send_command(target, u32::from(vector) | ICR_ASSERT)
    }

    /// Writes the interrupt command register for the CPU with APIC id
    /// `target`: `command` holds the vector, delivery mode and level bits
    /// (SDM 11.6.1). In xAPIC mode the target must fit 8 bits and the wait
    /// for the delivery status to clear is bounded.
    pub fn send_command(self, target: u32, command: u32) -> Result<(), InterruptError> {
        match self {
            LocalApic::X2Apic => {
                // SAFETY: the x2APIC ICR MSR; one write sends the IPI.
                unsafe {
                    Msr::new(X2APIC_MSR_BASE + ICR_LOW / 16)
                        .write((u64::from(target) << 32) | u64::from(command))
                };
                Ok(())
            }
            LocalApic::XApic { .. } => {
                let target = u8::try_from(target).map_err(|_| InterruptError::BadId(target))?;
                self.write(ICR_HIGH, u32::from(target) << 24);
                self.write(ICR_LOW, command);
                for _ in 0..ICR_POLLS {
                    if self.read(ICR_LOW) & ICR_SEND_PENDING == 0 {
                        return Ok(());
                    }
                    core::hint::spin_loop();
                }
                Err(InterruptError::Timeout)
            }
        }
    }
}
