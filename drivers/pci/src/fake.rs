//! A configuration space in host memory for tests: functions with BARs of
//! given sizes, capability lists, bridges. Writes are recorded.

extern crate std;
use crate::{ConfigAccess, PciAddress};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::vec::Vec;

/// One function's registers and BAR size masks.
#[derive(Clone)]
pub struct FakeFunction {
    /// 4 KiB of configuration space, as dwords.
    pub space: Vec<u32>,
    /// Per BAR register: what it reads after all ones were written (`None`:
    /// not implemented, reads zero).
    pub bar_probes: [Option<u32>; 6],
}

impl FakeFunction {
    /// A type 0 function with `vendor:device` and class bytes.
    pub fn new(vendor: u16, device: u16, class: (u8, u8, u8)) -> Self {
        let mut space = std::vec![0u32; 1024];
        space[0] = u32::from(device) << 16 | u32::from(vendor);
        space[2] = u32::from(class.0) << 24 | u32::from(class.1) << 16 | u32::from(class.2) << 8;
        Self {
            space,
            bar_probes: [None; 6],
        }
    }

    /// Sets the dword at `offset`.
    pub fn set(&mut self, offset: usize, value: u32) -> &mut Self {
        self.space[offset / 4] = value;
        self
    }

    /// Gives BAR `index` a size and its type bits (`value`'s low bits).
    pub fn bar(&mut self, index: usize, value: u32, size: u64) -> &mut Self {
        self.space[4 + index] = value;
        let size_mask = size.wrapping_sub(1);
        let (type_bits, keep) = if value & 1 == 1 {
            (value & 3, !3u32)
        } else {
            (value & 0xf, !0xfu32)
        };
        self.bar_probes[index] = Some(!(size_mask as u32) & keep | type_bits);
        if value & 1 == 0 && (value >> 1) & 3 == 2 {
            self.bar_probes[index + 1] = Some(!((size_mask >> 32) as u32));
        }
        self
    }
}

/// The fake space.
#[derive(Default)]
pub struct FakeConfigSpace {
    functions: Mutex<BTreeMap<PciAddress, FakeFunction>>,
    /// Every write: (address, offset, value).
    pub writes: Mutex<Vec<(PciAddress, u16, u32)>>,
}

impl FakeConfigSpace {
    /// Adds a function.
    pub fn insert(&self, address: PciAddress, function: FakeFunction) {
        self.functions.lock().unwrap().insert(address, function);
    }

    /// Leaks `self` for the `'static` the enumeration wants.
    pub fn leak(self) -> &'static Self {
        std::boxed::Box::leak(std::boxed::Box::new(self))
    }

    /// The dword at `offset` of `address`.
    pub fn dword(&self, address: PciAddress, offset: u16) -> u32 {
        self.read_u32(address, offset)
    }
}

impl ConfigAccess for FakeConfigSpace {
    fn read_u32(&self, address: PciAddress, offset: u16) -> u32 {
        self.functions
            .lock()
            .unwrap()
            .get(&address)
            .map_or(u32::MAX, |f| f.space[usize::from(offset / 4) % 1024])
    }

    fn write_u32(&self, address: PciAddress, offset: u16, value: u32) {
        self.writes.lock().unwrap().push((address, offset, value));
        if let Some(f) = self.functions.lock().unwrap().get_mut(&address) {
            let index = usize::from(offset / 4) % 1024;
            f.space[index] = match index {
                4..=9 if value == u32::MAX => f.bar_probes[index - 4].unwrap_or(0),
                // The status register's bits are read-only or write-one-
                // to-clear: writing zeros leaves them.
                1 => (f.space[1] & 0xffff_0000) | (value & 0xffff),
                _ => value,
            };
        }
    }

    fn space_size(&self) -> u16 {
        4096
    }
}
