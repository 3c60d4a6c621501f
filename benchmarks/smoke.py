"""What every benchmark's ``--smoke`` mode shares: the default pipeline config shrunk to seconds.

A smoke run checks that a benchmark still runs end to end and prints its figures; its figures are not
measurements.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# One trial of one epoch on a tiny network, few resamples, no cross-validation: every step of the pipeline
# runs, none for long.
SMOKE_SECTIONS = {
    "model": {"architecture": "mlp", "max_epochs": 1, "hidden_sizes": [16]},
    "split": {"cv_folds": 0},
    "sweep": {"num_samples": 1, "max_concurrent_trials": 1, "grace_period": 1},
    "evaluation": {"n_bootstrap": 100, "importance_repeats": 1},
    "promotion": {"require_beat_baseline": False},
}


def smoke_config(path: Path, data: Path, *, model_name: str = "crm-leads-smoke") -> Path:
    """``configs/crm_leads.yaml`` with ``SMOKE_SECTIONS`` laid over it, reading ``data``; written to ``path``."""
    raw = _shrunk(yaml.safe_load((REPO / "configs" / "crm_leads.yaml").read_text()))
    raw["data"].update(path=str(data), expectations=str(REPO / "configs" / "crm_leads.expectations.json"))
    raw["registry"] = {"model_name": model_name}
    path.write_text(yaml.safe_dump(raw))
    return path


def shrink_profiled(config: Path, path: Path) -> Path:
    """A config that ``mlops data profile`` wrote, with ``SMOKE_SECTIONS`` laid over it but cross-validated on 2
    folds (what the pipeline does with a table this small, at its cheapest); written to ``path``, which must sit
    beside ``config`` so that its relative paths resolve the same way."""
    raw = _shrunk(yaml.safe_load(config.read_text()))
    raw["split"] = {"cv_folds": 2}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _shrunk(raw: dict) -> dict:
    """``raw`` (a pipeline config's YAML) with ``SMOKE_SECTIONS`` laid over it, its sweep's search space kept."""
    sweep_space = raw["sweep"]["search_space"]
    raw.update(SMOKE_SECTIONS)
    raw["sweep"] = {**SMOKE_SECTIONS["sweep"], "search_space": sweep_space}
    return raw
