#!/usr/bin/env python3
"""Turns the `acpi=dump` lines of a serial log back into table files.

    python3 ci/acpi-dump.py LOG OUTDIR

Boot any Stratus kernel with `acpi=dump` on its command line (on QEMU or a cloud VM,
serial console captured to LOG); every table the kernel could read is printed as
`acpi: dump SIG @PHYS len N` followed by `acpi: dump SIG +OFFSET HEX` lines. This writes
OUTDIR/SIG@PHYS.dat per table (the RSDP, the root table, every listed table and the
DSDT) and checks each file's length against the header line. The host tests replay
such directories through discovery at their original physical addresses
(kernel-core/src/acpi/testdata/).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADER = re.compile(r"acpi: dump (\S+) @0x([0-9a-f]+) len (\d+)$")
DATA = re.compile(r"acpi: dump (\S+) \+([0-9a-f]+) ([0-9a-f]*)$")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    log, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    current = None  # (name, phys, length, bytearray)
    written = 0

    def flush() -> None:
        nonlocal written
        if current is None:
            return
        name, phys, length, data = current
        if len(data) != length:
            raise SystemExit(f"acpi-dump: {name}@{phys:x}: {len(data)} bytes, header said {length}")
        (out / f"{name}@{phys:x}.dat").write_bytes(bytes(data))
        written += 1

    for line in log.read_text(errors="replace").splitlines():
        line = line.rstrip("\r")
        if m := HEADER.search(line):
            flush()
            current = (m.group(1), int(m.group(2), 16), int(m.group(3)), bytearray())
        elif (m := DATA.search(line)) and current is not None and m.group(1) == current[0]:
            if int(m.group(2), 16) != len(current[3]):
                raise SystemExit(f"acpi-dump: {current[0]}: a line is missing before +{m.group(2)}")
            current[3].extend(bytes.fromhex(m.group(3)))
    flush()
    print(f"acpi-dump: {written} tables written to {out}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
