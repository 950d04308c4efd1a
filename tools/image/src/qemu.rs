//! The QEMU machines Stratus boots on, defined in this one place: `stratus-image run`
//! uses them directly and `ci/qemu.py` (tests, benchmarks, `make run`) asks for them
//! with `stratus-image machine`, so a kernel started as a cargo runner and a kernel
//! under test see the same machine.

use std::path::Path;

use crate::image::Arch;

/// The firmware a machine boots: code (read-only) and the variable store template that
/// each run gets a writable copy of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Firmware {
    /// Read-only firmware code (pflash 0).
    pub code: &'static str,
    /// Template of the variable store (pflash 1, copied per run).
    pub vars: &'static str,
}

/// How a disk image file is stored, as QEMU's `format=` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFormat {
    /// Raw GPT image.
    Raw,
    /// VHD (QEMU calls it `vpc`).
    Vpc,
    /// VMDK; stream-optimized VMDKs are read-only, so boot them with a snapshot.
    Vmdk,
}

impl DiskFormat {
    /// Parses QEMU's name (`raw`, `vpc`, `vmdk`).
    pub fn from_name(name: &str) -> Option<DiskFormat> {
        match name {
            "raw" => Some(DiskFormat::Raw),
            "vpc" => Some(DiskFormat::Vpc),
            "vmdk" => Some(DiskFormat::Vmdk),
            _ => None,
        }
    }

    /// QEMU's name.
    pub fn name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Vpc => "vpc",
            DiskFormat::Vmdk => "vmdk",
        }
    }
}

/// How the boot disk is attached: virtio-blk (QEMU's usual disk, GCP's older machines) or
/// NVMe (AWS Nitro and Graviton, GCP's third generation and T2A attach every disk so).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BootDisk {
    /// `virtio-blk-pci`.
    #[default]
    Virtio,
    /// An NVMe controller (`nvme`, QEMU's 1b36:0010) whose namespace 1 is the image.
    Nvme,
}

impl BootDisk {
    /// Parses the option's value (`virtio`, `nvme`).
    pub fn from_name(name: &str) -> Option<BootDisk> {
        match name {
            "virtio" => Some(BootDisk::Virtio),
            "nvme" => Some(BootDisk::Nvme),
            _ => None,
        }
    }

    /// The QEMU `-device` value that attaches the drive with id `boot`.
    fn device(self) -> &'static str {
        match self {
            BootDisk::Virtio => "virtio-blk-pci,drive=boot",
            BootDisk::Nvme => "nvme,serial=stratus-boot,drive=boot",
        }
    }
}

/// The exit statuses QEMU ends with when the kernel reports success or failure through
/// the exit device (x86 `isa-debug-exit`: value v gives (v << 1) | 1; aarch64
/// semihosting SYS_EXIT), when the guest resets (`-no-reboot` makes that an exit 0) and
/// when it powers off through the firmware (ACPI S5, PSCI SYSTEM_OFF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// The kernel reported success.
    pub success: i32,
    /// The kernel reported failure.
    pub failure: i32,
    /// The guest reset the machine.
    pub reset: i32,
    /// The guest powered the machine off.
    pub power_off: i32,
}

/// UEFI firmware for `arch` (Debian's ovmf and qemu-efi-aarch64 packages).
pub fn firmware(arch: Arch) -> Firmware {
    match arch {
        Arch::X86_64 => Firmware {
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
            vars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
        },
        Arch::Aarch64 => Firmware {
            code: "/usr/share/AAVMF/AAVMF_CODE.fd",
            vars: "/usr/share/AAVMF/AAVMF_VARS.fd",
        },
    }
}

/// Exit statuses for `arch`.
pub fn exit_status(arch: Arch) -> ExitStatus {
    match arch {
        Arch::X86_64 => ExitStatus {
            success: 33,
            failure: 35,
            reset: 0,
            power_off: 0,
        },
        Arch::Aarch64 => ExitStatus {
            success: 0,
            failure: 1,
            reset: 0,
            power_off: 0,
        },
    }
}

/// The machine: q35 with the isa-debug-exit device on x86_64; virt with GICv3 and an
/// ITS and semihosting on aarch64. TCG (KVM is not usable on the build machines).
/// `machine_type` replaces the `-M` value (e.g. `pc`, the i440FX PC without MCFG).
fn machine(arch: Arch, machine_type: Option<&str>) -> Vec<&str> {
    let (binary, default_type, exit_device): (_, _, &[&str]) = match arch {
        Arch::X86_64 => (
            "qemu-system-x86_64",
            "q35",
            &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
        ),
        Arch::Aarch64 => (
            "qemu-system-aarch64",
            "virt,gic-version=3,its=on",
            &["-semihosting"],
        ),
    };
    let machine = machine_type.unwrap_or(default_type);
    let mut argv = vec![
        binary, "-M", machine, "-cpu", "max", "-m", "512M", "-smp", "2", "-accel", "tcg",
    ];
    argv.extend_from_slice(exit_device);
    argv
}

