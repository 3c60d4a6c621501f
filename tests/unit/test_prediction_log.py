"""Prediction log: one JSON line per record, per-writer per-day files, read back exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from monitoring.prediction_log import PredictionLog, PredictionRecord, log_files, read_records


def record(request_id: str, score: float = 0.25) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        variant="champion",
        model_version="3",
        features={"deal_size": 1200.5, "plan": "pro", "region": None, "code": 7},
        score=score,
    )


def test_records_round_trip_one_line_each(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    log = PredictionLog(directory, writer_id="w1")
    assert not directory.exists()  # nothing is created before the first write
    written = [record("a", 0.1), record("b", 0.9)]
    with log:
        log.append(written)
        log.append([record("c")])
        log.append([])
    files = log_files(directory)
    assert len(files) == 1 and files[0].name.endswith("-w1.jsonl")
    lines = files[0].read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0])["features"]["region"] is None
    back = list(read_records(files))
    assert back[:2] == written and back[2].request_id == "c"
    assert datetime.fromisoformat(back[0].timestamp).tzinfo is not None


def test_lines_are_visible_before_close(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, writer_id="w1")
    log.append([record("a")])
    assert [r.request_id for r in read_records(log_files(tmp_path))] == ["a"]  # flushed per append
    log.close()


def test_new_day_new_file_and_writers_do_not_share(tmp_path: Path) -> None:
    now = [datetime(2025, 3, 1, 23, 59, tzinfo=UTC)]
    first = PredictionLog(tmp_path, writer_id="w1", clock=lambda: now[0])
    second = PredictionLog(tmp_path, writer_id="w2", clock=lambda: now[0])
    first.append([record("a")])
    second.append([record("b")])
    now[0] = datetime(2025, 3, 2, 0, 1, tzinfo=UTC)
    first.append([record("c")])
    first.close()
    second.close()
    names = [p.name for p in log_files(tmp_path)]
    assert names == [
        "predictions-2025-03-01-w1.jsonl",
        "predictions-2025-03-01-w2.jsonl",
        "predictions-2025-03-02-w1.jsonl",
    ]
    assert [r.request_id for r in read_records(log_files(tmp_path))] == ["a", "b", "c"]


def test_reopening_appends_and_torn_last_line_is_skipped(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, writer_id="w1") as log:
        log.append([record("a")])
    with PredictionLog(tmp_path, writer_id="w1") as log:
        log.append([record("b")])
    (path,) = log_files(tmp_path)
    with path.open("a") as handle:
        handle.write(record("torn").to_json()[:20])  # a writer killed mid-line
    assert [r.request_id for r in read_records([path])] == ["a", "b"]


def test_missing_folder_has_no_files(tmp_path: Path) -> None:
    assert log_files(tmp_path / "absent") == []


def test_records_from_before_the_contract_grew_read_back_with_defaults(tmp_path: Path) -> None:
    """Lines written before entity_id, model_name and flags existed still load."""
    path = tmp_path / "predictions-2025-01-31-old.jsonl"
    old = {
        "request_id": "r",
        "variant": "champion",
        "model_version": "1",
        "features": {"x": 1.0},
        "score": 0.5,
        "timestamp": "2025-01-31T10:00:00+00:00",
    }
    path.write_text(json.dumps(old) + "\n")
    (back,) = read_records([path])
    assert (back.entity_id, back.model_name, back.flags) == (None, "", [])
    full = PredictionRecord(**old, entity_id="lead-9", model_name="crm-leads", flags=["out_of_range:x"])
    assert PredictionRecord(**json.loads(full.to_json())) == full


def test_files_rotate_by_size_and_read_back_in_order(tmp_path: Path) -> None:
    one_line = len(record("r000").to_json()) + 1
    with PredictionLog(tmp_path, writer_id="host-7", max_file_bytes=3 * one_line) as log:
        for i in range(10):
            log.append([record(f"r{i:03d}")])
    names = [p.name for p in log_files(tmp_path)]
    day = names[0][len("predictions-") :][:10]
    assert names == [f"predictions-{day}-host-7.jsonl"] + [
        f"predictions-{day}-host-7.{n:05d}.jsonl" for n in (1, 2, 3)
    ]
    assert [p.stat().st_size for p in log_files(tmp_path)] == [3 * one_line] * 3 + [one_line]
    assert [r.request_id for r in read_records(log_files(tmp_path))] == [f"r{i:03d}" for i in range(10)]
    # A writer with the same id (a restarted process) continues in the last segment, not the first.
    with PredictionLog(tmp_path, writer_id="host-7", max_file_bytes=3 * one_line) as log:
        log.append([record("r010")])
    assert len(log_files(tmp_path)) == 4
    assert [r.request_id for r in read_records(log_files(tmp_path))][-2:] == ["r009", "r010"]


def test_retention_deletes_the_oldest_files_but_never_a_writers_newest(tmp_path: Path) -> None:
    one_line = len(record("r000").to_json()) + 1
    other = PredictionLog(tmp_path, writer_id="other-1")
    other.append([record("o1")])  # the other writer's only (newest) file: kept, however old
    limits = {"max_file_bytes": 2 * one_line, "max_total_bytes": 5 * one_line}
    with PredictionLog(tmp_path, writer_id="host-7", **limits) as log:
        for i in range(12):
            log.append([record(f"r{i:03d}")])
    total = sum(p.stat().st_size for p in log_files(tmp_path))
    assert total <= 5 * one_line + 2 * one_line  # the limit, plus the open segment
    ids = [r.request_id for r in read_records(log_files(tmp_path))]
    assert "o1" in ids
    kept = [i for i in ids if i != "o1"]
    assert kept == [f"r{i:03d}" for i in range(12 - len(kept), 12)]  # the newest rows, whole files
    assert len(kept) >= 4
    other.close()


def test_a_file_deleted_after_listing_is_skipped(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, writer_id="w1") as log:
        log.append([record("a")])
    files = log_files(tmp_path)
    gone = tmp_path / "predictions-2025-01-01-w0.jsonl"
    assert [r.request_id for r in read_records([gone, *files])] == ["a"]


def test_a_segment_ending_in_a_torn_line_is_not_appended_to(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, writer_id="w1") as log:
        log.append([record("a")])
    (path,) = log_files(tmp_path)
    with path.open("a") as handle:
        handle.write(record("torn").to_json()[:20])
    with PredictionLog(tmp_path, writer_id="w1") as log:  # same id: a pid reused after a kill
        log.append([record("b")])
    assert len(log_files(tmp_path)) == 2
    assert [r.request_id for r in read_records(log_files(tmp_path))] == ["a", "b"]
