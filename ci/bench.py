#!/usr/bin/env python3
"""Boot-time and size figures for Stratus (`make bench`). Prints; never passes or fails on time.

    python3 ci/bench.py [--arch x86_64] [--iterations N]    (env STRATUS_BENCH_ITERATIONS, default 3)

Per architecture it boots an image whose command line is `exit=qemu bench=ipi-latency,irq-latency` (built
here with stratus-image build, build/bench.img) N times, one QEMU at a time, and reads from the
serial log
  - loader time   `stratus-loader: handoff elapsed_us=N`   (EFI entry -> handoff)
  - kernel time   `stratus: ready ... boot_ms=N`           (kernel entry -> ready)
and measures on the host the wall time from QEMU's start to the handoff and ready lines.
Kernel lines `stratus: bench KEY=VALUE ...` are collected and shown too (for figures the
kernel measures itself: after the ready line, `bench=irq-latency` runs 1000 timer deadlines
1 ms apart and prints the delay from each deadline to the timer handler's entry, median and
99th percentile, in counter ticks and ns). Then it prints kernel ELF sizes (file,
sum of PT_LOAD memsz, text/data/bss), loader .efi sizes and the image's size.
Then the block figures (`--only block` for these alone, `--only boot` to leave them out):
on each architecture, STRATUS_BENCH_BLOCK_ROUNDS rounds (default 2) of one Stratus boot
(`bench=block bench_seconds=N`, N = STRATUS_BENCH_BLOCK_SECONDS, default 3) and one boot of
the Linux reference guest (ci/linux_guest.py: Debian's cloud kernel, busybox, and
tools/blockbench's `blockbench-linux`), both reading the same two 128 MiB raw files
(build/bench-disks/, attached read-only) through an NVMe controller and a virtio-blk-pci
device: 4 KiB random reads at queue depth 1 and 32 (IOPS, latency median and 99th
percentile), 128 KiB sequential reads (MiB/s). A table per architecture and device shows
Stratus, Linux (median of the rounds, min-max beside it) and their ratio. When the Linux
guest cannot be had (no Debian packages, no musl target) it says why and shows Stratus only.
Exit status is non-zero only if nothing could be measured at all.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no ci/__pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import linux_guest  # noqa: E402
import qemu  # noqa: E402

ROOT = qemu.ROOT
BUILD = ROOT / "build"
ANSI = re.compile(rb"\x1b(\[[0-9;=?]*[ -/]*[@-~]|[@-Z\\-_])")
HANDOFF = re.compile(r"stratus-loader: handoff elapsed_us=(\d+)")
READY = re.compile(r"^stratus: ready [^\n]*\n", re.M)  # a complete line
BOOT_MS = re.compile(r"\bboot_ms=(\d+)")
BENCH = re.compile(r"^stratus: bench (.*)$", re.M)
TIMEOUT = 120.0
# Seconds a kernel may keep running after its ready line (in-kernel benchmarks).
AFTER_READY = 20.0


def clean(raw: bytes) -> str:
    return ANSI.sub(b"", raw).replace(b"\r", b"").decode("utf-8", "replace")


def boot_once(arch: str, image: Path, log_path: Path, extra: list[str] | None = None,
              after_ready: float = AFTER_READY) -> dict:
    """One boot. Returns the figures found (missing ones are absent) and 'error' if any;
    'text' is the serial log. The kernel may run `after_ready` seconds after its ready
    line."""
    vars_path = qemu.fresh_vars(arch, BUILD)
    timeout = TIMEOUT + after_ready
    cmd = ["timeout", "-k", "5", str(int(timeout) + 10),
           *qemu.qemu_command(arch, image, vars_path, snapshot=True, extra=extra or [])]
    out: dict = {}
    raw = bytearray()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    ready_at = None
    try:
        while True:
            now = time.monotonic()
            if now - t0 > timeout:
                out["error"] = f"timeout after {timeout:.0f} s"
                break
            if ready_at is not None and now - ready_at > after_ready:
                break  # the kernel did not power off after ready: stop it
            r, _, _ = select.select([fd], [], [], 0.05)
            if not r:
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                break
            raw += chunk
            text = clean(bytes(raw))
            if "host_handoff_s" not in out and HANDOFF.search(text):
                out["host_handoff_s"] = time.monotonic() - t0
            if ready_at is None:
                if READY.search(text):
                    ready_at = time.monotonic()
                    out["host_ready_s"] = ready_at - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        vars_path.unlink(missing_ok=True)
    text = clean(bytes(raw))
    log_path.write_text(text)
    out["text"] = text
    m = HANDOFF.search(text)
    if m:
        out["loader_us"] = int(m.group(1))
    m = READY.search(text)
    if m:
        b = BOOT_MS.search(m.group(0))
        if b:
            out["kernel_ms"] = int(b.group(1))
    for line in BENCH.findall(text):
        for kv in line.split():
            if "=" in kv:
                k, v = kv.split("=", 1)
                out.setdefault("bench", {})[k] = v
    if "host_ready_s" not in out and "error" not in out:
        out["error"] = "no ready line"
    return out


# ------------------------------------------------------------------------------ block --
#
# Stratus (`bench=block`, targets/demo/src/block_bench.rs) and a Linux guest
# (ci/linux_guest.py with tools/blockbench's helper) read the same two raw files through
# the same QEMU devices on the same machine, one QEMU at a time, both in each round (which
# goes first alternates) so that host load falls on both alike.

BLOCK_LINE = re.compile(r"^(stratus|linux): bench block (disk=\S+ workload=.*)$", re.M)
BLOCK_DISKS = BUILD / "bench-disks"
BLOCK_DISK_MIB = 128
# The device kinds and the QEMU devices for them (the drive ids are referred to below).
BLOCK_DEVICES = [
    ("nvme", ["-device", "nvme,serial=bench-nvme,drive=bench-nvme"]),
    ("virtio-blk", ["-device", "virtio-blk-pci,drive=bench-virtio"]),
]
WORKLOADS = ["rand4k-qd1", "rand4k-qd32", "rand4k-qd32-threads", "seq128k-qd1"]
LINUX_INIT = r"""
echo "linux: init"
for i in $(seq 150); do [ -e /sys/block/nvme0n1 ] && [ -e /sys/block/vda ] && break; sleep 0.1; done
for d in /sys/block/nvme*n* /sys/block/vd*; do
    n=${d##*/}
    case $n in *c*) continue;; esac   # nvme0c0n1: a multipath path, not a disk
    [ -e "$d" ] && /bin/blockbench-linux /dev/$n SECONDS
