"""`run_sweep` against real Ray: a full sweep, a retried trial, a resumed sweep, a two-node cluster.

One local Ray runtime serves the in-process tests (started once: about 7 s). The interrupted sweep and
the cluster sweep run `run_sweep` in a subprocess (`sweep_main` below), so killing it or joining another
cluster never touches that runtime. Every Ray process a test starts sits in a process group of its own
and is stopped by that group's id; nothing here runs `ray stop` (it would kill every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest
import ray
import ray.cloudpickle as cloudpickle
import torch
from ray import tune

from infra.stack import ray_nodes
from models.data.synthetic import LeadSchema, generate_leads
from models.features.config import FeatureConfig
from models.features.transform import FeatureTransform
from models.nn.config import ModelConfig
from models.nn.module import roc_auc
from models.training.config import SweepConfig
from models.training.sweep import SweepData, SweepResult, run_sweep, search_space, train_trial

from helpers.processes import free_port, wait_until

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
ROWS, TRAIN_ROWS, DATA_SEED, SWEEP_SEED = 3000, 2400, 11, 5
# Shrunken for tests: small batches give enough steps on 2.4k rows; three epochs, ASHA rungs at 1 and 2.
BASE = ModelConfig(hidden_sizes=[32, 16], batch_size=128, max_epochs=3, early_stopping_patience=3)
SPACE = {
    "learning_rate": {"type": "loguniform", "low": 2e-3, "high": 2e-2},
    "hidden_sizes": {"type": "choice", "values": [[32, 16], [64, 32]]},
}


def sweep_config(**overrides) -> SweepConfig:
    return SweepConfig.model_validate(
        {"num_samples": 4, "max_concurrent_trials": 2, "grace_period": 1, "reduction_factor": 2}
        | {"search_space": SPACE}
        | overrides
    )


def make_data() -> tuple[SweepData, FeatureTransform, np.ndarray]:
    """Encoded splits, the fitted transform, and the raw validation frame (for scoring)."""
    schema = LeadSchema()
    frame = generate_leads(ROWS, seed=DATA_SEED)
    train, val = frame.iloc[:TRAIN_ROWS], frame.iloc[TRAIN_ROWS:]
    spec = FeatureConfig(numeric=list(schema.numeric), categorical=list(schema.categorical))
    transform = FeatureTransform.fit(train, spec)
    data = SweepData(
        train=transform.transform(train),
        y_train=train[schema.target].to_numpy(),
        val=transform.transform(val),
        y_val=val[schema.target].to_numpy(),
    )
    return data, transform, val


def sweep_main(argv: list[str]) -> None:
    """Subprocess entry: `storage name address|- num_samples concurrency out.json [barrier_dir]`.

    With `barrier_dir`, each trial waits (up to 60 s) until `concurrency` trials have started, so that
    concurrent trials really overlap: a trial of this size trains in well under a second, less than a
    fresh actor needs to start, and Tune would otherwise run them one after the other in a reused actor.
    """
    storage, name, address, num_samples, concurrency, out, *barrier = argv
    data, transform, _ = make_data()
    trainable = None
    if barrier:
        arrived = Path(barrier[0])

        def trainable(config, *, data, transform, base, seed):
            (arrived / tune.get_context().get_trial_id()).touch()
            deadline = time.monotonic() + 60
            while len(list(arrived.iterdir())) < int(concurrency) and time.monotonic() < deadline:
                time.sleep(0.1)
            train_trial(config, data=data, transform=transform, base=base, seed=seed)

    result = run_sweep(
        data,
        transform=transform,
        base=BASE,
        sweep=sweep_config(num_samples=int(num_samples), max_concurrent_trials=int(concurrency)),
        seed=SWEEP_SEED,
        storage_path=Path(storage),
        name=name,
        ray_address=None if address == "-" else address,
        trainable=trainable,
    )
    summary = {
        "resumed": result.resumed,
        "best_val_auc": result.best_val_auc,
        "node_ids": [trial.node_id for trial in result.trials],
        "statuses": [trial.status for trial in result.trials],
    }
    Path(out).write_text(json.dumps(summary))


SCRIPT = f"""\
import sys
sys.path[:0] = [{str(HERE)!r}, {str(HERE.parent)!r}]
from test_sweep import sweep_main
sweep_main(sys.argv[1:])
"""


def start_group(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start `args` as the leader of a new process group; everything it spawns stays in that group."""
    with log.open("w") as handle:
        return subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def stop_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM the group, SIGKILL whatever is left after `grace` s (at once if 0), wait until it is empty.

    Ray's gcs_server and raylet ignore SIGTERM for several seconds, hence the SIGKILL fallback.
    """
    signals = ((signal.SIGTERM, grace),) if grace > 0 else ()
    for sig, wait in (*signals, (signal.SIGKILL, 15.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_members(pgid):
                return
            time.sleep(0.2)
    left = [proc.pid for proc in group_members(pgid)]
    assert not left, f"processes of group {pgid} still running: {left}"


def sweep_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])} | extra
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture(scope="module")
def sweep_data() -> tuple[SweepData, FeatureTransform, np.ndarray]:
    return make_data()


@dataclass(frozen=True)
class FinishedSweep:
    storage: Path
    name: str
    sweep: SweepConfig
    result: SweepResult


@pytest.fixture(scope="module")
def finished_sweep(ray_runtime, sweep_data, tmp_path_factory: pytest.TempPathFactory) -> FinishedSweep:
    """One fresh 4-trial sweep of the test data, finished; read by the tests that check a finished sweep (its
    result, its checkpoints on disk) and resumed by the ones that resume it (about 12 s each on 2 cores)."""
    storage, sweep = tmp_path_factory.mktemp("finished-sweep"), sweep_config()
    return FinishedSweep(storage, "full", sweep, sweep_into(storage, "full", sweep, sweep_data))


def sweep_into(storage: Path, name: str, sweep: SweepConfig, data_and_transform, **options) -> SweepResult:
    """`run_sweep` of the test data with the test's base config and seed."""
    data, transform, *_ = data_and_transform
    return run_sweep(
        data,
        transform=transform,
        base=BASE,
        sweep=sweep,
        seed=SWEEP_SEED,
        storage_path=storage,
        name=name,
        **options,
    )


