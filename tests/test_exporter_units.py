"""The exporter's logic without sockets or sleeps: its state from live samples, lifecycle events
and status replies; the database totals on a real SQLite file (each row counted once, a pause
only with its cause); the text format (parsed back with prometheus_client's own parser, hostile
names inert); the HTTP routing; the textfile's atomic write.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import textfile
from exporter.dbtotals import CAUSE_WAIT_S, NO_BUNDLE, DbTotals, RowTracker
from exporter.families import METRICS, registry_for
from exporter.httpd import route
from exporter.live import live_codec
from exporter.state import MAX_GROUPS, MAX_RESOURCES, OTHER, ExporterState, Histogram, culprit_group
from pmshared import messages as m
from pmshared import storage
from pmshared.codec import BadMessage, Stamper
from pmshared.endpoints import ENDPOINTS
from tests.recorder_helpers import Tiering, apply_all, forensics_done, pause
from tests.recorder_helpers import rogue as make_rogue

T0 = 1_700_000_000.0
HOSTILE = "evil\x1b]52;c;aGk=\x07\"} 1\nfake_metric{a=\"b\"} 9\\"


def render(state: ExporterState, **kwargs) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry_for(state, cpu_of=lambda pid, children=True: 1.5, suspended=lambda: 12.0, **kwargs)).decode()


def nonzero(counts: dict) -> dict:
    """A counter's label values that moved (the known ones are all present from the start at 0)."""
    return {k: v for k, v in counts.items() if v}


def samples_of(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value}, read back by prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# ------------------------------------------------------------------------------- live feed
class Live:
    def __init__(self) -> None:
        self.stamp = Stamper("tiering", "tiering-A")
        self.scorer = Stamper("scorer", "scorer-A")

    def __call__(self, tier: int = 1, rogues: tuple = (), pauses: int = 0, event_key: str | None = None,
                 late_ms: float | None = 3.0, elapsed_ms: float = 1000.0, stress=None) -> m.LiveSample:
        sentinel = m.SentinelStats(tick_ms=20, window_s=60, pauses=pauses, interval_max_ms=late_ms)
        samples = self.scorer(m.ProcessSamples, timestamp=T0, elapsed_ms=elapsed_ms, process_count=10,
                              max_score=max((r.score for r in rogues), default=0), rogues=list(rogues),
                              sentinel=sentinel, stress=stress or {})
        return self.stamp(m.LiveSample, samples=samples, state=m.TierState(tier=tier, event_key=event_key))


def test_a_pause_counted_by_the_sentinel_or_an_event_ending_asks_for_a_database_read():
    state, live = ExporterState(), Live()
    assert state.on_live(live(pauses=0)) is False  # the first sample only sets the baseline
    assert state.on_live(live(pauses=0, event_key="e:1", tier=2)) is False
    assert state.on_live(live(pauses=1, event_key="e:1", tier=2)) is True  # a pause
    assert state.on_live(live(pauses=1, event_key="e:1", tier=2)) is False
    assert state.on_live(live(pauses=1, event_key=None)) is True  # the event ended
    assert state.on_live(live(pauses=0)) is True  # a restarted collector counts from 0 again


def test_culprit_seconds_count_the_top_rogue_while_stressed_and_groups_are_bounded():
    state, live = ExporterState(), Live()
    hog, small = make_rogue(1, "kworker/u8:2", 60), make_rogue(2, "bash", 10)
    state.on_live(live(tier=1, rogues=(hog,)))  # tier 1: nobody is a culprit
    state.on_live(live(tier=2, rogues=(small, hog)))
    state.on_live(live(tier=3, rogues=(hog,), elapsed_ms=45_000.0))  # the sample after a long stall
    assert state.culprit_seconds == {"kworker": 1.0 + 10.0}
    for i in range(MAX_GROUPS + 5):
        state.on_live(live(tier=2, rogues=(make_rogue(i + 10, f"proc{i}", 50),)))
    assert len(state.culprit_seconds) == MAX_GROUPS + 1 and state.culprit_seconds[OTHER] == 6.0


