#!/usr/bin/env python3
"""HTTP figures for Stratus beside a Linux guest (`make bench` runs this after ci/bench.py).
Prints; never passes or fails on a figure.

    python3 ci/net_bench.py [--arch x86_64] [--rounds N]   (env STRATUS_NET_BENCH_ROUNDS, default 2)

Both guests run on the same QEMU machine (stratus-image machine's, TCG) with the same
device model: a virtio-net-pci NIC on QEMU's user network, the guest's port 80 forwarded
to a free port on 127.0.0.1 (nothing else is ever addressed). One QEMU at a time, and the
guest that boots first alternates between rounds.

  - Stratus: the demo kernel with `net=http` (build/net-bench.img), its own HTTP/1.1
    server (drivers/netstack): `/` (a few hundred bytes) and `/bytes/16777216`.
  - Linux: Debian's cloud kernel with a busybox initramfs (ci/linux_guest.py) running
    `busybox httpd` on a static address, serving a page of the same size as Stratus's `/`
    and a 16 MiB file.

The same load against each, with ab from the host:
  - requests/s, one request at a time: `ab -n 300 -c 1 /`
  - requests/s, a new connection per request: `ab -n 1000 -c 24 /`
  - requests/s, keep-alive: `ab -k -n 4000 -c 24 /` (busybox httpd closes every
    connection, so for Linux this is connection-per-request again: said in the table)
  - MiB/s: `ab -n 16 -c 4` of the 16 MiB body (ab's transfer rate)
Each figure is the median of the rounds; ratios are Stratus / Linux.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_checks  # noqa: E402
import linux_guest  # noqa: E402
import qemu  # noqa: E402

ROOT = qemu.ROOT
BUILD = ROOT / "build"
BIG = 16 << 20
BOOT_TIMEOUT = 180.0
LOADS = [
    # (key, label, ab arguments, path)
    ("rps_serial", "requests/s, one at a time (ab -c 1)", ["-n", "300", "-c", "1"], "/"),
    ("rps_close", "requests/s, new connection each (ab -c 24)", ["-n", "1000", "-c", "24"], "/"),
    ("rps_keepalive", "requests/s, keep-alive (ab -k -c 24)", ["-k", "-n", "4000", "-c", "24"], "/"),
    ("mib_s", "MiB/s, 16 MiB bodies (ab -c 4)", ["-n", "16", "-c", "4"], "BIG"),
]

LINUX_INIT = """
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p /www
busybox httpd -p 80 -h /www
echo "linux: httpd ready"
while true; do sleep 3600; done
"""


def user_net(port: int) -> list[str]:
    return ["-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:80",
            "-device", "virtio-net-pci,netdev=net0"]


class Guest:
    """A QEMU running in the background; its serial output is drained into a log."""

    def __init__(self, cmd: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self.raw = bytearray()
        self.proc = subprocess.Popen(["timeout", "-k", "5", "900", *cmd], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)

    def pump(self, wait: float = 0.1) -> str:
        r, _, _ = select.select([self.proc.stdout.fileno()], [], [], wait)
        if r:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                chunk = b""
            self.raw += chunk
        return linux_guest._clean(bytes(self.raw))

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        rx = re.compile(pattern, re.M)
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            m = rx.search(self.pump())
            if m:
                return m
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log_path.write_text(self.pump(0))
        self.proc.stdout.close()


def measure(port: int, big_path: str) -> dict[str, float]:
    out: dict[str, float] = {}
    # Warm-up (first connections, page cache, ARP): not measured.
    subprocess.run(["ab", "-q", "-s", "30", "-n", "50", "-c", "4", f"http://127.0.0.1:{port}/"],
                   capture_output=True, timeout=300)
    for key, _label, args, path in LOADS:
        path = big_path if path == "BIG" else path
        cmd = ["ab", "-q", "-s", "60", *args, f"http://127.0.0.1:{port}{path}"]
        r = subprocess.run(cmd, capture_output=True, timeout=600)
        text = r.stdout.decode(errors="replace")
        rps = re.search(r"Requests per second:\s+([\d.]+)", text)
        rate = re.search(r"Transfer rate:\s+([\d.]+)", text)
        failed = re.search(r"Failed requests:\s+(\d+)", text)
        if r.returncode != 0 or not rps:
            print(f"    ab {' '.join(args)} {path}: failed ({r.stderr.decode(errors='replace').strip()[-120:]})")
            continue
        out[key] = float(rate.group(1)) / 1024 if key == "mib_s" and rate else float(rps.group(1))
        if failed and int(failed.group(1)):
            out[key + "_failed"] = float(failed.group(1))
    return out


def round_on(cmd: list[str], port: int, ready: str, big_path: str, log_path: Path) -> dict[str, float]:
    """Boots `cmd`, waits for the `ready` line and an answer on `port`, measures, stops."""
    guest = Guest(cmd, log_path)
    try:
        if not guest.wait_for(ready, BOOT_TIMEOUT):
            print(f"    no {ready!r} line (log {log_path})")
            return {}
        if http_checks.wait_until_answering(port, 60):
            print(f"    the server does not answer (log {log_path})")
            return {}
        return measure(port, big_path)
    finally:
        guest.stop()


def stratus_round(arch: str, image: Path, log_dir: Path, n: int) -> dict[str, float]:
    port = http_checks_port()
    vars_path = qemu.fresh_vars(arch, BUILD)
    try:
        cmd = qemu.qemu_command(arch, image, vars_path, snapshot=True, extra=user_net(port))
        return round_on(cmd, port, r"^stratus: ready .*\bip=\d", f"/bytes/{BIG}",
                        log_dir / f"{arch}-stratus-{n}.log")
    finally:
        vars_path.unlink(missing_ok=True)


def linux_round(arch: str, kernel: Path, initrd: Path, log_dir: Path, n: int) -> dict[str, float]:
    port = http_checks_port()
    cmd = linux_guest.qemu_command(arch, kernel, initrd, user_net(port))
    return round_on(cmd, port, r"^linux: httpd ready", "/big", log_dir / f"{arch}-linux-{n}.log")


def http_checks_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Stratus's `/` is the ready line and the interface line: 340 bytes or so (a few bytes
# more or less by architecture and loader); Linux serves a page of that size.
PAGE = b"x" * 339 + b"\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", action="append", choices=qemu.ARCHES)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("STRATUS_NET_BENCH_ROUNDS", "2")))
    a = ap.parse_args()
    arches = a.arch or list(qemu.ARCHES)
    log_dir = BUILD / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    image = BUILD / "net-bench.img"
    p = qemu.build_image(image, "net=http", limine_dir=os.environ.get("LIMINE_DIR", ""))
    if p.returncode != 0:
        print(f"net bench: could not build {image}:\n{p.stdout}{p.stderr}", file=sys.stderr)
        return 1
    print(f"net bench: {a.rounds} round(s) per architecture, one QEMU at a time; logs in "
          f"{log_dir.relative_to(ROOT)}/", flush=True)
    for arch in arches:
        linux = None
        try:
            guest = linux_guest.fetch(arch)
            initrd = linux_guest.build_initramfs(
                arch, linux_guest.init_prelude() + LINUX_INIT, BUILD / "linux-guest" / f"httpd-{arch}.cpio",
                files={"/www/index.html": PAGE, "/www/big": bytes(i % 251 for i in range(BIG))},
                guest=guest, modules=("virtio_net", "virtio_pci"))
            linux = (guest.kernel, initrd, guest.version)
        except linux_guest.Unavailable as e:
            print(f"  {arch}: no Linux guest ({e}); Stratus only")
        results: dict[str, list[dict[str, float]]] = {"stratus": [], "linux": []}
        for n in range(max(1, a.rounds)):
            order = ["stratus", "linux"] if n % 2 == 0 else ["linux", "stratus"]
            for side in order:
                if side == "stratus":
                    results[side].append(stratus_round(arch, image, log_dir, n + 1))
                elif linux:
                    results[side].append(linux_round(arch, linux[0], linux[1], log_dir, n + 1))
            print(f"  {arch} round {n + 1}: stratus {results['stratus'][-1]}"
                  + (f" linux {results['linux'][-1]}" if linux else ""), flush=True)
        print()
        head = f"HTTP {arch} (virtio-net, QEMU user networking, TCG)"
        print(f"{head:52}{'Stratus':>12}{'Linux':>12}{'ratio':>8}")
        for key, label, _args, _path in LOADS:
            s = [r[key] for r in results["stratus"] if key in r]
            l = [r[key] for r in results["linux"] if key in r]
            sm = statistics.median(s) if s else None
            lm = statistics.median(l) if l else None
            cell = lambda v: f"{v:.0f}" if v is not None and v >= 100 else (f"{v:.1f}" if v is not None else "-")
            ratio = f"{sm / lm:.2f}" if sm and lm else "-"
            note = " (Linux: busybox closes)" if key == "rps_keepalive" else ""
            failed = [r.get(key + "_failed", 0) for side in results.values() for r in side]
            warn = f"   failed requests seen: {sum(failed):.0f}" if any(failed) else ""
            print(f"  {label + note:50}{cell(sm):>12}{cell(lm):>12}{ratio:>8}{warn}")
        if linux:
            print(f"  (Linux: {linux[2]}, busybox httpd; medians of {a.rounds} round(s))")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
