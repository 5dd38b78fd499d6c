"""Refuse a build whose native libraries are for another CPU than the one it was built for.

    python3 scripts/check_layer_architecture.py BUILD_DIR arm64|x86_64

Reads the ELF header of every shared library under BUILD_DIR (``*.so``, ``*.so.*``) and the layer's
own record (``image_analysis/build.json``). Any library or record for another CPU is listed and the
exit code is 1: a function given such a layer refuses every event. Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# ELF e_machine values (System V ABI): what each Lambda architecture runs.
MACHINES = {"arm64": 183, "x86_64": 62}
NAMES = {183: "aarch64", 62: "x86_64", 3: "i386", 40: "arm"}


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of ``path``, or None when it is not an ELF file."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    order = "little" if header[5] == 1 else "big"
    return int.from_bytes(header[18:20], order)


def libraries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix == ".so" or ".so." in p.name))


def wrong(root: Path, architecture: str) -> list[str]:
    expected = MACHINES[architecture]
    found = []
    for library in libraries(root):
        machine = elf_machine(library)
        if machine is not None and machine != expected:
            found.append(f"{library.relative_to(root)}: {NAMES.get(machine, machine)}")
    for record in root.rglob("image_analysis/build.json"):
        built = json.loads(record.read_text()).get("architecture")
        if built != architecture:
            found.append(f"{record.relative_to(root)}: built for {built}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in MACHINES:
        print("usage: check_layer_architecture.py BUILD_DIR arm64|x86_64", file=sys.stderr)
        return 2
    root, architecture = Path(argv[0]), argv[1]
    found = wrong(root, architecture)
    if found:
        print(f"{root} is not an {architecture} build; it holds:", file=sys.stderr)
        for line in found[:20]:
            print(f"  {line}", file=sys.stderr)
        if len(found) > 20:
            print(f"  ... and {len(found) - 20} more", file=sys.stderr)
        return 1
    count = len(libraries(root))
    print(f"{root}: {count} native libraries, all {NAMES[MACHINES[architecture]]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
