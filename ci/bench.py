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
Exit status is non-zero only if nothing could be measured at all.
"""

from __future__ import annotations

import argparse
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


def boot_once(arch: str, image: Path, log_path: Path, extra: list[str] | None = None) -> dict:
    """One boot. Returns the figures found (missing ones are absent) and 'error' if any."""
    vars_path = qemu.fresh_vars(arch, BUILD)
    cmd = ["timeout", "-k", "5", str(int(TIMEOUT) + 10),
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
            if now - t0 > TIMEOUT:
                out["error"] = f"timeout after {TIMEOUT:.0f} s"
                break
            if ready_at is not None and now - ready_at > AFTER_READY:
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
    a = ap.parse_args()
    arches = a.arch or list(qemu.ARCHES)
    n = max(1, a.iterations)
    BUILD.mkdir(exist_ok=True)
    log_dir = BUILD / "bench-logs"
    log_dir.mkdir(exist_ok=True)

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
    ok = any("host_ready_s" in r for arch in arches for r in runs[arch])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