def test_search_space_maps_each_param_type() -> None:
    sweep = SweepConfig.model_validate(
        {
            "search_space": {
                "learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
                "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
                "embedding_dim": {"type": "int", "low": 4, "high": 5},
                "hidden_sizes": {"type": "choice", "values": [[8], [16, 8]]},
            }
        }
    )
    space = search_space(sweep)
    assert type(space["learning_rate"]) is type(tune.loguniform(1e-4, 1e-2))
    assert type(space["dropout"]) is type(tune.uniform(0.0, 0.3))
    assert {space["embedding_dim"].sample() for _ in range(200)} == {4, 5}  # inclusive upper bound
    assert space["hidden_sizes"].categories == [[8], [16, 8]]


def test_sweep_completes_and_returns_best_scorer(finished_sweep: FinishedSweep, sweep_data) -> None:
    data, _, val_frame = sweep_data
    sweep, result, tmp_path = finished_sweep.sweep, finished_sweep.result, finished_sweep.storage

    assert isinstance(result, SweepResult) and not result.resumed
    assert ray.is_initialized(), "run_sweep must not shut down a runtime it did not start"
    assert len(result.trials) == sweep.num_samples
    assert result.best_val_auc > 0.6
    assert result.best_trial_id in {trial.trial_id for trial in result.trials}
    assert set(result.best_params) == set(SPACE)
    for trial in result.trials:
        assert trial.status == "TERMINATED" and trial.error is None
        assert trial.history and trial.epochs == len(trial.history) <= BASE.max_epochs
        assert [row["epoch"] for row in trial.history] == list(range(trial.epochs))
        assert {"val_roc_auc", "val_loss", "train_loss", "time_total_s"} <= set(trial.history[-1])
        assert trial.node_id and trial.train_seconds > 0
    assert max(trial.best_val_auc for trial in result.trials) == pytest.approx(result.best_val_auc)

    proba = result.scorer.predict_proba(val_frame)
    assert proba.shape == (len(val_frame),) and ((proba >= 0) & (proba <= 1)).all()
    # The scorer holds the best checkpoint's weights: it reproduces that checkpoint's validation AUC.
    auc = roc_auc(torch.from_numpy(proba), torch.from_numpy(data.y_val.astype(np.float64))).item()
    assert auc == pytest.approx(result.best_val_auc, abs=1e-4)

    # Once finished, each trial keeps at most its best and its latest checkpoint on disk ...
    trial_dirs = [path for path in (tmp_path / "full").iterdir() if path.is_dir()]
    assert len(trial_dirs) == sweep.num_samples
    assert all(1 <= len(list(path.glob("checkpoint_*"))) <= 2 for path in trial_dirs)
    # ... and a second call restores the finished sweep instead of training again, same best model.
    again = sweep_into(tmp_path, "full", sweep, sweep_data)
    assert again.resumed and again.best_trial_id == result.best_trial_id
    assert again.best_val_auc == pytest.approx(result.best_val_auc)
    assert np.allclose(again.scorer.predict_proba(val_frame), proba)


