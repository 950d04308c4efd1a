//! Global descriptor table and task-state segment.
//!
//! The TSS's first interrupt-stack-table slot holds a dedicated stack for
//! double faults, so a kernel stack overflow is still reported instead of
//! turning into a triple fault. Each CPU has its own GDT and TSS (a TSS is
//! marked busy when loaded, and the stacks must differ).

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
    let tables = TABLES.call_once(|| {
        let tss = TSS.call_once(|| {
            let stack_start = VirtAddr::from_ptr(&raw const DOUBLE_FAULT_STACK);
            tss_with_stack(stack_start + DOUBLE_FAULT_STACK_BYTES as u64)
        });
        build(tss)
    });
    load(tables);
}

/// The same for a secondary CPU: its own GDT and TSS, whose double-fault
/// stack ends at `double_fault_stack_top`. They live as long as the CPU
/// runs, so they are leaked.
pub fn init_secondary(double_fault_stack_top: u64) {
    let tss: &'static TaskStateSegment = alloc::boxed::Box::leak(alloc::boxed::Box::new(
        tss_with_stack(VirtAddr::new(double_fault_stack_top)),
    ));
    let tables: &'static Tables = alloc::boxed::Box::leak(alloc::boxed::Box::new(build(tss)));
    load(tables);
}

fn tss_with_stack(double_fault_stack_top: VirtAddr) -> TaskStateSegment {
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] = double_fault_stack_top;
    tss
}

fn build(tss: &'static TaskStateSegment) -> Tables {
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
}

fn load(tables: &'static Tables) {
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
