//! Global descriptor table and task-state segment.
//!
//! The TSS's first interrupt-stack-table slot holds a dedicated stack for
//! double faults, so a kernel stack overflow is still reported instead of
//! turning into a triple fault.

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (index into the TSS table) of the double-fault stack.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;

const DOUBLE_FAULT_STACK_BYTES: usize = 16 * 1024;

/// The double-fault stack; only the CPU writes it, through the TSS.
#[repr(align(16))]
struct Stack(#[allow(dead_code)] [u8; DOUBLE_FAULT_STACK_BYTES]);

static mut DOUBLE_FAULT_STACK: Stack = Stack([0; DOUBLE_FAULT_STACK_BYTES]);

struct Tables {
    gdt: GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static TABLES: Once<Tables> = Once::new();

/// Builds and loads the GDT and TSS, and reloads the segment registers.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let stack_start = VirtAddr::from_ptr(&raw const DOUBLE_FAULT_STACK);
        tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] =
            stack_start + DOUBLE_FAULT_STACK_BYTES as u64;
        tss
    });
    let tables = TABLES.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        Tables {
            gdt,
            code,
            data,
            tss,
        }
    });
    tables.gdt.load();
    // SAFETY: the selectors index the GDT just loaded, whose code segment is
    // a 64-bit kernel code segment and whose data segment is a kernel data
    // segment; the TSS descriptor points at a static TSS.
    unsafe {
        CS::set_reg(tables.code);
        DS::set_reg(tables.data);
        ES::set_reg(tables.data);
        SS::set_reg(tables.data);
        load_tss(tables.tss);
    }
}
