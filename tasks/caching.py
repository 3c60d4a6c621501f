"""Cache and retry policies of the tasks. The cache policies let a suspended flow run resume without redoing its work.

A deployment run that suspends at an approval gate exits; on resume Prefect runs the flow again
from the top. Tasks keyed on the flow run id (plus their source) with persisted results come back
from storage instead of running again, so the sweep is not retrained. A new flow run never hits
these caches.
"""

from prefect.cache_policies import INPUTS, RUN_ID, TASK_SOURCE

# For tasks called once per flow run whose inputs are large (frames, models): not worth hashing.
ONCE_PER_RUN = RUN_ID + TASK_SOURCE
# For tasks called several times per run with small inputs.
PER_RUN_INPUTS = RUN_ID + TASK_SOURCE + INPUTS

REPLAYABLE = {"persist_result": True}

# The one retry policy of I/O tasks (tracking store, registry, Prefect API): a server may blip.
# Pure steps never retry: the same inputs would fail the same way.
IO_RETRIES = {"retries": 2, "retry_delay_seconds": 2}
