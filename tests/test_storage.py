"""pmshared.storage against real SQLite files: schema, writes, idempotency, queries, prune, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import apsw
import msgspec
import pytest

from pmshared import storage
from tests.recorder_helpers import REPO, Tiering, apply_all, forensics_done, pause, rogue, wait_for

T0 = 1_700_000_000.0
DAY = 86400.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "data.db"


@pytest.fixture
def conn(db_path: Path):
    c = storage.connect(db_path, mode="create")
    yield c
    c.close()


def count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").get


# =========================================================================== schema and opening


def test_create_makes_the_current_schema_in_wal_mode(db_path: Path) -> None:
    conn = storage.connect(db_path, mode="create")
    try:
        assert storage.schema_version(conn) == storage.SCHEMA_VERSION == 4
        assert conn.pragma("journal_mode") == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        assert {"events", "event_samples", "pauses", "bundles", "bundle_pauses", "artifacts", "meta"} <= tables
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
        assert {"events_start", "events_status_start", "pauses_start", "event_samples_time"} <= indexes
    finally:
        conn.close()
    # Opening again does not re-run the ladder (it would fail: tables exist).
    storage.connect(db_path, mode="create").close()


def test_upgrade_ladder_moves_a_v1_database_forward_and_keeps_its_rows(db_path: Path) -> None:
    conn = storage.connect(db_path, mode="create")
    apply_all(conn, [Tiering().opened("A:1", T0)])
    current = storage.SCHEMA_VERSION
    nxt = (*storage.MIGRATIONS, "ALTER TABLE events ADD COLUMN label TEXT NOT NULL DEFAULT 'old';")
    assert storage.upgrade(conn, nxt) == current + 1
    assert storage.schema_version(conn) == current + 1
    assert conn.execute("SELECT event_key, label FROM events").get == ("A:1", "old")
    # A failing step leaves the database at its previous version, untouched.
    broken = (*nxt, "CREATE TABLE t3 (x); THIS IS NOT SQL;")
    with pytest.raises(storage.StorageError):
        storage.upgrade(conn, broken)
    assert storage.schema_version(conn) == current + 1
    assert conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = 't3'").get == 0
    conn.close()


@pytest.mark.parametrize("mode", ["create", "readwrite", "readonly"])
def test_a_newer_schema_is_refused_clearly(db_path: Path, mode: str) -> None:
    conn = storage.connect(db_path, mode="create")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(storage.SchemaTooNew) as info:
        storage.connect(db_path, mode=mode)
    assert "99" in str(info.value) and "upgrade pause-monitor" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("mode", ["readwrite", "readonly"])
def test_missing_database_is_not_created(db_path: Path, mode: str) -> None:
    with pytest.raises(storage.DatabaseMissing) as info:
        storage.connect(db_path, mode=mode)
    assert str(db_path) in str(info.value) and "pmctl up" in str(info.value)
    assert not db_path.exists() and not db_path.parent.exists()


def test_readonly_refuses_an_empty_file_and_a_foreign_database(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(storage.DatabaseMissing, match="empty"):
        storage.open_readonly(empty)
    foreign = tmp_path / "foreign.db"
    other = apsw.Connection(str(foreign))
    other.execute("CREATE TABLE notes (x)")
    other.close()
    for mode in ("create", "readonly"):
        with pytest.raises(storage.DatabaseCorrupt, match="not a pause-monitor"):
            storage.connect(foreign, mode=mode)


@pytest.mark.parametrize("mode", ["create", "readwrite", "readonly"])
def test_random_bytes_are_a_corrupt_database_and_are_left_alone(db_path: Path, mode: str) -> None:
    db_path.parent.mkdir(parents=True)
    garbage = os.urandom(8192)
    db_path.write_bytes(garbage)
    with pytest.raises(storage.DatabaseCorrupt) as info:
        storage.connect(db_path, mode=mode)
    assert "corrupt" in str(info.value) and str(db_path) in str(info.value)
    assert db_path.read_bytes() == garbage


def test_a_damaged_table_page_is_reported_as_corrupt(db_path: Path) -> None:
    conn = storage.connect(db_path, mode="create")
    tiering = Tiering()
    key = tiering.new_key()
    apply_all(conn, [tiering.sample(key, T0, T0 + i, [rogue(1, "x" * 500, 50)]) for i in range(200)])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db_path.read_bytes())
    page = 4096
    for offset in range(10 * page, len(data) - page, page):  # smash the middle pages
        data[offset:offset + 64] = os.urandom(64)
    db_path.write_bytes(bytes(data))
    with pytest.raises(storage.DatabaseCorrupt):
        conn = storage.open_readonly(db_path)
        try:
            storage.samples_in_window(conn, 0)
            assert storage.integrity_check(conn) != ["ok"]
            raise storage.DatabaseCorrupt("integrity_check found the damage")
        finally:
            conn.close()


LOCKER = """
import sys, apsw, pathlib
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN EXCLUSIVE")
pathlib.Path(sys.argv[2]).touch()
sys.stdin.read()  # hold the lock until the test closes our stdin
conn.execute("COMMIT")
"""


def test_a_write_lock_held_by_another_process_is_database_busy_within_the_timeout(conn, db_path: Path) -> None:
    apply_all(conn, [Tiering().opened("A:1", T0)])
    ready = db_path.parent / "locked"
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db_path), str(ready)], cwd=REPO,
                              stdin=subprocess.PIPE)
    try:
        wait_for(ready.exists, what="the locker")
        writer = storage.open_readwrite(db_path, busy_timeout_ms=300)
        started = time.monotonic()
        with pytest.raises(storage.DatabaseBusy) as info:
            storage.set_status(writer, 1, "pinned")
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 3.0
        assert "busy" in str(info.value) and isinstance(info.value, storage.TRANSIENT)
        # WAL: readers are never blocked by a writer's lock.
        reader = storage.open_readonly(db_path, busy_timeout_ms=300)
        assert [e.status for e in storage.list_events(reader)] == ["unreviewed"]
        reader.close()
        locker.stdin.close()
        assert locker.wait(10) == 0
        assert storage.set_status(writer, 1, "pinned").status == "pinned"
        writer.close()
    finally:
        locker.kill()
        locker.wait()


def test_a_full_database_raises_database_full_and_recovers(conn) -> None:
    conn.pragma("max_page_count", conn.pragma("page_count"))  # no room for one more page
    tiering = Tiering()
    key = tiering.new_key()
    records = [tiering.sample(key, T0, T0 + i, [rogue(1, "x" * 2000, 50)]) for i in range(20)]
    with pytest.raises(storage.DatabaseFull) as info:
        apply_all(conn, records)
    assert isinstance(info.value, storage.TRANSIENT)
    assert count(conn, "event_samples") == 0  # the batch rolled back as a whole
    conn.pragma("max_page_count", 1 << 30)
    apply_all(conn, records)
    assert count(conn, "event_samples") == 20
    assert storage.integrity_check(conn, quick=False) == ["ok"]


# =========================================================================== writes


def full_story(tiering: Tiering):
    key = tiering.new_key()
    return key, [
        tiering.started(),
        tiering.opened(key, T0, tier=2, score=40),
        tiering.sample(key, T0, T0 + 1, [rogue(10, "hog", 55), rogue(11, "other", 20)], tier=2),
        tiering.sample(key, T0, T0 + 2, [rogue(10, "hog", 80)], tier=3),
        tiering.closed(key, T0, T0 + 5, peak_score=80, peak_tier=3),
        pause("col-1:1", T0 + 1.5),
        forensics_done(["col-1:1"], "/data/events/b1"),
    ]


def test_apply_stores_every_record_type(conn) -> None:
    key, records = full_story(Tiering())
    apply_all(conn, records)
    (event,) = storage.list_events(conn)
    assert (event.event_key, event.start, event.end) == (key, T0, T0 + 5)
    assert (event.peak_score, event.peak_tier, event.status, event.interrupted) == (80, 3, "unreviewed", False)
    assert (event.sample_count, event.pause_count, event.top_culprit) == (2, 1, "hog")
    assert event.last_sample_at == T0 + 2
    detail = storage.get_event(conn, event.id)
    assert [(s.tier, s.timestamp, s.max_score) for s in detail.samples] == [(2, T0 + 1, 55), (3, T0 + 2, 80)]
    assert detail.samples[0].samples.rogues[1].command == "other"
    (p,) = detail.pauses
    assert (p.pause_id, p.duration_ms, p.event_id, p.bundle_path, p.cause) == (
        "col-1:1", 1500.0, event.id, "/data/events/b1", "cpu")
    assert [c.command for c in p.culprits] == ["hog"] and p.evidence == {"cpu_busy_pct": 99.0}
    assert [(a.name, a.ok, a.ran, a.bytes) for a in p.artifacts] == [("ps", True, True, 2048),
                                                                     ("spindump", False, False, 0)]
    # The samples are JSON that SQLite itself can read.
    assert conn.execute("SELECT json_extract(data, '$.rogues[0].command') FROM event_samples"
                        " ORDER BY timestamp").get == ["hog", "hog"]


def test_every_record_applied_twice_is_stored_once(conn) -> None:
    _, records = full_story(Tiering())
    apply_all(conn, records)
    before = {t: count(conn, t) for t in ("events", "event_samples", "pauses", "bundles", "bundle_pauses", "artifacts")}
    apply_all(conn, records)
    apply_all(conn, reversed(records))
    after = {t: count(conn, t) for t in before}
    assert before == after == {"events": 1, "event_samples": 2, "pauses": 1, "bundles": 1,
                               "bundle_pauses": 1, "artifacts": 2}


def test_a_sample_before_its_event_opened_creates_the_event(conn) -> None:
    tiering = Tiering()
    key = tiering.new_key()
    apply_all(conn, [tiering.sample(key, T0, T0 + 1, [rogue(1, "early", 60)])])
    (event,) = storage.list_events(conn)
    assert (event.event_key, event.start, event.end, event.peak_score) == (key, T0, None, 60)
    apply_all(conn, [tiering.opened(key, T0, tier=2, score=40)])
    (event,) = storage.list_events(conn)
    assert (event.sample_count, event.peak_score, event.start) == (1, 60, T0)


def test_a_close_whose_open_was_lost_creates_the_closed_event(conn) -> None:
    tiering = Tiering()
    key = tiering.new_key()
    apply_all(conn, [tiering.closed(key, T0, T0 + 9, peak_score=70, peak_tier=2)])
    (event,) = storage.list_events(conn)
    assert (event.start, event.end, event.peak_score, event.peak_tier) == (T0, T0 + 9, 70, 2)


def test_untrusted_text_round_trips_verbatim(conn) -> None:
    tiering = Tiering()
    key = tiering.new_key()
    hostile = "\x1b]0;pwn\x07evil'); DROP TABLE events;--[b]x"
    apply_all(conn, [tiering.sample(key, T0, T0 + 1, [rogue(1, hostile, 60)])])
    storage.set_status(conn, 1, "reviewed", notes=hostile)
    (event,) = storage.list_events(conn)
    assert event.top_culprit == hostile and event.notes == hostile


# =========================================================================== interrupted events


def test_a_new_tiering_incarnation_closes_the_old_open_event_as_interrupted(conn) -> None:
    a = Tiering("tiering-A")
    key_a = a.new_key()
    apply_all(conn, [a.started(), a.opened(key_a, T0),
                     a.sample(key_a, T0, T0 + 1, [rogue(1, "x", 50)]),
                     a.sample(key_a, T0, T0 + 2, [rogue(1, "x", 70)])])
    key_a2 = a.new_key()  # opened, never sampled
    apply_all(conn, [a.opened(key_a2, T0 + 3)])
    # Sent by A before it died, delivered only after B announced itself:
    late_close = a.closed(key_a, T0, T0 + 2.5, peak_score=70)
    key_a3 = a.new_key()
    late_sample = a.sample(key_a3, T0 + 4, T0 + 4.5, [rogue(1, "x", 50)])

    b = Tiering("tiering-B")
    apply_all(conn, [b.started()])
    events = {e.event_key: e for e in storage.list_events(conn)}
    assert (events[key_a].end, events[key_a].interrupted, events[key_a].peak_score) == (T0 + 2, True, 70)
    assert (events[key_a2].end, events[key_a2].interrupted) == (T0 + 3, True)
    assert storage.close_interrupted(conn, "tiering-B") == []  # nothing left open
    key_b = b.new_key()
    apply_all(conn, [b.opened(key_b, T0 + 10)])

    # A late but real close of A's event wins over the guess.
    apply_all(conn, [late_close])
    e = {e.event_key: e for e in storage.list_events(conn)}[key_a]
    assert (e.end, e.interrupted) == (T0 + 2.5, False)

    # A late record of the old incarnation cannot re-open an event forever.
    apply_all(conn, [late_sample])
    e = {e.event_key: e for e in storage.list_events(conn)}[key_a3]
    assert (e.end, e.interrupted) == (T0 + 4.5, True)

    # B's own event stays open through all of that.
    assert {e.event_key: e for e in storage.list_events(conn)}[key_b].end is None


def test_records_of_a_newer_incarnation_announce_it_when_tiering_started_was_lost(conn) -> None:
    a, b = Tiering("tiering-A"), Tiering("tiering-B")
    key_a, key_b = a.new_key(), b.new_key()
    apply_all(conn, [a.started(), a.opened(key_a, T0), a.sample(key_a, T0, T0 + 1, [rogue(1, "x", 50)])])
    b.started()  # lost on the way
    apply_all(conn, [b.opened(key_b, T0 + 20)])
    events = {e.event_key: e for e in storage.list_events(conn)}
    assert (events[key_a].end, events[key_a].interrupted) == (T0 + 1, True)
    assert events[key_b].end is None


# =========================================================================== forensics


def test_forensics_done_before_its_pauses_is_linked_when_they_arrive(conn) -> None:
    apply_all(conn, [forensics_done(["col:1", "col:2"], "/data/events/b1")])
    assert storage.list_pauses(conn) == []
    apply_all(conn, [pause("col:1", T0), pause("col:2", T0 + 2, seq=2)])
    pauses = storage.list_pauses(conn)
    assert [(p.pause_id, p.bundle_path, p.cause) for p in pauses] == [
        ("col:2", "/data/events/b1", "cpu"), ("col:1", "/data/events/b1", "cpu")]
    assert pauses[0].artifacts == []  # listing leaves artifacts out
    detail = storage.get_pause(conn, "col:1")
    assert detail == storage.get_pause(conn, detail.id)
    assert [a.name for a in detail.artifacts] == ["ps", "spindump"] and detail.event_id is None
    assert storage.get_pause(conn, 999) is None and storage.get_pause(conn, "nope") is None


def test_a_pause_without_forensics_has_empty_fields(conn) -> None:
    apply_all(conn, [pause("col:1", T0)])
    (p,) = storage.list_pauses(conn)
    assert (p.bundle_path, p.cause, p.culprits, p.evidence) == (None, None, [], {})


# =========================================================================== queries


def populate(conn) -> dict[str, int]:
    """Four closed events a day apart and one open; returns ids by name."""
    tiering = Tiering()
    ids = {}
    records = [tiering.started()]
    for i, name in enumerate(["d0", "d1", "d2", "d3"]):
        key = tiering.new_key()
        start = T0 + i * DAY
        records += [tiering.opened(key, start),
                    tiering.sample(key, start, start + 1, [rogue(1, f"{name}-a", 50), rogue(2, f"{name}-top", 90)], tier=2),
                    tiering.sample(key, start, start + 2, [rogue(1, f"{name}-a", 60)]),
                    tiering.closed(key, start, start + 10, peak_score=90)]
    key = tiering.new_key()
    records += [tiering.opened(key, T0 + 5 * DAY)]
    apply_all(conn, records)
    for e in storage.list_events(conn, limit=None):
        ids[e.event_key] = e.id
    return ids


def test_list_events_filters_orders_and_names_the_top_culprit(conn) -> None:
    populate(conn)
    events = storage.list_events(conn)
    assert [e.start for e in events] == [T0 + 5 * DAY, T0 + 3 * DAY, T0 + 2 * DAY, T0 + DAY, T0]
    assert events[0].end is None and events[0].top_culprit is None and events[0].duration_s is None
    assert [e.top_culprit for e in events[1:]] == ["d3-top", "d2-top", "d1-top", "d0-top"]
    assert events[1].top_culprit_score == 90 and events[1].top_culprit_pid == 2 and events[1].duration_s == 10
    assert len(storage.list_events(conn, limit=2)) == 2
    window = storage.list_events(conn, since=T0 + DAY, until=T0 + 3 * DAY)
    assert [e.start for e in window] == [T0 + 2 * DAY, T0 + DAY]
    storage.set_status(conn, window[0].id, "pinned")
    assert [e.id for e in storage.list_events(conn, status="pinned")] == [window[0].id]
    assert len(storage.list_events(conn, status="unreviewed")) == 4
    with pytest.raises(storage.BadStatus):
        storage.list_events(conn, status="bogus")
    assert storage.last_event(conn).start == T0 + 5 * DAY


def test_get_event_returns_samples_in_time_order_and_overlapping_pauses(conn) -> None:
    populate(conn)
    apply_all(conn, [pause("col:1", T0 + DAY - 0.5, duration_ms=1000), pause("col:2", T0 + DAY + 5, seq=2),
                     pause("col:3", T0 + DAY + 20, seq=3), pause("col:4", T0 + 5 * DAY + 100, seq=4)])
    (d1,) = storage.list_events(conn, since=T0 + DAY, until=T0 + DAY + 1)
    assert d1.pause_count == 2
    detail = storage.get_event(conn, d1.id)
    assert [s.timestamp for s in detail.samples] == [T0 + DAY + 1, T0 + DAY + 2]
    assert [p.pause_id for p in detail.pauses] == ["col:1", "col:2"]  # col:1 overlaps the start
    assert all(p.event_id == d1.id for p in detail.pauses)
    open_event = storage.last_event(conn)
    assert [p.pause_id for p in storage.get_event(conn, open_event.id).pauses] == ["col:4"]
    by_id = {p.pause_id: p.event_id for p in storage.list_pauses(conn)}
    assert by_id == {"col:1": d1.id, "col:2": d1.id, "col:3": None, "col:4": open_event.id}
    assert storage.get_event(conn, 12345) is None


def test_list_pauses_and_samples_in_window(conn) -> None:
    populate(conn)
    apply_all(conn, [pause(f"col:{i}", T0 + i * 100, seq=i) for i in range(1, 6)])
    assert [p.pause_id for p in storage.list_pauses(conn, limit=2)] == ["col:5", "col:4"]
    assert [p.pause_id for p in storage.list_pauses(conn, since=T0 + 250)] == ["col:5", "col:4", "col:3"]
    samples = storage.samples_in_window(conn, T0 + DAY, T0 + 3 * DAY)
    assert [s.timestamp for s in samples] == [T0 + DAY + 1, T0 + DAY + 2, T0 + 2 * DAY + 1, T0 + 2 * DAY + 2]
    assert samples[0].samples.rogues[1].command == "d1-top"
    assert len(storage.samples_in_window(conn, 0, limit=3)) == 3
    stats = storage.db_stats(conn)
    assert (stats.events, stats.open_events, stats.samples, stats.pauses, stats.unreviewed) == (5, 1, 8, 5, 5)


def test_results_encode_as_json(conn) -> None:
    populate(conn)
    data = msgspec.json.decode(msgspec.json.encode(storage.get_event(conn, 1)))
    assert data["event"]["top_culprit"] == "d0-top" and data["samples"][0]["samples"]["rogues"]


def test_set_status_validates_and_keeps_or_replaces_notes(conn) -> None:
    populate(conn)
    with pytest.raises(storage.BadStatus) as info:
        storage.set_status(conn, 1, "done")
    assert isinstance(info.value, ValueError)
    assert "unreviewed, reviewed, pinned, dismissed" in str(info.value)
    with pytest.raises(storage.NotFound):
        storage.set_status(conn, 999, "reviewed")
    assert storage.set_status(conn, 1, "reviewed", notes="looked at it").notes == "looked at it"
    assert storage.set_status(conn, 1, "pinned").notes == "looked at it"
    assert storage.set_status(conn, 1, "pinned", notes="").notes is None


def test_readonly_connection_cannot_write(conn, db_path: Path) -> None:
    populate(conn)
    reader = storage.open_readonly(db_path)
    with pytest.raises(storage.DatabaseReadOnly):
        storage.set_status(reader, 1, "reviewed")
    reader.close()


# =========================================================================== prune


def test_prune_follows_the_seeds_rule_and_dry_run_deletes_nothing(conn, tmp_path: Path) -> None:
    ids = populate(conn)  # d0..d3 start at T0 + 0..3 days, one open at T0 + 5 days
    key_of = {v: k for k, v in ids.items()}
    by_start = {round((e.start - T0) / DAY): e.id for e in storage.list_events(conn, limit=None)}
    storage.set_status(conn, by_start[0], "reviewed")
    storage.set_status(conn, by_start[1], "pinned")
    storage.set_status(conn, by_start[2], "dismissed")
    # by_start[3] stays unreviewed; by_start[5] is open.
    root = tmp_path / "events"
    bundle_dirs = {name: root / name for name in ("b-d0", "b-d1", "b-free", "b-pending")}
    for d in bundle_dirs.values():
        d.mkdir(parents=True)
        (d / "ps.txt").write_text("x")
    apply_all(conn, [
        pause("col:1", T0 + 3, seq=1),             # inside d0 (pruned) -> goes
        pause("col:2", T0 + DAY + 3, seq=2),       # inside d1 (pinned) -> stays
        pause("col:3", T0 + 4 * DAY, seq=3),       # in no event -> goes
        forensics_done(["col:1"], str(bundle_dirs["b-d0"]), seq=1, sent_at=T0),
        forensics_done(["col:2"], str(bundle_dirs["b-d1"]), seq=2, sent_at=T0),
        forensics_done(["col:3"], str(bundle_dirs["b-free"]), seq=3, sent_at=T0),
        forensics_done(["col:99"], str(bundle_dirs["b-pending"]), seq=4, sent_at=T0 + 9 * DAY),
    ])
    now = T0 + 10 * DAY
    counts_before = {t: count(conn, t) for t in ("events", "event_samples", "pauses", "bundles", "artifacts")}
    dry = storage.prune(conn, events_days=5, samples_days=5, dry_run=True, now=now)
    assert {t: count(conn, t) for t in counts_before} == counts_before
    assert dry.dry_run
    real = storage.prune(conn, events_days=5, samples_days=5, now=now)
    assert (real.events, real.samples, real.pauses, real.bundle_paths) == (
        dry.events, dry.samples, dry.pauses, dry.bundle_paths)

    assert sorted(key_of[e.id] for e in real.events) == sorted(key_of[by_start[d]] for d in (0, 2))
    assert real.samples == 4
    remaining = {e.id: e.status for e in storage.list_events(conn, limit=None)}
    assert remaining == {by_start[1]: "pinned", by_start[3]: "unreviewed", by_start[5]: "unreviewed"}
    assert count(conn, "event_samples") == 4
    assert [p.pause_id for p in storage.list_pauses(conn)] == ["col:2"]
    assert real.bundle_paths == sorted([str(bundle_dirs["b-d0"]), str(bundle_dirs["b-free"])])
    assert count(conn, "bundles") == 2 and count(conn, "artifacts") == 4  # b-d1 and b-pending stay

    outside = tmp_path / "precious"
    outside.mkdir()
    removed = storage.remove_bundle_dirs([*real.bundle_paths, str(outside), str(root / ".." / "precious")], root)
    assert sorted(removed) == sorted(str(bundle_dirs[n].resolve()) for n in ("b-d0", "b-free"))
    assert outside.is_dir() and bundle_dirs["b-d1"].is_dir() and not bundle_dirs["b-d0"].exists()

    again = storage.prune(conn, events_days=5, samples_days=5, now=now)
    assert (again.events, again.pauses, again.bundle_paths) == ([], [], [])
    assert storage.integrity_check(conn) == ["ok"]


def test_prune_keeps_everything_young_and_checks_its_arguments(conn) -> None:
    populate(conn)
    for e in storage.list_events(conn, limit=None):
        storage.set_status(conn, e.id, "dismissed")
    result = storage.prune(conn, events_days=30, samples_days=30, now=T0 + 10 * DAY)
    assert result.events == [] and count(conn, "events") == 5
    with pytest.raises(ValueError):
        storage.prune(conn, events_days=0, samples_days=30)


def test_an_event_is_named_after_its_tally_the_latest_replacing_the_one_before(conn) -> None:
    # The tally names who the event is about over its length: here a parent whose one-second cpu
    # spike (its highest-scoring stored sample, 41) is outweighed by its later io.
    tiering = Tiering()
    key = tiering.new_key()
    apply_all(conn, [tiering.opened(key, T0),
                     tiering.sample(key, T0, T0, [rogue(100, "stress-ng", 41)], tier=2),
                     tiering.culprits(key, T0, (100, "stress-ng", 41, 41, ["cpu"]))])
    (event,) = storage.list_events(conn)
    assert (event.top_culprit, event.top_culprit_pid, event.top_culprit_score) == ("stress-ng", 100, 41)
    assert event.top_culprit_categories == ["cpu"]
    apply_all(conn, [tiering.culprits(key, T0, (100, "stress-ng", 311, 41, ["io"]),
                                      (101, "stress-ng-hdd", 155, 20, ["io", "stuck"])),
                     tiering.closed(key, T0, T0 + 12, peak_score=41)])
    (event,) = storage.list_events(conn)
    assert event.top_culprit_categories == ["io"] and event.end == T0 + 12
    assert [(c.pid, c.score_sum, c.categories) for c in event.culprits] == [
        (100, 311, ["io"]), (101, 155, ["io", "stuck"])]
    assert storage.get_event(conn, event.id).event.culprits == event.culprits


def test_a_tally_for_an_event_not_yet_known_creates_it_and_a_bad_stored_tally_falls_back(conn) -> None:
    tiering = Tiering()
    key = tiering.new_key()
    apply_all(conn, [tiering.culprits(key, T0, (7, "hog", 80, 40, ["cpu"]))])  # EventOpened lost
    (event,) = storage.list_events(conn)
    assert (event.event_key, event.start, event.top_culprit, event.end) == (key, T0, "hog", None)
    # A tally that does not decode (written by hand, or damaged): named from its samples instead.
    apply_all(conn, [tiering.sample(key, T0, T0 + 1, [rogue(8, "other", 30)], tier=2)])
    conn.execute("UPDATE events SET culprits = '[{\"pid\": \"x\"}' WHERE event_key = ?", (key,))
    (event,) = storage.list_events(conn)
    assert (event.top_culprit, event.top_culprit_categories, event.culprits) == ("other", [], [])


def test_an_event_whose_tally_charged_nobody_names_no_culprit(conn) -> None:
    # io waits while the host's storage was busy: the machine stressed, no process here charged.
    # The event must not be named after whoever scored 1 in one of its stored samples.
    tiering = Tiering()
    key = tiering.new_key()
    calm = tiering.sample(key, T0, T0, [rogue(1, "init", 1)], tier=2)
    peak = tiering.sample(key, T0, T0 + 1, [rogue(1, "init", 1)], tier=3)
    apply_all(conn, [tiering.opened(key, T0),
                     msgspec.structs.replace(calm, samples=msgspec.structs.replace(
                         calm.samples, max_score=40, stress={"cpu": 40, "io": 30})),
                     msgspec.structs.replace(peak, samples=msgspec.structs.replace(
                         peak.samples, max_score=86, stress={"cpu": 2, "io": 86, "memory": 50, "stall": 3})),
                     tiering.culprits(key, T0)])
    (event,) = storage.list_events(conn)
    assert (event.top_culprit, event.top_culprit_pid, event.top_culprit_score) == (None, None, None)
    assert event.no_local_culprit is True and event.culprits == []
    assert event.stressed == ["io", "memory"]  # at its peak: io, and memory within half of it