def test_checkpoint_storage_estimate_matches_bytes_on_disk(finished_sweep: FinishedSweep, sweep_data) -> None:
    """The estimate's checkpoint storage kept after pruning, against the bytes one real sweep leaves."""
    from models.estimate.config import EstimateConfig
    from models.estimate.counts import build_net, checkpoint_bytes, parameter_count
    from models.estimate.resources import estimate_resources
    from models.training.sweep import CHECKPOINTS_KEPT

    data, transform, _ = sweep_data
    sweep, result = finished_sweep.sweep, finished_sweep.result
    estimate = estimate_resources(
        data.train,
        len(data.y_val),
        transform=transform,
        model=BASE,
        sweep=sweep,
        prices=EstimateConfig(profile_steps=5),
        seed=SWEEP_SEED,
    )
    on_disk = 0
    for trial in result.trials:
        [trial_dir] = (finished_sweep.storage / finished_sweep.name).glob(f"*{trial.trial_id}*")
        kept = list(trial_dir.glob("checkpoint_*"))
        assert 1 <= len(kept) <= CHECKPOINTS_KEPT  # the count the estimate assumes is a ceiling
        architecture = BASE.with_overrides({"hidden_sizes": trial.params["hidden_sizes"]})
        net = build_net(transform.n_numeric, transform.cardinalities, architecture, data.train.numeric)
        tensors = checkpoint_bytes(parameter_count(net))
        for checkpoint in kept:
            size = sum(path.stat().st_size for path in checkpoint.rglob("*") if path.is_file())
            # Beyond the weights and AdamW moments the estimate counts, a checkpoint holds Lightning's
            # own state (loops, callbacks, hyper-parameters), torch.save's zip headers and Tune's
            # progress.json: a fixed ~14 KB whatever the architecture (measured); 32 KB leaves room
            # for a Lightning release that stores more, and is noise beside a real model's tensors.
            assert 0 < size - tensors < 32_000, (checkpoint, size, tensors)
            on_disk += size
    # The estimate is a ceiling on the tensors: every trial at the largest architecture (here [64, 32])
    # with CHECKPOINTS_KEPT = 2 checkpoints. A trial whose latest checkpoint is its best, or that ASHA
    # stopped at the first rung, keeps one; a trial of [32, 16] holds 0.38x the tensors; and the disk adds
    # the fixed overhead above. Whatever ASHA and the sampler do, that puts the bytes on disk between
    # 0.35x (one small checkpoint per trial) and 1.32x (two large ones) the estimate; this sweep leaves
    # about 0.5x. The band 1/4 .. 1.5 keeps a margin on both sides for a smaller or larger overhead.
    assert estimate.checkpoint_bytes / 4 <= on_disk <= 1.5 * estimate.checkpoint_bytes


