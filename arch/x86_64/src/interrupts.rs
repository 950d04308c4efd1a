//! Interrupt entry for vectors 32..=255 and the APIC interrupt controller.
//!
//! Each vector has a small stub that pushes its number and jumps to common
//! code, which saves the caller-saved registers, calls [`interrupt_entry`]
//! and returns with `iretq`. The entry calls kernel-core's dispatcher with
//! the vector and then signals end-of-interrupt to the local APIC.

use crate::io_apic::IoApic;
use crate::local_apic::{self, LocalApic, SPURIOUS_VECTOR};
use crate::pic;
use core::arch::global_asm;
use core::ops::Range;
use stratus_arch::interrupts::{
    IoApicDescription, LOCAL_APIC_TIMER, MapRegisters, Polarity, SourceOverride, Trigger,
    resolve_gsi,
};
use stratus_arch::{
    CpuHardwareId, InterruptController, InterruptError, InterruptId, InterruptLine, MsiAddressData,
    MsiDevice,
};
use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptDescriptorTable;

global_asm!(
    r#"
    .section .text.stratus_interrupts, "ax"
    .irp v, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127,128,129,130,131,132,133,134,135,136,137,138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159,160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,187,188,189,190,191,192,193,194,195,196,197,198,199,200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215,216,217,218,219,220,221,222,223,224,225,226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,248,249,250,251,252,253,254,255
    .p2align 4
    stratus_interrupt_stub_\v:
        push \v
        jmp stratus_interrupt_common
    .endr

    stratus_interrupt_common:
        push rax
        push rcx
        push rdx
        push rsi
        push rdi
        push r8
        push r9
        push r10
        push r11
        mov rdi, [rsp + 72]
        cld
        // The CPU aligned RSP to 16 before its 40-byte frame; the vector
        // and nine registers leave it 8 off: realign for the call.
        sub rsp, 8
        call {entry}
        add rsp, 8
        pop r11
        pop r10
        pop r9
        pop r8
        pop rdi
        pop rsi
        pop rdx
        pop rcx
        pop rax
        add rsp, 8
        iretq

    // Absolute addresses, relocated when the kernel is placed (PIE): kept with the
    // other relocated constants, not in read-only data.
    .section .data.rel.ro.stratus_interrupts, "aw"
    .p2align 3
    .global stratus_interrupt_stubs
    stratus_interrupt_stubs:
    .irp v, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127,128,129,130,131,132,133,134,135,136,137,138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159,160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,187,188,189,190,191,192,193,194,195,196,197,198,199,200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215,216,217,218,219,220,221,222,223,224,225,226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,248,249,250,251,252,253,254,255
        .quad stratus_interrupt_stub_\v
    .endr
    .text
    "#,
    entry = sym interrupt_entry,
);

unsafe extern "C" {
    /// Addresses of the stubs for vectors 32..=255.
    static stratus_interrupt_stubs: [u64; 224];
}

/// Points IDT entries 32..=255 at their stubs.
pub fn install(idt: &mut InterruptDescriptorTable) {
    // SAFETY: the constant table emitted above: 224 code addresses.
    let stubs = unsafe { &stratus_interrupt_stubs };
    for (i, &stub) in stubs.iter().enumerate() {
        let vector = (i + 32) as u8;
        // SAFETY: the stub for `vector` saves what it clobbers and returns
        // with iretq, as an interrupt handler must.
        unsafe {
            idt[vector].set_handler_addr(VirtAddr::new(stub));
        }
    }
}

static DISPATCH: spin::Once<fn(InterruptId)> = spin::Once::new();

/// Installs kernel-core's dispatcher.
pub fn set_dispatcher(dispatch: fn(InterruptId)) {
    DISPATCH.call_once(|| dispatch);
}

/// Called by the stubs with interrupts masked.
extern "C" fn interrupt_entry(vector: u64) {
    if vector == u64::from(SPURIOUS_VECTOR) {
        return; // no EOI for the spurious vector (SDM 11.9)
    }
    if let Some(dispatch) = DISPATCH.get() {
        dispatch(InterruptId(vector as u32));
    }
    // PIC vectors only arrive as spurious IRQ 7/15 of the masked PIC: they
    // are not in the local APIC's ISR and need no EOI there.
    if !(u64::from(pic::BASE)..u64::from(pic::BASE) + 16).contains(&vector)
        && let Some(lapic) = local_apic::get()
    {
        lapic.end_of_interrupt();
    }
}

const MAX_IO_APICS: usize = 16;
const MAX_OVERRIDES: usize = 48;
/// Filler for the unused override slots (never read: `override_count`).
const UNUSED_OVERRIDE: SourceOverride = SourceOverride {
    isa_irq: 0,
    gsi: 0,
    trigger: Trigger::Edge,
    polarity: Polarity::High,
};

/// The local APIC and the I/O APICs.
pub struct ApicController {
    lapic: LocalApic,
    io_apics: [Option<IoApic>; MAX_IO_APICS],
    overrides: [SourceOverride; MAX_OVERRIDES],
    override_count: usize,
}

