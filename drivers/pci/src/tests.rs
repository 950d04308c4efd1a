//! Enumeration, BAR sizing, capabilities and MSI-X against the fake
//! configuration space.

extern crate std;
use crate::fake::{FakeConfigSpace, FakeFunction};
use crate::msix::{Msix, MsixError};
use crate::*;
use std::string::ToString;
use std::vec::Vec;
use stratus_driver_api::MsiMessage;
use stratus_driver_api::dma::host::HostDma;
use stratus_driver_api::services::host::HostServices;

fn a(bus: u8, device: u8, function: u8) -> PciAddress {
    PciAddress::new(0, bus, device, function)
}

/// Root bus: a host bridge, an NVMe with a 64-bit BAR, a two-function
/// device (I/O BAR, prefetchable 32-bit BAR), a bridge to bus 1 holding a
/// virtio device.
fn topology() -> &'static FakeConfigSpace {
    let space = FakeConfigSpace::default();
    space.insert(a(0, 0, 0), FakeFunction::new(0x8086, 0x29c0, (6, 0, 0)));
    let mut nvme = FakeFunction::new(0x1b36, 0x0010, (1, 8, 2));
    nvme.bar(0, 0xfeb0_0004, 0x4000);
    space.insert(a(0, 2, 0), nvme);
    let mut f0 = FakeFunction::new(0x1b36, 0x0002, (7, 0, 2));
    f0.set(0x0c, 0x0080_0000)
        .bar(0, 0xc001, 8)
        .bar(1, 0xfd00_0008, 0x10_0000);
    space.insert(a(0, 3, 0), f0);
    space.insert(a(0, 3, 1), FakeFunction::new(0x1b36, 0x0002, (7, 0, 2)));
    let mut bridge = FakeFunction::new(0x1b36, 0x000c, (6, 4, 0));
    bridge.set(0x0c, 0x0001_0000).set(0x18, 0x0001_0100);
    space.insert(a(0, 4, 0), bridge);
    space.insert(a(1, 0, 0), FakeFunction::new(0x1af4, 0x1042, (1, 0, 0)));
    // Not reachable: no bridge leads to bus 5.
    space.insert(a(5, 0, 0), FakeFunction::new(0xdead, 0xbeef, (0, 0, 0)));
    space.leak()
}

#[test]
fn enumeration_follows_bridges_and_sizes_bars() {
    let space = topology();
    let found = enumerate(space, 0, 0..=255);
    let ids: Vec<(PciAddress, u16, u16)> = found
        .iter()
        .map(|f| (f.address, f.vendor_id, f.device_id))
        .collect();
    assert_eq!(
        ids,
        [
            (a(0, 0, 0), 0x8086, 0x29c0),
            (a(0, 2, 0), 0x1b36, 0x0010),
            (a(0, 3, 0), 0x1b36, 0x0002),
            (a(0, 3, 1), 0x1b36, 0x0002),
            (a(0, 4, 0), 0x1b36, 0x000c),
            (a(1, 0, 0), 0x1af4, 0x1042),
        ]
    );
    assert_eq!(found[1].class, (1, 8, 2));
    assert_eq!(
        found[1].bars[0],
        Some(Bar::Memory {
            address: 0xfeb0_0000,
            size: 0x4000,
            prefetchable: false,
            is_64bit: true
        })
    );
    assert_eq!(found[1].bars[1], None);
    assert_eq!(
        found[2].bars[0],
        Some(Bar::Io {
            port: 0xc000,
            size: 8
        })
    );
    assert_eq!(
        found[2].bars[1],
        Some(Bar::Memory {
            address: 0xfd00_0000,
            size: 0x10_0000,
            prefetchable: true,
            is_64bit: false
        })
    );
    assert!(found[4].is_bridge);
    // Sizing restored every BAR and the command register.
    assert_eq!(space.dword(a(0, 2, 0), 0x10), 0xfeb0_0004);
    assert_eq!(space.dword(a(0, 3, 0), 0x14), 0xfd00_0008);
}

#[test]
fn a_bridge_that_loops_back_is_not_followed() {
    let space = FakeConfigSpace::default();
    let mut bridge = FakeFunction::new(0x1b36, 0x000c, (6, 4, 0));
    // Secondary bus 0: itself.
    bridge.set(0x0c, 0x0001_0000).set(0x18, 0x0000_0000);
    space.insert(a(0, 1, 0), bridge);
    let space = space.leak();
    assert_eq!(enumerate(space, 0, 0..=255).len(), 1);
}

#[test]
fn a_looping_capability_list_ends() {
    let space = FakeConfigSpace::default();
    let mut f = FakeFunction::new(1, 2, (1, 0, 0));
    // Status: capabilities; pointer 0x40; 0x40 -> 0x50 -> 0x40 ...
    f.set(0x04, 0x0010_0000)
        .set(0x34, 0x40)
        .set(0x40, 0x5011)
        .set(0x50, 0x4009);
    space.insert(a(0, 0, 0), f);
    let found = enumerate(space.leak(), 0, 0..=0);
    assert_eq!(found[0].capabilities(regs::CAP_MSIX).count(), 24);
    assert_eq!(found[0].capabilities(regs::CAP_VENDOR).count(), 24);
    assert_eq!(found[0].capabilities(regs::CAP_MSI).count(), 0);
}

