//! The legacy 8259 PIC pair: remapped away from the exception vectors and
//! masked, so that only the local APIC and I/O APICs deliver interrupts.

use crate::ports::write_u8;

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;

/// Vectors the PIC uses after [`remap_and_mask`] (a masked PIC can still
/// raise a spurious IRQ 7 or 15 at `BASE + 7` / `BASE + 15`).
pub const BASE: u8 = 0x20;

/// Reinitialises both PICs (ICW1..ICW4) to vectors `BASE..BASE + 16`, then
/// masks every line.
pub fn remap_and_mask() {
    // ICW1: initialise, ICW4 follows.
    write_u8(MASTER_COMMAND, 0x11);
    write_u8(SLAVE_COMMAND, 0x11);
    // ICW2: vector offsets.
    write_u8(MASTER_DATA, BASE);
    write_u8(SLAVE_DATA, BASE + 8);
    // ICW3: slave on master's IRQ 2; slave's cascade identity 2.
    write_u8(MASTER_DATA, 4);
    write_u8(SLAVE_DATA, 2);
    // ICW4: 8086 mode.
    write_u8(MASTER_DATA, 1);
    write_u8(SLAVE_DATA, 1);
    // OCW1: mask all.
    write_u8(MASTER_DATA, 0xff);
    write_u8(SLAVE_DATA, 0xff);
}
