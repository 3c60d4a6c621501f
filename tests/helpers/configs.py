"""The repository's shipped pipeline config, shrunk for tests."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def small_pipeline_config(path: Path, data: Path, *, model_name: str, trials: int = 2, **sections) -> Path:
    """The shipped default config shrunk for tests (tiny network, ``trials`` trials, 3 epochs), writing
    to ``path``; ``sections`` replace top-level sections (e.g. ``approval=...``, ``name=...``).

    Tests about what happens around the sweep (gates, deployments, workers) pass ``trials=1``: one
    Ray actor fewer to start, a few seconds per run on two cores."""
    import yaml

    raw = yaml.safe_load((REPO / "configs" / "crm_leads.yaml").read_text())
    raw["data"].update(path=str(data), expectations=str(REPO / "configs" / "crm_leads.expectations.json"))
    raw.update(
        registry={"model_name": model_name},
        model={"architecture": "mlp", "max_epochs": 3, "hidden_sizes": [32, 16]},
        # Cross-validation is tested where it is under test (e2e Telco run, unit tests): off here.
        split={"cv_folds": 0},
        sweep={
            "num_samples": trials,
            "max_concurrent_trials": 2,
            "grace_period": 1,
            "search_space": raw["sweep"]["search_space"],
        },
        # The two scikit-learn baselines: CatBoost and LightGBM (and the blend they allow) are fitted where
        # they are under test (unit tests, the served blend, the profiled Telco run, the benchmarks' smoke).
        evaluation={
            "n_bootstrap": 200,
            "importance_repeats": 1,
            "baselines": ["logistic_regression", "gradient_boosted_trees"],
        },
        # The first model must become champion whatever the tiny data says about the baselines.
        promotion={"require_beat_baseline": False},
    )
    raw.update(sections)
    path.write_text(yaml.safe_dump(raw))
    return path