def test_lateness_gaps_stress_and_tier_come_from_the_samples():
    state, live = ExporterState(), Live()
    state.on_live(live(late_ms=3.0, stress={"cpu": 40, "io": 5}, tier=2))
    live.stamp(m.LiveSample, samples=live.scorer(m.ProcessSamples, timestamp=T0, elapsed_ms=1, process_count=0,
                                                  max_score=0, rogues=[]), state=m.TierState())  # lost
    state.on_live(live(late_ms=250.0))
    state.on_live(live(late_ms=None))  # no sentinel figure: nothing observed
    # 3 ms in the le=5 ms bucket, 250 ms in le=500 ms
    assert state.lateness.count == 2 and state.lateness.counts[2] == 1 and state.lateness.counts[8] == 1
    assert state.live_gaps.missed == 1
    assert state.tier == 1 and state.stress_by_resource == {"cpu": 40, "io": 5}


def _full_live_frames() -> list[bytes]:
    """Live samples as tiering sends them (every field of the rogues, the machine, the sentinel and
    the busiest processes filled in), encoded by the live socket's real codec."""
    live, codec = Live(), ENDPOINTS["live"].codec()
    system = m.SystemStats(cpu_count=2, load1=1.5, mem_total=8 << 30, psi_cpu=m.PressureStall(some=4.0, full=1.0))
    top = [m.ProcessInfo(pid=900 + i, command=f"busy{i}", state="sleeping", cpu=3.0, mem=1 << 20, cgroup="u.slice")
           for i in range(3)]
    hogs = [make_rogue(i, name, score, cgroup="app.slice", categories=["cpu", "io"], io_bps=5e6, ppid=1)
            for i, (name, score) in enumerate((("kworker/u8:2", 70), (HOSTILE, 90), ("bash", 5)))]
    frames = []
    for i, (tier, pauses, key) in enumerate(((1, 0, None), (2, 0, "t:1"), (3, 1, "t:1"), (2, 2, "t:1"), (1, 2, None))):
        sample = live(tier=tier, rogues=tuple(hogs[: i + 1]), pauses=pauses, event_key=key, late_ms=3.0 * (i + 1),
                      stress={"cpu": 30 + i, "memory": 2, HOSTILE: 7})
        full = msgspec.structs.replace(sample, samples=msgspec.structs.replace(sample.samples, system=system, top=top))
        frames.append(codec.encode(full))
    return frames


def test_the_lean_live_decoder_gives_the_same_figures_as_the_full_message():
    full_state, lean_state = ExporterState(), ExporterState()
    full_codec, lean_codec = ENDPOINTS["live"].codec(), live_codec()
    hints = [(full_state.on_live(full_codec.decode(f)), lean_state.on_live(lean_codec.decode(f)))
             for f in _full_live_frames()]
    assert [a for a, _ in hints] == [b for _, b in hints] == [False, False, True, True, True]
    assert render(lean_state) == render(full_state)
    assert lean_state.culprit_seconds and full_state.stress_by_resource == lean_state.stress_by_resource


def test_the_lean_live_decoder_refuses_what_the_full_one_refuses_on_its_fields():
    frame = _full_live_frames()[1]
    bad_score = frame.replace(b"\xa5score\x46", b"\xa5score\x65")  # a rogue's score 70 -> 101
    assert bad_score != frame
    other_type = ENDPOINTS["scored"].codec().encode(msgspec.msgpack.decode(frame, type=m.LiveSample).samples)
    for bad in (bad_score, other_type, b"\x93garbage"):
        with pytest.raises(BadMessage):
            ENDPOINTS["live"].codec().decode(bad)
        with pytest.raises(BadMessage):
            live_codec().decode(bad)


def test_resource_names_are_remembered_as_labels_but_bounded_and_inert():
    state, live = ExporterState(), Live()
    for i in range(2):  # the second sample finds the names remembered: the same labels
        state.on_live(live(stress={HOSTILE: 9, "cpu": 1, **{f"r{n}": n for n in range(MAX_RESOURCES + 4)}}))
        assert len(state.stress_by_resource) == MAX_RESOURCES
        assert state.stress_by_resource[culprit_group(HOSTILE)] == 9 and HOSTILE not in state.stress_by_resource


def test_histogram_buckets_are_cumulative_with_inf_last():
    hist = Histogram((0.05, 0.1))
    for value in (0.05, 0.07, 3.0):
        hist.observe(value)
    assert hist.cumulative() == [("0.05", 1), ("0.1", 2), ("+Inf", 3)] and hist.sum == pytest.approx(3.12)


