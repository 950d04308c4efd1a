//! ACPI discovery over tables dumped from QEMU (x86 q35 and i440FX PC,
//! aarch64 virt with GICv3 and ITS; 1 and 4 CPUs), over deliberately
//! broken copies of them, and over variants shaped like real clouds'.

mod common;

use common::{Fixture, MACHINES, fix_checksum, fixture, madt_entries, rebuild_madt, seal};
use kernel_core::acpi::description::TableProblem;
use kernel_core::acpi::interrupt_tables::{GICV3_REDISTRIBUTOR_LEN, InterruptTables};
use kernel_core::acpi::madt::{CpuHwId, MadtError, Nmi};
use kernel_core::acpi::mcfg::EcamRegion;
use kernel_core::acpi::tables::TableFault;
use kernel_core::acpi::{PmTimer, SpcrOutcome, summary};
use stratus_arch::PsciConduit;
use stratus_arch::interrupts::{
    InterruptHardware, InterruptLine, IoApicDescription, Polarity, RedistributorSource, Trigger,
};

fn sig(s: &[u8; 4]) -> kernel_core::acpi::tables::Signature {
    kernel_core::acpi::tables::Signature(*s)
}

#[test]
fn q35_with_four_cpus() {
    let p = fixture("x86_64-q35-4cpu").describe();
    assert_eq!(&p.oem_id, b"BOCHS ");
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    let ids: Vec<_> = p.cpus().iter().map(|c| c.hw_id).collect();
    assert_eq!(ids, (0..4).map(CpuHwId::Apic).collect::<Vec<_>>());
    assert!(p.cpus().iter().all(|c| c.enabled));
    let madt = p.madt.as_ref().unwrap();
    assert_eq!(madt.local_apic_address, 0xfee0_0000);
    assert_eq!(madt.io_apics.len(), 1);
    assert_eq!(
        (madt.io_apics[0].address, madt.io_apics[0].gsi_base),
        (0xfec0_0000, 0)
    );
    assert_eq!(madt.overrides.len(), 5);
    // The timer (ISA IRQ 0) arrives on GSI 2.
    assert!(madt.overrides.iter().any(|o| o.source == 0 && o.gsi == 2));
    assert!(matches!(
        madt.nmis[..],
        [Nmi::LocalPin {
            uid: None,
            lint: 1,
            ..
        }]
    ));
    assert!(madt.gicd.is_none() && madt.its.is_empty());
    assert_eq!(
        p.pci_ecam,
        [EcamRegion {
            base: 0xb000_0000,
            segment: 0,
            start_bus: 0,
            end_bus: 0xff
        }]
    );
    assert_eq!(p.hpet.unwrap().base, 0xfed0_0000);
    assert_eq!(
        p.pm_timer(),
        Some(PmTimer::Port {
            port: 0x608,
            bits: 24
        })
    );
    assert_eq!(p.reset_port(), Some((0xcf9, 0xf)));
    let fadt = p.fadt.unwrap();
    assert_eq!(fadt.pm1a_control.and_then(|r| r.io_port()), Some(0x604));
    assert_eq!(fadt.psci, None);
    let dsdt = p.dsdt.unwrap();
    assert_eq!(Some(dsdt.phys), fadt.dsdt);
    assert_eq!(dsdt.length, 8729);
    assert_eq!(p.spcr, SpcrOutcome::Absent);
    assert!(p.gtdt.is_none() && p.iort.is_none());
}

#[test]
fn i440fx_pc_has_no_mcfg_and_a_revision_1_fadt() {
    let p = fixture("x86_64-pc-1cpu").describe();
    assert_eq!(p.cpus().len(), 1);
    assert!(p.pci_ecam.is_empty());
    assert!(!p.lists(b"MCFG"));
    let fadt = p.fadt.unwrap();
    assert_eq!(fadt.revision.0, 1);
    assert_eq!(fadt.pm1a_control.and_then(|r| r.io_port()), Some(0xb004));
    assert_eq!(p.reset_port(), None);
    assert!(p.dsdt.is_some());
    assert!(summary::lines(&p).contains(&"missing: MCFG".to_owned()));
}