static DMA: HostDma = HostDma {
    outstanding: core::sync::atomic::AtomicUsize::new(0),
};

/// Services whose one register block, at `phys`, is `bytes` of leaked host
/// memory: the BAR holding the MSI-X table.
fn services_with_bar(phys: u64, bytes: usize) -> (HostServices, usize) {
    let block = std::boxed::Box::leak(std::vec![0u8; bytes].into_boxed_slice());
    let virt = block.as_ptr() as usize;
    (HostServices::new(&DMA).with_registers(phys, block), virt)
}

#[test]
fn msix_entries_are_masked_programmed_and_enabled() {
    let space = FakeConfigSpace::default();
    let mut f = FakeFunction::new(0x1b36, 0x0010, (1, 8, 2));
    // MSI-X capability at 0x40: 4 entries, table in BAR 0 at 0x2000.
    f.bar(0, 0xfeb0_0000, 0x4000)
        .set(0x04, 0x0010_0000)
        .set(0x34, 0x40)
        .set(0x40, 0x0003_0011)
        .set(0x44, 0x2000);
    space.insert(a(0, 1, 0), f);
    let space = space.leak();
    let function = enumerate(space, 0, 0..=0).remove(0);
    let (services, bar) = services_with_bar(0xfeb0_0000, 0x4000);
    let table = bar + 0x2000;
    let msix = Msix::new(&function, &services).unwrap();
    assert_eq!(msix.entries(), 4);
    // SAFETY: reads of the leaked buffer standing in for the BAR.
    let word = |i: usize| unsafe { core::ptr::read_volatile((table as *const u32).add(i)) };
    assert!((0..4).all(|e| word(e * 4 + 3) == 1), "all masked");
    msix.set_entry(
        2,
        MsiMessage {
            address: 0x1_fee0_1000,
            data: 0x81,
        },
    )
    .unwrap();
    assert_eq!(
        [word(8), word(9), word(10), word(11)],
        [0xfee0_1000, 1, 0x81, 0]
    );
    assert_eq!(
        msix.set_entry(
            4,
            MsiMessage {
                address: 0,
                data: 0
            }
        ),
        Err(MsixError::NoSuchEntry(4))
    );
    msix.enable();
    assert_eq!(space.dword(a(0, 1, 0), 0x40) >> 16, 0x8003);
}

#[test]
fn a_table_outside_its_bar_is_refused() {
    let space = FakeConfigSpace::default();
    let mut f = FakeFunction::new(0x1b36, 0x0010, (1, 8, 2));
    f.bar(0, 0xfeb0_0000, 0x1000)
        .set(0x04, 0x0010_0000)
        .set(0x34, 0x40)
        .set(0x40, 0x07ff_0011)
        .set(0x44, 0x0800);
    space.insert(a(0, 1, 0), f);
    let function = enumerate(space.leak(), 0, 0..=0).remove(0);
    let (services, _) = services_with_bar(0xfeb0_0000, 0x1000);
    assert_eq!(
        Msix::new(&function, &services).err(),
        Some(MsixError::BadTableBar)
    );
}

#[test]
fn fuzz_enumeration() {
    stratus_fuzz::fuzz("pci_enumeration", &[&[0u8; 64], &[0xff; 300]], |input| {
        // The input is the config space of bus 0 device 0 function 0 and,
        // through bridges it may describe, of more functions.
        let space = FakeConfigSpace::default();
        let mut f = FakeFunction::new(0, 0, (0, 0, 0));
        for (i, chunk) in input.chunks(4).take(64).enumerate() {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            f.space[i] = u32::from_le_bytes(word);
        }
        space.insert(a(0, 0, 0), f.clone());
        space.insert(a(1, 0, 0), f.clone());
        space.insert(a(0, 0, 1), f);
        let found = enumerate(space.leak(), 0, 0..=255);
        for function in &found {
            for id in [regs::CAP_MSI, regs::CAP_MSIX, regs::CAP_VENDOR] {
                assert!(function.capabilities(id).count() <= 48);
            }
        }
        assert!(found.len() <= 256 * 32 * 8);
    });
}

/// A function with an MSI capability at 0x50 whose message control is `control`.
fn msi_function(control: u32) -> PciFunction {
    let space = FakeConfigSpace::default();
    let mut f = FakeFunction::new(0x1b36, 0x0002, (7, 0, 2));
    f.set(0x04, 0x0010_0000)
        .set(0x34, 0x50)
        .set(0x50, control << 16 | 0x05);
    space.insert(a(0, 1, 0), f);
    enumerate(space.leak(), 0, 0..=0).remove(0)
}

