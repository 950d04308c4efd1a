//! The ready line: exactly one line, printed when boot has finished, that
//! tests, benchmarks and people rely on:
//!
//! ```text
//! stratus: ready arch=x86_64 loader=Stratus-0.1.0 cpus=2 memory_mib=511 boot_ms=42 console=16550@port:0x3f8 irq=x2apic timer=tsc-deadline
//! ```
//!
//! Values never contain spaces; keys are documented in the README.

use core::fmt;

/// The facts of the ready line.
#[derive(Clone, Copy)]
pub struct ReadyLine<'a> {
    /// Architecture name.
    pub arch: &'a str,
    /// Loader name as reported.
    pub loader_name: &'a str,
    /// Loader version as reported.
    pub loader_version: &'a str,
    /// CPUs online.
    pub cpus: usize,
    /// RAM in MiB (usable, reclaimable and kernel memory).
    pub memory_mib: u64,
    /// Milliseconds from kernel entry to this line, when the clock is known.
    pub boot_ms: Option<u64>,
    /// The console in use, as `kind@space:address`.
    pub console: &'a dyn fmt::Display,
    /// The interrupt controller (`x2apic`, `xapic`, `gicv3`), if one runs.
    pub irq: Option<&'a str>,
    /// The per-CPU timer (`tsc-deadline`, `lapic-oneshot`, `cntv`), if one runs.
    pub timer: Option<&'a str>,
    /// Keys a kernel adds at the end (`ip=10.0.2.15`): values are written
    /// with white space turned into `-`.
    pub extra: &'a [(&'a str, &'a str)],
}

/// Writes `s` with every whitespace character replaced by `-`.
fn write_token(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for c in s.chars() {
        f.write_fmt(format_args!("{}", if c.is_whitespace() { '-' } else { c }))?;
    }
    Ok(())
}

impl fmt::Display for ReadyLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stratus: ready arch={} loader=", self.arch)?;
        write_token(f, self.loader_name)?;
        if !self.loader_version.is_empty() {
            f.write_str("-")?;
            write_token(f, self.loader_version)?;
        }
        write!(
            f,
            " cpus={} memory_mib={} boot_ms=",
            self.cpus, self.memory_mib
        )?;
        match self.boot_ms {
            Some(ms) => write!(f, "{ms}")?,
            None => f.write_str("unknown")?,
        }
        write!(
            f,
            " console={} irq={} timer={}",
            self.console,
            self.irq.unwrap_or("none"),
            self.timer.unwrap_or("none")
        )?;
        for (key, value) in self.extra {
            write!(f, " ")?;
            write_token(f, key)?;
            f.write_str("=")?;
            write_token(f, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn ready_line_has_the_documented_keys() {
        let line = ReadyLine {
            arch: "aarch64",
            loader_name: "Limine",
            loader_version: "8.7.0 (custom)",
            cpus: 4,
            memory_mib: 511,
            boot_ms: Some(37),
            console: &"pl011@mmio:0x9000000/4",
            irq: Some("gicv3"),
            timer: Some("cntv"),
            extra: &[],
        };
        assert_eq!(
            line.to_string(),
            "stratus: ready arch=aarch64 loader=Limine-8.7.0-(custom) cpus=4 memory_mib=511 boot_ms=37 console=pl011@mmio:0x9000000/4 irq=gicv3 timer=cntv"
        );
    }

    #[test]
    fn unknown_clock_and_version() {
        let line = ReadyLine {
            arch: "x86_64",
            loader_name: "Stratus",
            loader_version: "",
            cpus: 1,
            memory_mib: 1,
            boot_ms: None,
            console: &"none",
            irq: None,
            timer: None,
            extra: &[("ip", "10.0.2.15"), ("note", "a b")],
        };
        assert_eq!(
            line.to_string(),
            "stratus: ready arch=x86_64 loader=Stratus cpus=1 memory_mib=1 boot_ms=unknown console=none irq=none timer=none ip=10.0.2.15 note=a-b"
        );
    }
}