#[test]
fn aarch64_virt_with_gicv3_its_and_four_cpus() {
    let p = fixture("aarch64-virt-4cpu").describe();
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    let ids: Vec<_> = p.cpus().iter().map(|c| c.hw_id).collect();
    assert_eq!(ids, (0..4).map(CpuHwId::Mpidr).collect::<Vec<_>>());
    let madt = p.madt.as_ref().unwrap();
    let gicd = madt.gicd.unwrap();
    assert_eq!((gicd.base, gicd.version), (0x0800_0000, 3));
    assert_eq!(madt.gicr_ranges.len(), 1);
    assert_eq!(madt.gicr_ranges[0].base, 0x080a_0000);
    assert_eq!(madt.per_cpu_redistributors(), 0);
    assert_eq!(madt.its.len(), 1);
    assert_eq!(madt.its[0].base, 0x0808_0000);
    assert_eq!(p.pci_ecam.len(), 1);
    assert_eq!(p.pci_ecam[0].base, 0x40_1000_0000);
    let gtdt = p.gtdt.as_ref().unwrap();
    assert_eq!(gtdt.el1_virtual.map(|t| t.gsiv), Some(27));
    assert_eq!(gtdt.el1_physical.map(|t| t.gsiv), Some(30));
    assert_eq!(gtdt.el2_physical.map(|t| t.gsiv), Some(26));
    let iort = p.iort.as_ref().unwrap();
    assert_eq!(iort.its_groups.len(), 1);
    assert_eq!(iort.its_groups[0].its_ids, [madt.its[0].id]);
    assert_eq!(iort.root_complexes.len(), 1);
    assert_eq!(iort.root_complexes[0].segment, 0);
    // QEMU maps requester ids one to one onto ITS device ids.
    assert_eq!(iort.msi_target(0, 0x0008), Some((0, 0x0008)));
    assert_eq!(iort.msi_target(1, 0x0008), None);
    assert_eq!(p.psci(), Some(PsciConduit::Hvc));
    assert!(p.fadt.unwrap().hardware_reduced());
    let SpcrOutcome::Console(console) = p.spcr else {
        panic!("{:?}", p.spcr)
    };
    assert_eq!(console.to_string(), "pl011@mmio:0x9000000/4");
    assert_eq!(p.spcr_interrupt, Some(33));
    assert!(p.hpet.is_none());
}

#[test]
fn summary_lines_of_both_architectures() {
    let x86 = summary::lines(&fixture("x86_64-q35-4cpu").describe());
    assert_eq!(
        x86[0],
        "oem \"BOCHS \" rev 2, 6 tables: FACP APIC HPET MCFG WAET BGRT"
    );
    assert_eq!(x86[1], "cpus=4 enabled=4 online-capable=0 (x2apic=0)");
    assert_eq!(
        x86[2],
        "lapic @0xfee00000 ioapics=1 [id 0 @0xfec00000 gsi 0] overrides=5 nmis=1 8259"
    );
    assert_eq!(x86[3], "mcfg segments=1 [0000:00-ff @0xb0000000]");
    let arm = summary::lines(&fixture("aarch64-virt-4cpu").describe());
    assert_eq!(
        arm[2],
        "gic v3 gicd @0x8000000 gicr ranges=1 [0x80a0000+0xf60000] per-cpu=0 its=1 [0 @0x8080000]"
    );
    assert!(
        arm.iter()
            .any(|l| l.starts_with("gtdt el1-virt gsi=27 level high"))
    );
    assert!(
        arm.iter()
            .any(|l| l == "iort its-groups=1 root-complexes=1 smmus=0 [seg 0 mappings=1]")
    );
    assert!(
        arm.iter()
            .any(|l| l == "spcr pl011@mmio:0x9000000/4 gsi=33")
    );
    assert!(!arm.iter().any(|l| l.starts_with("missing")));
}

#[test]
fn one_cpu_machines() {
    for machine in ["x86_64-q35-1cpu", "aarch64-virt-1cpu"] {
        let p = fixture(machine).describe();
        assert_eq!(p.cpus().len(), 1, "{machine}");
        assert!(p.skipped.is_empty(), "{machine}: {:?}", p.skipped);
    }
}

