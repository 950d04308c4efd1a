#!/usr/bin/env python3
"""A Linux reference guest for benchmarks: Debian's cloud kernel and busybox, on the same
QEMU machine the Stratus benchmarks boot.

Nothing here is committed: the Debian packages are fetched with `apt-get download` and
kept under build/linux-guest/ (debs/, the unpacked trees, initramfs files). Standard
library only.

    python3 ci/linux_guest.py fetch --arch aarch64          # packages, cached
    python3 ci/linux_guest.py print --arch x86_64 -- -device ...  # the QEMU command
    python3 ci/linux_guest.py shell --arch x86_64           # boot to a busybox shell

For other benchmarks (a network one with busybox httpd, say), the pieces are:

    guest = linux_guest.fetch(arch)                 # Guest(kernel, busybox, version)
    initrd = linux_guest.build_initramfs(arch, INIT_SCRIPT, out_path,
                                         files={"/bin/helper": path})
    cmd = linux_guest.qemu_command(arch, guest.kernel, initrd, extra=[...qemu devices...])
    text, status = linux_guest.run(cmd, timeout=120, until=r"^bench done$")

`INIT_SCRIPT` is the text of /init, run by busybox (`#!/bin/busybox sh`); busybox is at
/bin/busybox and its applets are linked into /bin and /sbin before the script starts
(see `init_prelude`); the script should end with `poweroff -f`, which makes QEMU exit.
`fetch` raises `Unavailable` (with a message that says what to do) when the packages
cannot be had: then a benchmark prints its Stratus side only.

The machine is `stratus-image machine`'s (the one `make run`, the tests and the Stratus
benchmarks boot: q35 / virt with GICv3 and an ITS, -cpu max, the same memory and CPU
count, TCG) without the firmware and without the boot disk: the kernel is loaded by
QEMU (`-kernel/-initrd/-append`), with the console on the first serial port (ttyS0,
ttyAMA0 on aarch64).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import qemu  # noqa: E402

ROOT = qemu.ROOT
CACHE = ROOT / "build" / "linux-guest"
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
CONSOLE = {"x86_64": "ttyS0", "aarch64": "ttyAMA0"}
ANSI = re.compile(rb"\x1b(\[[0-9;=?]*[ -/]*[@-~]|[@-Z\\-_])")


class Unavailable(Exception):
    """The guest cannot be built here; the message says why and what to do."""


@dataclass
class Guest:
    arch: str
    kernel: Path   # vmlinuz from linux-image-*-cloud-*
    busybox: Path  # static busybox
    version: str   # the kernel package's name and version


def _run(args: list[str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"{args[0]}: {e}") from e


def _ensure_architecture(deb_arch: str) -> None:
    """dpkg must know the foreign architecture and apt must have its package lists."""
    host = _run(["dpkg", "--print-architecture"]).stdout.strip()
    if deb_arch == host:
        return
    foreign = _run(["dpkg", "--print-foreign-architectures"]).stdout.split()
    if deb_arch in foreign:
        return
    if os.geteuid() != 0:
        raise Unavailable(f"dpkg does not know the {deb_arch} architecture; as root run: "
                          f"dpkg --add-architecture {deb_arch} && apt-get update")
    for args in (["dpkg", "--add-architecture", deb_arch], ["apt-get", "update", "-qq"]):
        p = _run(args, timeout=600)
        if p.returncode != 0:
            raise Unavailable(f"{' '.join(args)} failed: {p.stderr.strip()[-300:]}")


def _kernel_package(deb_arch: str) -> str:
    """The versioned package the cloud kernel metapackage points at."""
    meta = f"linux-image-cloud-{deb_arch}:{deb_arch}"
    p = _run(["apt-cache", "depends", meta])
    m = re.search(r"Depends: (linux-image-\S+-cloud-\S+?)(:\w+)?$", p.stdout, re.M)
    if p.returncode != 0 or not m:
        raise Unavailable(f"apt-cache depends {meta} names no kernel package "
                          f"({(p.stderr or p.stdout).strip()[-200:]})")
    return m.group(1)


def _download(package: str, deb_arch: str, into: Path) -> Path:
    """`apt-get download` once; later calls use the cached .deb."""
    into.mkdir(parents=True, exist_ok=True)
    name = package.split(":")[0]
    found = sorted(glob.glob(str(into / f"{name}_*_{deb_arch}.deb")))
    if found:
        return Path(found[-1])
    p = _run(["apt-get", "download", f"{name}:{deb_arch}"], cwd=into, timeout=900)
    found = sorted(glob.glob(str(into / f"{name}_*_{deb_arch}.deb")))
    if p.returncode != 0 or not found:
        raise Unavailable(f"apt-get download {name}:{deb_arch} failed: "
                          f"{(p.stderr or p.stdout).strip()[-300:]}")
    return Path(found[-1])


def _unpack(deb: Path, into: Path) -> Path:
    stamp = into / ".unpacked"
    if stamp.is_file() and stamp.read_text() == deb.name:
        return into
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    p = _run(["dpkg-deb", "-x", str(deb), str(into)])
    if p.returncode != 0:
        raise Unavailable(f"dpkg-deb -x {deb.name}: {p.stderr.strip()[-300:]}")
    stamp.write_text(deb.name)
    return into


def fetch(arch: str) -> Guest:
    """Debian's cloud kernel and busybox-static for `arch`, downloaded once into
    build/linux-guest/."""
    deb_arch = DEB_ARCH[arch]
    for tool in ("dpkg", "apt-get", "apt-cache", "dpkg-deb"):
        if not shutil.which(tool):
            raise Unavailable(f"{tool} is not installed (a Debian host is needed)")
    _ensure_architecture(deb_arch)
    debs = CACHE / "debs"
    kernel_deb = _download(_kernel_package(deb_arch), deb_arch, debs)
    busybox_deb = _download("busybox-static", deb_arch, debs)
    kernel_tree = _unpack(kernel_deb, CACHE / arch / "kernel")
    busybox_tree = _unpack(busybox_deb, CACHE / arch / "busybox")
    kernels = sorted((kernel_tree / "boot").glob("vmlinuz-*"))
    busybox = busybox_tree / "bin" / "busybox"
    if not kernels or not busybox.is_file():
        raise Unavailable(f"no vmlinuz in {kernel_deb.name} or no busybox in {busybox_deb.name}")
    return Guest(arch, kernels[-1], busybox, kernel_deb.stem)


# -------------------------------------------------------------------------- initramfs --

def init_prelude() -> str:
    """What every /init starts with: busybox's applets, /proc, /sys, /dev, and the
    kernel modules build_initramfs was asked for, loaded in dependency order."""
    return """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in $(cat /etc/modules-order 2>/dev/null); do insmod /lib/modules/$m || echo "init: insmod $m failed"; done
