//! Boot step: PCI enumeration and driver probing.
//!
//! Configuration space comes from every MCFG entry (ECAM: each segment
//! group and bus range, mapped through the device window like any other
//! registers), or on x86 without MCFG from the legacy ports 0xcf8/0xcfc
//! (QEMU `-M pc`). A machine with neither (Azure arm64 has no MCFG) is
//! said to have no PCI. Each function found gets one boot line; the first
//! driver of the platform's list that claims it is probed, and the block
//! devices drivers return are kept.

use crate::acpi::AcpiPlatform;
use crate::driver_services::KernelServices;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use stratus_arch::Arch;
use stratus_driver_api::{BlockDevice, CachePolicy, DriverServices, NetDevice};
use stratus_pci::{
    ConfigAccess, EcamConfigAccess, IoSpace, LegacyConfigAccess, PciDriver, PciFunction, Probed,
    enumerate,
};

/// The drivers a platform offers PCI functions to, in order of preference.
pub type PciDrivers = &'static [&'static dyn PciDriver];

/// What PCI enumeration and probing found.
#[derive(Default)]
pub struct PciInventory {
    /// Every function, in enumeration order.
    pub functions: Vec<PciFunction>,
    /// The disks drivers brought up.
    pub block_devices: Vec<Arc<dyn BlockDevice>>,
    /// The network interfaces drivers brought up.
    pub net_devices: Vec<Arc<dyn NetDevice>>,
}

/// A short name for a class code, for the boot line.
pub fn class_name(class: (u8, u8, u8)) -> &'static str {
    match class {
        (0x01, 0x08, 0x02) => "NVMe",
        (0x01, 0x00, _) => "SCSI storage",
        (0x01, 0x01, _) => "IDE storage",
        (0x01, 0x06, _) => "SATA storage",
        (0x01, _, _) => "mass storage",
        (0x02, 0x00, _) => "Ethernet",
        (0x02, _, _) => "network",
        (0x03, _, _) => "display",
        (0x06, 0x00, _) => "host bridge",
        (0x06, 0x01, _) => "ISA bridge",
        (0x06, 0x04, _) => "PCI bridge",
        (0x06, _, _) => "bridge",
        (0x07, 0x00, _) => "serial",
        (0x07, _, _) => "communication",
        (0x0c, 0x03, _) => "USB",
        (0x0c, 0x05, _) => "SMBus",
        (0x00, _, _) | (0xff, _, _) => "unclassified",
        _ => "other",
    }
}

/// Finds the configuration spaces, enumerates them, and probes `drivers`.
pub fn probe_all<A: Arch>(
    acpi: &AcpiPlatform,
    services: &'static KernelServices,
    drivers: PciDrivers,
) -> PciInventory {
    let mut inventory = PciInventory::default();
    let mut io_spaces = IoSpaces::default();
    for (access, segment, buses) in config_spaces::<A>(acpi, services) {
        for mut function in enumerate(access, segment, buses) {
            function.io_space = io_spaces.for_function::<A>(acpi, &function);
            let driver = drivers.iter().find(|d| d.claims(&function));
            let (c, s, p) = function.class;
            log::info!(
                target: "pci",
                "{} {:04x}:{:04x} class {c:02x}.{s:02x}.{p:02x} ({}) -> {}",
                function.address,
                function.vendor_id,
                function.device_id,
                class_name(function.class),
                driver.map_or("none", |d| d.name())
            );
            inventory.functions.push(function.clone());
            let Some(driver) = driver else { continue };
            let address = function.address;
            match driver.probe(function, services as &'static dyn DriverServices) {
                Ok(Probed::Block(devices)) => {
                    for device in devices {
                        log::info!(
                            target: "pci",
                            "{address}: disk {}: {} blocks of {} bytes ({} MiB), {} queue(s)",
                            device.name(),
                            device.capacity_blocks(),
                            device.block_size(),
                            (device.capacity_blocks() * u64::from(device.block_size())) >> 20,
                            device.queue_count()
                        );
                        inventory.block_devices.push(device);
                    }
                }
                Ok(Probed::Net(devices)) => {
                    for device in devices {
                        log::info!(
                            target: "pci",
                            "{address}: network {}: mtu {} link {}",
                            device.name(),
                            device.mtu(),
                            if device.link_up() { "up" } else { "down" }
                        );
                        inventory.net_devices.push(device);
                    }
                }
                Ok(Probed::Other) => {}
                Err(e) => log::error!(target: "pci", "{address}: {}: {e}", driver.name()),
            }
        }
    }
    inventory
}

