"""Real clients against the demo kernel's HTTP server (`net=http`), for ci/qemu_test.py.

QEMU forwards a port on 127.0.0.1 only (`-netdev user,hostfwd=tcp:127.0.0.1:PORT-:80`);
every request here goes to that port and nowhere else. Each check returns '' when it
passed, else one line saying what went wrong. Python 3 standard library, curl and ab.

    root      curl: GET / answers, GET /bytes/65536 intact
    basic     curl: GET / (200, the ready line's facts), GET /bytes/16777216 intact
              (length and every byte of the pattern), GET /stats
    load      ab: a fixed number of keep-alive requests over a few dozen concurrent
              connections; every request must complete, none may fail
    hostile   malformed requests (400 and close), an oversized header block (431), a body
              over the limit (413), abrupt disconnects mid-request and mid-response, more
              connections than the server keeps; then the server must still answer and its
              heap use must be back where it was before
"""

from __future__ import annotations

import re
import socket
import subprocess
import time

# /bytes/N's body: byte i is i % 251 (drivers/netstack/src/http/mod.rs, BytePattern).
BYTES_PATTERN = bytes(range(251))
SIXTEEN_MIB = 16 << 20
CURL_TIMEOUT = 240
LOAD_REQUESTS = 2000
# Below the server's 32 sockets: connections of earlier checks may still be closing
# (TIME-WAIT), and a SYN finding no free socket is refused by design.
LOAD_CONCURRENCY = 24
# Heap may differ by this much after the hostile run (allocator fragmentation, counters).
HEAP_SLACK_BYTES = 64 * 1024


def _curl(port: int, path: str, *args: str, timeout: float = CURL_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", str(int(timeout)), *args,
                           f"http://127.0.0.1:{port}{path}"],
                          capture_output=True, timeout=timeout + 10)


def _stats(port: int) -> dict[str, int]:
    r = _curl(port, "/stats", timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"GET /stats: curl exit {r.returncode}: {r.stderr.decode(errors='replace').strip()}")
    return {k: int(v) for k, v in re.findall(r"(\w+)[=:] *(\d+)", r.stdout.decode(errors="replace"))}


def wait_until_answering(port: int, seconds: float = 60) -> str:
    """Slirp accepts on the host port before the guest listens: retry GET / a while."""
    end = time.monotonic() + seconds
    last = ""
    while time.monotonic() < end:
        r = _curl(port, "/", "-o", "/dev/null", "-w", "%{http_code}", timeout=10)
        if r.returncode == 0 and r.stdout == b"200":
            return ""
        last = f"curl exit {r.returncode}, status {r.stdout.decode(errors='replace')!r}"
        time.sleep(1)
    return f"GET / never answered 200 within {seconds:.0f} s ({last})"


def root(port: int, log) -> str:
    """GET / answers 200, and a 64 KiB /bytes/ body arrives intact."""
    if why := wait_until_answering(port):
        return why
    r = _curl(port, "/bytes/65536", timeout=60)
    want = (BYTES_PATTERN * 300)[:65536]
    if r.returncode != 0 or r.stdout != want:
        return f"GET /bytes/65536: curl exit {r.returncode}, {len(r.stdout)} bytes, intact={r.stdout == want}"
    log("GET / -> 200, GET /bytes/65536 intact")
    return ""