/// Tables decoded into the description other than SPCR (which has an
/// outcome of its own).
const DECODED: [&[u8; 4]; 6] = [b"APIC", b"MCFG", b"HPET", b"FACP", b"GTDT", b"IORT"];

/// Every table of every machine, broken three ways, is skipped by name and
/// the rest of the description stays.
#[test]
fn broken_copies_are_named_and_skipped() {
    for machine in MACHINES {
        let good = fixture(machine);
        let signatures: Vec<[u8; 4]> = good
            .memory
            .blocks
            .iter()
            .map(|b| b.1[..4].try_into().unwrap())
            .filter(|s| !matches!(s, b"RSD " | b"XSDT" | b"DSDT"))
            .collect();
        let whole = good.describe();
        for s in signatures {
            let mut bad_sum = good.clone();
            bad_sum.table_mut(&s)[20] ^= 0x55;
            let p = bad_sum.describe();
            assert!(
                p.tables
                    .iter()
                    .any(|t| t.signature == sig(&s) && t.fault == Some(TableFault::BadChecksum)),
                "{machine} {s:?}"
            );
            let decoded = DECODED.contains(&&s);
            if decoded {
                let problem = TableProblem::Fault(TableFault::BadChecksum);
                assert_eq!(p.skipped, [(sig(&s), problem)], "{machine} {s:?}");
            } else {
                assert!(p.skipped.is_empty(), "{machine} {s:?}");
            }
            assert_eq!(p.tables.len(), whole.tables.len());
            if s != *b"APIC" {
                assert_eq!(p.madt, whole.madt, "{machine} {s:?}");
            }

            // The header claims more bytes than memory holds.
            let mut truncated = good.clone();
            let t = truncated.table_mut(&s);
            let len = t.len() as u32 + 64;
            t[4..8].copy_from_slice(&len.to_le_bytes());
            let p = truncated.describe();
            assert!(
                p.tables
                    .iter()
                    .any(|t| t.signature == sig(&s) && t.fault == Some(TableFault::Truncated(len))),
                "{machine} {s:?}"
            );

            // A shorter length, with a good checksum: every parser copes.
            let mut short = good.clone();
            let t = short.table_mut(&s);
            t.truncate(40.min(t.len()));
            seal(t);
            let _ = summary::lines(&short.describe());
        }
    }
}

#[test]
fn spcr_with_bad_checksum_is_present_and_invalid() {
    let mut f = fixture("aarch64-virt-4cpu");
    f.table_mut(b"SPCR")[50] ^= 1;
    let p = f.describe();
    assert_eq!(p.spcr, SpcrOutcome::Invalid(TableFault::BadChecksum));
    assert!(
        summary::lines(&p).contains(&"spcr present but invalid: bad checksum".to_owned()),
        "{:?}",
        summary::lines(&p)
    );
}

#[test]
fn spcr_with_non_ascii_oem_id_is_still_used() {
    // The `acpi` crate refused OEM ids that are not UTF-8; ACPI asks only
    // for a checksum, and Stratus takes the table.
    let mut f = fixture("aarch64-virt-4cpu");
    let t = f.table_mut(b"SPCR");
    t[10] = 0xff;
    fix_checksum(t);
    assert!(matches!(f.describe().spcr, SpcrOutcome::Console(_)));
}

#[test]
fn madt_entry_of_length_zero_skips_the_table() {
    let mut f = fixture("x86_64-q35-4cpu");
    let mut entries: Vec<Vec<u8>> = madt_entries(f.table_mut(b"APIC"))
        .into_iter()
        .map(|e| e.1)
        .collect();
    entries[1][1] = 0;
    let madt = rebuild_madt(f.table_mut(b"APIC"), &entries);
    f.replace(b"APIC", madt);
    let p = f.describe();
    assert!(p.madt.is_none());
    assert!(matches!(
        p.skipped[..],
        [(s, TableProblem::Madt(MadtError::BadEntry(_)))] if s == sig(b"APIC")
    ));
    // Everything else is still there.
    assert_eq!(p.pci_ecam.len(), 1);
    assert!(p.hpet.is_some());
}

