"""Setting the clock (date -s, an NTP step) moves wall-clock labels, never durations or uptimes.

Durations come from monotonic clocks: tiering measures an event on the clock its engine is given
(EventClosed.duration_ms), the supervisor measures uptimes on its own. The wall clock is injected
(sample timestamps, started_at labels) instead of really set, except that the tiering worker runs
for real below with sample timestamps that jump as a clock change makes them.
"""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from cli import up_cmd
from cli.main import app
from pmshared import config as config_mod
from pmshared import messages as m
from pmshared import paths, storage
from pmshared.codec import Stamper
from tests.cli_people_helpers import DbBuilder
from tests.tiering_helpers import samples
from tiering.engine import Tiering

HOURS2 = 2 * 3600.0


def close_of(engine: Tiering, script: list[tuple[float, float, int]]) -> m.EventClosed:
    """(monotonic now, wall timestamp, score) per sample; the one EventClosed they produce."""
    records = [r for now, wall, score in script for r in engine.handle(samples(score, timestamp=wall), now=now).records]
    (closed,) = [r for r in records if isinstance(r, m.EventClosed)]
    return closed


@pytest.mark.parametrize("jump", [HOURS2, -HOURS2])
def test_tiering_measures_an_event_on_its_clock_whatever_the_wall_clock_did(jump: float) -> None:
    engine = Tiering(config_mod.Config(), "t-1")
    wall0, mono0 = 1_700_000_000.0, 500.0
    script = [(mono0, wall0, 60)]  # tier 2: the event opens
    script += [(mono0 + i, wall0 + i + jump, 60) for i in (1, 2)]  # the clock was set meanwhile
    script += [(mono0 + i, wall0 + i + jump, 5) for i in range(3, 20)]  # quiet: it closes
    closed = close_of(engine, script)
    delay = config_mod.Config().tiers.deescalation_delay_s
    assert closed.duration_ms == pytest.approx((3 + delay) * 1000.0)  # what really passed
    assert closed.start == wall0 and closed.end == pytest.approx(wall0 + 3 + delay + jump)  # labels


def event_db(isolated_home) -> dict[str, str]:
    """Two events of 7 s each, closed after the clock was set forward / back by two hours."""
    now = time.time()
    b = DbBuilder(paths.db_path())
    keys = {}
    for name, start, jump in (("forward", now - 9000, HOURS2), ("back", now - 600, -HOURS2)):
        key = b.event(start, [55, 60])
        with b.conn:
            storage.apply(b.conn, b.tiering(m.EventClosed, event_key=key, start=start, end=start + 7 + jump,
                                            peak_score=60, peak_tier=2, duration_ms=7000.0))
        keys[name] = key
    b.close()
    return keys


def test_stored_events_keep_the_measured_duration_and_never_end_before_they_start(isolated_home) -> None:
    keys = event_db(isolated_home)
    conn = storage.open_readonly(paths.db_path())
    try:
        events = {e.event_key: e for e in storage.list_events(conn)}
    finally:
        conn.close()
    for key in keys.values():
        e = events[key]
        assert e.duration_ms == 7000.0 and e.duration_s == 7.0
        assert e.end is not None and e.end >= e.start
    assert events[keys["back"]].end == events[keys["back"]].start  # a label before the start is not kept


