"""Pre-flight estimate of a sweep's compute, memory, wall time, cost and storage, for the approver.

One module per concept: `counts` (parameters, FLOPs, memory, checkpoint sizes, counted on the network itself), `profiling`
(a short measured run of the real Lightning module), `asha` (simulated ASHA trial lengths and wall time),
`pricing` (device and storage prices), `report` (the `ResourceEstimate` result and its formats),
`actual` (what a finished sweep used and `compare`), and `resources` (`estimate_resources`, which wires
them). The names below are the package's public API: import them from `models.estimate`.
"""

from models.estimate.actual import ActualUsage, EstimateComparison, actual_from_sweep, compare
from models.estimate.asha import AshaOutcome, asha_expected_epochs, asha_rungs, simulate_asha
from models.estimate.counts import (
    ADAMW_STATES,
    FP32_BYTES,
    MemoryBreakdown,
    artifact_bytes,
    build_net,
    checkpoint_bytes,
    forward_flops_per_sample,
    memory_breakdown,
    parameter_count,
    row_bytes,
    train_flops_per_sample,
)
from models.estimate.pricing import DevicePrice, device_price, storage_cost_per_month
from models.estimate.profiling import WARMUP_STEPS, Profile, profile_training
from models.estimate.report import ResourceEstimate
from models.estimate.resources import estimate_resources
from models.params import EstimateConfig  # the estimate's config, importable beside it (tasks/estimate.py)

__all__ = [
    "ADAMW_STATES",
    "FP32_BYTES",
    "WARMUP_STEPS",
    "ActualUsage",
    "AshaOutcome",
    "DevicePrice",
    "EstimateComparison",
    "EstimateConfig",
    "MemoryBreakdown",
    "Profile",
    "ResourceEstimate",
    "actual_from_sweep",
    "artifact_bytes",
    "asha_expected_epochs",
    "asha_rungs",
    "build_net",
    "checkpoint_bytes",
    "compare",
    "device_price",
    "estimate_resources",
    "forward_flops_per_sample",
    "memory_breakdown",
    "parameter_count",
    "profile_training",
    "row_bytes",
    "simulate_asha",
    "storage_cost_per_month",
    "train_flops_per_sample",
]
