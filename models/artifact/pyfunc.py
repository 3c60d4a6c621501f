"""The MLflow packaging of a ``TabularScorer``: a pyfunc whose artifact is the scorer folder.

The feature transform travels inside the logged model, so batch scoring and serving apply the
exact object training used.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from models.artifact.scorer import TabularScorer

SCORER_ARTIFACT = "scorer"


class ScorerPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the scorer once per process; ``predict`` returns positive-class probabilities."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.scorer = TabularScorer.load(Path(context.artifacts[SCORER_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.scorer.predict_proba(model_input)


def pip_requirements() -> list[str]:
    """Pinned to the running versions: requirement inference costs seconds per call (FACTS)."""
    from importlib.metadata import version

    import rtdl_num_embeddings
    import scipy
    import sklearn
    import tabm
    import torch

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"scipy=={scipy.__version__}",
        f"tabm=={tabm.__version__}",
        f"rtdl_num_embeddings=={rtdl_num_embeddings.__version__}",
        # a blend's members (models.artifact.blend); read from the metadata: importing them costs seconds
        f"catboost=={version('catboost')}",
        f"lightgbm=={version('lightgbm')}",
    ]
