#!/usr/bin/env python3
"""Runs QEMU for Stratus images and builds test images, through the image tool.

The QEMU machines (OVMF/AAVMF pflash, q35 / virt with GICv3 and an ITS, exit devices)
are defined in ONE place, the Rust image tool (tools/image/src/qemu.rs): this script
asks `stratus-image machine` for the command line, so `make run`, the tests, the
benchmarks and `cargo run` of a kernel (the tool as cargo runner) boot the same machine.
Images are built with `stratus-image build` (see build_image below).
Python 3 standard library only.

    python3 ci/qemu.py run   --arch x86_64 build/stratus.img [-- extra qemu args]
    python3 ci/qemu.py debug --arch aarch64 build/stratus.img
    python3 ci/qemu.py print --arch x86_64 build/stratus.img   # just show the command
    python3 ci/qemu.py run --format vpc build/cloud/stratus-azure.vhd   # a cloud format
    python3 ci/qemu.py run --boot-disk nvme build/stratus.img   # boot disk on NVMe (as AWS)
"""

from __future__ import annotations

import argparse
import functools
import json
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
FORMATS = ("raw", "vpc", "vmdk")


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")


@functools.cache
def image_tool() -> Path:
    """The stratus-image binary (release build), built here when it is missing."""
    tool = target_dir() / "release" / "stratus-image"
    if not tool.is_file():
        subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "stratus-image"],
                       cwd=ROOT, check=True)
    return tool


def kernel_path(arch: str, name: str = "stratus-demo") -> Path:
    """The kernel ELF (env KERNEL_<ARCH> overrides the demo kernel); `name` picks
    another kernel target (stratus-hello)."""
    env = os.environ.get(f"KERNEL_{arch.upper()}")
    if env and name == "stratus-demo":
        return Path(env)
    return target_dir() / f"{arch}-unknown-none" / "release" / name


def loader_path(arch: str) -> Path:
    env = os.environ.get(f"LOADER_{arch.upper()}")
    if env:
        return Path(env)
    return target_dir() / f"{arch}-unknown-uefi" / "release" / "stratus-loader.efi"


def build_image(out: str | Path, cmdline: str = "", kernels: dict[str, str] | None = None,
                limine_dir: str = "") -> subprocess.CompletedProcess:
    """`stratus-image build`: one image for both architectures. `kernels` maps an arch
    to a kernel path or "none" (default: kernel_path(arch)); loaders from loader_path
    unless limine_dir holds genuine Limine."""
    kernels = kernels or {}
    args = [str(image_tool()), "build", str(out), "--cmdline", cmdline]
    for arch in ARCHES:
        args += [f"--kernel-{arch}", str(kernels.get(arch, kernel_path(arch)))]
    if limine_dir:
        args += ["--limine-dir", limine_dir]
    else:
        for arch in ARCHES:
            args += [f"--loader-{arch}", str(loader_path(arch))]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def machine_info(arch: str, image: str | Path, vars_path: str | Path, *, serial: str = "stdio",
                 snapshot: bool = False, fmt: str = "raw", machine: str | None = None,
                 boot_disk: str | None = None) -> dict:
    """`stratus-image machine`: {"argv": [...], "firmware_vars": ..., "exit_status": {...}}.
    `machine` replaces the -M value (for instance "pc" for the i440FX PC without MCFG);
    `boot_disk` ("virtio", "nvme") says how the image is attached (default virtio-blk)."""
    if arch not in ARCHES:
        raise ValueError(f"unknown arch {arch!r} (expected one of {', '.join(ARCHES)})")
    args = [str(image_tool()), "machine", "--arch", arch, "--image", str(image),
            "--vars", str(vars_path), "--serial", serial, "--format", fmt]
    if snapshot:
        args.append("--snapshot")
    if machine:
        args += ["--machine", machine]
    if boot_disk:
        args += ["--boot-disk", boot_disk]
    return json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


@functools.cache
def _machine_facts(arch: str) -> dict:
    return machine_info(arch, "IMAGE", "VARS")


def exit_status(arch: str) -> dict[str, int]:
    """QEMU's exit status for "success" / "failure" (the kernel's exit device),
    "reset" (-no-reboot turns a guest reset into exit 0) and "power-off" (the kernel
    powered off through the firmware: ACPI S5, PSCI SYSTEM_OFF)."""
    return _machine_facts(arch)["exit_status"]


def fresh_vars(arch: str, directory: str | Path | None = None) -> Path:
    """A writable copy of the firmware's variable store for one run."""
    fd, path = tempfile.mkstemp(prefix=f"vars-{arch}-", suffix=".fd", dir=directory)
    os.close(fd)
    shutil.copyfile(_machine_facts(arch)["firmware_vars"], path)
    return Path(path)


def qemu_command(arch: str, image: str | Path, vars_path: str | Path, *,
                 serial: str = "stdio", snapshot: bool = False, fmt: str = "raw",
                 machine: str | None = None, boot_disk: str | None = None,
                 extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The full QEMU command line for `arch` booting `image` (stored as `fmt`: raw, vpc,
    vmdk) from a virtio-blk disk, or an NVMe namespace with boot_disk="nvme".

    snapshot=True keeps the image untouched (writes go to a temporary overlay) and lets
    several QEMUs share one image file at the same time. `machine` replaces the -M value
    (for instance "pc" for the i440FX PC without MCFG).
    """
    info = machine_info(arch, image, vars_path, serial=serial, snapshot=snapshot, fmt=fmt,
                        machine=machine, boot_disk=boot_disk)
    return [*info["argv"], *extra]


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
    ap.add_argument("--format", default="raw", choices=FORMATS, help="how the image is stored")
    ap.add_argument("--boot-disk", default="virtio", choices=("virtio", "nvme"),
                    help="attach the image as a virtio-blk disk or an NVMe namespace")
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
        vars_name = Path(_machine_facts(a.arch)["firmware_vars"]).name
        print(shlex.join(qemu_command(a.arch, a.image, "COPY-OF-" + vars_name, fmt=a.format,
                                      boot_disk=a.boot_disk, extra=extra)))
        return 0
    vars_dir = ROOT / "build"
    vars_dir.mkdir(exist_ok=True)
    vars_path = fresh_vars(a.arch, vars_dir)
    try:
        cmd = qemu_command(a.arch, a.image, vars_path, fmt=a.format, boot_disk=a.boot_disk,
                           extra=extra)
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
    codes = exit_status(a.arch)
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
