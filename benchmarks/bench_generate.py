"""Time `generate_leads` + writing 1M rows, against a 30 s ceiling.

Run: .venv/bin/python benchmarks/bench_generate.py [--rows 1000000] [--smoke]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from models.data.io import write_table
from models.data.synthetic import generate_leads

REFERENCE_SECONDS = 30.0  # acceptance ceiling for 1M rows on a 2-core machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows generated and written")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs (seconds)")
    args = parser.parse_args()
    if args.smoke:
        args.rows = 2_000
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".parquet", ".csv"):
            start = time.perf_counter()
            df = generate_leads(args.rows, seed=1)
            write_table(df, Path(tmp) / f"leads{suffix}")
            seconds = time.perf_counter() - start
            print(
                f"generate + write {args.rows:,} rows ({suffix[1:]}): {seconds:.2f} s; "
                f"ratio to the {REFERENCE_SECONDS:.0f} s ceiling: {seconds / REFERENCE_SECONDS:.2f}"
            )


if __name__ == "__main__":
    main()
