//! The short discovery summary printed at boot: one line per area.

use super::description::AcpiPlatform;
use super::fadt::{Fadt, PmTimer, Register};
use super::madt::{CpuHwId, Madt};
use super::spcr::SpcrOutcome;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Display, Write as _};

/// Items shown of a list before "...".
const SHOWN: usize = 4;

/// Tables each interrupt model expects; the summary names the ones missing.
const EXPECTED_APIC: [&[u8; 4]; 4] = [b"FACP", b"APIC", b"MCFG", b"HPET"];
const EXPECTED_GIC: [&[u8; 4]; 6] = [b"FACP", b"APIC", b"MCFG", b"GTDT", b"IORT", b"SPCR"];

/// The summary lines (without the `acpi:` prefix the logger adds).
pub fn lines(p: &AcpiPlatform) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    let _ = write!(
        line,
        "oem \"{}\" rev {}, {} tables:",
        p.oem_id.escape_ascii(),
        p.revision,
        p.tables.len()
    );
    for t in &p.tables {
        let _ = write!(line, " {}", t.signature);
        if t.fault.is_some() {
            line.push_str("(bad)");
        }
    }
    out.push(line);
    if let Some(madt) = &p.madt {
        out.push(cpus(madt));
        out.push(if gic(madt) {
            gic_line(madt)
        } else {
            apic_line(madt)
        });
    }
    if p.pci_ecam.is_empty() {
        out.push(String::from("mcfg none"));
    } else {
        let mut mcfg = format!("mcfg segments={}", p.pci_ecam.len());
        list(&mut mcfg, &p.pci_ecam, |l, r| write!(l, "{r}"));
        out.push(mcfg);
    }
    if let Some(hosts) = &p.pci_hosts {
        let mut line = format!("pci-hosts={}", hosts.bridges.len());
        list(&mut line, &hosts.bridges, |l, b| write!(l, "{b}"));
        if let Some(first) = hosts.stopped.first() {
            let _ = write!(
                line,
                " (AML walk stopped early in {} scope(s), first at {first})",
                hosts.stopped_count
            );
        }
        out.push(line);
    }
    if let Some(h) = &p.hpet {
        out.push(format!(
            "hpet @{:#x} comparators={}",
            h.base,
            h.comparators()
        ));
    }
    if let Some(fadt) = &p.fadt {
        out.push(fadt_line(fadt, p));
    }
    if let Some(g) = &p.gtdt {
        let mut line = String::from("gtdt");
        let timers = [
            ("el1-virt", g.el1_virtual),
            ("el1-phys", g.el1_physical),
            ("el2-phys", g.el2_physical),
            ("el2-virt", g.el2_virtual),
        ];
        for (name, timer) in timers {
            if let Some(t) = timer {
                let _ = write!(line, " {name} {t},");
            }
        }
        let _ = write!(
            line,
            " blocks={} watchdogs={}",
            g.gt_blocks.len(),
            g.watchdogs.len()
        );
        out.push(line);
    }
    if let Some(i) = &p.iort {
        let mut line = format!(
            "iort its-groups={} root-complexes={} smmus={}",
            i.its_groups.len(),
            i.root_complexes.len(),
            i.smmus.len()
        );
        list(&mut line, &i.root_complexes, |l, rc| {
            write!(l, "seg {} mappings={}", rc.segment, rc.id_mappings.len())
        });
        out.push(line);
    }
    out.push(match (&p.spcr, p.spcr_interrupt) {
        (SpcrOutcome::Absent, _) => String::from("spcr none"),
        (SpcrOutcome::Console(c), Some(gsi)) => format!("spcr {c} gsi={gsi}"),
        (SpcrOutcome::Console(c), None) => format!("spcr {c}"),
        (SpcrOutcome::Unusable(e), _) => format!("spcr unusable: {e}"),
        (SpcrOutcome::Invalid(e), _) => {
            format!("spcr present but invalid: {e}")
        }
    });
    let expected: &[&[u8; 4]] = match &p.madt {
        Some(m) if gic(m) => &EXPECTED_GIC,
        _ => &EXPECTED_APIC,
    };
    let mut missing = String::from("missing:");
    for sig in expected.iter().filter(|s| !p.lists(s)) {
        let _ = write!(missing, " {}", sig.escape_ascii());
    }
    if missing.len() > "missing:".len() {
        out.push(missing);
    }
    out
}

/// Logs the summary, one `log` line each.
pub fn log(p: &AcpiPlatform) {
    for (signature, problem) in &p.skipped {
        log::warn!(target: "acpi", "{signature} skipped: {problem}");
    }
    for line in lines(p) {
        log::info!(target: "acpi", "{line}");
    }
}