/// One boot of a disk image.
#[derive(Clone, Debug)]
pub struct Boot<'a> {
    /// The machine.
    pub arch: Arch,
    /// The disk image.
    pub image: &'a Path,
    /// How the image is attached (virtio-blk or NVMe).
    pub boot_disk: BootDisk,
    /// How the image is stored.
    pub format: DiskFormat,
    /// The writable copy of the firmware's variable store for this run.
    pub vars: &'a Path,
    /// QEMU's `-serial` backend (`stdio`, `file:PATH`, ...).
    pub serial: &'a str,
    /// Keep the image untouched (writes go to a temporary overlay); also lets several
    /// QEMUs share one file. Always on for VMDK (stream-optimized is read-only).
    pub snapshot: bool,
    /// Another machine type than the default (`-M` value), for variants such as `pc`.
    pub machine_type: Option<&'a str>,
}

/// The full QEMU command line for `boot`.
pub fn command(boot: &Boot<'_>) -> Vec<String> {
    let mut drive = format!(
        "if=none,id=boot,format={},file={}",
        boot.format.name(),
        qemu_path(boot.image)
    );
    if boot.snapshot || boot.format == DiskFormat::Vmdk {
        drive.push_str(",snapshot=on");
    }
    let fw = firmware(boot.arch);
    let mut argv: Vec<String> = machine(boot.arch, boot.machine_type)
        .into_iter()
        .map(String::from)
        .collect();
    argv.extend([
        "-drive".into(),
        format!("if=pflash,format=raw,readonly=on,file={}", fw.code),
        "-drive".into(),
        format!("if=pflash,format=raw,file={}", qemu_path(boot.vars)),
        "-drive".into(),
        drive,
        "-device".into(),
        boot.boot_disk.device().into(),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-serial".into(),
        boot.serial.into(),
        "-no-reboot".into(),
    ]);
    argv
}

/// A path inside a QEMU `-drive` option: commas are doubled (QEMU's escape).
fn qemu_path(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmdk_always_boots_from_a_snapshot() {
        let boot = Boot {
            arch: Arch::Aarch64,
            image: Path::new("/tmp/a,b.vmdk"),
            format: DiskFormat::Vmdk,
            vars: Path::new("/tmp/vars.fd"),
            serial: "stdio",
            snapshot: false,
            machine_type: None,
            boot_disk: BootDisk::Virtio,
        };
        let argv = command(&boot);
        assert_eq!(argv[0], "qemu-system-aarch64");
        assert!(argv.contains(&"virtio-blk-pci,drive=boot".to_string()));
        assert!(
            argv.contains(
                &"if=none,id=boot,format=vmdk,file=/tmp/a,,b.vmdk,snapshot=on".to_string()
            )
        );
        assert!(argv.contains(
            &"if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd".to_string()
        ));
        assert!(argv.contains(&"-semihosting".to_string()));
    }

    #[test]
    fn raw_without_snapshot_is_writable() {
        let boot = Boot {
            arch: Arch::X86_64,
            image: Path::new("x.img"),
            format: DiskFormat::Raw,
            vars: Path::new("v.fd"),
            serial: "stdio",
            snapshot: false,
            machine_type: Some("pc"),
            boot_disk: BootDisk::Virtio,
        };
        let argv = command(&boot);
        assert!(argv.contains(&"if=none,id=boot,format=raw,file=x.img".to_string()));
        assert_eq!(argv[1..3], ["-M", "pc"]);
        assert!(argv.contains(&"isa-debug-exit,iobase=0xf4,iosize=0x04".to_string()));
    }

    /// `--boot-disk nvme`: the image is namespace 1 of an NVMe controller, and no
    /// virtio-blk disk is attached.
    #[test]
    fn the_boot_disk_can_be_nvme() {
        assert_eq!(BootDisk::from_name("nvme"), Some(BootDisk::Nvme));
        assert_eq!(BootDisk::from_name("virtio"), Some(BootDisk::Virtio));
        assert_eq!(BootDisk::from_name("scsi"), None);
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let boot = Boot {
                arch,
                image: Path::new("x.img"),
                format: DiskFormat::Raw,
                vars: Path::new("v.fd"),
                serial: "stdio",
                snapshot: true,
                machine_type: None,
                boot_disk: BootDisk::Nvme,
            };
            let argv = command(&boot);
            let device = argv
                .iter()
                .position(|a| a == "nvme,serial=stratus-boot,drive=boot");
            assert_eq!(device.map(|i| argv[i - 1].as_str()), Some("-device"));
            assert!(!argv.iter().any(|a| a.contains("virtio-blk")));
            assert!(
                argv.contains(&"if=none,id=boot,format=raw,file=x.img,snapshot=on".to_string())
            );
        }
    }
}