"""


def _module_files(guest: Guest) -> dict[str, Path]:
    """Module name (dashes as underscores) -> .ko file in the kernel package."""
    found: dict[str, Path] = {}
    for ko in (guest.kernel.parent.parent / "lib" / "modules").glob("*/kernel/**/*.ko"):
        found[ko.stem.replace("-", "_")] = ko
    return found


def _module_depends(ko: Path) -> list[str]:
    """The `depends=` entry of a module's .modinfo section."""
    m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", ko.read_bytes())
    if not m or not m.group(1):
        return []
    return [d.decode().replace("-", "_") for d in m.group(1).split(b",") if d]


def modules_in_order(guest: Guest, names: list[str] | tuple[str, ...]) -> list[Path]:
    """`names` and everything they depend on, dependencies first. Names the kernel has
    built in are skipped; unknown ones raise Unavailable."""
    files = _module_files(guest)
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        ko = files.get(name)
        if ko is None:
            builtin = guest.kernel.parent.parent.glob("lib/modules/*/modules.builtin")
            if any(f"/{name}.ko" in b.read_text().replace("-", "_") for b in builtin):
                return
            raise Unavailable(f"module {name} is not in {guest.version}")
        for dep in _module_depends(ko):
            visit(dep)
        order.append(ko)

    for n in names:
        visit(n)
    return order