def basic(port: int, log) -> str:
    if why := wait_until_answering(port):
        return why
    r = _curl(port, "/", "-i", timeout=30)
    head = r.stdout.decode(errors="replace")
    if not head.startswith("HTTP/1.1 200"):
        return f"GET /: {head.splitlines()[0] if head else 'no answer'!r}"
    if "arch=" not in head:
        return "GET /: the body does not carry the ready line's facts (no arch=)"
    log(f"GET / -> 200, {len(r.stdout)} bytes")
    t0 = time.monotonic()
    r = _curl(port, f"/bytes/{SIXTEEN_MIB}")
    took = time.monotonic() - t0
    if r.returncode != 0:
        return f"GET /bytes/{SIXTEEN_MIB}: curl exit {r.returncode}: {r.stderr.decode(errors='replace').strip()}"
    body = r.stdout
    if len(body) != SIXTEEN_MIB:
        return f"GET /bytes/{SIXTEEN_MIB}: {len(body)} bytes arrived"
    want = (BYTES_PATTERN * (SIXTEEN_MIB // len(BYTES_PATTERN) + 1))[:SIXTEEN_MIB]
    if body != want:
        at = next(i for i in range(SIXTEEN_MIB) if body[i] != want[i])
        return f"GET /bytes/{SIXTEEN_MIB}: byte {at} is {body[at]:#x}, expected {want[at]:#x}"
    log(f"GET /bytes/{SIXTEEN_MIB} -> intact in {took:.1f} s ({SIXTEEN_MIB / took / (1 << 20):.1f} MiB/s)")
    stats = _stats(port)
    if not stats.get("requests"):
        return f"GET /stats: no requests counter in {stats}"
    log(f"GET /stats -> {stats}")
    return ""


def ab_run(port: int, requests: int, concurrency: int, path: str = "/",
           timeout: float = 600) -> tuple[str, dict[str, float]]:
    """Runs ab; ('' or why, figures)."""
    cmd = ["ab", "-q", "-k", "-s", "60", "-n", str(requests), "-c", str(concurrency),
           f"http://127.0.0.1:{port}{path}"]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    out = r.stdout.decode(errors="replace")
    figures: dict[str, float] = {}
    for key, pattern in (("complete", r"Complete requests:\s+(\d+)"),
                         ("failed", r"Failed requests:\s+(\d+)"),
                         ("non2xx", r"Non-2xx responses:\s+(\d+)"),
                         ("f_connect", r"\(Connect: (\d+)"),
                         ("f_receive", r"Receive: (\d+)"),
                         ("f_length", r"Length: (\d+)"),
                         ("f_exceptions", r"Exceptions: (\d+)\)"),
                         ("rps", r"Requests per second:\s+([\d.]+)"),
                         ("kib_s", r"Transfer rate:\s+([\d.]+)")):
        m = re.search(pattern, out)
        if m:
            figures[key] = float(m.group(1))
    if r.returncode != 0:
        return f"ab exit {r.returncode}: {(r.stderr.decode(errors='replace') or out).strip().splitlines()[-1:]}", figures
    if figures.get("complete") != requests:
        return f"ab: {figures.get('complete')} of {requests} requests completed", figures
    if figures.get("failed", 0) or figures.get("non2xx", 0):
        kinds = ", ".join(f"{k[2:]} {figures.get(k, 0):.0f}" for k in ("f_connect", "f_receive", "f_length", "f_exceptions"))
        return f"ab: {figures.get('failed', 0):.0f} failed ({kinds}), {figures.get('non2xx', 0):.0f} non-2xx", figures
    return "", figures


def load(port: int, log) -> str:
    if why := wait_until_answering(port):
        return why
    why, f = ab_run(port, LOAD_REQUESTS, LOAD_CONCURRENCY)
    if why:
        return why
    log(f"ab -k -n {LOAD_REQUESTS} -c {LOAD_CONCURRENCY} / -> {f.get('complete', 0):.0f} complete, "
        f"0 failed, {f.get('rps', 0):.0f} requests/s")
    return ""


def _exchange(port: int, data: bytes, timeout: float = 20) -> tuple[bytes, bool]:
    """Sends `data`, reads until the server closes or `timeout`: (reply, closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        reply = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return reply, False
            except ConnectionResetError:
                return reply, True
            if not chunk:
                return reply, True
            reply += chunk
        return reply, False


def _status(reply: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    return int(m.group(1)) if m else 0


def _abort(sock: socket.socket) -> None:
    """Closes with a reset (SO_LINGER 0), as a client that vanishes does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def hostile(port: int, log) -> str:
    if why := wait_until_answering(port):
        return why
    before = _stats(port)
    if "heap_used" not in before:
        return f"GET /stats has no heap_used: {before}"
    cases = [
        ("garbage", b"\x00\x01\x02 not http at all\r\n\r\n", (400,)),
        ("no version", b"GET /\r\n\r\n", (400,)),
        ("bad version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", (400, 505)),
        ("header without colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n", (400,)),
        ("bad content-length", b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", (400,)),
        ("bare LF", b"GET / HTTP/1.1\nHost: x\n\n", (400,)),
        ("header block over the limit",
         b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", (431,)),
        ("body over the limit", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n", (413,)),
    ]
    for name, data, want in cases:
        reply, closed = _exchange(port, data)
        if _status(reply) not in want:
            return f"{name}: answered {reply[:60]!r}, expected {' or '.join(map(str, want))}"
        if not closed:
            return f"{name}: answered {want} but the connection stayed open"
    log(f"{len(cases)} malformed/oversized requests -> 400/505/431/413 and closed")
    # Abrupt disconnects: mid-request, and mid-response of a large body.
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHo")
        _abort(s)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /bytes/8388608 HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        _abort(s)
    # More connections than the server keeps, all idle at once, then dropped.
    flood = []
    for _ in range(80):
        try:
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        except OSError:
            break
    for s in flood:
        _abort(s)
    log(f"20 abrupt disconnects, {len(flood)} connections opened at once and reset")
    # The server reclaims the sockets (idle timeouts, resets): wait, then it must answer
    # and its heap must be back.
    end = time.monotonic() + 60
    last: dict[str, int] = {}
    while time.monotonic() < end:
        time.sleep(2)
        if wait_until_answering(port, 20):
            continue
        last = _stats(port)
        if abs(last.get("heap_used", 1 << 40) - before["heap_used"]) <= HEAP_SLACK_BYTES \
                and last.get("active", 0) <= 1:
            log(f"after: heap_used {before['heap_used']} -> {last['heap_used']}, stats {last}")
            return ""
    return f"heap_used {before['heap_used']} before, {last.get('heap_used')} after (or connections left open): {last}"


CHECKS = {"root": root, "basic": basic, "load": load, "hostile": hostile}
