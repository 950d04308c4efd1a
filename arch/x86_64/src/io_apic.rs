//! I/O APICs (Intel 82093AA datasheet, section 3): an index register at
//! offset 0x00 and a data window at 0x10; redirection entry `n` is the
//! register pair 0x10 + 2n (low) and 0x11 + 2n (high).

use stratus_arch::InterruptError;
use stratus_arch::interrupts::{IoApicDescription, MapRegisters, Polarity, Trigger};

const VERSION: u32 = 0x01;
const REDIRECTION_BASE: u32 = 0x10;
const ENTRY_MASKED: u32 = 1 << 16;
const ENTRY_LEVEL: u32 = 1 << 15;
const ENTRY_ACTIVE_LOW: u32 = 1 << 13;

/// One I/O APIC, its registers mapped with device attributes.
#[derive(Clone, Copy, Debug)]
pub struct IoApic {
    virt: u64,
    /// The first GSI it serves.
    pub gsi_base: u32,
    /// How many GSIs it serves.
    pub inputs: u32,
}

impl IoApic {
    /// Maps the I/O APIC that `description` names, reads how many inputs it
    /// has and masks all of them.
    pub fn new(
        description: &IoApicDescription,
        map: &mut MapRegisters<'_>,
    ) -> Result<Self, InterruptError> {
        let virt = map(description.phys, 0x20).map_err(InterruptError::Map)?;
        let mut apic = Self {
            virt,
            gsi_base: description.gsi_base,
            inputs: 0,
        };
        // Bits 23:16: index of the last redirection entry.
        apic.inputs = ((apic.read(VERSION) >> 16) & 0xff) + 1;
        for input in 0..apic.inputs {
            apic.write(REDIRECTION_BASE + 2 * input, ENTRY_MASKED);
        }
        Ok(apic)
    }

    fn read(&self, reg: u32) -> u32 {
        // SAFETY: `virt` maps the I/O APIC's index and data registers with
        // device attributes (`new`); selecting a register then reading the
        // window is the device's access protocol.
        unsafe {
            core::ptr::write_volatile(self.virt as *mut u32, reg);
            core::ptr::read_volatile((self.virt + 0x10) as *const u32)
        }
    }

    fn write(&self, reg: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::write_volatile(self.virt as *mut u32, reg);
            core::ptr::write_volatile((self.virt + 0x10) as *mut u32, value)
        }
    }

    /// Whether `gsi` is one of this I/O APIC's inputs.
    pub fn serves(&self, gsi: u32) -> bool {
        gsi >= self.gsi_base && gsi - self.gsi_base < self.inputs
    }

    /// Routes `gsi` as fixed interrupt `vector` to the CPU with (8-bit,
    /// physical destination mode) APIC id `destination`, and unmasks it.
    pub fn route(
        &self,
        gsi: u32,
        vector: u8,
        trigger: Trigger,
        polarity: Polarity,
        destination: u8,
    ) {
        let input = gsi - self.gsi_base;
        let mut low = u32::from(vector);
        if trigger == Trigger::Level {
            low |= ENTRY_LEVEL;
        }
        if polarity == Polarity::Low {
            low |= ENTRY_ACTIVE_LOW;
        }
        self.write(REDIRECTION_BASE + 2 * input, ENTRY_MASKED);
        self.write(
            REDIRECTION_BASE + 2 * input + 1,
            u32::from(destination) << 24,
        );
        self.write(REDIRECTION_BASE + 2 * input, low);
    }

    /// Masks `gsi`.
    pub fn mask(&self, gsi: u32) {
        self.write(REDIRECTION_BASE + 2 * (gsi - self.gsi_base), ENTRY_MASKED);
    }
}
