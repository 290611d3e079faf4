"""Issue 17 item 4 on the real pipeline: a pause while the data directory's disk is full.

`pmctl up` runs with its data directory on a private 4 MiB tmpfs (fault_helpers.TmpfsPipeline);
the test fills it, freezes the collector for a second (a pause), and frees the space again. What
the user sees must be: one log line from forensics (no traceback), no half-written file in the
bundle directory, and — once there is room — the pause with its bundle in `pmctl pauses`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pmshared import paths
from tests.e2e.fault_helpers import (  # noqa: F401 - tmpfs_pipeline is a fixture
    HOG_TIERS, WORKERS, TmpfsPipeline, cli_json, fill, log_lines, tmpfs_pipeline,
)
from tests.procutil import freeze, thaw
from tests.supervisor_helpers import wait_bundled_pauses, wait_for

pytestmark = pytest.mark.slow


def test_a_pause_on_a_full_disk_gets_its_bundle_once_space_returns(tmpfs_pipeline: TmpfsPipeline, request, capsys):
    pipe = tmpfs_pipeline
    pipe.config.write_text("[supervisor]\ngrace_period_s = 3.0\n" + HOG_TIERS)
    pipe.start(default_procfile=True)
    pipe.wait_running(WORKERS, timeout=40)
    data = pipe.view(paths.data_dir())
    events = data / "events"
    filler, _size = fill(data)
    request.addfinalizer(lambda: filler.unlink(missing_ok=True))

    collector = pipe.workers()["collector"].pid
    freeze(collector)
    time.sleep(1.0)  # the stimulus: a one-second stall of the collector's sentinel
    thaw(collector)

    wait_for(lambda: log_lines(pipe, r"forensics.*bundle for pause .* not written \(No space left on device"), 30,
             lambda: f"forensics to report the full disk; output:\n{pipe.output()[-3000:]}", interval=0.2)
    # Nothing half-written: no empty .processes.json.tmp, no bundle directory without metadata.
    assert not (list(events.iterdir()) if events.exists() else [])

    filler.unlink()
    freed = time.monotonic()
    pauses = wait_bundled_pauses(lambda: cli_json(pipe, "pauses"), 60, lambda: pipe.output()[-3000:], interval=0.5)
    caught_up = time.monotonic() - freed
    bundle = pipe.view(Path(pauses[0]["bundle_path"]))
    assert (bundle / "metadata.json").exists() and (bundle / "processes.json").exists()
    assert "Traceback" not in pipe.output()
    assert len(log_lines(pipe, r"forensics.*not written")) == 1  # one line, not one per retry
    with capsys.disabled():
        print(f"\n[faults] pause on a full disk: bundle in `pmctl pauses` {caught_up:.1f} s after space returned")
