"""A corrupt or unusable database (issue 17, item 2): the real pipeline (`pmctl up`, the real
Procfile, the temporary home) must go on recording, say what happened, and come back by itself.

The record each test needs is a pause: the collector's process group (the collector and its
sentinel process) is SIGSTOPped for 0.6 s (the sentinel wakes that late, which is a pause by the
default 200 ms threshold), and the pause must then be in
`pmctl pauses --json`, i.e. stored by the recorder in a database the CLI can read.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import apsw
import pytest

from pmshared import paths, storage
from tests.e2e.fault_helpers import WORKERS, cli_json, log_lines, run_cli, worker_pids
from tests.procutil import freeze, thaw
from tests.supervisor_helpers import Pipeline, pipeline, wait_for  # noqa: F401

pytestmark = pytest.mark.slow

STALL_S = 0.6


def _up(pipeline: Pipeline, supervisor: str = "", *, wait: list[str] = WORKERS) -> None:
    pipeline.config.write_text("[supervisor]\ngrace_period_s = 3.0\n" + supervisor + "[alerts]\nenabled = false\n")
    pipeline.start(default_procfile=True)
    pipeline.wait_running(wait, timeout=40)


def _stall_collector(pipeline: Pipeline) -> float:
    """Freeze the collector (and its sentinel) for STALL_S: the stimulus, so the sleep is the
    point. Returns the wall-clock middle of the stall."""
    collector = worker_pids(pipeline)["collector"]
    freeze(collector)
    stopped = time.time()
    time.sleep(STALL_S)
    resumed = time.time()
    thaw(collector)
    return (stopped + resumed) / 2


def _wait_pause_stored(pipeline: Pipeline, middle: float, timeout: float = 20) -> dict:
    def stored():
        out = run_cli(pipeline, "pauses", "--json")
        if out.returncode != 0:
            return None  # the CLI cannot read the database (yet)
        return next((p for p in json.loads(out.stdout) if p["start"] <= middle <= p["end"]), None)

    return wait_for(stored, timeout, lambda: f"the stall's pause stored; output:\n{pipeline.output()}", interval=0.3)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_random_bytes_in_the_database_are_set_aside_at_up_and_recording_goes_on(pipeline: Pipeline):
    db = paths.db_path()
    db.parent.mkdir(parents=True)
    os.chmod(db.parent, 0o755)  # as an install from before the data was private
    garbage = os.urandom(100_000)
    db.write_bytes(garbage)
    os.chmod(db, 0o644)
    _up(pipeline)
    [kept] = storage.quarantined(db)
    assert kept.read_bytes() == garbage  # kept as it was, for whoever wants to recover it
    [line] = log_lines(pipeline, "is corrupt")
    assert f"moved it aside to {kept} (kept) so the recorder starts a new one" in line
    status = pipeline.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"corrupt database moved aside (kept): {kept}" in status.stdout
    assert cli_json(pipeline, "status")["set_aside"] == [str(kept)]

    pause = _wait_pause_stored(pipeline, _stall_collector(pipeline))
    assert pause["duration_ms"] >= 200
    # Item 7: private, also for the install that was not.
    assert _mode(db.parent) == 0o700
    assert {s: _mode(Path(f"{db}{s}")) for s in ("", "-wal", "-shm")} == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    assert worker_pids(pipeline)["recorder"] is not None
    assert pipeline.workers()["recorder"].restarts == 0
    assert pipeline.cli("down").returncode == 0


def _damage_the_pauses_table(db: Path) -> list[int]:
    """Random bytes over the root page of the pauses table (not its indexes): damage in the middle
    of the file, which opening it does not see, and which the first read or write of a pause row
    meets (the recorder's start-up prune reaches old pauses through an index, and finds none).
    Returns the page numbers."""
    conn = apsw.Connection(str(db))
    try:
        conn.set_busy_timeout(5000)
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").get  # every page in the main file
        assert busy == 0
        page_size = conn.execute("PRAGMA page_size").get
        pages = [row[0] for row in conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'pauses'")]
    finally:
        conn.close()
    with open(db, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * page_size)
            f.write(os.urandom(page_size))
    return pages


def test_damage_in_the_middle_found_while_running_is_set_aside_without_an_exit_or_a_lost_record(pipeline: Pipeline):
    _up(pipeline)
    db = paths.db_path()
    wait_for(lambda: db.exists(), 10, "the recorder's database")
    assert len(_damage_the_pauses_table(db)) == 1
    # `pmctl pauses` reads the (empty, intact) index only and sees nothing wrong; the check does.
    assert run_cli(pipeline, "pauses").returncode == 0
    assert "is corrupt" in storage.check(db).corrupt
    # The recorder's own page cache would hide the damage for a while; a new recorder (after a
    # crash) reads the file: its start-up check finds the damage (as would its prune, `PRAGMA
    # optimize` or the first pause it writes; tests/test_storage_recovery.py has the write).
    old = worker_pids(pipeline)["recorder"]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: worker_pids(pipeline).get("recorder") not in (None, old)
             and pipeline.workers()["recorder"].state == "running", 20, "the recorder restarted")

    pause = _wait_pause_stored(pipeline, _stall_collector(pipeline))
    assert pause["duration_ms"] >= 200
    [kept] = storage.quarantined(db)
    [line] = log_lines(pipeline, r"recorder\[\d+\] ERROR .*is corrupt")
    assert f"moved it aside to {kept} and started a new database" in line
    assert "records not written" not in pipeline.output() and "lost" not in pipeline.output()
    assert pipeline.workers()["recorder"].restarts == 1  # our kill only: the damage cost no exit
    assert storage.check(db).ok
    assert pipeline.cli("status").returncode == 0
    assert pipeline.cli("down").returncode == 0


def test_a_failed_recorder_shows_why_and_comes_back_once_the_cause_is_gone(pipeline: Pipeline):
    db = paths.db_path()
    db.mkdir(parents=True)  # a directory where the database should be
    _up(pipeline, "backoff_initial_s = 0.1\nmax_restarts = 1\nfailed_retry_s = 3.0\n",
        wait=[w for w in WORKERS if w != "recorder"])
    [note] = log_lines(pipeline, r"supervisor\[\d+\] database: ")
    assert f"{db} is a directory, not a database file" in note

    def failed():
        doc = run_cli(pipeline, "status", "--json")
        worker = {w["name"]: w for w in json.loads(doc.stdout)["workers"]}["recorder"] if doc.stdout else None
        return (doc, worker) if worker and worker["state"] == "failed" else None

    doc, recorder = wait_for(failed, 20, lambda: f"recorder FAILED; output:\n{pipeline.output()}")
    assert doc.returncode == 1  # unhealthy
    assert recorder["reason"] == f"{db} is a directory, not a database file; move it aside"
    assert 0 <= recorder["retry_in_s"] <= 3.0
    human = pipeline.cli("status")
    assert human.returncode == 1
    assert f"recorder is FAILED: {db} is a directory, not a database file; move it aside; next try in" in human.stdout
    doctor = pipeline.cli("doctor")
    assert doctor.returncode == 1 and "ERROR pipeline  recorder is FAILED" in doctor.stdout

    db.rmdir()  # the cause goes away: the retry (not a restart of everything) brings it back
    wait_for(lambda: pipeline.workers()["recorder"].state == "running", 20,
             lambda: f"the recorder retried; output:\n{pipeline.output()}")
    assert "recorder: retrying after FAILED" in pipeline.output()
    pause = _wait_pause_stored(pipeline, _stall_collector(pipeline))
    assert pause["duration_ms"] >= 200
    assert pipeline.cli("status").returncode == 0
    assert pipeline.cli("down").returncode == 0
