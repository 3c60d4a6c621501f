"""Drift checks of growing drift, as the monitor records them, for the workspace and dashboard tests."""

from __future__ import annotations


def monitored_checks(n_checks: int = 3, rows: int = 2000, seed: int = 0) -> list:
    """Drift checks (`monitoring.check.MonitorResult`) of growing drift against one synthetic reference:
    none, then one column of three, then every column, the last with labels. Pure and fast (no model)."""
    import numpy as np
    import pandas as pd

    from monitoring.check import check_batch
    from monitoring.config import MonitoringConfig
    from monitoring.reference import DriftReference

    rng = np.random.default_rng(seed)

    def table(n: int, shift: float, shifted: int) -> pd.DataFrame:
        moved = [shift if i < shifted else 0.0 for i in range(3)]
        return pd.DataFrame(
            {
                "deal_size": rng.lognormal(3.0 + moved[0], 0.5, n),
                "visits": rng.poisson(4 + 4 * moved[1], n).astype(float),
                "plan": rng.choice(
                    ["free", "pro", "team"], n, p=[0.6 - 0.4 * moved[2], 0.3, 0.1 + 0.4 * moved[2]]
                ),
            }
        )

    holdout = rng.beta(2, 5, 1000)
    reference = DriftReference.of(
        table(5000, 0.0, 0),
        numeric=["deal_size", "visits"],
        categorical=["plan"],
        holdout_scores=holdout,
        holdout_labels=(rng.random(1000) < holdout).astype(int),
        threshold=0.4,
        rows=5000,
        seed=seed,
    )
    results = []
    for i in range(n_checks):
        shifted = min(i * 3 // max(n_checks - 1, 1), 3) if i else 0
        batch = table(rows, 1.0, shifted)
        scores = np.clip(rng.beta(2, 5, rows) + 0.1 * shifted, 0.0, 1.0)
        labels = (rng.random(rows) < scores).astype(int) if i == n_checks - 1 else None
        results.append(
            check_batch(
                reference,
                batch,
                scores,
                labels,
                model_name="crm-leads-dash",
                version="3",
                config=MonitoringConfig(),
                n_resamples=200,
                seed=seed + i,
                confidence=0.95,
            )
        )
    return results
