"""Publishing what a run produced to the Prefect UI (the builders live in ``models.governance.evidence``)."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

SUMMARY_KEY = "training-summary"


@task(name="publish-summary")
def publish_summary(markdown: str) -> None:
    """The run's closing artifact: version, verdict, reason and the evaluation."""
    create_markdown_artifact(key=SUMMARY_KEY, markdown=markdown, description="Training pipeline summary")