done
echo "linux: bench done"
poweroff -f
"""


def block_disks() -> list[str]:
    """The two data disks (raw files of pseudo-random bytes; block 0 zero, so they hold no
    partition table) as QEMU arguments, read-only: neither guest can write to them."""
    BLOCK_DISKS.mkdir(parents=True, exist_ok=True)
    args = []
    for kind, device in BLOCK_DEVICES:
        name = "nvme" if kind == "nvme" else "virtio"
        path = BLOCK_DISKS / f"{name}.raw"
        if not path.is_file() or path.stat().st_size != BLOCK_DISK_MIB << 20:
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                f.write(bytes(4096))
                f.write(os.urandom((1 << 20) - 4096))
                for _ in range(BLOCK_DISK_MIB - 1):
                    f.write(os.urandom(1 << 20))
            tmp.rename(path)
        args += ["-drive", f"if=none,id=bench-{name},format=raw,file={path},readonly=on", *device]
    return args


def kind_of(disk: str) -> str | None:
    if disk.startswith("nvme"):
        return "nvme"
    if disk.startswith("virtio-blk") or disk.startswith("vd"):
        return "virtio-blk"
    return None


def block_lines(text: str) -> dict[tuple[str, str, str], dict]:
    """(side, device kind, workload) -> the line's key=value pairs."""
    out = {}
    for side, rest in BLOCK_LINE.findall(text):
        kv = dict(x.split("=", 1) for x in rest.split() if "=" in x)
        kind = kind_of(kv.get("disk", ""))
        if kind:
            out[(side, kind, kv.get("workload", ""))] = kv
    return out


