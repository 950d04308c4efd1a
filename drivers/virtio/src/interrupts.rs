//! MSI-X for virtio queues: one table entry per queue, steered to the CPU
//! that probes the device (the one that will wait for its completions).

use crate::transport::ModernPciTransport;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use stratus_driver_api::{DriverServices, InterruptHandler, MsiRequest, MsiVector};
use stratus_pci::msix::Msix;
use stratus_pci::{PciFunction, regs};

/// What a virtio function needs before its device driver (virtio-drivers')
/// initialises it: the `Hal`'s services, memory decoding (so registers and
/// the MSI-X table answer), the transport, MSI-X vectors for `queues` (or
/// `None`, logged: the device is then polled), and bus mastering.
pub fn bring_up(
    function: &PciFunction,
    services: &'static dyn DriverServices,
    name: &str,
    queues: &[u16],
    handler: InterruptHandler,
    context: usize,
) -> Result<(ModernPciTransport, Option<QueueInterrupts>), String> {
    crate::hal::install(services);
    function.enable_memory_space();
    let mut transport = ModernPciTransport::new(function, services)?;
    let interrupts =
        match QueueInterrupts::set_up(function, services, &mut transport, queues, handler, context)
        {
            Ok(interrupts) => Some(interrupts),
            Err(e) => {
                log::warn!(target: "virtio", "{name}: no MSI-X ({e}); polled");
                None
            }
        };
    function.enable_bus_master();
    Ok((transport, interrupts))
}

/// The vectors of one device's queues.
#[derive(Debug)]
pub struct QueueInterrupts {
    msix: Msix,
    vectors: Vec<MsiVector>,
}

impl QueueInterrupts {
    /// Gives `queues[i]` MSI-X table entry `i`, with `handler(context)` on
    /// this CPU, and enables MSI-X. The transport writes the entries when
    /// the queues are set up, so call this before the device's driver
    /// initialises it. An error says why the device will be polled.
    pub fn set_up(
        function: &PciFunction,
        services: &dyn DriverServices,
        transport: &mut ModernPciTransport,
        queues: &[u16],
        handler: InterruptHandler,
        context: usize,
    ) -> Result<Self, String> {
        if function.capabilities(regs::CAP_MSIX).next().is_none() {
            return Err(String::from("the function has no MSI-X capability"));
        }
        let msix = Msix::new(function, services).map_err(|e| format!("MSI-X table: {e:?}"))?;
        if usize::from(msix.entries()) < queues.len() {
            return Err(format!(
                "{} MSI-X entries for {} queues",
                msix.entries(),
                queues.len()
            ));
        }
        let mut interrupts = Self {
            msix,
            vectors: Vec::new(),
        };
        for (entry, &queue) in queues.iter().enumerate() {
            let request = MsiRequest {
                source: function.msi_source(),
                cpu: services.this_cpu(),
                handler,
                context,
            };
            let vector = match services.allocate_msi(request) {
                Ok(vector) => vector,
                Err(e) => {
                    interrupts.release(services);
                    return Err(format!("{e}"));
                }
            };
            interrupts.vectors.push(vector);
            if let Err(e) = interrupts.msix.set_entry(entry as u16, vector.message) {
                interrupts.release(services);
                return Err(format!("MSI-X entry {entry}: {e:?}"));
            }
            transport.set_queue_vector(queue, entry as u16);
        }
        interrupts.msix.enable();
        Ok(interrupts)
    }

    /// Masks every entry, disables MSI-X and gives the vectors back (the
    /// device was refused a vector, or is going away).
    pub fn release(&mut self, services: &dyn DriverServices) {
        for (entry, vector) in self.vectors.drain(..).enumerate() {
            let _ = self.msix.mask_entry(entry as u16);
            services.free_msi(vector);
        }
        self.msix.disable();
    }
}