def test_group_names_are_inert_bounded_and_never_empty():
    assert culprit_group("stress-ng-cpu") == "stress-ng-cpu"
    assert culprit_group("irq/35-eth0") == "irq"
    assert culprit_group("/") == "_"
    hostile = culprit_group(HOSTILE * 3)
    assert len(hostile) <= 40 and all(c.isprintable() and c not in '"\\{}\n' for c in hostile)


# ------------------------------------------------------------------------------- supervisor
def _status(*workers: m.WorkerStatus) -> m.ControlReply:
    return Stamper("supervisor", "s")(m.ControlReply, ok=True, supervisor_pid=100, started_at=T0,
                                      workers=list(workers))


def test_health_from_status_replies_and_lifecycle_events():
    state = ExporterState()
    state.on_status(_status(
        m.WorkerStatus(name="collector", state="running", pid=11, restarts=2,
                       counters={"samples": 9, "dropped_raw": 3, "records_lost": 1}),
        m.WorkerStatus(name="recorder", state="backoff", pid=None, restarts=5)))
    life = Stamper("supervisor", "s")
    state.on_lifecycle(life(m.Lifecycle, worker="collector", kind="restart"))
    state.on_status(_status(m.WorkerStatus(name="collector", state="running", pid=11, restarts=2)))
    assert state.unsettled is False  # every worker running: the next status in STATUS_EVERY_S
    state.on_lifecycle(life(m.Lifecycle, worker="recorder", kind="spawn", pid=12))
    state.on_lifecycle(life(m.Lifecycle, worker="supervisor", kind="stop"))
    c, r = state.workers["collector"], state.workers["recorder"]
    assert (c.up, c.restarts, c.dropped) == (True, 3, {"dropped_raw": 3, "records_lost": 1})
    # Spawned is not yet running (no heartbeat yet): up waits for the status asked for soon.
    assert (r.up, r.pid, r.restarts, state.unsettled) == (False, 12, 5, True)
    state.on_status(_status(m.WorkerStatus(name="recorder", state="starting", pid=12, restarts=5)))
    assert state.unsettled is True and state.workers["recorder"].up is False
    state.on_status(_status(m.WorkerStatus(name="recorder", state="running", pid=12, restarts=5)))
    assert state.unsettled is False and state.workers["recorder"].up is True
    assert state.pids() == {"collector": 11, "recorder": 12, "supervisor": 100}
    state.on_lifecycle(life(m.Lifecycle, worker="recorder", kind="exit", pid=12, exit_code=1))
    assert state.workers["recorder"].up is False and "recorder" not in state.pids()


# ------------------------------------------------------------------------------- database
@pytest.fixture
def conn(tmp_path: Path):
    c = storage.connect(tmp_path / "data.db", mode="create")
    yield c
    c.close()


def test_row_tracker_counts_each_row_once_when_resolved():
    tracker, counted = RowTracker(), []
    tracker.take([(1, "a"), (2, None), (3, "c")], counted.append)
    assert counted == ["a", "c"] and tracker.floor == 1 and tracker.pending == 1
    tracker.take([(2, None), (3, "c"), (4, "d")], counted.append)
    tracker.take([(2, "b"), (3, "c"), (4, "d")], counted.append)
    assert counted == ["a", "c", "d", "b"] and tracker.floor == 4 and tracker.done == set()


