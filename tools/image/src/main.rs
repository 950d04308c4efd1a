//! `stratus-image`: the command-line face of the `stratus_image` library.
//! `stratus-image help` lists the subcommands; docs/image-tool.md explains them.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use stratus_image::cloud::{self, CloudFormat};
use stratus_image::image::{self, Arch, ImageContents};
use stratus_image::qemu::{self, Boot, BootDisk, DiskFormat};
use stratus_image::{ImageError, output};

const USAGE: &str = "\
usage: stratus-image COMMAND ...

  build OUT [--cmdline STR] [--kernel-x86_64 P] [--kernel-aarch64 P]
            [--loader-x86_64 P] [--loader-aarch64 P] [--limine-dir DIR] [--size-mib N]
        One raw GPT image (default 64 MiB) whose FAT32 ESP boots on x86_64 and aarch64.
        A path of `none` leaves that file out. --limine-dir takes BOOTX64.EFI and
        BOOTAA64.EFI (genuine Limine) in place of the loaders. The command line reaches
        /boot/stratus.cmdline and limine.conf byte for byte (one line).
  export FORMAT IMAGE OUT
        FORMAT: raw | vmdk (stream-optimized, AWS) | gcp (disk.raw in tar.gz) | vhd (fixed, Azure)
  cloud-images IMAGE DIR
        All four cloud files into DIR; prints each file's size.
  cloud-commands DIR
        Prints the commands that upload DIR's files and start instances (runs nothing).
  run [--arch A] [--cmdline STR] [--loader P] [--boot-disk virtio|nvme] KERNEL [-- QEMU ARGS...]
        Boots one kernel ELF in QEMU (a temporary image; serial on this terminal).
        Options may follow KERNEL (cargo runner: `cargo run -- --cmdline exit=qemu`).
        The architecture comes from the ELF header unless --arch is given; the loader
        from --loader, $STRATUS_LOADER_<ARCH>, or the workspace's release build next to
        the kernel (target/<arch>-unknown-uefi/release/stratus-loader.efi).
        Usable as a cargo runner. Exit status 0 when the kernel reports success.
  machine --arch A --image I --vars V [--format raw|vpc|vmdk] [--snapshot] [--serial S]
          [--machine TYPE] [--boot-disk virtio|nvme]
        The QEMU command for booting I, as JSON (ci/qemu.py uses it), with the
        firmware variable template and the exit statuses.
        --boot-disk (machine and run): attach the image as a virtio-blk disk (the
        default) or as namespace 1 of an NVMe controller, as AWS attaches its volumes.
";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(command) = args.first().and_then(|a| a.to_str()) else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match command {
        "build" => cmd_build(rest),
        "export" => cmd_export(rest),
        "cloud-images" => cmd_cloud_images(rest),
        "cloud-commands" => cmd_cloud_commands(rest),
        "run" => cmd_run(rest),
        "machine" => cmd_machine(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(CliError::Usage(format!("unknown command {other:?}"))),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Usage(why)) => {
            eprintln!("stratus-image: {why} (see stratus-image help)");
            ExitCode::from(2)
        }
        Err(CliError::Failed(why)) => {
            eprintln!("stratus-image: error: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Why a subcommand stopped.
enum CliError {
    /// Bad arguments (exit status 2).
    Usage(String),
    /// The work failed (exit status 1).
    Failed(String),
}

impl From<ImageError> for CliError {
    fn from(e: ImageError) -> Self {
        CliError::Failed(e.to_string())
    }
}

type CliResult = Result<ExitCode, CliError>;

/// Options `--name VALUE` / `--name=VALUE`, flags `--name`, positional arguments, and
/// whatever follows a lone `--` (QEMU's arguments for `run`).
struct Args {
    options: Vec<(String, OsString)>,
    flags: Vec<String>,
    positional: Vec<OsString>,
    after_dashes: Vec<OsString>,
}

fn parse(args: &[OsString], with_value: &[&str], flags: &[&str]) -> Result<Args, CliError> {
    let mut out = Args {
        options: Vec::new(),
        flags: Vec::new(),
        positional: Vec::new(),
        after_dashes: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let bytes = args[i].as_bytes();
        if bytes == b"--" {
            out.after_dashes.extend(args[i + 1..].iter().cloned());
            break;
        }
        if bytes.starts_with(b"--") {
            let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
                Some(eq) => (
                    &bytes[2..eq],
                    Some(OsStr::from_bytes(&bytes[eq + 1..]).to_owned()),
                ),
                None => (&bytes[2..], None),
            };
            let name = String::from_utf8_lossy(name).into_owned();
            if with_value.contains(&name.as_str()) {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i)
                            .cloned()
                            .ok_or_else(|| CliError::Usage(format!("--{name} needs a value")))?
                    }
                };
                out.options.push((name, value));
            } else if flags.contains(&name.as_str()) && inline.is_none() {
                out.flags.push(name);
            } else {
                return Err(CliError::Usage(format!("unknown option --{name}")));
            }
        } else {
            out.positional.push(args[i].clone());
        }
        i += 1;
    }
    Ok(out)
}

