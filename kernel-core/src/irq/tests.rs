//! The interrupt API against a fake controller.

use super::*;
extern crate std;
use core::ops::Range;
use core::sync::atomic::AtomicU32;
use std::sync::Mutex;
use std::vec::Vec;
use stratus_arch::interrupts::{Polarity, Trigger};

/// What the fake controller was asked.
static CALLS: Mutex<Vec<(InterruptLine, u32, bool)>> = Mutex::new(Vec::new());

struct FakeController {
    fixed: bool,
    refuse_gsi: Option<u32>,
}

impl InterruptController for FakeController {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn allocatable(&self) -> Range<u32> {
        48..50
    }
    fn fixed_id(&self, line: InterruptLine) -> Option<InterruptId> {
        match line {
            InterruptLine::PerCpu(ppi) if self.fixed => Some(InterruptId(ppi)),
            _ => None,
        }
    }
    fn enable(&mut self, line: InterruptLine, id: InterruptId) -> Result<(), InterruptError> {
        if let InterruptLine::Gsi { gsi, .. } = line
            && Some(gsi) == self.refuse_gsi
        {
            return Err(InterruptError::NoIoApicForGsi(gsi));
        }
        CALLS.lock().unwrap().push((line, id.0, true));
        Ok(())
    }
    fn disable(&mut self, line: InterruptLine) -> Result<(), InterruptError> {
        CALLS.lock().unwrap().push((line, 0, false));
        Ok(())
    }
    fn this_cpu(&self) -> CpuHardwareId {
        CpuHardwareId(7)
    }
    fn send_ipi(&mut self, target: CpuHardwareId, id: InterruptId) -> Result<(), InterruptError> {
        // A self-IPI arrives at once, as on hardware with interrupts unmasked.
        if target == CpuHardwareId(7) {
            TEST_TABLE.dispatch(id);
        }
        Ok(())
    }
}

static TEST_TABLE: DispatchTable = DispatchTable::new();
static SEEN: AtomicU32 = AtomicU32::new(0);

fn count(id: InterruptId) {
    SEEN.fetch_add(id.0, Ordering::SeqCst);
}

fn gsi(n: u32) -> InterruptLine {
    InterruptLine::Gsi {
        gsi: n,
        trigger: Trigger::Level,
        polarity: Polarity::Low,
    }
}

#[test]
fn lines_get_ids_handlers_and_are_unmasked_and_errors_undo() {
    let irq = Interrupts::new(
        Box::new(FakeController {
            fixed: false,
            refuse_gsi: Some(9),
        }),
        &TEST_TABLE,
    );
    assert_eq!(irq.kind(), "fake");
    let id = irq.request_line(gsi(4), count).unwrap();
    assert_eq!(id, InterruptId(48));
    assert!(CALLS.lock().unwrap().contains(&(gsi(4), 48, true)));
    // The refused line gives its id back and leaves no handler.
    assert_eq!(
        irq.request_line(gsi(9), count),
        Err(IrqError::Controller(InterruptError::NoIoApicForGsi(9)))
    );
    let ipi = irq.allocate(count).unwrap();
    assert_eq!(ipi, InterruptId(49));
    assert_eq!(
        irq.allocate(count),
        Err(IrqError::Vector(VectorError::Exhausted))
    );
    let before = SEEN.load(Ordering::SeqCst);
    irq.send_ipi(irq.this_cpu(), ipi).unwrap();
    assert_eq!(SEEN.load(Ordering::SeqCst), before + 49);
    irq.release_line(gsi(4), id).unwrap();
    TEST_TABLE.dispatch(id);
    assert_eq!(
        SEEN.load(Ordering::SeqCst),
        before + 49,
        "released line ran"
    );
    assert!(TEST_TABLE.unhandled() >= 1);
    irq.free(ipi);
    assert_eq!(irq.allocate(count).unwrap(), InterruptId(48));
}

#[test]
fn fixed_ids_are_used_as_the_hardware_gives_them() {
    static TABLE2: DispatchTable = DispatchTable::new();
    let irq = Interrupts::new(
        Box::new(FakeController {
            fixed: true,
            refuse_gsi: None,
        }),
        &TABLE2,
    );
    let id = irq.request_line(InterruptLine::PerCpu(27), count).unwrap();
    assert_eq!(id, InterruptId(27));
    assert_eq!(
        irq.request_line(InterruptLine::PerCpu(27), count),
        Err(IrqError::AlreadyRegistered(27))
    );
    assert_eq!(
        TABLE2.register(InterruptId(MAX_IDS), count),
        Err(IrqError::Vector(VectorError::OutOfRange(MAX_IDS)))
    );
}