def test_database_totals_at_start_then_each_new_row_once_a_pause_only_with_its_cause(conn):
    tiering = Tiering(start=T0)
    key = tiering.new_key()
    apply_all(conn, [pause("col:1", T0, 300.0), forensics_done(["col:1"], "/b/1"),
                     tiering.opened(key, T0), tiering.closed(key, T0, T0 + 5, 70, peak_tier=3)])
    state = ExporterState()
    totals = DbTotals(state)
    totals.read(conn, now=T0 + 10)
    assert nonzero(state.pauses_by_cause) == {"cpu": 1} and nonzero(state.events_by_peak_tier) == {3: 1}
    # A new pause waits for its cause; an open event is not counted until it closes.
    key2 = tiering.new_key()
    apply_all(conn, [pause("col:2", T0 + 20, 1200.0, seq=2), tiering.opened(key2, T0 + 20)])
    totals.read(conn, now=T0 + 22)
    assert nonzero(state.pauses_by_cause) == {"cpu": 1} and totals.waiting
    apply_all(conn, [forensics_done(["col:2"], "/b/2", seq=2), tiering.closed(key2, T0 + 20, T0 + 30, 40, 2)])
    totals.read(conn, now=T0 + 31)
    totals.read(conn, now=T0 + 32)  # nothing new: nothing counted twice
    assert nonzero(state.pauses_by_cause) == {"cpu": 2} and nonzero(state.events_by_peak_tier) == {3: 1, 2: 1}
    assert not totals.waiting and state.pause_durations.count == 2
    assert state.pause_durations.sum == pytest.approx(1.5)
    # No bundle in time (forensics off): counted as "none", once.
    apply_all(conn, [pause("col:3", T0 + 40, 100.0, seq=3)])
    totals.read(conn, now=T0 + 41)
    assert NO_BUNDLE not in nonzero(state.pauses_by_cause)
    totals.read(conn, now=T0 + 41 + CAUSE_WAIT_S)
    totals.read(conn, now=T0 + 42 + CAUSE_WAIT_S)
    assert nonzero(state.pauses_by_cause) == {"cpu": 2, NO_BUNDLE: 1}


def test_a_restarted_exporter_starts_from_the_database_totals(conn):
    apply_all(conn, [pause(f"col:{i}", T0 + i, seq=i) for i in range(1, 4)]
              + [forensics_done([f"col:{i}"], f"/b/{i}", seq=i) for i in range(1, 4)])
    first, second = ExporterState(), ExporterState()
    DbTotals(first).read(conn, now=T0 + 100)
    DbTotals(second).read(conn, now=T0 + 100)
    assert nonzero(first.pauses_by_cause) == nonzero(second.pauses_by_cause) == {"cpu": 3}


# ------------------------------------------------------------------------------- text format
def test_every_family_renders_and_parses_back_with_hostile_names_inert():
    state, live = ExporterState(), Live()
    state.on_live(live(tier=3, rogues=(make_rogue(1, HOSTILE, 80),), stress={HOSTILE: 7}))
    state.on_pause("cpu", 1500.0)
    state.on_event(3)
    state.on_status(_status(m.WorkerStatus(name=HOSTILE, state="running", pid=5,
                                           counters={"dropped_" + HOSTILE: 1})))
    text = render(state)
    assert not any(ord(c) < 0x20 and c != "\n" for c in text)
    values = samples_of(text)
    # Nothing injected: every sample is one of ours.
    names = {name for name, _ in values}
    assert all(any(n == base or n.startswith(base + "_") or n == base + "_total" for base in
                   {k.removesuffix("_total") for k in METRICS}) for n in names), names
    assert "fake_metric" not in names
    assert values[("pause_monitor_pauses_total", (("cause", "cpu"),))] == 1.0
    assert values[("pause_monitor_events_total", (("peak_tier", "3"),))] == 1.0
    assert values[("pause_monitor_tier", ())] == 3.0
    assert values[("pause_monitor_suspended_seconds_total", ())] == 12.0
    assert values[("pause_monitor_cpu_seconds_total", (("process", "supervisor"),))] == 1.5
    assert values[("pause_monitor_pause_duration_seconds_bucket", (("le", "2.5"),))] == 1.0
    # Every documented family is exposed once there is data for it.
    families = {f.name for f in text_string_to_metric_families(text)}
    assert families == {k.removesuffix("_total") for k in METRICS}


def test_before_the_first_sample_there_is_no_tier_rather_than_a_made_up_one():
    values = samples_of(render(ExporterState()))
    assert ("pause_monitor_tier", ()) not in values
    # Every cause is there at 0, so the first pause of a kind is an increase Prometheus sees.
    assert values[("pause_monitor_pauses_total", (("cause", "unknown"),))] == 0.0
    assert values[("pause_monitor_events_total", (("peak_tier", "2"),))] == 0.0


