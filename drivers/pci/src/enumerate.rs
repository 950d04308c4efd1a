//! Finding every function: depth-first from the first bus of a segment's
//! range, through PCI-to-PCI bridges, with the bus numbers firmware
//! assigned (nothing is renumbered).

use crate::function::{Bar, PciFunction};
use crate::{ConfigAccess, FunctionConfig, PciAddress, regs};
use alloc::vec::Vec;
use core::ops::RangeInclusive;

/// Header type: a PCI-to-PCI bridge.
const HEADER_BRIDGE: u8 = 1;
/// Header type bit: the device has several functions.
const MULTI_FUNCTION: u8 = 0x80;

/// Every function reachable from bus `buses.start()` of `segment`, in
/// depth-first order. A bridge whose secondary bus is not above its own,
/// outside `buses`, or seen already is named in a warning and not
/// followed, so a corrupt or looping topology ends; at most 256 buses are
/// scanned.
pub fn enumerate(
    access: &'static dyn ConfigAccess,
    segment: u16,
    buses: RangeInclusive<u8>,
) -> Vec<PciFunction> {
    let mut found = Vec::new();
    let mut visited = [false; 256];
    scan_bus(
        access,
        segment,
        *buses.start(),
        &buses,
        &mut visited,
        &mut found,
    );
    found
}

fn scan_bus(
    access: &'static dyn ConfigAccess,
    segment: u16,
    bus: u8,
    buses: &RangeInclusive<u8>,
    visited: &mut [bool; 256],
    found: &mut Vec<PciFunction>,
) {
    if core::mem::replace(&mut visited[usize::from(bus)], true) {
        return;
    }
    for device in 0..32 {
        for function in 0..8 {
            let config =
                FunctionConfig::new(access, PciAddress::new(segment, bus, device, function));
            if config.read_u16(regs::VENDOR_ID) == 0xffff {
                if function == 0 {
                    break;
                }
                continue;
            }
            let header = config.read_u8(regs::HEADER_TYPE);
            let function_found = describe(config, header);
            let secondary = function_found
                .is_bridge
                .then(|| (config.read_u32(regs::BRIDGE_BUSES) >> 8) as u8);
            found.push(function_found);
            if let Some(secondary) = secondary {
                if secondary <= bus
                    || !buses.contains(&secondary)
                    || visited[usize::from(secondary)]
                {
                    log::warn!(
                        target: "pci",
                        "bridge {} names secondary bus {secondary:#04x}: not followed",
                        config.address()
                    );
                } else {
                    scan_bus(access, segment, secondary, buses, visited, found);
                }
            }
            if function == 0 && header & MULTI_FUNCTION == 0 {
                break;
            }
        }
    }
}

/// Reads a present function's identity and sizes its BARs.
fn describe(config: FunctionConfig, header: u8) -> PciFunction {
    let ids = config.read_u32(regs::VENDOR_ID);
    let class = config.read_u32(regs::CLASS_REVISION);
    let is_bridge = header & 0x7f == HEADER_BRIDGE;
    let subsystem = if header & 0x7f == 0 {
        let s = config.read_u32(regs::SUBSYSTEM_VENDOR_ID);
        (s as u16, (s >> 16) as u16)
    } else {
        (0, 0)
    };
    let bar_count = match header & 0x7f {
        0 => 6,
        HEADER_BRIDGE => 2,
        _ => 0,
    };
    PciFunction {
        address: config.address(),
        vendor_id: ids as u16,
        device_id: (ids >> 16) as u16,
        class: ((class >> 24) as u8, (class >> 16) as u8, (class >> 8) as u8),
        revision: class as u8,
        subsystem,
        is_bridge,
        bars: size_bars(config, bar_count),
        config,
        io_space: crate::IoSpace::Unknown,
    }
}

/// Decodes and sizes the first `count` BARs: with decoding off, each BAR
/// is written all ones and read back, then restored (PCI Local Bus 3.0,
/// 6.2.5.1).
pub fn size_bars(config: FunctionConfig, count: usize) -> [Option<Bar>; 6] {
    let mut bars = [None; 6];
    let command = config.read_u16(regs::COMMAND);
    config.write_command(command & !(regs::COMMAND_IO | regs::COMMAND_MEMORY));
    let mut index = 0;
    while index < count.min(6) {
        let offset = regs::BAR0 + 4 * index as u16;
        let original = config.read_u32(offset);
        config.write_u32(offset, u32::MAX);
        let probed = config.read_u32(offset);
        config.write_u32(offset, original);
        let mut step = 1;
        if original & 1 == 1 {
            let mask = probed & !3 & 0xffff;
            if mask != 0 {
                bars[index] = Some(Bar::Io {
                    port: original & !3,
                    size: (!mask & 0xffff) + 1,
                });
            }
        } else {
            let is_64bit = (original >> 1) & 3 == 2 && index + 1 < count.min(6);
            let prefetchable = original & 8 != 0;
            let (low_mask, address_low) = (u64::from(probed & !0xf), u64::from(original & !0xf));
            let (high_mask, address_high) = if is_64bit {
                let high = offset + 4;
                let original_high = config.read_u32(high);
                config.write_u32(high, u32::MAX);
                let probed_high = config.read_u32(high);
                config.write_u32(high, original_high);
                step = 2;
                (u64::from(probed_high), u64::from(original_high))
            } else {
                (0xffff_ffff, 0)
            };
            let mask = high_mask << 32 | low_mask;
            if low_mask != 0 {
                bars[index] = Some(Bar::Memory {
                    address: address_high << 32 | address_low,
                    size: (!mask).wrapping_add(1),
                    prefetchable,
                    is_64bit,
                });
            }
        }
        index += step;
    }
    config.write_command(command);
    bars
}
