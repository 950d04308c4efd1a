//! Fuzz targets for the ACPI parsers (ci/fuzz): each table parser over
//! mutations of the tables dumped from QEMU, the SPCR decoder, and whole
//! discovery over a mutated table set (RSDP, XSDT and every table packed in
//! one image, checksums fixed after mutation half of the time so that the
//! parsers behind the checksum are reached).

mod common;

use common::{FLAT_BASE, FakeMemory, flat_image, tables_of};
use kernel_core::acpi::{describe, fadt, gtdt, hpet, iort, madt, mcfg, read_tables, spcr, summary};

fn corpus(signature: &[u8; 4]) -> Vec<Vec<u8>> {
    let tables = tables_of(signature);
    assert!(!tables.is_empty(), "no {signature:?} in the test data");
    tables
}

fn run(name: &str, signature: &[u8; 4], mut target: impl FnMut(&[u8])) {
    let tables = corpus(signature);
    let refs: Vec<&[u8]> = tables.iter().map(|t| t.as_slice()).collect();
    stratus_fuzz::fuzz(name, &refs, |bytes| target(bytes));
}

#[test]
fn fuzz_madt() {
    run("madt", b"APIC", |t| {
        if let Ok(m) = madt::parse(t) {
            // Every CPU came from an entry of at least 8 bytes after the
            // 44-byte header.
            assert!(m.cpus.len() <= t.len().saturating_sub(44) / 8);
        }
    });
}

#[test]
fn fuzz_mcfg() {
    run("mcfg", b"MCFG", |t| {
        if let Ok(regions) = mcfg::parse(t) {
            assert_eq!(regions.len(), (t.len() - 44) / 16);
            assert!(regions.iter().all(|r| r.start_bus <= r.end_bus));
        }
    });
}

#[test]
fn fuzz_hpet() {
    run("hpet", b"HPET", |t| {
        if let Ok(h) = hpet::parse(t) {
            assert_ne!(h.base, 0);
            assert!((1..=32).contains(&h.comparators()));
        }
    });
}

#[test]
fn fuzz_fadt() {
    run("fadt", b"FACP", |t| {
        if let Ok(f) = fadt::parse(t) {
            assert!(t.len() >= 116);
            if t.len() < 131 {
                assert_eq!(f.psci, None);
            }
        }
    });
}

#[test]
fn fuzz_gtdt() {
    run("gtdt", b"GTDT", |t| {
        if let Ok(g) = gtdt::parse(t) {
            let entries = g.gt_blocks.len() + g.watchdogs.len();
            assert!(entries <= t.len() / 3);
        }
    });
}

#[test]
fn fuzz_iort() {
    run("iort", b"IORT", |t| {
        if let Ok(i) = iort::parse(t) {
            for rc in &i.root_complexes {
                for rid in [0, 8, 0xffff] {
                    if let Some((group, _)) = i.msi_target(rc.segment, rid) {
                        assert!(group < i.its_groups.len());
                    }
                }
            }
        }
    });
}

#[test]
fn fuzz_spcr() {
    run("spcr", b"SPCR", |t| {
        let _ = spcr::outcome(t);
        let _ = spcr::interrupt(t);
    });
}

/// Fixes the checksum of every table the (mutated) image's XSDT points at.
fn fix_checksums(image: &mut [u8]) {
    let at = |phys: u64| phys.checked_sub(FLAT_BASE).map(|o| o as usize);
    let Some(xsdt) = image
        .get(24..32)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    else {
        return;
    };
    let Some(x) = at(xsdt) else { return };
    let Some(len) = image.get(x + 4..x + 8) else {
        return;
    };
    let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
    let pointers: Vec<u64> = image
        .get(x + 36..x.saturating_add(len))
        .unwrap_or(&[])
        .chunks_exact(8)
        .map(|p| u64::from_le_bytes(p.try_into().unwrap()))
        .collect();
    for p in pointers {
        let Some(t) = at(p) else { continue };
        let Some(l) = image.get(t + 4..t + 8) else {
            continue;
        };
        let l = u32::from_le_bytes(l.try_into().unwrap()) as usize;
        if let Some(table) = image
            .get_mut(t..t.saturating_add(l))
            .filter(|b| b.len() > 9)
        {
            common::fix_checksum(table);
        }
    }
}

#[test]
fn fuzz_discovery() {
    let images: Vec<Vec<u8>> = common::MACHINES.iter().map(|m| flat_image(m)).collect();
    // The packed images are valid before mutation.
    for image in &images {
        let memory = FakeMemory {
            blocks: vec![(FLAT_BASE, image.clone())],
        };
        let set = read_tables(&memory, FLAT_BASE).unwrap();
        assert!(describe(&set, &memory).skipped.is_empty());
    }
    let refs: Vec<&[u8]> = images.iter().map(|i| i.as_slice()).collect();
    let mut flip = false;
    stratus_fuzz::fuzz("discovery", &refs, |bytes| {
        let mut image = bytes.to_vec();
        flip = !flip;
        if flip {
            fix_checksums(&mut image);
        }
        let memory = FakeMemory {
            blocks: vec![(FLAT_BASE, image)],
        };
        if let Ok(set) = read_tables(&memory, FLAT_BASE) {
            let platform = describe(&set, &memory);
            assert_eq!(platform.tables.len(), set.tables.len());
            let _ = summary::lines(&platform);
            // The IORT and MADT together: requester id -> ITS device id.
            for (segment, rid) in [(0, 0), (0, 8), (1, 0x100), (0, 0xffff)] {
                let _ = platform.its_device_id(segment, rid);
            }
        }
    });
}