def test_failed_trial_resumes_from_its_checkpoint(ray_runtime, sweep_data, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()

    def flaky_trial(config, *, data, transform, base, seed):
        """The first trial to start trains one epoch (reporting its checkpoint), then crashes."""
        trial_id = tune.get_context().get_trial_id()
        if tune.get_checkpoint() is not None:
            (markers / f"resumed-{trial_id}").touch()
        else:
            try:
                os.close(os.open(markers / "crashed", os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                (markers / f"crashing-{trial_id}").touch()
                one_epoch = base.model_copy(update={"max_epochs": 1})
                train_trial(config, data=data, transform=transform, base=one_epoch, seed=seed)
                raise RuntimeError("injected failure after the first checkpoint")
        train_trial(config, data=data, transform=transform, base=base, seed=seed)

    # One trial at a time: the crashing trial is then first at every ASHA rung and never stopped early.
    sweep = sweep_config(num_samples=2, max_concurrent_trials=1, max_failures=1)
    result = sweep_into(tmp_path, "retry", sweep, sweep_data, trainable=flaky_trial)

    [crashing] = [path.name.removeprefix("crashing-") for path in markers.glob("crashing-*")]
    assert (markers / f"resumed-{crashing}").exists(), "the retry did not get the trial's checkpoint"
    trial = next(trial for trial in result.trials if trial.trial_id == crashing)
    assert trial.status == "TERMINATED" and trial.error is None
    # Continued, not restarted: after the retry the trial reports epochs 1 and 2 (iterations 2 and 3); a
    # restart would report epoch 0 again. Epoch 0 itself is the crashed attempt's report: Ray keeps it in the
    # history unless the crash beat the writing of that result (seen once, with two test workers), so it may
    # be missing, never repeated.
    epochs = [row["epoch"] for row in trial.history]
    iterations = [row["training_iteration"] for row in trial.history]
    assert epochs in ([0, 1, 2], [1, 2]), epochs
    assert iterations == [1, 2, 3][-len(iterations) :], iterations
    assert result.best_val_auc > 0.6


def test_interrupted_sweep_resumes(ray_runtime, sweep_data, tmp_path: Path) -> None:
    script = tmp_path / "sweep_script.py"
    script.write_text(SCRIPT)
    experiment = tmp_path / "runs" / "interrupted"
    args = [
        sys.executable,
        str(script),
        str(experiment.parent),
        experiment.name,
        "-",
        "4",
        "2",
        "unused.json",
    ]
    proc = start_group(args, tmp_path / "first.log", sweep_env())
    try:
        # Wait for a trial checkpoint and the experiment state that `Tuner.restore` needs.
        def restorable() -> bool:
            if list(experiment.glob("*/checkpoint_*")) and list(experiment.glob("experiment_state-*.json")):
                return True
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            return False

        wait_until(restorable, 120, "a trial result", interval=0.2)
    finally:
        # SIGKILL, no clean-up: the driver and the Ray runtime it started (GCS, raylet, workers) share
        # its process group.
        stop_group(proc.pid, grace=0)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    sweep = sweep_config()
    result = sweep_into(experiment.parent, experiment.name, sweep, sweep_data)
    assert result.resumed is True
    assert len(result.trials) == sweep.num_samples
    assert all(trial.status == "TERMINATED" and trial.history for trial in result.trials)
    assert result.best_val_auc > 0.6


@pytest.mark.timeout(240)
def test_resume_with_stale_searcher_state_finishes(finished_sweep: FinishedSweep, sweep_data) -> None:
    """Tune writes the trials' states and the generator's state apart; a sweep killed in between can
    leave a generator that still counts as live two trials the experiment state has TERMINATED. The
    resumed sweep must not wait for them (it did, forever: seen once in CI). Reproduced by writing
    that state into a finished sweep (the module's, after the tests that read it as it finished); the file is
    Tune's own (`BasicVariantGenerator.save_to_dir`)."""
    sweep, first, tmp_path = finished_sweep.sweep, finished_sweep.result, finished_sweep.storage
    # The newest generator state, the one a resume reads (Tune's `_load_newest_checkpoint`: the greatest name).
    state_file = max((tmp_path / finished_sweep.name).glob("basic-variant-state-*.json"))
    state = cloudpickle.loads(state_file.read_bytes())
    assert state["_finished"] and not state["_live_trials"]
    state["_finished"] = False
    state["_live_trials"] = {trial.trial_id for trial in first.trials[: sweep.max_concurrent_trials]}
    state_file.write_bytes(cloudpickle.dumps(state))

    again = sweep_into(tmp_path, finished_sweep.name, sweep, sweep_data)
    assert again.resumed and len(again.trials) == sweep.num_samples
    assert again.best_trial_id == first.best_trial_id


def test_unrestorable_sweep_is_set_aside_and_started_over(ray_runtime, sweep_data, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tuner.pkl").write_bytes(b"truncated by a full disk")  # what `Tuner.can_restore` looks for
    sweep = sweep_config(num_samples=2)
    result = sweep_into(tmp_path, "broken", sweep, sweep_data)
    assert result.resumed is False and result.set_aside
    aside = Path(result.set_aside)
    assert aside.parent == tmp_path and aside.name.startswith("broken.unrestorable-")
    assert (aside / "tuner.pkl").read_bytes() == b"truncated by a full disk"  # kept for a post-mortem
    assert len(result.trials) == 2 and all(trial.status == "TERMINATED" for trial in result.trials)
    assert tune.Tuner.can_restore(broken)  # the fresh sweep is resumable again


@pytest.mark.timeout(300)
def test_sweep_spreads_trials_over_a_two_node_cluster(tmp_path: Path) -> None:
    # Short root: Ray's unix socket paths (session dir + sockets/...) must stay under 107 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    port = free_port()
    # Token auth on every process of this cluster, with a token of its own (no file in the home dir).
    env = sweep_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0")
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp_dir)]
    # The commands docker-compose's ray-head and ray-worker run, with this machine's ports and paths.
    head_args = [str(BIN / "ray"), *ray_nodes.head_command(port)[1:]]
    head_args += ["--dashboard-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port())]
    worker_args = [str(BIN / "ray"), *ray_nodes.worker_command(f"127.0.0.1:{port}")[1:]]
    worker_args += ["--dashboard-agent-listen-port", str(free_port())]
    groups: list[int] = []
    try:
        for role, node_args in (("head", head_args), ("worker", worker_args)):
            starter = start_group(node_args + common, tmp_path / f"{role}.log", env)
            groups.append(starter.pid)
            assert starter.wait(timeout=90) == 0, (tmp_path / f"{role}.log").read_text()[-3000:]

        script = tmp_path / "sweep_script.py"
        script.write_text(SCRIPT)
        out, barrier = tmp_path / "summary.json", tmp_path / "barrier"
        barrier.mkdir()
        args = [sys.executable, str(script), str(tmp_path / "runs"), "cluster", f"127.0.0.1:{port}", "2", "2"]
        args += [str(out), str(barrier)]
        driver = start_group(args, tmp_path / "driver.log", env)
        groups.append(driver.pid)
        assert driver.wait(timeout=180) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        for pgid in reversed(groups):
            stop_group(pgid)
        leftovers = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if str(temp_dir) in " ".join(p.info["cmdline"] or [])
        ]
        assert not leftovers, f"Ray processes of the test cluster still running: {leftovers}"
        shutil.rmtree(temp_dir, ignore_errors=True)

    summary = json.loads(out.read_text())
    assert summary["statuses"] == ["TERMINATED", "TERMINATED"]
    assert len(set(summary["node_ids"])) == 2, summary["node_ids"]
    assert summary["best_val_auc"] > 0.6