def test_http_routes():
    body = lambda: b"x 1\n"  # noqa: E731
    assert route(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", body).endswith(b"\r\n\r\nx 1\n")
    assert route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", body).startswith(b"HTTP/1.0 200 OK")
    assert route(b"HEAD /metrics HTTP/1.0\r\n\r\n", body).endswith(b"\r\n\r\n")
    assert route(b"GET /other HTTP/1.0\r\n\r\n", body).startswith(b"HTTP/1.0 404")
    assert route(b"POST /metrics HTTP/1.0\r\n\r\n", body).startswith(b"HTTP/1.0 405")
    assert route(b"\x16\x03\x01 garbage\r\n\r\n", body).startswith(b"HTTP/1.0 400")


# ------------------------------------------------------------------------------- textfile
def test_the_textfile_is_replaced_whole_0644_and_nothing_is_left_behind(tmp_path: Path, monkeypatch):
    state = ExporterState()
    state.on_pause("io", 700.0)
    out = tmp_path / "textfile"
    out.mkdir()
    target = textfile.write_atomically(out, textfile.render(state))
    assert target == out / textfile.FILENAME and stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert samples_of(target.read_text())[("pause_monitor_pauses_total", (("cause", "io"),))] == 1.0
    assert "culprit_seconds" not in target.read_text()  # live-only series need the running exporter
    before = target.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(textfile.os, "fsync", full_disk)
    with pytest.raises(OSError):
        textfile.write_atomically(out, b"partial")
    assert target.read_bytes() == before and os.listdir(out) == [textfile.FILENAME]


def test_textfile_gather_without_a_database_or_a_running_monitor(tmp_path: Path):
    state = textfile.gather(tmp_path / "missing.db", lambda: None, lambda: None)
    assert nonzero(state.pauses_by_cause) == {} and state.tier is None


def test_pmctl_export_textfile_writes_the_database_totals_and_refuses_a_non_directory(tmp_path: Path):
    import subprocess
    import sys

    from pmshared import paths

    db = storage.connect(paths.db_path(), mode="create")
    try:
        apply_all(db, [pause("col:1", T0, 400.0), forensics_done(["col:1"], "/b/1")])
    finally:
        db.close()
    out = tmp_path / "textfile"
    out.mkdir()

    def pmctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", "export", *args], capture_output=True, text=True,
                              timeout=60)

    done = pmctl("--textfile", str(out))
    assert done.returncode == 0, done.stderr
    values = samples_of((out / textfile.FILENAME).read_text())
    assert values[("pause_monitor_pauses_total", (("cause", "cpu"),))] == 1.0
    bad = pmctl("--textfile", str(out / textfile.FILENAME))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "not a directory" in bad.stderr


def test_after_a_hint_the_database_is_read_again_soon_even_if_the_row_is_not_there_yet(tmp_path: Path):
    """The live feed tells of a pause before the recorder has committed its row."""
    from collections import Counter
    from types import SimpleNamespace

    from exporter.main import DB_EVERY_S, DB_WAITING_EVERY_S, HINT_S, DatabaseReader, Schedule

    path = tmp_path / "data.db"
    writer = storage.connect(path, mode="create")
    worker = SimpleNamespace(counters=Counter(), warn_counted=lambda *a: None)
    state = ExporterState()
    reader = DatabaseReader(worker, DbTotals(state), path)
    schedule = Schedule(now=100.0)
    try:
        assert reader.read() == DB_EVERY_S  # nothing happening: once a minute
        schedule.hint(now=200.0)
        assert schedule.db_at == 200.0
        assert reader.read(eager=200.0 < schedule.hint_until) == DB_WAITING_EVERY_S  # no row yet
        apply_all(writer, [pause("col:1", T0), forensics_done(["col:1"], "/b/1")])
        assert reader.read(eager=202.0 < schedule.hint_until) == DB_WAITING_EVERY_S
        assert nonzero(state.pauses_by_cause) == {"cpu": 1}
        assert reader.read(eager=200.0 + HINT_S < schedule.hint_until) == DB_EVERY_S
    finally:
        reader.close()
        writer.close()