#[test]
fn msi_64bit_message_is_programmed_and_enabled() {
    use crate::msi::{Msi, MsiError};
    // 64-bit capable, multiple message capable 4 (MMC 2), MME set to 1 by someone.
    let function = msi_function(0x0094);
    let msi = Msi::new(&function).unwrap();
    assert!(msi.is_64bit());
    let message = MsiMessage {
        address: 0x1_fee0_2000,
        data: 0x4041,
    };
    msi.set_message(message).unwrap();
    let dword = |offset| function.config.read_u32(offset);
    assert_eq!(
        [dword(0x54), dword(0x58), dword(0x5c)],
        [0xfee0_2000, 1, 0x4041]
    );
    let wide = MsiMessage {
        address: 0xfee0_0000,
        data: 0x1_0000,
    };
    assert_eq!(msi.set_message(wide), Err(MsiError::DataTooWide(0x1_0000)));
    msi.enable();
    assert_eq!(
        function.config.read_u16(0x52),
        0x0085,
        "enabled, one message"
    );
    msi.disable();
    assert_eq!(function.config.read_u16(0x52), 0x0084);
}

#[test]
fn msi_32bit_refuses_high_addresses() {
    use crate::msi::{Msi, MsiError};
    let function = msi_function(0x0000);
    let msi = Msi::new(&function).unwrap();
    assert!(!msi.is_64bit());
    let high = MsiMessage {
        address: 0x1_0000_0000,
        data: 1,
    };
    assert_eq!(
        msi.set_message(high),
        Err(MsiError::AddressTooWide(0x1_0000_0000))
    );
    msi.set_message(MsiMessage {
        address: 0xfee0_0000,
        data: 0x31,
    })
    .unwrap();
    let dword = |offset| function.config.read_u32(offset);
    assert_eq!([dword(0x54), dword(0x58)], [0xfee0_0000, 0x31]);
    assert_eq!(
        Msi::new(&msi_function_without_capability()).err(),
        Some(MsiError::NoCapability)
    );
}

fn msi_function_without_capability() -> PciFunction {
    let space = FakeConfigSpace::default();
    space.insert(a(0, 1, 0), FakeFunction::new(1, 2, (1, 0, 0)));
    enumerate(space.leak(), 0, 0..=0).remove(0)
}

fn virt_window() -> IoSpace {
    IoSpace::memory([IoWindow {
        pci_start: 0,
        pci_end: 0xffff,
        translation: 0x3eff_0000,
    }])
    .unwrap()
}

/// An I/O BAR (QEMU's pci-serial: 8 ports at 0xc000 on x86, 0x1000 on Arm)
/// through each kind of I/O space.
#[test]
fn io_bars_through_ports_and_memory_windows() {
    let mut function = enumerate(topology(), 0, 0..=1)
        .into_iter()
        .find(|f| f.address == a(0, 3, 0))
        .unwrap();
    assert_eq!(
        function.bars[0],
        Some(Bar::Io {
            port: 0xc000,
            size: 8
        })
    );
    // Unknown until the kernel says.
    assert_eq!(function.io_bar(0), Err(IoBarError::NoIoSpace));
    assert_eq!(function.io_bar(1), Err(IoBarError::NotIo(1)));
    function.io_space = IoSpace::Ports;
    assert_eq!(
        function.io_bar(0),
        Ok(IoRegion::Port {
            base: 0xc000,
            size: 8
        })
    );
    // QEMU virt's window: PCI ports 0-0xffff at 0x3eff0000.
    function.io_space = virt_window();
    assert_eq!(
        function.io_bar(0),
        Ok(IoRegion::Mmio {
            phys: 0x3eff_c000,
            size: 8
        })
    );
    assert_eq!(
        function.io_space.to_string(),
        "ports 0x0-0xffff at 0x3eff0000"
    );
    // A window that does not hold all eight ports.
    function.io_space = IoSpace::memory([IoWindow {
        pci_start: 0,
        pci_end: 0xc003,
        translation: 0x3eff_0000,
    }])
    .unwrap();
    assert_eq!(
        function.io_bar(0),
        Err(IoBarError::OutsideWindows {
            port: 0xc000,
            size: 8
        })
    );
    assert_eq!(IoSpace::memory([]), None);
    // A BAR left at port 0 (or anywhere below 0x100) on a PC was never
    // assigned; in a memory window port 0 is a port like any other.
    assert_eq!(
        IoSpace::Ports.locate(0, 8),
        Err(IoBarError::Unassigned { port: 0 })
    );
    assert!(virt_window().locate(0, 8).is_ok());
    // Ports past 0xffff do not wrap around.
    assert!(IoSpace::Ports.locate(0xfffc, 8).is_err());
    assert!(IoSpace::Ports.locate(u32::MAX, 8).is_err());
    // Enabling I/O decoding sets only the I/O bit of the command register.
    function.enable_io_decoding();
    assert_eq!(
        function.config.read_u16(regs::COMMAND) & regs::COMMAND_IO,
        regs::COMMAND_IO
    );
}