impl Args {
    fn get(&self, name: &str) -> Option<&OsString> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
    fn text(&self, name: &str) -> Result<Option<String>, CliError> {
        self.get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .ok_or_else(|| CliError::Usage(format!("--{name} is not UTF-8")))
            })
            .transpose()
    }
    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
    fn positionals(&self, n: usize, what: &str) -> Result<Vec<PathBuf>, CliError> {
        if self.positional.len() != n {
            return Err(CliError::Usage(format!("expected {what}")));
        }
        Ok(self.positional.iter().map(PathBuf::from).collect())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path)
        .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", path.display())))
}

/// A file to put in the image, or `None` for the word `none`.
fn optional_file(path: &OsStr) -> Result<Option<Vec<u8>>, CliError> {
    if path == "none" {
        Ok(None)
    } else {
        read(Path::new(path)).map(Some)
    }
}

/// Random bytes for GUIDs and ids.
fn random<const N: usize>() -> Result<[u8; N], CliError> {
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| CliError::Failed(format!("cannot read /dev/urandom: {e}")))?;
    Ok(bytes)
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn cmd_build(args: &[OsString]) -> CliResult {
    let a = parse(
        args,
        &[
            "cmdline",
            "kernel-x86_64",
            "kernel-aarch64",
            "loader-x86_64",
            "loader-aarch64",
            "limine-dir",
            "size-mib",
        ],
        &[],
    )?;
    let [out] = <[PathBuf; 1]>::try_from(a.positionals(1, "one output path: build OUT [options]")?)
        .map_err(|_| CliError::Usage("build OUT".into()))?;
    let need = |name: &str| {
        a.get(name)
            .cloned()
            .ok_or_else(|| CliError::Usage(format!("--{name} is required (a path, or none)")))
    };
    let (loader_x86_64, loader_aarch64) = match a.get("limine-dir") {
        Some(dir) => {
            let dir = Path::new(dir);
            (
                Some(read(&dir.join("BOOTX64.EFI"))?),
                Some(read(&dir.join("BOOTAA64.EFI"))?),
            )
        }
        None => (
            optional_file(&need("loader-x86_64")?)?,
            optional_file(&need("loader-aarch64")?)?,
        ),
    };
    let size_mib = match a.text("size-mib")? {
        Some(t) => t
            .parse()
            .map_err(|_| CliError::Usage(format!("--size-mib {t:?} is not a number")))?,
        None => image::MIN_SIZE_MIB,
    };
    let contents = ImageContents {
        kernel_x86_64: optional_file(&need("kernel-x86_64")?)?,
        kernel_aarch64: optional_file(&need("kernel-aarch64")?)?,
        loader_x86_64,
        loader_aarch64,
        cmdline: a
            .get("cmdline")
            .map(|c| c.as_bytes().to_vec())
            .unwrap_or_default(),
    };
    let disk = image::build(&contents, size_mib, random()?)?;
    output::write_sparse(&out, disk.len() as u64, &[(0, &disk)])?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn cloud_format(name: &OsStr) -> Result<CloudFormat, CliError> {
    name.to_str()
        .and_then(CloudFormat::from_name)
        .ok_or_else(|| CliError::Usage(format!("unknown format {name:?} (raw, vmdk, gcp, vhd)")))
}

fn cmd_export(args: &[OsString]) -> CliResult {
    let a = parse(args, &[], &[])?;
    let p = a.positionals(3, "export FORMAT IMAGE OUT")?;
    let format = cloud_format(p[0].as_os_str())?;
    let raw = read(&p[1])?;
    cloud::export(&raw, format, &p[2], unix_time(), random()?)?;
    println!("{}", p[2].display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_cloud_images(args: &[OsString]) -> CliResult {
    let a = parse(args, &[], &[])?;
    let p = a.positionals(2, "cloud-images IMAGE DIR")?;
    let raw = read(&p[0])?;
    for format in CloudFormat::ALL {
        let path = cloud::path_in(&p[1], format);
        cloud::export(&raw, format, &path, unix_time(), random()?)?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!(
            "{:<6} {:>12} bytes  {}",
            format.cloud(),
            size,
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_cloud_commands(args: &[OsString]) -> CliResult {
    let a = parse(args, &[], &[])?;
    let p = a.positionals(1, "cloud-commands DIR")?;
    print!("{}", cloud::upload_commands(&p[0]));
    Ok(ExitCode::SUCCESS)
}

fn arch_option(a: &Args) -> Result<Option<Arch>, CliError> {
    a.text("arch")?
        .map(|t| {
            Arch::from_name(&t)
                .ok_or_else(|| CliError::Usage(format!("--arch {t:?}: x86_64 or aarch64")))
        })
        .transpose()
}

/// `--boot-disk virtio|nvme` (virtio-blk when absent).
fn boot_disk_option(a: &Args) -> Result<BootDisk, CliError> {
    match a.text("boot-disk")? {
        Some(t) => BootDisk::from_name(&t)
            .ok_or_else(|| CliError::Usage(format!("--boot-disk {t:?}: virtio or nvme"))),
        None => Ok(BootDisk::default()),
    }
}

fn cmd_machine(args: &[OsString]) -> CliResult {
    let a = parse(
        args,
        &[
            "arch",
            "image",
            "vars",
            "format",
            "serial",
            "machine",
            "boot-disk",
        ],
        &["snapshot"],
    )?;
    a.positionals(0, "no positional arguments")?;
    let arch = arch_option(&a)?.ok_or_else(|| CliError::Usage("--arch is required".into()))?;
    let format = match a.text("format")? {
        Some(f) => {
            DiskFormat::from_name(&f).ok_or_else(|| CliError::Usage(format!("--format {f:?}")))?
        }
        None => DiskFormat::Raw,
    };
    let required = |name: &str| {
        a.get(name)
            .map(PathBuf::from)
            .ok_or_else(|| CliError::Usage(format!("--{name} is required")))
    };
    let (image, vars) = (required("image")?, required("vars")?);
    let serial = a.text("serial")?.unwrap_or_else(|| "stdio".into());
    let machine_type = a.text("machine")?;
    let boot_disk = boot_disk_option(&a)?;
    let boot = Boot {
        arch,
        image: &image,
        format,
        vars: &vars,
        serial: &serial,
        snapshot: a.flag("snapshot"),
        machine_type: machine_type.as_deref(),
        boot_disk,
    };
    let argv: Vec<String> = qemu::command(&boot)
        .iter()
        .map(|s| json_string(s))
        .collect();
    let exit = qemu::exit_status(arch);
    println!(
        "{{\"argv\": [{}], \"firmware_vars\": {}, \"exit_status\": {{\"success\": {}, \"failure\": {}, \"reset\": {}, \"power-off\": {}}}}}",
        argv.join(", "),
        json_string(qemu::firmware(arch).vars),
        exit.success,
        exit.failure,
        exit.reset,
        exit.power_off
    );
    Ok(ExitCode::SUCCESS)
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The architecture of an ELF file from its e_machine field.
fn elf_arch(elf: &[u8]) -> Option<Arch> {
    if elf.len() < 20 || &elf[..4] != b"\x7fELF" {
        return None;
    }
    match u16::from_le_bytes([elf[18], elf[19]]) {
        62 => Some(Arch::X86_64),
        183 => Some(Arch::Aarch64),
        _ => None,
    }
}

/// The loader for `arch`: --loader, $STRATUS_LOADER_<ARCH>, or the release build in the
/// target directory the kernel was built in (target/<triple>/<profile>/<kernel>).
fn find_loader(arch: Arch, given: Option<&OsString>, kernel: &Path) -> Result<PathBuf, CliError> {
    if let Some(p) = given {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os(format!("STRATUS_LOADER_{}", arch.name().to_uppercase())) {
        return Ok(PathBuf::from(p));
    }
    let kernel = std::fs::canonicalize(kernel).unwrap_or_else(|_| kernel.to_path_buf());
    let target_dir = kernel
        .ancestors()
        .nth(3)
        .ok_or_else(|| CliError::Failed("cannot place the kernel in a target directory".into()))?;
    let loader = target_dir.join(format!(
        "{}-unknown-uefi/release/stratus-loader.efi",
        arch.name()
    ));
    if loader.is_file() {
        Ok(loader)
    } else {
        Err(CliError::Failed(format!(
            "no loader at {} (build it with `make loader`, or give --loader / STRATUS_LOADER_{})",
            loader.display(),
            arch.name().to_uppercase()
        )))
    }
}

fn cmd_run(args: &[OsString]) -> CliResult {
    let a = parse(args, &["arch", "cmdline", "loader", "boot-disk"], &[])?;
    let boot_disk = boot_disk_option(&a)?;
    let kernel_path = a
        .positionals(1, "run [options] KERNEL [-- QEMU ARGS]")?
        .remove(0);
    let extra = &a.after_dashes;
    let kernel = read(&kernel_path)?;
    let arch = match arch_option(&a)? {
        Some(arch) => arch,
        None => elf_arch(&kernel).ok_or_else(|| {
            CliError::Failed(format!(
                "{} is not an x86_64 or aarch64 ELF",
                kernel_path.display()
            ))
        })?,
    };
    let loader = read(&find_loader(arch, a.get("loader"), &kernel_path)?)?;
    let mut contents = ImageContents {
        cmdline: a
            .get("cmdline")
            .map(|c| c.as_bytes().to_vec())
            .unwrap_or_default(),
        ..Default::default()
    };
    match arch {
        Arch::X86_64 => {
            (contents.kernel_x86_64, contents.loader_x86_64) = (Some(kernel), Some(loader))
        }
        Arch::Aarch64 => {
            (contents.kernel_aarch64, contents.loader_aarch64) = (Some(kernel), Some(loader))
        }
    }
    let dir = std::env::temp_dir().join(format!("stratus-run-{}", std::process::id()));
    let image_path = dir.join("boot.img");
    let vars_path = dir.join("vars.fd");
    let disk = image::build(&contents, image::MIN_SIZE_MIB, random()?)?;
    output::write_sparse(&image_path, disk.len() as u64, &[(0, &disk)])?;
    let status = std::fs::copy(qemu::firmware(arch).vars, &vars_path)
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot copy {}: {e} (install ovmf / qemu-efi-aarch64)",
                qemu::firmware(arch).vars
            ))
        })
        .and_then(|_| {
            let boot = Boot {
                arch,
                image: &image_path,
                format: DiskFormat::Raw,
                vars: &vars_path,
                serial: "stdio",
                snapshot: false,
                machine_type: None,
                boot_disk,
            };
            let argv = qemu::command(&boot);
            eprintln!(
                "stratus-image: booting {} on {} (QEMU; Ctrl-A x quits)",
                kernel_path.display(),
                arch.name()
            );
            Command::new(&argv[0])
                .args(&argv[1..])
                .args(extra)
                .status()
                .map_err(|e| CliError::Failed(format!("cannot start {}: {e}", argv[0])))
        });
    let _ = std::fs::remove_dir_all(&dir);
    let code = status?.code().unwrap_or(1);
    let exit = qemu::exit_status(arch);
    Ok(if code == exit.success {
        ExitCode::SUCCESS
    } else if code == exit.failure {
        eprintln!("stratus-image: the kernel reported failure");
        ExitCode::FAILURE
    } else {
        ExitCode::from(u8::try_from(code).unwrap_or(1))
    })
}
