//! The reader against QEMU's own device tree (`-M virt,acpi=off`, dumped
//! with `dumpdtb` and cut to its `totalsize`) and against small trees built
//! here, and a fuzz target over both.

use super::*;
extern crate std;
use std::vec::Vec;

/// QEMU 10 `virt,gic-version=3,its=on,acpi=off`, 512 MiB, 2 CPUs.
const QEMU_VIRT: &[u8] = include_bytes!("../../testdata/qemu-virt-acpi-off.dtb");

/// A property: name and value.
type Prop<'a> = (&'a str, &'a [u8]);

/// Builds a flattened tree: `nodes` is a list of (depth, name, properties).
fn build(nodes: &[(usize, &str, &[Prop<'_>])]) -> Vec<u8> {
    let mut structs = Vec::new();
    let mut strings: Vec<u8> = Vec::new();
    let mut depth_open = 0usize;
    let word = |v: &mut Vec<u8>, w: u32| v.extend_from_slice(&w.to_be_bytes());
    for &(depth, name, props) in nodes {
        while depth_open > depth {
            word(&mut structs, FDT_END_NODE);
            depth_open -= 1;
        }
        word(&mut structs, FDT_BEGIN_NODE);
        structs.extend_from_slice(name.as_bytes());
        structs.push(0);
        while structs.len() % 4 != 0 {
            structs.push(0);
        }
        for &(pname, value) in props {
            let offset = strings.len() as u32;
            strings.extend_from_slice(pname.as_bytes());
            strings.push(0);
            word(&mut structs, FDT_PROP);
            word(&mut structs, value.len() as u32);
            word(&mut structs, offset);
            structs.extend_from_slice(value);
            while structs.len() % 4 != 0 {
                structs.push(0);
            }
        }
        depth_open += 1;
    }
    while depth_open > 0 {
        word(&mut structs, FDT_END_NODE);
        depth_open -= 1;
    }
    word(&mut structs, FDT_END);
    let off_struct = 56u32;
    let off_strings = off_struct + structs.len() as u32;
    let total = off_strings + strings.len() as u32;
    let mut blob = Vec::new();
    for w in [
        FDT_MAGIC,
        total,
        off_struct,
        off_strings,
        40, // memory reservation map: not read here
        17,
        16,
        0,
        strings.len() as u32,
        structs.len() as u32,
    ] {
        word(&mut blob, w);
    }
    blob.resize(off_struct as usize, 0);
    blob.extend_from_slice(&structs);
    blob.extend_from_slice(&strings);
    blob
}

/// A Graviton-like tree: a 16550 with byte registers named by an alias,
/// PSCI over SMC, one address cell.
fn alias_tree() -> Vec<u8> {
    build(&[
        (
            0,
            "",
            &[
                ("#address-cells", &[0, 0, 0, 1]),
                ("#size-cells", &[0, 0, 0, 1]),
            ],
        ),
        (1, "aliases", &[("serial0", b"/soc/serial@90a0000\0")]),
        (1, "chosen", &[("stdout-path", b"serial0:115200n8\0")]),
        (1, "psci", &[("method", b"smc\0")]),
        (
            1,
            "soc",
            &[
                ("#address-cells", &[0, 0, 0, 2]),
                ("#size-cells", &[0, 0, 0, 2]),
            ],
        ),
        (
            2,
            "serial@90a0000",
            &[
                ("compatible", b"snps,dw-apb-uart\0ns16550a\0"),
                (
                    "reg",
                    &[0, 0, 0, 0, 0x09, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0],
                ),
            ],
        ),
    ])
}

#[test]
fn qemu_virt_console_is_its_pl011_and_psci_is_hvc() {
    let summary = summarize(QEMU_VIRT).unwrap();
    assert_eq!(
        summary.console,
        Ok(ConsoleDescriptor {
            kind: UartKind::Pl011,
            registers: UartRegisters::Mmio {
                phys: 0x0900_0000,
                width: 4
            },
            baud: None,
        })
    );
    assert_eq!(summary.psci, Some(PsciConduit::Hvc));
}

#[test]
fn alias_options_nested_cells_and_16550() {
    let summary = summarize(&alias_tree()).unwrap();
    assert_eq!(
        summary.console.map(|c| c.registers),
        Ok(UartRegisters::Mmio {
            phys: 0x090a_0000,
            width: 1
        })
    );
    assert_eq!(summary.psci, Some(PsciConduit::Smc));
    let blob = alias_tree();
    let tree = DeviceTree::parse(&blob).unwrap();
    let psci = tree.find_node("/psci").unwrap().unwrap();
    assert_eq!(tree.first_reg(psci), Ok(None));
    assert!(tree.find_node("/soc/serial").unwrap().is_some());
    assert_eq!(tree.find_node("/serial@90a0000").unwrap(), None);
}

#[test]
fn missing_and_unsupported_consoles_are_named() {
    let no_chosen = build(&[(0, "", &[]), (1, "psci", &[("method", b"hvc\0")])]);
    assert_eq!(
        summarize(&no_chosen).unwrap().console,
        Err(DtConsoleError::NoStdoutPath)
    );
    let empty_path = build(&[(0, "", &[]), (1, "chosen", &[("stdout-path", b"")])]);
    assert_eq!(
        summarize(&empty_path).unwrap().console,
        Err(DtConsoleError::NoSuchNode)
    );
    let other_uart = build(&[
        (0, "", &[]),
        (1, "chosen", &[("stdout-path", b"/uart@1000\0")]),
        (
            1,
            "uart@1000",
            &[("compatible", b"sifive,uart0\0"), ("reg", &[0; 12])],
        ),
    ]);
    assert_eq!(
        summarize(&other_uart).unwrap().console,
        Err(DtConsoleError::Unsupported)
    );
}

#[test]
fn malformed_blobs_are_errors() {
    assert_eq!(DeviceTree::parse(&[]).err(), Some(DtError::Truncated));
    assert_eq!(
        DeviceTree::parse(&[0u8; 64]).err(),
        Some(DtError::BadMagic(0))
    );
    let mut cut = QEMU_VIRT.to_vec();
    cut.truncate(4000);
    assert_eq!(DeviceTree::parse(&cut).err(), Some(DtError::Truncated));
    // A property length running past the structure block.
    let mut bad = alias_tree();
    let at = 56 + 8; // root node name, then its first property's length
    bad[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
    assert_eq!(summarize(&bad).err(), Some(DtError::Malformed));
}

#[test]
fn fuzz_device_tree() {
    let alias = alias_tree();
    stratus_fuzz::fuzz("device_tree", &[QEMU_VIRT, &alias], |input| {
        if let Ok(summary) = summarize(input)
            && let Ok(console) = summary.console
        {
            assert!(matches!(
                console.registers,
                UartRegisters::Mmio { phys, width: 1 | 4 } if phys != 0
            ));
        }
        let _ = total_size(input);
    });
}