def linux_helper(arch: str) -> Path:
    """tools/blockbench's Linux helper, a static musl binary for `arch`."""
    target = f"{arch}-unknown-linux-musl"
    env = dict(os.environ, **{f"CARGO_TARGET_{target.upper().replace('-', '_')}_LINKER": "rust-lld"})
    cmd = ["cargo", "build", "--quiet", "--release", "-p", "stratus-blockbench",
           "--bin", "blockbench-linux", "--target", target]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if p.returncode != 0 and "target may not be installed" in p.stderr:
        subprocess.run(["rustup", "target", "add", target], cwd=ROOT, capture_output=True)
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise linux_guest.Unavailable(f"could not build blockbench-linux for {target}: "
                                      f"{p.stderr.strip()[-300:]}")
    return qemu.target_dir() / target / "release" / "blockbench-linux"


def block_bench(arches: list[str], runs: int, seconds: int, log_dir: Path) -> None:
    image = BUILD / "bench-block.img"
    p = qemu.build_image(image, f"exit=qemu bench=block bench_seconds={seconds}",
                         limine_dir=os.environ.get("LIMINE_DIR", ""))
    if p.returncode != 0:
        print(f"bench: block: could not build {image}:\n{p.stdout}{p.stderr}", file=sys.stderr)
        return
    disks = block_disks()
    # Each guest runs 4 workloads (Linux; Stratus 3) on 2 disks for `seconds` each.
    budget = 8 * seconds + 60
    linux: dict[str, tuple | str] = {}
    for arch in arches:
        try:
            guest = linux_guest.fetch(arch)
            helper = linux_helper(arch)
            initrd = linux_guest.build_initramfs(
                arch, linux_guest.init_prelude() + LINUX_INIT.replace("SECONDS", str(seconds)),
                BUILD / "linux-guest" / arch / "bench-block.cpio",
                files={"/bin/blockbench-linux": helper}, guest=guest,
                modules=("virtio_blk", "virtio_pci"))
            linux[arch] = (guest, initrd)
        except linux_guest.Unavailable as e:
            linux[arch] = str(e)
    print(f"bench: block: {runs} round(s) per architecture, {seconds} s per workload, "
          "one QEMU at a time (Stratus and Linux in each, alternating which goes first)", flush=True)
    for arch in arches:
        if isinstance(linux[arch], str):
            print(f"bench: block: {arch}: no Linux guest, Stratus side only: {linux[arch]}",
                  flush=True)
    results: dict[str, list[dict]] = {arch: [] for arch in arches}
    for arch in arches:
        for i in range(runs):
            found: dict = {}

            def stratus() -> None:
                r = boot_once(arch, image, log_dir / f"{arch}-block-{i + 1}.log", disks,
                              after_ready=budget)
                got = block_lines(r.get("text", ""))
                found.update(got)
                note = f" ({r['error']})" if "error" in r else ""
                print(f"  {arch:8} round {i + 1}/{runs}: Stratus {len(got)} figure line(s){note}",
                      flush=True)

            def linux_side() -> None:
                if not isinstance(linux[arch], tuple):
                    return
                guest, initrd = linux[arch]
                cmd = linux_guest.qemu_command(arch, guest.kernel, initrd, disks)
                text, how = linux_guest.run(cmd, budget + 60, until=r"^linux: bench done",
                                            log_path=log_dir / f"{arch}-block-linux-{i + 1}.log")
                got = block_lines(text)
                found.update(got)
                print(f"  {arch:8} round {i + 1}/{runs}: Linux {len(got)} figure line(s)"
                      f"{'' if how == 'until' else f' ({how})'}", flush=True)

            # Alternate which side goes first, so a change of host load between the
            # two boots of a round does not always fall on the same side.
            for side in ((stratus, linux_side) if i % 2 == 0 else (linux_side, stratus)):
                side()
            results[arch].append(found)
    for arch in arches:
        block_table(arch, results[arch], linux[arch])


