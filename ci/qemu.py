#!/usr/bin/env python3
"""The QEMU machines Stratus boots on, defined in one place.

Used by `make run` / `make debug` (through the command line below) and imported by
ci/qemu_test.py and ci/bench.py. Python 3 standard library only.

    python3 ci/qemu.py run   --arch x86_64 build/stratus.img [-- extra qemu args]
    python3 ci/qemu.py debug --arch aarch64 build/stratus.img
    python3 ci/qemu.py print --arch x86_64 build/stratus.img   # just show the command
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHES = ("x86_64", "aarch64")

# (CODE read-only, VARS template copied per run)
FIRMWARE = {
    "x86_64": ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    "aarch64": ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
}

# QEMU's exit status when the kernel reports success / failure through the exit device
# (x86: isa-debug-exit, value v -> (v << 1) | 1; aarch64: semihosting SYS_EXIT), and
# when the guest resets the machine (-no-reboot turns a reset into a clean exit), and
# when it powers the machine off through the firmware (ACPI S5, PSCI SYSTEM_OFF).
EXIT_STATUS = {
    "x86_64": {"success": 33, "failure": 35, "reset": 0, "power-off": 0},
    "aarch64": {"success": 0, "failure": 1, "reset": 0, "power-off": 0},
}

MACHINE = {
    "x86_64": ["qemu-system-x86_64", "-M", "q35", "-cpu", "max", "-m", "512M", "-smp", "2",
               "-accel", "tcg", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
    "aarch64": ["qemu-system-aarch64", "-M", "virt,gic-version=3,its=on", "-cpu", "max",
                "-m", "512M", "-smp", "2", "-accel", "tcg", "-semihosting"],
}


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")


def kernel_path(arch: str, name: str = "stratus-demo") -> Path:
    """The kernel ELF, as ci/make-image.sh picks it (env KERNEL_<ARCH> overrides the
    demo kernel); `name` picks another kernel target (stratus-hello)."""
    env = os.environ.get(f"KERNEL_{arch.upper()}")
    if env and name == "stratus-demo":
        return Path(env)
    return target_dir() / f"{arch}-unknown-none" / "release" / name


def loader_path(arch: str) -> Path:
    env = os.environ.get(f"LOADER_{arch.upper()}")
    if env:
        return Path(env)
    return target_dir() / f"{arch}-unknown-uefi" / "release" / "stratus-loader.efi"


def fresh_vars(arch: str, directory: str | Path | None = None) -> Path:
    """A writable copy of the firmware's variable store for one run."""
    fd, path = tempfile.mkstemp(prefix=f"vars-{arch}-", suffix=".fd", dir=directory)
    os.close(fd)
    shutil.copyfile(FIRMWARE[arch][1], path)
    return Path(path)


def qemu_command(arch: str, image: str | Path, vars_path: str | Path, *,
                 serial: str = "stdio", snapshot: bool = False, machine: str | None = None,
                 extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The full QEMU command line for `arch` booting `image` from a virtio-blk disk.

    snapshot=True keeps the image untouched (writes go to a temporary overlay) and lets
    several QEMUs share one image file at the same time. `machine` replaces the -M value
    (for instance "pc" for the i440FX PC without MCFG).
    """
    if arch not in MACHINE:
        raise ValueError(f"unknown arch {arch!r} (expected one of {', '.join(ARCHES)})")
    base = list(MACHINE[arch])
    if machine:
        base[base.index("-M") + 1] = machine
    drive = f"if=none,id=boot,format=raw,file={image}"
    if snapshot:
        drive += ",snapshot=on"
    return [
        *base,
        "-drive", f"if=pflash,format=raw,readonly=on,file={FIRMWARE[arch][0]}",
        "-drive", f"if=pflash,format=raw,file={vars_path}",
        "-drive", drive,
        "-device", "virtio-blk-pci,drive=boot",
        "-display", "none", "-monitor", "none",
        "-serial", serial,
        "-no-reboot",
        *extra,
    ]


def elf_entry(path: Path) -> int | None:
    try:
        head = path.read_bytes()[:64]
    except OSError:
        return None
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
        return None
    return struct.unpack_from("<Q", head, 24)[0]


def _main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("run", "debug", "print"))
    ap.add_argument("--arch", default="x86_64", choices=ARCHES)
    ap.add_argument("--timeout", type=float, default=0,
                    help="kill QEMU after this many seconds (0: never)")
    ap.add_argument("image")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="-- then extra QEMU arguments")
    a = ap.parse_args()
    extra = a.extra[1:] if a.extra[:1] == ["--"] else a.extra
    if not Path(a.image).is_file():
        print(f"qemu: {a.image} does not exist (make image)", file=sys.stderr)
        return 2
    if a.mode == "debug":
        extra = ["-s", "-S", *extra]

    if a.mode == "print":
        print(shlex.join(qemu_command(a.arch, a.image, "COPY-OF-" + Path(FIRMWARE[a.arch][1]).name,
                                      extra=extra)))
        return 0
    vars_dir = ROOT / "build"
    vars_dir.mkdir(exist_ok=True)
    vars_path = fresh_vars(a.arch, vars_dir)
    try:
        cmd = qemu_command(a.arch, a.image, vars_path, extra=extra)
        if a.timeout > 0:
            cmd = ["timeout", "--foreground", "-k", "5", str(int(a.timeout)), *cmd]
        if a.mode == "debug":
            kernel = kernel_path(a.arch)
            gdb = "gdb" if a.arch == "x86_64" or not shutil.which("gdb-multiarch") else "gdb-multiarch"
            entry = elf_entry(kernel)
            bp = f" -ex 'hbreak *{entry:#x}'" if entry is not None else ""
            print(f"qemu: {a.arch} waits for a debugger on localhost:1234 (firmware not started yet).")
            print("qemu: attach with:")
            print(f"    {gdb} -q {shlex.quote(str(kernel))} -ex 'target remote localhost:1234'{bp} -ex continue")
            if a.arch == "aarch64" and gdb == "gdb":
                print("    (for aarch64 use gdb-multiarch: apt-get install gdb-multiarch)")
            print("qemu: the kernel entry breakpoint is hardware (the kernel is loaded later by the loader).")
        else:
            print(f"qemu: booting {a.image} on {a.arch} (serial below; Ctrl-C quits)", flush=True)
        # Ctrl-C should reach QEMU (it quits on SIGINT), not kill this wrapper first.
        proc = subprocess.Popen(cmd)

        def on_term(signum, _frame):
            proc.terminate()
            sys.exit(128 + signum)
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGHUP, on_term)
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:
                continue
    finally:
        vars_path.unlink(missing_ok=True)
    codes = EXIT_STATUS[a.arch]
    if rc == codes["success"] and a.arch == "x86_64":
        print("\nqemu: guest reported success (isa-debug-exit 0x10 -> 33)")
        return 0
    if rc == codes["failure"] and a.arch == "x86_64":
        print("\nqemu: guest reported failure (isa-debug-exit 0x11 -> 35)")
        return 1
    if rc < 0 and -rc in (signal.SIGINT, signal.SIGTERM):
        print(f"\nqemu: stopped ({signal.Signals(-rc).name})")
        return 0
    if rc == 124:
        print(f"\nqemu: timed out after {a.timeout:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(_main())
