"""Pre-flight estimate of a sweep's compute, memory, wall time, cost and storage, for the approver.

One module per concept: `counts` (parameters, FLOPs, memory, checkpoint sizes, counted on the network
itself), `profiling` (a short measured run of the real Lightning module), `asha` (simulated ASHA trial
lengths and wall time), `pricing` (device and storage prices), `result` (the `ResourceEstimate` and its
formats), `actual` (what a finished sweep used and `compare`), `config` (the price table and profiling
settings) and `resources` (`estimate_resources`, which wires them).
"""
