"""Wall time of `make run` (generate 200k rows + the full training pipeline) on a fresh project home.

Run after install: .venv/bin/python benchmarks/bench_make_run.py [--smoke]
Reference: the 5-minute target for 2 CPU cores. The venv must already be installed (the stamp makes
`make` skip the install), so only the job itself is timed. `--smoke` runs `make run` on 2,000 generated
rows with a shrunken config (one trial of one epoch): it checks the command works, its time is no figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from smoke import smoke_config

REPO = Path(__file__).resolve().parents[1]
REFERENCE_SECONDS = 300.0
SMOKE_ROWS = 2_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: checks that it works (seconds)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MLOPS_HOME": home}
        env.pop("PREFECT_API_URL", None)  # the embedded default, as a new user runs it
        command = ["make", "run"]
        if args.smoke:
            data = Path(home) / "data" / "smoke.parquet"
            generated = subprocess.run(
                [str(REPO / ".venv" / "bin" / "mlops"), "data", "generate", "--rows", str(SMOKE_ROWS)]
                + ["--out", str(data)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
            )
            if generated.returncode != 0:
                raise SystemExit(f"mlops data generate failed:\n{generated.stderr[-2000:]}")
            command += [f"CONFIG={smoke_config(Path(home) / 'smoke.yaml', data)}", f"DATA={data}"]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
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
        f"make run wall time: {seconds:.1f} s; ratio to the {REFERENCE_SECONDS:.0f} s target: "
        f"{seconds / REFERENCE_SECONDS:.2f}"
    )


if __name__ == "__main__":
    main()