def test_pmctl_events_shows_measured_durations_in_table_detail_and_json(isolated_home) -> None:
    keys = event_db(isolated_home)
    runner = CliRunner()
    table = runner.invoke(app, ["events"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert table.stdout.count("7.0 s") == 2
    assert "2h 00m" not in table.stdout and "0 ms" not in table.stdout
    as_json = json.loads(runner.invoke(app, ["events", "--json"]).stdout)
    assert {e["event_key"] for e in as_json} == set(keys.values())
    for e in as_json:
        assert e["duration_ms"] == 7000.0 and e["end"] >= e["start"]
    for e in as_json:
        shown = runner.invoke(app, ["events", "show", str(e["id"])], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        assert "7.0 s" in shown.stdout.splitlines()[0]


def test_a_v1_database_upgrades_and_its_old_events_fall_back_to_their_labels(isolated_home) -> None:
    path = paths.db_path()
    path.parent.mkdir(parents=True)
    conn = storage.connect(path, mode="create")
    conn.close()
    # Rebuild it as a version-1 database, as an older pause-monitor left it.
    path.unlink()
    import apsw

    old = apsw.Connection(str(path))
    storage.upgrade(old, storage.MIGRATIONS[:1])
    old.execute("INSERT INTO events (event_key, start_at, end_at, incarnation) VALUES ('t:1', 100.0, 112.5, 't')")
    old.execute("INSERT INTO events (event_key, start_at, end_at, incarnation) VALUES ('t:2', 200.0, 190.0, 't')")
    old.close()

    conn = storage.connect(path, mode="readwrite")
    try:
        assert storage.schema_version(conn) == storage.SCHEMA_VERSION
        events = {e.event_key: e for e in storage.list_events(conn)}
        assert events["t:1"].duration_ms == 12500.0
        assert events["t:2"].duration_ms == 0.0  # a negative difference is shown as 0, not as -10 s
        with conn:
            storage.apply(conn, Stamper("forensics", "f")(
                m.ForensicsDone, pause_ids=["c:1"], bundle_path="", artifacts=[], culprits=[],
                cause="unknown", error="No space left on device"))
    finally:
        conn.close()


def test_supervisor_uptimes_come_from_its_monotonic_clock(monkeypatch) -> None:
    from tests.test_supervisor_units import Harness

    h = Harness(["a"], monkeypatch)
    try:
        h.start()
        h.children["a"].started_wall = time.time() + HOURS2  # a label from before the clock was set back
        h.turn(h.now + 7.0)
        (status,) = h.sup.statuses()
        assert status.uptime_s == 7.0
    finally:
        h.close()


def test_pmctl_status_shows_the_measured_uptimes(capsys) -> None:
    now = time.time()
    later = now + HOURS2  # the labels were taken before `date -s '-2 hours'`
    reply = Stamper("supervisor", "s")(
        m.ControlReply, ok=True, supervisor_pid=1, started_at=later, uptime_s=9.0,
        workers=[m.WorkerStatus(name="tiering", state="running", pid=2, started_at=later, uptime_s=7.0)],
    )
    doc = up_cmd.status_doc(reply, 1, 0, now)
    assert doc["uptime_s"] == 9.0 and doc["workers"][0]["uptime_s"] == 7.0
    up_cmd._print_status(reply, 1, 0, now)
    out = capsys.readouterr().out
    assert "up 9.0 s" in out and "7.0 s" in out and "0 ms" not in out
    # From a supervisor that does not send uptimes: the labels' difference, never negative.
    old = Stamper("supervisor", "s")(m.ControlReply, ok=True, supervisor_pid=1, started_at=later)
    assert up_cmd.status_doc(old, None, None, now)["uptime_s"] == 0.0
    # "not running … last recorded event": its measured length too.
    event = {"id": 3, "start": now, "end": now, "duration_ms": 7000.0, "peak_tier": 2, "peak_score": 60,
             "status": "unreviewed"}
    assert "lasted 7.0 s" in up_cmd.describe_event(event)


@pytest.mark.slow
def test_the_real_tiering_worker_sends_the_duration_it_measured(tmp_path, monkeypatch, isolated_home) -> None:
    """Scorer and tiering as real processes; the samples' wall clock jumps two hours mid-event."""
    from pmshared.endpoints import ENDPOINTS, Sockets, send_nowait
    from tests.test_tiering_workers import child_env
    from tests.tiering_helpers import burner_snapshot, quiet_snapshot, receive_until, workers

    raw_codec, live_codec, record_codec = (ENDPOINTS[n].codec() for n in ("raw", "live", "record"))
    env = child_env(tmp_path, monkeypatch)
    stamp = Stamper("collector", "test-collector")
    socks = Sockets()
    try:
        record, live, raw = socks.bind("record"), socks.connect("live"), socks.connect("raw")
        with workers("scorer", "tiering", env=env):
            receive_until(record, record_codec.decode, lambda r: isinstance(r, m.TieringStarted), deadline_s=15)
            receive_until(live, live_codec.decode, lambda s: True, deadline_s=15,  # links are up
                          on_idle=lambda: send_nowait(raw, raw_codec.encode(quiet_snapshot(stamp, time.time()))))
            wall = time.time()
            opened_mono = time.monotonic()
            raw.send(raw_codec.encode(burner_snapshot(stamp, wall)))
            opened, _ = receive_until(record, record_codec.decode, lambda r: isinstance(r, m.EventOpened))
            jumped = wall + HOURS2  # `date -s '+2 hours'` now: the collector's timestamps follow
            raw.send(raw_codec.encode(burner_snapshot(stamp, jumped)))
            closed, _ = receive_until(
                record, record_codec.decode, lambda r: isinstance(r, m.EventClosed), deadline_s=30,
                on_idle=lambda: send_nowait(raw, raw_codec.encode(quiet_snapshot(stamp, jumped + time.monotonic() - opened_mono))),
            )
            elapsed_ms = (time.monotonic() - opened_mono) * 1000
    finally:
        socks.close()
    assert closed.event_key == opened.event_key and closed.end - closed.start > HOURS2
    delay_ms = config_mod.Config().tiers.deescalation_delay_s * 1000
    assert delay_ms <= closed.duration_ms <= elapsed_ms  # what really passed, not two hours

    b = DbBuilder(paths.db_path())
    with b.conn:
        for rec in (opened, closed):
            storage.apply(b.conn, rec)
    (event,) = [e for e in storage.list_events(b.conn) if e.event_key == closed.event_key]
    b.close()
    assert event.duration_ms == closed.duration_ms
