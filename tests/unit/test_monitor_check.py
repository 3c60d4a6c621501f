"""What makes a batch unusable for a drift check, named before any run starts."""

from __future__ import annotations

import pandas as pd
import pytest

from models.errors import UserInputError
from monitoring.check import require_usable_batch

BATCH = pd.DataFrame({"deal_size": [1.0, 2.5], "visits": [3, 4], "plan": ["a", "b"]})
COLUMNS = {"numeric": ["deal_size", "visits"], "categorical": ["plan"], "source": "batch.csv"}


def test_a_usable_batch_passes() -> None:
    require_usable_batch(BATCH, **COLUMNS)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (BATCH.iloc[:0], "batch.csv: the batch has no rows"),
        (BATCH.drop(columns=["visits", "plan"]), "batch.csv: the batch lacks feature columns visits, plan"),
        (
            BATCH.assign(deal_size=["big", "small"]),
            "batch.csv: numeric column 'deal_size' has non-numeric dtype",
        ),
    ],
    ids=["no-rows", "missing-columns", "text-in-numeric"],
)
def test_unusable_batches_are_named(batch: pd.DataFrame, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        require_usable_batch(batch, **COLUMNS)