impl ApicController {
    /// Masks the PIC, enables the local APIC and maps and masks the I/O APICs.
    pub fn new(
        local_apic_phys: u64,
        io_apics: &[IoApicDescription],
        overrides: &[SourceOverride],
        mut map: MapRegisters<'_>,
    ) -> Result<Self, InterruptError> {
        pic::remap_and_mask();
        let lapic = local_apic::init(local_apic_phys, &mut *map)?;
        let mut controller = Self {
            lapic,
            io_apics: [None; MAX_IO_APICS],
            overrides: [UNUSED_OVERRIDE; MAX_OVERRIDES],
            override_count: overrides.len().min(MAX_OVERRIDES),
        };
        if io_apics.len() > MAX_IO_APICS || overrides.len() > MAX_OVERRIDES {
            log::warn!(target: "irq", "more I/O APICs or overrides than {MAX_IO_APICS}/{MAX_OVERRIDES}; extra ignored");
        }
        for (slot, description) in controller.io_apics.iter_mut().zip(io_apics) {
            let apic = IoApic::new(description, &mut map)?;
            log::info!(target: "irq", "I/O APIC {} at {:#x}: GSI {}..{}",
                description.id,
                description.phys,
                apic.gsi_base,
                apic.gsi_base + apic.inputs
            );
            *slot = Some(apic);
        }
        for (slot, o) in controller.overrides.iter_mut().zip(overrides) {
            *slot = *o;
        }
        Ok(controller)
    }

    fn io_apic_for(&self, gsi: u32) -> Result<&IoApic, InterruptError> {
        self.io_apics
            .iter()
            .flatten()
            .find(|a| a.serves(gsi))
            .ok_or(InterruptError::NoIoApicForGsi(gsi))
    }

    fn resolve(&self, line: InterruptLine) -> Option<(u32, Trigger, Polarity)> {
        resolve_gsi(line, &self.overrides[..self.override_count])
    }
}

/// Vectors kernel-core may allocate for lines and IPIs: above the PIC's.
const ALLOCATABLE: Range<u32> = 0x30..0x80;

/// Vectors for MSIs: from there to below the spurious vector's
/// neighbourhood.
const MSI_VECTORS: Range<u32> = 0x80..0xf0;

/// The local APIC's MSI address window (Intel SDM vol. 3, 11.11.1): the
/// destination APIC id goes in bits 19:12.
const MSI_ADDRESS_BASE: u64 = 0xfee0_0000;

fn vector(id: InterruptId) -> Result<u8, InterruptError> {
    u8::try_from(id.0)
        .ok()
        .filter(|&v| v >= 0x30 && v != SPURIOUS_VECTOR)
        .ok_or(InterruptError::BadId(id.0))
}

impl InterruptController for ApicController {
    fn kind(&self) -> &'static str {
        match self.lapic {
            LocalApic::X2Apic => "x2apic",
            LocalApic::XApic { .. } => "xapic",
        }
    }

    fn allocatable(&self) -> Range<u32> {
        ALLOCATABLE
    }

    fn fixed_id(&self, _line: InterruptLine) -> Option<InterruptId> {
        None
    }

    fn enable(&mut self, line: InterruptLine, id: InterruptId) -> Result<(), InterruptError> {
        let vector = vector(id)?;
        if line == InterruptLine::PerCpu(LOCAL_APIC_TIMER) {
            return Ok(()); // the timer programs its own LVT entry
        }
        let (gsi, trigger, polarity) = self.resolve(line).ok_or(InterruptError::BadLine)?;
        let destination =
            u8::try_from(self.lapic.id()).map_err(|_| InterruptError::BadId(self.lapic.id()))?;
        self.io_apic_for(gsi)?
            .route(gsi, vector, trigger, polarity, destination);
        log::info!(
            target: "irq",
            "{line:?} -> GSI {gsi} ({trigger:?}, active {polarity:?}) as vector {vector:#x} on APIC {destination}"
        );
        Ok(())
    }

    fn disable(&mut self, line: InterruptLine) -> Result<(), InterruptError> {
        if line == InterruptLine::PerCpu(LOCAL_APIC_TIMER) {
            self.lapic
                .write(local_apic::LVT_TIMER, local_apic::LVT_MASKED);
            return Ok(());
        }
        let (gsi, _, _) = self.resolve(line).ok_or(InterruptError::BadLine)?;
        self.io_apic_for(gsi)?.mask(gsi);
        Ok(())
    }

    fn this_cpu(&self) -> CpuHardwareId {
        CpuHardwareId(u64::from(self.lapic.id()))
    }

    fn send_ipi(&mut self, target: CpuHardwareId, id: InterruptId) -> Result<(), InterruptError> {
        let target = u32::try_from(target.0).map_err(|_| InterruptError::BadId(id.0))?;
        self.lapic.send_ipi(target, vector(id)?)
    }

    fn msi_ids(&self) -> Range<u32> {
        MSI_VECTORS
    }

    fn compose_msi(
        &mut self,
        _device: MsiDevice,
        id: InterruptId,
        target: CpuHardwareId,
    ) -> Result<MsiAddressData, InterruptError> {
        msi_message(id, target)
    }
}

/// The MSI for `id` to the local APIC `target`: physical destination mode,
/// fixed delivery, edge triggered (Intel SDM vol. 3, 11.11.1 and 11.11.2).
/// APIC ids above 255 need interrupt remapping, which is not supported.
fn msi_message(id: InterruptId, target: CpuHardwareId) -> Result<MsiAddressData, InterruptError> {
    if !MSI_VECTORS.contains(&id.0) {
        return Err(InterruptError::BadId(id.0));
    }
    let apic_id =
        u8::try_from(target.0).map_err(|_| InterruptError::MsiUnreachableCpu(target.0))?;
    Ok(MsiAddressData {
        address: MSI_ADDRESS_BASE | u64::from(apic_id) << 12,
        data: id.0,
    })
}