class _Cpio:
    """An uncompressed cpio archive in the "newc" format (what the kernel unpacks as its
    initramfs), written without root: device nodes are entries, not files."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ino = 1

    def _entry(self, name: str, mode: int, body: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name_b = name.lstrip("/").encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(body), 0, 0, rdev[0], rdev[1], len(name_b), 0]
        self.ino += 1
        self.data += b"070701" + b"".join(b"%08x" % f for f in fields) + name_b
        self.data += b"\0" * (-len(self.data) % 4)
        self.data += body
        self.data += b"\0" * (-len(self.data) % 4)

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, body: bytes, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFREG | mode, body)

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self.data)


def build_initramfs(arch: str, init_script: str, out: Path,
                    files: dict[str, Path | bytes] | None = None,
                    guest: Guest | None = None,
                    modules: list[str] | tuple[str, ...] = ()) -> Path:
    """An initramfs for `arch` whose /init is `init_script` (run by busybox), with busybox
    at /bin/busybox and `files` (guest path -> host file or bytes) added. `modules` (for
    instance `("virtio_blk", "virtio_pci")`: Debian's cloud kernel builds virtio as
    modules, NVMe in) go to /lib/modules with their dependencies, and /etc/modules-order
    lists them for init_prelude(). Written to `out`."""
    guest = guest or fetch(arch)
    files = dict(files or {})
    order = modules_in_order(guest, modules)
    for ko in order:
        files[f"/lib/modules/{ko.name}"] = ko
    files["/etc/modules-order"] = "".join(f"{ko.name}\n" for ko in order).encode()
    cpio = _Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "root"):
        cpio.directory(d)
    cpio.char_device("dev/console", 5, 1)
    cpio.char_device("dev/null", 1, 3)
    cpio.file("bin/busybox", guest.busybox.read_bytes())
    cpio.file("init", init_script.encode())
    made = {"bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "root"}
    for guest_path, source in files.items():
        parts = guest_path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in made:
                cpio.directory(d)
                made.add(d)
        body = source if isinstance(source, bytes) else Path(source).read_bytes()
        cpio.file(guest_path, body)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(cpio.finish())
    return out


# ------------------------------------------------------------------------------- QEMU --

def machine_argv(arch: str) -> list[str]:
    """The Stratus machine's QEMU arguments without firmware and boot disk."""
    argv = qemu.machine_info(arch, "IMAGE", "VARS")["argv"]
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if a == "-drive" and ("if=pflash" in nxt or "id=boot" in nxt):
            i += 2
            continue
        if a == "-device" and "drive=boot" in nxt:
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def qemu_command(arch: str, kernel: Path, initrd: Path, extra: list[str] | tuple[str, ...] = (),
                 append: str = "") -> list[str]:
    """QEMU booting `kernel` with `initrd` on the Stratus machine for `arch`, plus `extra`
    (devices); `append` is added to the kernel command line."""
    cmdline = f"console={CONSOLE[arch]} panic=-1 quiet {append}".strip()
    return [*machine_argv(arch), "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", cmdline, *extra]


def run(cmd: list[str], timeout: float, until: str | None = None,
        log_path: Path | None = None) -> tuple[str, str]:
    """Runs QEMU, returns (serial text, how it ended: "exit N", "until", "timeout").
    Stops it once `until` (a regex, multiline) matched, or after `timeout` seconds."""
    pattern = re.compile(until, re.M) if until else None
    raw = bytearray()
    proc = subprocess.Popen(["timeout", "-k", "5", str(int(timeout) + 10), *cmd],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    t0 = time.monotonic()
    how = "timeout"
    try:
        while time.monotonic() - t0 < timeout:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    how = f"exit {proc.wait()}"
                    break
                raw += chunk
                if pattern and pattern.search(_clean(bytes(raw))):
                    how = "until"
                    break
            elif proc.poll() is not None:
                how = f"exit {proc.returncode}"
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    text = _clean(bytes(raw))
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(text)
    return text, how


def _clean(raw: bytes) -> str:
    return ANSI.sub(b"", raw).replace(b"\r", b"").decode("utf-8", "replace")


def _main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("fetch", "print", "shell"))
    ap.add_argument("--arch", default="x86_64", choices=qemu.ARCHES)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    try:
        guest = fetch(a.arch)
    except Unavailable as e:
        print(f"linux-guest: {e}", file=sys.stderr)
        return 1
    if a.mode == "fetch":
        print(f"linux-guest: {a.arch}: {guest.version}\n    kernel  {guest.kernel}\n    busybox {guest.busybox}")
        return 0
    initrd = build_initramfs(a.arch, init_prelude() + "echo 'linux-guest: shell (poweroff -f quits)'\n"
                             "setsid cttyhack sh\npoweroff -f\n", CACHE / a.arch / "shell.cpio", guest=guest)
    cmd = qemu_command(a.arch, guest.kernel, initrd, extra)
    if a.mode == "print":
        import shlex
        print(shlex.join(cmd))
        return 0
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(_main())
