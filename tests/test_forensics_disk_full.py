"""A full disk must not lose forensics: one log line, nothing half-written, the bundle written once
space is back (or its failure recorded), and pauses left without a bundle picked up after a restart.

The full disk is a real, small tmpfs mounted for the test (we run as root) and filled up.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from forensics.engine import SWEEP_DELAY_S, Engine
from forensics.main import done_message
from forensics.notify import Notifier
from forensics.runner import CommandCapture
from pmshared import messages as m
from pmshared import paths, storage
from pmshared.codec import Stamper
from pmshared.config import Config
from tests.cli_people_helpers import DbBuilder
from tests.forensics_helpers import FAKE_BIN, live, pause, processes, rogue, stop_worker, system, wait_for
from tests.test_forensics_worker import world  # noqa: F401 - the real worker's fixture


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 256 KiB tmpfs with an ``events`` dir, then filled to the last byte; yields (mount, filler)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        (mount / "events").mkdir(mode=0o700)
        filler = mount / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        yield mount, filler
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def engine_on(events_dir: Path, tmp_path: Path, **kw) -> Engine:
    config = Config()
    return Engine(config, events_dir=events_dir, plan=lambda p, b, d: [],
                  notifier=Notifier(config.alerts, search_path=str(tmp_path)), **kw)


def feed(engine: Engine, now: float) -> None:
    engine.on_live(live(now - 3, [rogue(4242, "hog", 70, ["cpu"])], system(cpu_busy_pct=99.0)))


def leftovers(events_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(events_dir)) for p in events_dir.rglob("*"))


def failure_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "forensics" and r.levelno >= logging.WARNING]


def test_full_disk_leaves_nothing_half_written_and_the_bundle_follows_once_space_returns(
    full_disk, tmp_path: Path, caplog
) -> None:
    mount, filler = full_disk
    events = mount / "events"
    engine = engine_on(events, tmp_path)
    caplog.set_level(logging.INFO, logger="forensics")
    now = time.time()
    feed(engine, now)
    try:
        assert engine.on_pause(pause("c:1", now - 2, processes=processes())) == "started"
        wait_for(lambda: engine.counters["bundle_write_failures"] >= 1, timeout=10, what="a failed write")
        # A second pause while the disk is full joins the bundle that is waiting for space.
        assert engine.on_pause(pause("c:2", now - 1, processes=processes()[:2])) == "coalesced"
        assert engine.take_done() == []
        assert leftovers(events) == []  # no empty .processes.json.tmp, no half bundle

        # One line per failure, no traceback.
        lines = failure_lines(caplog)
        assert lines and all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)
        assert "No space left on device" in lines[0].getMessage()
        assert "retrying" in lines[0].getMessage()

        filler.unlink()  # space is back
        (result,) = wait_for(engine.take_done, timeout=20, what="the bundle once space returned")
    finally:
        engine.shutdown()
    assert result.status == "complete" and result.error is None
    assert result.pause_ids == ["c:1", "c:2"]
    bundle = Path(result.bundle_path)
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["status"] == "complete"
    assert meta["retries"]["attempts"] >= 2 and "No space left on device" in meta["retries"]["last_error"]
    assert len(json.loads((bundle / "processes.json").read_text())) == len(processes())
    assert not [p for p in bundle.iterdir() if p.name.endswith(".tmp")]


def test_a_disk_that_stays_full_ends_in_a_recorded_failure(full_disk, tmp_path: Path) -> None:
    mount, _filler = full_disk
    clock = [1000.0]
    engine = engine_on(mount / "events", tmp_path, clock=lambda: clock[0])
    now = time.time()
    feed(engine, now)
    try:
        engine.on_pause(pause("c:9", now - 2, processes=processes()))
        wait_for(lambda: engine.counters["bundle_write_failures"] >= 1, timeout=10, what="a failed write")
        clock[0] += 2 * 3600  # the retries have gone on for longer than forensics keeps trying
        (result,) = wait_for(engine.take_done, timeout=20, what="the session to give up")
    finally:
        engine.shutdown()
    assert result.status == "failed" and result.bundle_path == ""
    assert result.error is not None and "No space left on device" in result.error
    assert result.pause_ids == ["c:9"]
    assert [c.command for c in result.culprits][:1] == ["hog"]  # known from memory, kept
    assert leftovers(mount / "events") == []
    assert engine.counters["bundles_failed"] == 1 and engine.counters["bundles_written"] == 0

    done = done_message(Stamper("forensics", "f-1"), result)
    assert done.error == result.error


def test_pmctl_pauses_says_forensics_failed_instead_of_pending(isolated_home) -> None:
    now = time.time()
    b = DbBuilder(paths.db_path())
    failed = b.pause(now - 60)
    b.pause(now - 30)  # no ForensicsDone at all: still pending
    with b.conn:
        storage.apply(b.conn, b.forensics(
            m.ForensicsDone, pause_ids=[failed], bundle_path="", artifacts=[], culprits=[],
            cause="unknown", error="No space left on device"))
    b.close()
    runner = CliRunner()
    listing = runner.invoke(app, ["pauses"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    assert "forensics failed: No space left on device" in listing.stdout
    assert "pending" in listing.stdout
    shown = runner.invoke(app, ["pauses", "show", failed], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "forensics failed: No space left on device" in shown.stdout
    as_json = json.loads(runner.invoke(app, ["pauses", "--json"]).stdout)
    by_id = {p["pause_id"]: p for p in as_json}
    assert by_id[failed]["forensics_error"] == "No space left on device"


def test_start_sweep_writes_bundles_for_recent_pauses_left_pending(isolated_home, tmp_path: Path) -> None:
    now = time.time()
    b = DbBuilder(paths.db_path())
    lost = b.pause(now - 600, duration_ms=2500.0)  # pending: the worker died with the disk full
    done = b.pause(now - 500)
    b.bundle([done], tmp_path / "some-bundle")
    b.pause(now - 3 * 86400)  # pending, but too old to be worth a bundle now
    b.close()

    engine = engine_on(paths.events_dir(), tmp_path, db_path=paths.db_path())
    try:
        engine.tick(engine.started_mono + 1.0)
        assert not engine.busy  # too early: pauses in flight to this incarnation come first
        engine.tick(engine.started_mono + SWEEP_DELAY_S)
        assert engine.wait_idle(20)
        (result,) = engine.take_done()
        engine.tick(engine.started_mono + 2 * SWEEP_DELAY_S)
        assert engine.wait_idle(5) and engine.take_done() == []  # one sweep per start
    finally:
        engine.shutdown()
    assert result.pause_ids == [lost] and result.status == "complete"
    meta = json.loads((Path(result.bundle_path) / "metadata.json").read_text())
    assert meta["status"] == "complete"
    assert "after a restart" in meta["recovered"]
    assert meta["pause"]["duration_ms"] == 2500.0
    assert not (Path(result.bundle_path) / "processes.json").exists()  # lost with the old worker


def test_start_sweep_resends_the_record_of_a_bundle_on_disk_instead_of_writing_another(
    isolated_home, tmp_path: Path
) -> None:
    """The bundle was written but its ForensicsDone never reached the database (dropped, or the
    worker stopped first): the next start sends it from the bundle; no second bundle."""
    now = time.time()
    b = DbBuilder(paths.db_path())
    pause_id = b.pause(now - 600)
    b.close()
    first = engine_on(paths.events_dir(), tmp_path, db_path=paths.db_path())
    first.tick(first.started_mono + SWEEP_DELAY_S)
    assert first.wait_idle(20)
    (written,) = first.take_done()  # ... and never sent
    first.shutdown()
    second = engine_on(paths.events_dir(), tmp_path, db_path=paths.db_path())
    second.tick(second.started_mono + SWEEP_DELAY_S)
    assert second.wait_idle(5)
    (again,) = second.take_done()
    second.shutdown()
    assert len(list(paths.events_dir().iterdir())) == 1
    assert again.bundle_path == written.bundle_path and again.pause_ids == [pause_id]
    assert again.status == "complete" and again.cause == written.cause


def test_start_sweep_closes_a_bundle_a_killed_worker_left_capturing(isolated_home, tmp_path: Path) -> None:
    now = time.time()
    b = DbBuilder(paths.db_path())
    b.pause(now - 600)  # the recorder's copy of the pause below
    b.close()
    started = tmp_path / "slow-started"
    config = Config()
    hung = Engine(config, events_dir=paths.events_dir(), notifier=Notifier(config.alerts, search_path=str(tmp_path)),
                  plan=lambda p, _b, _d: [CommandCapture("slow", [str(FAKE_BIN / "slow"), "60", str(started)], 90, "slow.txt")],
                  sweep=False)
    hung.on_live(live(now - 603, [rogue(4242, "hog", 70, ["cpu"])], system(cpu_busy_pct=99.0)))
    try:
        hung.on_pause(pause("collector-1:1", now - 600, processes=processes()))
        wait_for(started.exists, timeout=10, what="the capture to start")
        # The worker dies here (as by SIGKILL): its bundle says "capturing" and nothing was sent.
        second = engine_on(paths.events_dir(), tmp_path, db_path=paths.db_path())
        second.tick(second.started_mono + SWEEP_DELAY_S)
        assert second.wait_idle(5)
        (adopted,) = second.take_done()
        second.shutdown()
        bundle = Path(adopted.bundle_path)
        meta = json.loads((bundle / "metadata.json").read_text())
    finally:
        hung.shutdown()
    assert adopted.status == "interrupted" and adopted.pause_ids == ["collector-1:1"]
    assert [c.command for c in adopted.culprits][:1] == ["hog"]  # from its culprits.json
    assert meta["status"] == "interrupted" and "stopped while capturing" in meta["interrupted"]
    assert (bundle / "processes.json").exists() and len(list(paths.events_dir().iterdir())) == 1
    done = done_message(Stamper("forensics", "f-2"), adopted)
    assert done.bundle_path == str(bundle) and done.error is None


def test_the_worker_process_sends_a_recovered_bundle_for_a_pending_pause(world, tmp_path: Path) -> None:
    """Wiring: a real forensics process on real sockets, a real database left by an earlier run."""
    harness, start, _notify_log = world
    b = DbBuilder(paths.db_path())
    lost = b.pause(time.time() - 300, duration_ms=1800.0)
    b.close()
    proc = start()
    done = harness.receive_record(timeout_s=SWEEP_DELAY_S + 20)
    assert isinstance(done, m.ForensicsDone) and done.pause_ids == [lost] and done.error is None
    meta = json.loads((Path(done.bundle_path) / "metadata.json").read_text())
    assert meta["status"] == "complete" and "recovered" in meta
    assert stop_worker(proc) is not None
    assert b"Traceback" not in proc.stderr.read()
