//! virtio-drivers' configuration access over one function's configuration
//! space (`stratus_pci::FunctionConfig`).

use stratus_pci::FunctionConfig;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

/// The configuration space of the one function the transport drives.
pub struct FunctionAccess(pub FunctionConfig);

impl FunctionAccess {
    fn is_ours(&self, device_function: DeviceFunction) -> bool {
        let a = self.0.address();
        (a.bus, a.device, a.function)
            == (
                device_function.bus,
                device_function.device,
                device_function.function,
            )
    }
}

impl ConfigurationAccess for FunctionAccess {
    fn read_word(&self, device_function: DeviceFunction, register_offset: u8) -> u32 {
        if self.is_ours(device_function) {
            self.0.read_u32(u16::from(register_offset))
        } else {
            u32::MAX
        }
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        if self.is_ours(device_function) {
            self.0.write_u32(u16::from(register_offset), data)
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Self(self.0)
    }
}
