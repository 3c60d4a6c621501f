"""Telling the stack's own processes from others (`infra.stack.processes.identify`), on a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from infra.stack.processes import adopt, boot_start, identify, is_ours, stop


def test_a_recorded_process_stays_ours_when_the_wall_clock_moves(tmp_path: Path) -> None:
    """`create_time` is the boot time (whole seconds in /proc/stat) plus the start's ticks: a clock slewed by a
    fraction of a second can move it by one, which once left a whole stack running after `down` judged every
    server "other". The start since boot decides where the record has it."""
    if boot_start(os.getpid()) is None:
        message = "no /proc boot id and start ticks on this system: the wall-clock check applies"
        if os.environ.get("CI") == "true":  # CI runs on Linux, where the record must have them
            pytest.fail(message)
        pytest.skip(message)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        record = adopt("sleeper", proc.pid, url="", health_url=None, log=tmp_path / "sleeper.log")
        assert record.boot_start is not None and is_ours(record)
        moved = replace(record, create_time=record.create_time - 5.0)
        assert is_ours(moved), "the same process, its wall-clock start time moved by a clock step"
        # Another start of the same command line under the same pid (a later tick) is not ours.
        later = replace(record, boot_start=f"{record.boot_start}0")
        assert identify(later).identity == "other"
        # A record written before the start since boot was kept: the wall clock decides, as it did.
        assert is_ours(replace(record, boot_start=None))
        assert identify(replace(moved, boot_start=None)).identity == "other"
        # And `down` stops it.
        assert [r.pid for r in stop([moved])] == [proc.pid]
        assert proc.wait(timeout=10) is not None
    finally:
        proc.kill()
        proc.wait(timeout=10)
