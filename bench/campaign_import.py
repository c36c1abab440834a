"""Reading and validating a campaign audience of 100,000 CSV rows (services.campaigns.audience.validate_csv):
phone numbers parsed and checked with `phonenumbers`, variables checked, duplicates and opted-out numbers found,
every refused row reported with its line. Target: under 20 s. Baseline, measured in the same run: the same
file through the bare `csv` module (the least any import must do).

    .venv/bin/python bench/campaign_import.py [rows]
"""

from __future__ import annotations

import csv
import io
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal.services.campaigns.audience import validate_csv

TARGET_SECONDS = 20.0


def make_csv(rows: int) -> tuple[bytes, set[str]]:
    """rows lines: ~90 % valid, the rest malformed, duplicated or missing a variable; 5 % of the valid opted out."""
    rng = random.Random(7)
    out = io.StringIO()
    out.write("phone,name,city\n")
    opted: set[str] = set()
    for i in range(rows):
        roll = rng.random()
        digits = f"49170{1000000 + i:07d}"
        if roll < 0.03:
            out.write(f"12ab{i},Bad,X\n")
        elif roll < 0.06:
            out.write(f"+49 170 {1000000 + max(i - 1, 0):07d},Dup,X\n")
        elif roll < 0.08:
            out.write(f"+{digits},,Lisbon\n")
        else:
            out.write(f"+{digits},Person {i},Berlin\n")
            if roll > 0.95:
                opted.add(f"{digits}@c.us")
    return out.getvalue().encode(), opted


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    content, opted = make_csv(rows)
    started = time.perf_counter()
    baseline_rows = sum(1 for _ in csv.reader(io.StringIO(content.decode())))
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    result = validate_csv(content, ["name"], lambda ids: ids & opted)
    seconds = time.perf_counter() - started

    print(f"rows: {rows:,} ({baseline_rows - 1:,} read by the baseline)")
    print(f"accepted {len(result.rows):,}, refused {len(result.rejects):,} (each with line and reason)")
    print(f"baseline (csv module only): {baseline:.2f} s")
    print(f"import + validation: {seconds:.2f} s = {seconds / baseline:.1f}x the baseline")
    print(f"target: < {TARGET_SECONDS:.0f} s -> {'OK' if seconds < TARGET_SECONDS else 'MISSED'}")


if __name__ == "__main__":
    main()