def block_table(arch: str, rounds: list[dict], linux) -> None:
    """Median over rounds (min-max in brackets when there are several) and the ratio of
    the medians."""
    def values(side: str, kind: str, workload: str, key: str) -> list[float]:
        out = []
        for r in rounds:
            kv = r.get((side, kind, workload))
            if kv and key in kv:
                try:
                    out.append(float(kv[key]))
                except ValueError:
                    pass
        return out

    def cell(v: list[float], fmt: str) -> str:
        if not v:
            return "-"
        m = fmt.format(statistics.median(v))
        if len(v) > 1:
            return f"{m} ({fmt.format(min(v))}-{fmt.format(max(v))})"
        return m

    def ratio(a: list[float], b: list[float], higher_better: bool = True) -> str:
        if not a or not b or statistics.median(b) == 0 or statistics.median(a) == 0:
            return "-"
        x = statistics.median(a) / statistics.median(b)
        return f"{x:.2f}x" if higher_better else f"{1 / x:.2f}x"

    rows = [
        ("4 KiB random QD1: IOPS", "rand4k-qd1", "iops", "{:.0f}", True),
        ("  latency median (us)", "rand4k-qd1", "lat_median_us", "{:.0f}", False),
        ("  latency p99 (us)", "rand4k-qd1", "lat_p99_us", "{:.0f}", False),
        ("4 KiB random QD32: IOPS", "rand4k-qd32", "iops", "{:.0f}", True),
        ("  latency median (us)", "rand4k-qd32", "lat_median_us", "{:.0f}", False),
        ("  latency p99 (us)", "rand4k-qd32", "lat_p99_us", "{:.0f}", False),
        ("  reads in flight (mean)", "rand4k-qd32", "inflight_mean", "{:.1f}", None),
        ("  Linux, 32 threads: IOPS", "rand4k-qd32-threads", "iops", "{:.0f}", None),
        ("  Linux, 32 threads: in flight", "rand4k-qd32-threads", "inflight_mean", "{:.1f}", None),
        ("128 KiB sequential QD1: MiB/s", "seq128k-qd1", "mib_s", "{:.0f}", True),
        ("  latency median (us)", "seq128k-qd1", "lat_median_us", "{:.0f}", False),
    ]
    for kind, _ in BLOCK_DEVICES:
        print()
        print(f"block {arch} {kind} ({len(rounds)} round(s): median (min-max))")
        print(f"  {'':32}{'Stratus':>24}{'Linux':>24}{'Stratus/Linux':>15}")
        if isinstance(linux, str):
            print(f"  (no Linux guest: {linux})")
        for label, workload, key, fmt, better in rows:
            st = values("stratus", kind, workload, key)
            li = values("linux", kind, workload, key)
            if not st and not li:
                continue
            r = ratio(st, li, better) if better is not None else ""
            print(f"  {label:32}{cell(st, fmt):>24}{cell(li, fmt):>24}{r:>15}")
        qd1 = (values("stratus", kind, "rand4k-qd1", "iops"), values("linux", kind, "rand4k-qd1", "iops"))
        qd32 = (values("stratus", kind, "rand4k-qd32", "iops"), values("linux", kind, "rand4k-qd32", "iops"))
        if all(qd1) and all(qd32):
            # Rounded down, so that a shortfall never prints as "1.00x".
            x1 = math.floor(100 * statistics.median(qd1[0]) / statistics.median(qd1[1])) / 100
            x32 = math.floor(100 * statistics.median(qd32[0]) / statistics.median(qd32[1])) / 100
            print(f"  goal (QD1 >= 1.5x Linux, QD32 >= 1x): QD1 {x1:.2f}x "
                  f"{'met' if x1 >= 1.5 else 'not met'}, QD32 {x32:.2f}x "
                  f"{'met' if x32 >= 1 else 'not met'}")


# ------------------------------------------------------------------------------ sizes --

