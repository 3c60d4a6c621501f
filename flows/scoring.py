"""The ``batch-scoring`` flow: the champion scores a file or a folder of files, each output written beside
its input, every row appended to the prediction log as variant ``batch``.

Wiring only: the I/O is ``tasks.scoring``. A scheduled deployment (``batch.schedule``) scores ``batch.input``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.config import load_config
from infra.home import ProjectHome
from models.errors import UserInputError
from tasks.feature_store import features_by_id
from tasks.registry import load_champion
from tasks.scoring import batch_inputs, read_batch, score_file
from tasks.tracking import TrackingTarget


@flow(name="batch-scoring")
def batch_scoring(
    config_path: str, input_path: str | None = None, at: str | None = None
) -> list[tuple[str, int]]:
    """Score ``input_path`` (default ``batch.input``) with the champion; the outputs and their row counts.

    A champion trained from a feature service also scores files of entity ids: the features a file does not
    carry come from the service's point-in-time retrieval as of each row's ``as_of`` column, or ``at`` (ISO
    8601; default now) for all rows."""
    home = ProjectHome.configured()
    config = load_config(Path(config_path), home=home.root)
    source = Path(input_path) if input_path else config.batch.input
    if source is None:
        raise UserInputError("nothing to score: give a file or folder, or set batch.input in the config")
    registry = config.registry
    target = TrackingTarget.for_store(
        home.active_tracking_uri(), registry.experiment or registry.model_name, home.mlflow_artifacts
    )
    champion = load_champion(target, registry.model_name)
    if champion is None:
        raise UserInputError(f"model {registry.model_name!r} has no champion yet: run `mlops run` first")
    lookup, store = champion.scorer.lookup, config.feature_store
    moment = datetime.fromisoformat(at) if at else datetime.now(UTC)
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    features = {c.name for c in champion.scorer.feature_columns}
    scored = []
    for path in batch_inputs(source):
        frame = read_batch(path, config.data)
        if lookup is not None and not features <= set(frame.columns):
            if store is None:
                raise UserInputError(
                    f"{path}: rows without every feature need the config's feature_store section to read them"
                )
            frame = features_by_id(store.repo, frame, lookup.service, lookup.entity_column, moment)
        scored.append(
            score_file(
                champion.scorer,
                registry.model_name,
                champion.version,
                path,
                frame,
                config.data,
                home.prediction_logs,
                config.serving.prediction_log,
            )
        )
    lines = "\n".join(f"| `{path}` | {rows:,} |" for path, rows in scored) or "| (no new file) | 0 |"
    create_markdown_artifact(
        key=f"batch-scoring-{registry.model_name}".lower(),
        markdown=f"## Batch scoring with {registry.model_name} v{champion.version}\n\n| output | rows |\n|---|---|\n{lines}",
        description="Batch scoring",
    )
    return [(str(path), rows) for path, rows in scored]