fn gic(madt: &Madt) -> bool {
    madt.gicd.is_some()
        || madt
            .cpus
            .iter()
            .any(|c| matches!(c.hw_id, CpuHwId::Mpidr(_)))
}

fn cpus(madt: &Madt) -> String {
    let enabled = madt.cpus.iter().filter(|c| c.enabled).count();
    let capable = madt
        .cpus
        .iter()
        .filter(|c| !c.enabled && c.online_capable)
        .count();
    let mut line = format!(
        "cpus={} enabled={enabled} online-capable={capable}",
        madt.cpus.len()
    );
    if gic(madt) {
        let _ = write!(line, " (gicc)");
        list(&mut line, &madt.cpus, |l, c| match c.hw_id {
            CpuHwId::Mpidr(m) => write!(l, "mpidr {m:#x}"),
            CpuHwId::Apic(id) => write!(l, "apic {id}"),
            CpuHwId::X2Apic(id) => write!(l, "x2apic {id}"),
        });
    } else {
        let _ = write!(line, " (x2apic={})", madt.x2apic_cpus());
    }
    line
}

fn apic_line(madt: &Madt) -> String {
    let mut line = format!(
        "lapic @{:#x} ioapics={}",
        madt.local_apic_address,
        madt.io_apics.len()
    );
    list(&mut line, &madt.io_apics, |l, io| {
        write!(l, "id {} @{:#x} gsi {}", io.id, io.address, io.gsi_base)
    });
    let _ = write!(
        line,
        " overrides={} nmis={}{}",
        madt.overrides.len(),
        madt.nmis.len(),
        if madt.pcat_compat { " 8259" } else { "" }
    );
    line
}

fn gic_line(madt: &Madt) -> String {
    let mut line = match &madt.gicd {
        Some(d) => format!("gic v{} gicd @{:#x}", d.version, d.base),
        None => String::from("gic (no gicd)"),
    };
    let _ = write!(line, " gicr ranges={}", madt.gicr_ranges.len());
    list(&mut line, &madt.gicr_ranges, |l, r| {
        write!(l, "{:#x}+{:#x}", r.base, r.length)
    });
    let _ = write!(
        line,
        " per-cpu={} its={}",
        madt.per_cpu_redistributors(),
        madt.its.len()
    );
    list(&mut line, &madt.its, |l, i| {
        write!(l, "{} @{:#x}", i.id, i.base)
    });
    line
}

fn fadt_line(fadt: &Fadt, p: &AcpiPlatform) -> String {
    let mut line = format!("fadt rev {}.{}", fadt.revision.0, fadt.revision.1);
    if fadt.hardware_reduced() {
        line.push_str(" hw-reduced");
    }
    if let Some(c) = fadt.psci {
        let _ = write!(line, " psci={c:?}");
    }
    if fadt.sci_interrupt != 0 {
        let _ = write!(line, " sci={}", fadt.sci_interrupt);
    }
    if let Some(r) = fadt.pm1a_control {
        let _ = write!(line, " pm1a={}", RegisterText(&r));
    }
    if let Some(r) = fadt.pm1b_control {
        let _ = write!(line, " pm1b={}", RegisterText(&r));
    }
    if let Some(PmTimer::Port { port, bits }) = fadt.pm_timer {
        let _ = write!(line, " pm-timer=io:{port:#x}/{bits}");
    }
    if let Some((r, value)) = fadt.reset {
        let _ = write!(line, " reset={}={value:#x}", RegisterText(&r));
    }
    match p.dsdt {
        Some(d) => {
            let _ = write!(line, " dsdt @{:#x} ({} bytes)", d.phys, d.length);
        }
        None => line.push_str(" no dsdt"),
    }
    line
}

struct RegisterText<'a>(&'a Register);

impl Display for RegisterText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.io_port() {
            Some(port) => write!(f, "io:{port:#x}"),
            None => write!(f, "space{}:{:#x}", self.0.space, self.0.address),
        }
    }
}

/// Appends ` [a, b, ...]` with the first [`SHOWN`] items.
fn list<T>(line: &mut String, items: &[T], show: impl Fn(&mut String, &T) -> fmt::Result) {
    if items.is_empty() {
        return;
    }
    line.push_str(" [");
    for (i, item) in items.iter().take(SHOWN).enumerate() {
        if i > 0 {
            line.push_str(", ");
        }
        let _ = show(line, item);
    }
    if items.len() > SHOWN {
        line.push_str(", ...");
    }
    line.push(']');
}