def elf_sizes(path: Path) -> dict:
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return {"file": len(data)}
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 54)
    memsz = filesz = 0
    for i in range(phnum):
        off = phoff + i * phentsize
        p_type = struct.unpack_from("<I", data, off)[0]
        if p_type == 1:  # PT_LOAD
            p_filesz, p_memsz = struct.unpack_from("<QQ", data, off + 32)
            memsz += p_memsz
            filesz += p_filesz
    text = rodata_data = bss = 0
    for i in range(shnum if shoff else 0):
        off = shoff + i * shentsize
        if off + 64 > len(data):
            break
        sh_type, sh_flags = struct.unpack_from("<IQ", data, off + 4)
        sh_size = struct.unpack_from("<Q", data, off + 32)[0]
        if not sh_flags & 0x2:  # SHF_ALLOC
            continue
        if sh_type == 8:  # SHT_NOBITS
            bss += sh_size
        elif sh_flags & 0x4:  # SHF_EXECINSTR
            text += sh_size
        else:
            rodata_data += sh_size
    r = {"file": len(data), "load_memsz": memsz, "load_filesz": filesz}
    if shnum:
        r.update(text=text, data=rodata_data, bss=bss)
    return r


def binutils_size(path: Path) -> str | None:
    try:
        p = subprocess.run(["size", str(path)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0:
        return None
    lines = p.stdout.strip().splitlines()
    if len(lines) < 2:
        return None
    f = lines[1].split()
    return f"text {kib(int(f[0]))}, data {kib(int(f[1]))}, bss {kib(int(f[2]))}"


def kib(n: float) -> str:
    if n >= 10 * 1024 * 1024:
        return f"{n / 1048576:.1f} MiB"
    return f"{n / 1024:.1f} KiB"


def stat(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    return f"{fmt.format(min(values))} / {fmt.format(statistics.median(values))}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", action="append", choices=qemu.ARCHES)
    ap.add_argument("--iterations", "-n", type=int,
                    default=int(os.environ.get("STRATUS_BENCH_ITERATIONS", "3")))
    ap.add_argument("--image", default=os.environ.get("STRATUS_IMAGE", str(BUILD / "stratus.img")),
                    help="image whose size is reported (default build/stratus.img)")
    ap.add_argument("--only", choices=("boot", "block"),
                    help="only the boot-time and size figures, or only the block figures")
    ap.add_argument("--block-rounds", type=int,
                    default=int(os.environ.get("STRATUS_BENCH_BLOCK_ROUNDS", "2")))
    ap.add_argument("--block-seconds", type=int,
                    default=int(os.environ.get("STRATUS_BENCH_BLOCK_SECONDS", "3")))
    a = ap.parse_args()
    arches = a.arch or list(qemu.ARCHES)
    n = max(1, a.iterations)
    BUILD.mkdir(exist_ok=True)
    log_dir = BUILD / "bench-logs"
    log_dir.mkdir(exist_ok=True)
    if a.only == "block":
        block_bench(arches, max(1, a.block_rounds), max(1, a.block_seconds), log_dir)
        return 0

    bench_img = BUILD / "bench.img"
    p = qemu.build_image(bench_img, "exit=qemu bench=ipi-latency,irq-latency", limine_dir=os.environ.get("LIMINE_DIR", ""))
    if p.returncode != 0:
        print(f"bench: could not build {bench_img}:\n{p.stdout}{p.stderr}", file=sys.stderr)
        return 1

    print(f"bench: {n} boot(s) per architecture, one QEMU at a time (TCG), logs in "
          f"{log_dir.relative_to(ROOT)}/", flush=True)
    runs: dict[str, list[dict]] = {arch: [] for arch in arches}
    for arch in arches:
        for i in range(n):
            r = boot_once(arch, bench_img, log_dir / f"{arch}-{i + 1}.log")
            runs[arch].append(r)
            note = f"  ({r['error']})" if "error" in r else ""
            ready = f"{r['host_ready_s']:.2f} s" if "host_ready_s" in r else "-"
            print(f"  {arch:8} run {i + 1}/{n}: ready after {ready}{note}", flush=True)

    # Kernel entry -> ready with 1 and with 4 CPUs (the runs above have QEMU's default 2).
    cpu_runs: dict[tuple[str, int], list[dict]] = {}
    for arch in arches:
        for cpus in (1, 4):
            cpu_runs[(arch, cpus)] = [
                boot_once(arch, bench_img, log_dir / f"{arch}-smp{cpus}-{i + 1}.log",
                          ["-smp", str(cpus)])
                for i in range(n)]
            print(f"  {arch:8} {cpus} CPU(s): {n} run(s) done", flush=True)

    def col(arch: str, key: str, scale: float, fmt: str) -> str:
        return stat([r[key] * scale for r in runs[arch] if key in r], fmt)

    w = 26
    print()
    print(f"{'boot time (min / median)':40}" + "".join(f"{arch:>{w}}" for arch in arches))
    rows = [
        ("loader: EFI entry -> handoff", "loader_us", 1 / 1000, "{:.1f} ms"),
        ("kernel: entry -> ready (boot_ms)", "kernel_ms", 1, "{:.0f} ms"),
        ("host: QEMU start -> handoff line", "host_handoff_s", 1, "{:.2f} s"),
        ("host: QEMU start -> ready line", "host_ready_s", 1, "{:.2f} s"),
    ]
    for label, key, scale, fmt in rows:
        print(f"  {label:38}" + "".join(f"{col(arch, key, scale, fmt):>{w}}" for arch in arches))
    for cpus in (1, 4):
        cells = [stat([r["kernel_ms"] for r in cpu_runs[(arch, cpus)] if "kernel_ms" in r], "{:.0f} ms")
                 for arch in arches]
        print(f"  {f'kernel: entry -> ready, {cpus} CPU(s)':38}" + "".join(f"{c:>{w}}" for c in cells))
    keys = sorted({k for arch in arches for r in runs[arch] for k in r.get("bench", {})})
    for k in keys:
        vals = []
        for arch in arches:
            v = [r["bench"][k] for r in runs[arch] if k in r.get("bench", {})]
            vals.append(" ".join(v) if v else "-")
        print(f"  {'kernel: ' + k:38}" + "".join(f"{v:>{w}}" for v in vals))

    print()
    print(f"{'sizes':40}" + "".join(f"{arch:>{w}}" for arch in arches))
    info = {}
    for arch in arches:
        k = qemu.kernel_path(arch)
        info[arch] = elf_sizes(k) if k.is_file() else {}
    def size_row(label, fn):
        print(f"  {label:38}" + "".join(f"{fn(arch):>{w}}" for arch in arches))
    size_row("kernel ELF file", lambda a_: kib(info[a_]["file"]) if info[a_] else "missing")
    size_row("kernel PT_LOAD memsz (sum)", lambda a_: kib(info[a_]["load_memsz"]) if "load_memsz" in info[a_] else "-")
    size_row("kernel PT_LOAD filesz (sum)", lambda a_: kib(info[a_]["load_filesz"]) if "load_filesz" in info[a_] else "-")
    size_row("kernel text (sections)", lambda a_: kib(info[a_]["text"]) if "text" in info[a_] else "-")
    size_row("kernel rodata+data (sections)", lambda a_: kib(info[a_]["data"]) if "data" in info[a_] else "-")
    size_row("kernel bss (sections)", lambda a_: kib(info[a_]["bss"]) if "bss" in info[a_] else "-")
    limine = os.environ.get("LIMINE_DIR")
    def loader_file(arch: str) -> Path:
        if limine:
            return Path(limine) / ("BOOTX64.EFI" if arch == "x86_64" else "BOOTAA64.EFI")
        return qemu.loader_path(arch)
    size_row("loader .efi" + (" (genuine Limine)" if limine else ""),
             lambda a_: kib(loader_file(a_).stat().st_size) if loader_file(a_).is_file() else "missing")
    for arch in arches:
        k = qemu.kernel_path(arch)
        s = binutils_size(k) if k.is_file() else None
        if s:
            print(f"  size(1) {arch}: {s}")
    img = Path(a.image)
    if img.is_file():
        st = img.stat()
        print(f"  image {img.relative_to(ROOT) if img.is_relative_to(ROOT) else img}: "
              f"{kib(st.st_size)} apparent, {kib(st.st_blocks * 512)} allocated (sparse)")
    else:
        print(f"  image {img}: missing (make image)")
    if a.only != "boot":
        print()
        block_bench(arches, max(1, a.block_rounds), max(1, a.block_seconds), log_dir)
    ok = any("host_ready_s" in r for arch in arches for r in runs[arch])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