/// Where I/O BARs reach the CPU, per host bridge, each said once.
#[derive(Default)]
struct IoSpaces {
    /// (segment, first bus of the bridge) already logged.
    logged: Vec<(u16, u8)>,
}

impl IoSpaces {
    /// On an architecture with I/O ports (x86) a BAR's port is the CPU's;
    /// elsewhere the host bridge's I/O windows from the DSDT say where the
    /// ports are in memory (CPU address = PCI port + translation), or I/O
    /// BARs cannot be used.
    fn for_function<A: Arch>(&mut self, acpi: &AcpiPlatform, function: &PciFunction) -> IoSpace {
        if A::port_io().is_some() {
            return IoSpace::Ports;
        }
        let (segment, bus) = (function.address.segment, function.address.bus);
        let bridge = acpi
            .pci_hosts
            .as_ref()
            .and_then(|h| h.bridge_for(segment, bus));
        let key = (segment, bridge.map_or(bus, |b| b.buses.0));
        let first = !self.logged.contains(&key);
        if first {
            self.logged.push(key);
        }
        let Some(bridge) = bridge else {
            if first {
                log::warn!(
                    target: "pci",
                    "{segment:04x}:{bus:02x}: no PCI host bridge for it in the DSDT; I/O BARs unusable"
                );
            }
            return IoSpace::Unknown;
        };
        let windows = bridge.io_windows.iter().map(|w| w.pci_window());
        let space = IoSpace::memory(windows);
        if first {
            match (&space, &bridge.crs_error) {
                (Some(space), _) => log::info!(
                    target: "pci",
                    "{segment:04x}:{:02x}-{:02x}: I/O BARs through {}'s window: {space}",
                    bridge.buses.0,
                    bridge.buses.1,
                    bridge.path
                ),
                (None, Some(e)) => log::warn!(
                    target: "pci",
                    "{}: _CRS unreadable ({e}); I/O BARs unusable",
                    bridge.path
                ),
                (None, None) => log::info!(
                    target: "pci",
                    "{}: no I/O window in its _CRS; I/O BARs unusable",
                    bridge.path
                ),
            }
        }
        space.unwrap_or(IoSpace::Unknown)
    }
}

/// Every configuration space the firmware describes: one per MCFG entry,
/// or the legacy ports; with what they reach.
fn config_spaces<A: Arch>(
    acpi: &AcpiPlatform,
    services: &KernelServices,
) -> Vec<(
    &'static dyn ConfigAccess,
    u16,
    core::ops::RangeInclusive<u8>,
)> {
    let mut spaces: Vec<(
        &'static dyn ConfigAccess,
        u16,
        core::ops::RangeInclusive<u8>,
    )> = Vec::new();
    for region in &acpi.pci_ecam {
        let Some((phys, len)) =
            EcamConfigAccess::window(region.base, region.start_bus, region.end_bus)
        else {
            log::warn!(target: "pci", "MCFG entry {region} does not fit the address space; skipped");
            continue;
        };
        match services.map_mmio(phys, len, CachePolicy::Uncached) {
            Ok(regs) => {
                log::info!(target: "pci", "config access: ECAM {region}");
                let access: &'static EcamConfigAccess = Box::leak(Box::new(EcamConfigAccess::new(
                    regs,
                    region.segment,
                    region.start_bus,
                    region.end_bus,
                )));
                spaces.push((access, region.segment, region.start_bus..=region.end_bus));
            }
            Err(e) => log::warn!(target: "pci", "MCFG entry {region}: {e}; skipped"),
        }
    }
    if !spaces.is_empty() || !acpi.pci_ecam.is_empty() {
        return spaces;
    }
    match A::port_io() {
        Some(io) => {
            log::info!(target: "pci", "no MCFG; config access through the legacy ports 0xcf8/0xcfc");
            // SAFETY: on x86 (the architecture that has a port space) ports
            // 0xcf8..0xd00 are the PCI configuration mechanism, and only
            // this access uses them.
            let access: &'static LegacyConfigAccess =
                Box::leak(Box::new(unsafe { LegacyConfigAccess::new(io) }));
            spaces.push((access, 0, 0..=255));
        }
        None => log::warn!(target: "pci", "no MCFG; PCI not enumerated"),
    }
    spaces
}
