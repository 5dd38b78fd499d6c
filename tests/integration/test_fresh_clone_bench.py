"""``make bench`` in a fresh clone, as a newcomer runs it: set-up and build included, then the document it
writes read back.

The clone is of what is committed. The benchmark's exit code says whether every budget held; the
document must say the same, row by row, and carry the two goals the defaults are held to: the AWS bill
per million images at or under $5.00 and the cold start's median ratio at or under 1.3. The hash bank
snapshots the benchmark generates (seeded, minutes for ten million hashes) are taken from this checkout
when it has built them already.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.bench]

ROOT = Path(__file__).resolve().parents[2]


def _row(document: str, figure: str) -> list[str]:
    line = next(line for line in document.splitlines() if line.startswith(f"| {figure} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_make_bench_in_a_fresh_clone_meets_its_budgets_and_says_so(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    banks = ROOT / ".aws-sam" / "bench-banks"
    if banks.is_dir():
        (clone / ".aws-sam").mkdir()
        shutil.copytree(banks, clone / ".aws-sam" / "bench-banks", copy_function=lambda s, d: Path(d).symlink_to(s))
    before = (clone / "docs" / "performance.md").read_text()

    run = subprocess.run(["make", "bench"], cwd=clone, capture_output=True, text=True, timeout=7200)

    document = (clone / "docs" / "performance.md").read_text()
    assert document != before, run.stderr[-3000:]
    rows = [line for line in document.splitlines() if re.match(r"\| (B\d+|C1)", line)]
    over = [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("| **over** |")]
    assert (run.returncode == 0) == (not over), (run.returncode, over, run.stderr[-3000:])
    assert run.returncode == 0, f"over budget: {over}\n{run.stderr[-3000:]}"
    for figure in ("B1", "B8", "B9", "B10 time", "B10 load", "B11 time", "C1"):
        assert _row(document, figure)[-1] == "within", figure
    b1 = _row(document, "B1")
    median_ratio = float(b1[4].split()[0])
    assert median_ratio <= 1.3 and b1[5] == "≤ 1.3"
    total = re.search(r"\| \*\*total\*\* \| \*\*\$[\d.,]+\*\* \| \*\*\$([\d.,]+)\*\* \|", document)
    assert total is not None and float(total.group(1)) <= 5.00
    assert "Command: `make bench`" in document
