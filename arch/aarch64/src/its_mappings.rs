//! Which device event raises which LPI: the bookkeeping behind the ITS's
//! own tables. Each device mapped in the ITS gets an interrupt translation
//! table from a fixed pool (allocated at boot; the controller cannot
//! allocate later) with [`EVENTS_PER_DEVICE`] events; an MSI takes the
//! device's lowest free event. Pure, so the allocation is tested on the
//! host; the commands that follow from it are issued by `gic_its`.

use crate::its_tables::EVENTS_PER_DEVICE;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// A device mapped in the ITS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MappedDevice {
    /// Index of its ITT in the pool.
    itt: usize,
    /// Events in use, one bit each.
    events: u64,
}

/// What mapping one more MSI takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewMapping {
    /// The device's event the MSI data carries.
    pub event: u32,
    /// The ITT pool index, when the device is new and needs a MAPD.
    pub new_device_itt: Option<usize>,
}

/// What releasing an MSI takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    /// The ITS device id.
    pub device: u32,
    /// Its event.
    pub event: u32,
    /// The device has no events left: unmap it (its ITT went back to the
    /// pool).
    pub device_now_unused: bool,
}

/// Why no mapping could be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingError {
    /// The LPI is mapped already.
    LpiInUse(u32),
    /// Every ITT of the pool is taken.
    NoItt,
    /// Every event of the device is taken.
    DeviceFull(u32),
}

/// Devices, events and LPIs.
pub struct ItsMappings {
    devices: BTreeMap<u32, MappedDevice>,
    lpis: BTreeMap<u32, (u32, u32)>,
    free_itts: Vec<usize>,
}

impl ItsMappings {
    /// No device mapped; `itts` ITTs in the pool.
    pub fn new(itts: usize) -> Self {
        Self {
            devices: BTreeMap::new(),
            lpis: BTreeMap::new(),
            free_itts: (0..itts).rev().collect(),
        }
    }

    /// Maps `lpi` to the next free event of `device`, taking an ITT for a
    /// device not mapped yet. Undo with [`ItsMappings::unmap`] when the
    /// ITS refuses the commands.
    pub fn map(&mut self, device: u32, lpi: u32) -> Result<NewMapping, MappingError> {
        if self.lpis.contains_key(&lpi) {
            return Err(MappingError::LpiInUse(lpi));
        }
        let mut new_device_itt = None;
        let entry = match self.devices.get_mut(&device) {
            Some(entry) => entry,
            None => {
                let itt = self.free_itts.pop().ok_or(MappingError::NoItt)?;
                new_device_itt = Some(itt);
                self.devices
                    .entry(device)
                    .or_insert(MappedDevice { itt, events: 0 })
            }
        };
        let event = (!entry.events).trailing_zeros();
        if event >= EVENTS_PER_DEVICE {
            return Err(MappingError::DeviceFull(device));
        }
        entry.events |= 1 << event;
        self.lpis.insert(lpi, (device, event));
        Ok(NewMapping {
            event,
            new_device_itt,
        })
    }

    /// Forgets `lpi`'s mapping; `None` when it has none.
    pub fn unmap(&mut self, lpi: u32) -> Option<Released> {
        let (device, event) = self.lpis.remove(&lpi)?;
        let entry = self.devices.get_mut(&device)?;
        entry.events &= !(1 << event);
        let device_now_unused = entry.events == 0;
        if device_now_unused {
            self.free_itts.push(entry.itt);
            self.devices.remove(&device);
        }
        Some(Released {
            device,
            event,
            device_now_unused,
        })
    }

    /// The device and event `lpi` is mapped to.
    pub fn lookup(&self, lpi: u32) -> Option<(u32, u32)> {
        self.lpis.get(&lpi).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_per_device_and_itts_from_the_pool() {
        let mut m = ItsMappings::new(2);
        let first = m.map(0x10, 8192).unwrap();
        assert_eq!(
            first,
            NewMapping {
                event: 0,
                new_device_itt: Some(0)
            }
        );
        assert_eq!(
            m.map(0x10, 8193).unwrap(),
            NewMapping {
                event: 1,
                new_device_itt: None
            }
        );
        assert_eq!(m.map(0x20, 8194).unwrap().new_device_itt, Some(1));
        assert_eq!(m.map(0x30, 8195), Err(MappingError::NoItt));
        assert_eq!(m.map(0x10, 8193), Err(MappingError::LpiInUse(8193)));
        assert_eq!(m.lookup(8193), Some((0x10, 1)));

        // Freed events are reused lowest first; the last one frees the ITT.
        assert_eq!(
            m.unmap(8192),
            Some(Released {
                device: 0x10,
                event: 0,
                device_now_unused: false
            })
        );
        assert_eq!(m.map(0x10, 8196).unwrap().event, 0);
        m.unmap(8193);
        assert!(m.unmap(8196).unwrap().device_now_unused);
        assert_eq!(m.unmap(8196), None);
        assert_eq!(m.map(0x30, 8195).unwrap().new_device_itt, Some(0));
    }

    #[test]
    fn a_device_holds_sixty_four_events() {
        let mut m = ItsMappings::new(1);
        for lpi in 0..EVENTS_PER_DEVICE {
            assert_eq!(m.map(7, 8192 + lpi).unwrap().event, lpi);
        }
        assert_eq!(m.map(7, 9000), Err(MappingError::DeviceFull(7)));
    }
}