def test_a_database_replaced_by_a_fresh_one_is_followed_and_its_rows_counted_on_top(tmp_path: Path):
    """The recorder moves a corrupt database aside and starts a new file at the same path."""
    from collections import Counter
    from types import SimpleNamespace

    from exporter.main import DatabaseReader

    path = tmp_path / "data.db"
    state = ExporterState()
    reader = DatabaseReader(SimpleNamespace(counters=Counter(), warn_counted=lambda *a: None), DbTotals(state), path)
    try:
        writer = storage.connect(path, mode="create")
        apply_all(writer, [pause(f"col:{i}", T0 + i, seq=i) for i in (1, 2)]
                  + [forensics_done([f"col:{i}"], f"/b/{i}", seq=i) for i in (1, 2)])
        writer.close()
        reader.read()
        assert nonzero(state.pauses_by_cause) == {"cpu": 2}
        path.rename(tmp_path / "data.db.corrupt-1")
        for suffix in ("-wal", "-shm"):
            (tmp_path / ("data.db" + suffix)).unlink(missing_ok=True)
        writer = storage.connect(path, mode="create")
        apply_all(writer, [pause("col2:1", T0 + 50), forensics_done(["col2:1"], "/b/9", seq=9)])
        writer.close()
        reader.read()
        assert nonzero(state.pauses_by_cause) == {"cpu": 3}
    finally:
        reader.close()


# ------------------------------------------------------------------------------- the main loop's rhythm
def test_routine_reads_ride_on_a_heartbeat_wake_up_and_urgent_ones_wake_the_loop_on_time():
    """The exporter's loop wakes every HEARTBEAT_S: the status every 15 s and the database every
    minute wait for such a wake-up instead of waking it once more; a first read, a hint's reads
    and a worker starting do not wait."""
    from exporter.main import (DB_EVERY_S, DB_WAITING_EVERY_S, HEARTBEAT_S, RIDE_S, STATUS_EVERY_S,
                               STATUS_SOON_S, Schedule)
    from pmshared.runtime import HEARTBEAT_SLACK

    assert RIDE_S > (1 + HEARTBEAT_SLACK) * HEARTBEAT_S  # a heartbeat's wake-up always comes first
    s = Schedule(now=100.0)
    assert s.next_in_ms(100.0) <= 1  # the first reads: at once
    s.status_sent(100.0)
    s.db_read(100.0, DB_EVERY_S)
    assert s.next_in_ms(100.0) == pytest.approx((STATUS_EVERY_S + RIDE_S) * 1000, abs=1)
    s.status_soon(101.0)  # a worker is starting: its state is asked for on time
    assert s.next_in_ms(101.0) == pytest.approx(STATUS_SOON_S * 1000, abs=1)
    s.status_sent(102.0)
    s.hint(103.0)  # the live feed tells of a pause: read now, then every 2 s, on time
    assert s.next_in_ms(103.0) <= 1
    s.db_read(103.0, DB_WAITING_EVERY_S)
    assert s.next_in_ms(103.0) == pytest.approx(DB_WAITING_EVERY_S * 1000, abs=1)


def test_a_scrape_is_answered_only_by_a_catch_up_that_began_after_it_asked():
    """CatchUp between an HTTP thread (ask) and the main loop (begin, take in, done): a catch-up
    already under way when the scrape asked may have passed the live socket before the newest
    sample came, so it does not answer; the next one does."""
    import threading

    from exporter.catchup import CatchUp

    woken = threading.Semaphore(0)
    catch_up = CatchUp(woken.release, wait_s=30.0)
    under_way = catch_up.begin()  # the main loop is taking in its queue when the scrape asks
    answer: list[bool] = []
    scrape = threading.Thread(target=lambda: answer.append(catch_up.ask()))
    scrape.start()
    assert woken.acquire(timeout=10)  # the ask woke the main loop
    catch_up.done(under_way)
    scrape.join(0.2)
    assert scrape.is_alive() and not answer  # not answered by the catch-up begun before it
    catch_up.done(catch_up.begin())  # the main loop's next turn
    scrape.join(10)
    assert answer == [True] and catch_up.late == 0


def test_a_late_main_loop_costs_the_scrape_freshness_never_its_answer():
    from exporter.catchup import CatchUp

    catch_up = CatchUp(lambda: None, wait_s=0.01)  # nobody catches up
    assert catch_up.ask() is False and catch_up.late == 1
    catch_up.close()  # the loop is gone (shutting down): no wait at all, nothing woken
    woke = []
    closed = CatchUp(lambda: woke.append(1), wait_s=30.0)
    closed.close()
    assert closed.ask() is False and woke == []