#[test]
fn unreadable_table_pointer_is_named() {
    let mut f = fixture("x86_64-q35-4cpu");
    let xsdt = f.table_mut(b"XSDT");
    xsdt[36..44].copy_from_slice(&0xdead_0000u64.to_le_bytes());
    fix_checksum(xsdt);
    let p = f.describe();
    assert_eq!(p.tables[0].fault, Some(TableFault::Unreadable));
    assert!(p.fadt.is_none(), "the FADT was the first pointer");
    assert_eq!(p.cpus().len(), 4);
}

/// AWS Graviton bare metal: no GICR entry (each GICC carries its CPU's
/// redistributor), ECAM on PCI segment 1, PSCI over SMC.
#[test]
fn graviton_metal_shape() {
    let mut f = fixture("aarch64-virt-4cpu");
    let mut cpu = 0u64;
    let entries: Vec<Vec<u8>> = madt_entries(f.table_mut(b"APIC"))
        .into_iter()
        .filter(|(kind, _)| *kind != 0xe)
        .map(|(kind, mut e)| {
            if kind == 0xb {
                e[60..68].copy_from_slice(&(0x1020_0000 + cpu * 0x2_0000).to_le_bytes());
                cpu += 1;
            }
            e
        })
        .collect();
    let madt = rebuild_madt(f.table_mut(b"APIC"), &entries);
    f.replace(b"APIC", madt);
    let mut mcfg = f.table_mut(b"MCFG").clone();
    mcfg[44 + 8..44 + 10].copy_from_slice(&1u16.to_le_bytes());
    f.replace(b"MCFG", mcfg);
    let mut fadt = f.table_mut(b"FACP").clone();
    fadt[129] = 0b01; // PSCI compliant, not over HVC
    f.replace(b"FACP", fadt);

    let p = f.describe();
    let madt = p.madt.as_ref().unwrap();
    assert!(madt.gicr_ranges.is_empty());
    let bases: Vec<_> = p.cpus().iter().map(|c| c.gicr_base).collect();
    assert_eq!(
        bases,
        [0x1020_0000, 0x1022_0000, 0x1024_0000, 0x1026_0000].map(Some)
    );
    assert_eq!(p.pci_ecam[0].segment, 1);
    assert_eq!(p.psci(), Some(PsciConduit::Smc));
    // The interrupt controller takes its redistributors from the GICC entries.
    let interrupts = InterruptTables::from_platform(&p);
    match interrupts.hardware() {
        Some(InterruptHardware::Gic {
            redistributors,
            source: RedistributorSource::PerCpu,
            ..
        }) => assert_eq!(
            redistributors,
            [0x1020_0000, 0x1022_0000, 0x1024_0000, 0x1026_0000]
                .map(|b| (b, GICV3_REDISTRIBUTOR_LEN))
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        summary::lines(&p)
            .iter()
            .any(|l| l.contains("gicr ranges=0 per-cpu=4"))
    );
}

/// Azure arm64: no MCFG at all, redistributors per CPU, and the timer
/// interrupt only in the GTDT.
#[test]
fn azure_arm64_shape() {
    let mut f = fixture("aarch64-virt-4cpu");
    f.unlist(b"MCFG");
    let entries: Vec<Vec<u8>> = madt_entries(f.table_mut(b"APIC"))
        .into_iter()
        .filter(|(kind, _)| *kind != 0xe && *kind != 0xf)
        .map(|(kind, mut e)| {
            if kind == 0xb {
                e[60..68].copy_from_slice(&0x1000_0000u64.to_le_bytes());
            }
            e
        })
        .collect();
    let madt = rebuild_madt(f.table_mut(b"APIC"), &entries);
    f.replace(b"APIC", madt);
    let p = f.describe();
    assert!(p.pci_ecam.is_empty());
    assert!(!p.lists(b"MCFG"));
    assert_eq!(p.madt.as_ref().unwrap().per_cpu_redistributors(), 4);
    assert_eq!(
        p.gtdt.as_ref().unwrap().el1_virtual.map(|t| t.gsiv),
        Some(27)
    );
    assert!(summary::lines(&p).contains(&"missing: MCFG".to_owned()));
}

/// Large x86 VMs name CPUs by x2APIC id, above 255.
#[test]
fn x2apic_ids_above_255() {
    let mut f = fixture("x86_64-q35-4cpu");
    let ids = [0u32, 1, 256, 300];
    let mut entries: Vec<Vec<u8>> = madt_entries(f.table_mut(b"APIC"))
        .into_iter()
        .filter(|(kind, _)| *kind != 0)
        .map(|e| e.1)
        .collect();
    for (uid, id) in ids.iter().enumerate() {
        let mut e = vec![9, 16, 0, 0];
        e.extend_from_slice(&id.to_le_bytes());
        e.extend_from_slice(&1u32.to_le_bytes());
        e.extend_from_slice(&(uid as u32).to_le_bytes());
        entries.push(e);
    }
    // A local x2APIC NMI for every CPU, on LINT1.
    entries.push(vec![0xa, 12, 5, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0]);
    let madt = rebuild_madt(f.table_mut(b"APIC"), &entries);
    f.replace(b"APIC", madt);
    let p = f.describe();
    let hw: Vec<_> = p.cpus().iter().map(|c| c.hw_id).collect();
    assert_eq!(hw, ids.map(CpuHwId::X2Apic));
    assert!(p.madt.as_ref().unwrap().nmis.contains(&Nmi::LocalPin {
        uid: None,
        lint: 1,
        flags: kernel_core::acpi::madt::IntiFlags(5),
    }));
    assert!(
        summary::lines(&p).contains(&"cpus=4 enabled=4 online-capable=0 (x2apic=4)".to_owned())
    );
}

#[test]
fn rsdp_with_bad_checksum_is_refused() {
    let mut f: Fixture = fixture("x86_64-q35-4cpu");
    let rsdp = f.rsdp;
    let block = f.memory.blocks.iter_mut().find(|b| b.0 == rsdp).unwrap();
    block.1[20] ^= 1;
    assert!(kernel_core::acpi::read_tables(&f.memory, f.rsdp).is_err());
}

/// x86 soft-off from QEMU's own DSDTs: `\_S5` is package {0, 0, ...}, so
/// PM1a control gets SLP_EN alone; q35's ICH9 has PM1a control at 0x604, the
/// i440FX's PIIX4 at 0xb004. On arm, PSCI stops the machine: S5 is not
/// looked for.
#[test]
fn s5_power_off_from_qemu_dsdts() {
    for (machine, port) in [
        ("x86_64-q35-4cpu", 0x604),
        ("x86_64-q35-1cpu", 0x604),
        ("x86_64-pc-1cpu", 0xb004),
    ] {
        let p = fixture(machine).describe();
        let off = p
            .soft_off()
            .unwrap_or_else(|| panic!("{machine}: {:?}", p.soft_off));
        assert_eq!(
            (off.pm1a_control, off.pm1a_value),
            (port, 0x2000),
            "{machine}"
        );
        assert_eq!(off.pm1b_control, None, "{machine}");
    }
    assert_eq!(fixture("aarch64-virt-4cpu").describe().soft_off, None);
}

/// What the interrupt controllers are built from, out of QEMU's real tables.
#[test]
fn interrupt_hardware_from_qemu_tables() {
    let q35 = InterruptTables::from_platform(&fixture("x86_64-q35-4cpu").describe());
    match q35.hardware() {
        Some(InterruptHardware::Apic {
            local_apic_phys: 0xfee0_0000,
            io_apics,
            overrides,
        }) => {
            assert_eq!(
                io_apics,
                [IoApicDescription {
                    id: 0,
                    phys: 0xfec0_0000,
                    gsi_base: 0
                }]
            );
            let timer = overrides.iter().find(|o| o.isa_irq == 0).unwrap();
            assert_eq!(
                (timer.gsi, timer.trigger, timer.polarity),
                (2, Trigger::Edge, Polarity::High)
            );
            // QEMU routes the SCI (IRQ 9) level-triggered, active high.
            let sci = overrides.iter().find(|o| o.isa_irq == 9).unwrap();
            assert_eq!(
                (sci.trigger, sci.polarity),
                (Trigger::Level, Polarity::High)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q35.virtual_timer, None);

    let virt = InterruptTables::from_platform(&fixture("aarch64-virt-4cpu").describe());
    assert_eq!(virt.virtual_timer, Some(InterruptLine::PerCpu(27)));
    match virt.hardware() {
        Some(InterruptHardware::Gic {
            version: 3,
            distributor_phys: 0x0800_0000,
            redistributors,
            source: RedistributorSource::Ranges,
            its,
        }) => {
            assert_eq!(redistributors, [(0x080a_0000, 0xf6_0000)]);
            assert_eq!(its, [0x0808_0000]);
        }
        other => panic!("{other:?}"),
    }
    // No MADT: no controller.
    assert!(
        InterruptTables::from_tables(None, None)
            .hardware()
            .is_none()
    );
}

/// Offsets in an IORT of the first node of type `kind`.
fn iort_node(iort: &[u8], kind: u8) -> usize {
    let u32_at = |o: usize| u32::from_le_bytes(iort[o..o + 4].try_into().unwrap());
    let mut offset = u32_at(40) as usize;
    for _ in 0..u32_at(36) {
        if iort[offset] == kind {
            return offset;
        }
        offset += usize::from(u16::from_le_bytes([iort[offset + 1], iort[offset + 2]]));
    }
    panic!("no IORT node of type {kind}");
}

/// The IORT of QEMU virt with one of its root complex's id mapping fields
/// (0 input base, 4 count, 8 output base, 12 output reference, 16 flags)
/// set to `value`.
fn virt_with_rc_mapping_field(field: usize, value: u32) -> Fixture {
    let mut f = fixture("aarch64-virt-4cpu");
    let iort = f.table_mut(b"IORT");
    let rc = iort_node(iort, 2);
    let mapping = rc + u32::from_le_bytes(iort[rc + 12..rc + 16].try_into().unwrap()) as usize;
    iort[mapping + field..mapping + field + 4].copy_from_slice(&value.to_le_bytes());
    fix_checksum(iort);
    f
}

/// PCI requester id -> GIC ITS device id, through QEMU's IORT and broken
/// copies of it.
#[test]
fn its_device_ids_from_the_iort() {
    let p = fixture("aarch64-virt-4cpu").describe();
    // QEMU: segment 0, requester ids one to one, to the ITS group of ITS 0.
    assert_eq!(p.its_device_id(0, 0x0008), Some(0x0008));
    assert_eq!(p.its_device_id(0, 0xffff), Some(0xffff));
    assert_eq!(p.its_device_id(1, 0x0008), None);

    // A range that stops at 0xff: bus 1 maps to nothing.
    let p = virt_with_rc_mapping_field(4, 0xff).describe();
    assert_eq!(p.its_device_id(0, 0x00ff), Some(0x00ff));
    assert_eq!(p.its_device_id(0, 0x0100), None);
    // An output base: device id = base + offset from the input base.
    let p = virt_with_rc_mapping_field(8, 0x1_0000).describe();
    assert_eq!(p.its_device_id(0, 0x0108), Some(0x1_0108));
    // Outputs that would run past 32 bits are refused, not wrapped.
    let p = virt_with_rc_mapping_field(8, 0xffff_fff0).describe();
    assert_eq!(p.its_device_id(0, 0x000f), Some(0xffff_ffff));
    assert_eq!(p.its_device_id(0, 0x0010), None);
    // A single mapping names the root complex's own MSIs, not its devices'.
    let p = virt_with_rc_mapping_field(16, 1).describe();
    assert_eq!(p.its_device_id(0, 0x0008), None);
    // An output reference to no ITS group (here: the table header).
    let p = virt_with_rc_mapping_field(12, 0).describe();
    assert_eq!(p.its_device_id(0, 0x0008), None);

    // An ITS group naming an ITS the MADT does not list.
    let mut f = fixture("aarch64-virt-4cpu");
    let iort = f.table_mut(b"IORT");
    let group = iort_node(iort, 0);
    iort[group + 20..group + 24].copy_from_slice(&99u32.to_le_bytes());
    fix_checksum(iort);
    assert_eq!(f.describe().its_device_id(0, 0x0008), None);

    // No usable IORT (bad checksum): device id = requester id.
    let mut f = fixture("aarch64-virt-4cpu");
    f.table_mut(b"IORT")[9] ^= 0x55;
    let p = f.describe();
    assert!(p.iort.is_none());
    assert_eq!(p.its_device_id(3, 0x0108), Some(0x0108));
}
