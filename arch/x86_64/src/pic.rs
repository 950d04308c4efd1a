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
    const SEQUENCE: [(u16, u8); 10] = [
        // ICW1: initialise, ICW4 follows.
        (MASTER_COMMAND, 0x11),
        (SLAVE_COMMAND, 0x11),
        // ICW2: vector offsets.
        (MASTER_DATA, BASE),
        (SLAVE_DATA, BASE + 8),
        // ICW3: slave on master's IRQ 2; slave's cascade identity 2.
        (MASTER_DATA, 4),
        (SLAVE_DATA, 2),
        // ICW4: 8086 mode.
        (MASTER_DATA, 1),
        (SLAVE_DATA, 1),
        // OCW1: mask all.
        (MASTER_DATA, 0xff),
        (SLAVE_DATA, 0xff),
    ];
    for (port, value) in SEQUENCE {
        // SAFETY: ports 0x20/0x21/0xa0/0xa1 are the PC's 8259 pair, which
        // the kernel owns; this is its documented initialisation sequence,
        // which ends with every line masked.
        unsafe { write_u8(port, value) };
    }
}
