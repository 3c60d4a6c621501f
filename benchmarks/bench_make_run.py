"""Wall time of `make run` (generate 200k rows + the full training pipeline) on a fresh project home.

Run after install: .venv/bin/python benchmarks/bench_make_run.py
Reference: the 5-minute target for 2 CPU cores. The venv must already be installed (the stamp makes
`make` skip the install), so only the job itself is timed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_SECONDS = 300.0


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MLOPS_HOME": home}
        env.pop("PREFECT_API_URL", None)  # the embedded default, as a new user runs it
        start = time.perf_counter()
        result = subprocess.run(["make", "run"], cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"make run failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    summary = [
        line
        for line in result.stdout.splitlines()
        if line.startswith(("model:", "test ROC AUC", "promoted", "not promoted"))
    ]
    print("\n".join(summary))
    print(
        f"make run wall time: {seconds:.1f} s; ratio to the {REFERENCE_SECONDS:.0f} s target: {seconds / REFERENCE_SECONDS:.2f}"
    )


if __name__ == "__main__":
    main()
