"""A corrupt, unusable or too-open database (issue 17, items 2, 7 and 8), against real SQLite files:
the bounded check, moving a corrupt database aside, the recorder writing on into a fresh one, the
causes named for a directory or a file we may not open, and the private modes.

Damage is made the way it happens: random bytes over the header, or over the second half of the
file (what a bad sector or a torn copy leaves: the file still opens, the first write or read of a
damaged page fails)."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from pmshared import paths, storage
from recorder.recovery import SetAside, check_at_start
from recorder.writer import BatchWriter
from tests.as_nobody import run_python_as_nobody
from tests.recorder_helpers import pause

log = logging.getLogger("test.recovery")
T0 = 1_700_000_000.0


def pauses(first: int, n: int) -> list:
    return [pause(f"inc:{i}", T0 + i, seq=i + 1) for i in range(first, first + n)]


def make_db(path: Path, n: int = 2000) -> Path:
    """A real database with ``n`` pauses, checkpointed: every page is in the main file."""
    conn = storage.connect(path, mode="create")
    with conn:
        for record in pauses(0, n):
            storage.apply(conn, record)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def damage_header(path: Path) -> bytes:
    data = path.read_bytes()
    with open(path, "r+b") as f:
        f.write(os.urandom(100))
    return data


def damage_the_second_half(path: Path) -> None:
    """Random pages over the second half of the file: the header and the schema (which spans the
    first few pages) stay intact, so the file still opens."""
    size = path.stat().st_size
    start = size // 2 - (size // 2) % 4096
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(os.urandom(size - start))


def stored_pause_ids(path: Path) -> set[str]:
    conn = storage.open_readonly(path)
    try:
        return {row[0] for row in conn.execute("SELECT pause_id FROM pauses")}
    finally:
        conn.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# =========================================================================== the check


def test_check_finds_a_damaged_header_and_damage_in_the_middle(tmp_path: Path) -> None:
    sound = make_db(tmp_path / "sound.db")
    result = storage.check(sound)
    assert result.ok and result.complete
    header = make_db(tmp_path / "header.db")
    damage_header(header)
    assert "is corrupt" in storage.check(header).corrupt
    middle = make_db(tmp_path / "middle.db")
    damage_the_second_half(middle)
    storage.connect(middle, mode="readonly").close()  # opening alone does not see it ...
    assert "is corrupt" in storage.check(middle).corrupt  # ... the check does


def test_check_stops_at_its_budget_and_says_it_was_partial(tmp_path: Path) -> None:
    db = make_db(tmp_path / "d.db", n=5000)
    ticks = iter(range(1_000_000))  # a clock that advances one second every time it is read
    result = storage.check(db, budget_s=2.0, clock=lambda: float(next(ticks)))
    assert result.ok and not result.complete


# =========================================================================== moving aside


def test_quarantine_keeps_the_database_with_its_wal_and_lists_it(tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    conn = storage.connect(db, mode="create")  # left open: -wal and -shm exist
    storage.apply(conn, pauses(0, 1)[0])
    original = {s: Path(f"{db}{s}").read_bytes() for s in ("", "-wal")}
    target = storage.quarantine(db, now=T0)
    conn.close()
    assert target.name.startswith("data.db.corrupt-") and not db.exists()
    assert Path(f"{target}-wal").read_bytes() == original["-wal"]
    assert target.read_bytes() == original[""]
    assert storage.quarantined(db) == [target]
    # The same second again gets its own name: nothing is ever overwritten.
    db.write_bytes(b"x")
    second = storage.quarantine(db, now=T0)
    assert second != target and storage.quarantined(db) == [target, second]


def _writer(db: Path, counters: Counter) -> tuple[BatchWriter, SetAside]:
    set_aside = SetAside(db, log)
    writer = BatchWriter(lambda: storage.connect(db, mode="create"), max_pending=1000, counters=counters,
                         log=log, set_aside=set_aside)
    return writer, set_aside


def test_the_recorder_moves_a_corrupt_database_aside_at_open_and_writes_on(tmp_path: Path) -> None:
    db = make_db(tmp_path / "data.db", n=10)
    before = damage_header(db)
    counters: Counter = Counter()
    writer, set_aside = _writer(db, counters)
    for record in pauses(100, 5):
        writer.add(record)
    assert writer.flush() == 5
    assert stored_pause_ids(db) == {f"inc:{i}" for i in range(100, 105)}
    [kept] = set_aside.moved
    assert kept.read_bytes()[100:] == before[100:] and counters["databases_set_aside"] == 1
    writer.close()


def test_damage_found_by_a_write_loses_none_of_the_records_in_hand(tmp_path: Path) -> None:
    db = make_db(tmp_path / "data.db", n=2000)
    damage_the_second_half(db)
    counters: Counter = Counter()
    writer, set_aside = _writer(db, counters)
    writer.connection()  # opens fine: the header and schema are intact
    for record in pauses(5000, 20):
        writer.add(record)
    assert writer.flush() == 20 and not writer.pending
    assert stored_pause_ids(db) == {f"inc:{i}" for i in range(5000, 5020)}
    assert len(set_aside.moved) == 1 and counters["records_lost"] == 0
    assert storage.check(db).ok
    writer.close()


def test_the_recorder_start_check_finds_damage_no_open_sees(tmp_path: Path) -> None:
    db = make_db(tmp_path / "data.db", n=2000)
    check_at_start(db, pytest.fail, log)  # sound: nothing to do
    damage_the_second_half(db)
    counters: Counter = Counter()
    writer, set_aside = _writer(db, counters)
    check_at_start(db, writer.corrupt, log)
    assert len(set_aside.moved) == 1 and writer.conn is not None  # the fresh one, open at once
    assert storage.check(db).ok and stored_pause_ids(db) == set()
    writer.close()


def test_a_database_corrupt_again_at_once_is_not_moved_aside_twice(tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    db.write_bytes(b"\x00garbage" * 1000)
    clock = iter([100.0, 110.0])
    set_aside = SetAside(db, log, min_interval_s=60, clock=lambda: next(clock))
    assert set_aside(storage.DatabaseCorrupt("first")) is True
    db.write_bytes(b"\x00garbage" * 1000)
    assert set_aside(storage.DatabaseCorrupt("second")) is False  # a disk going bad: say so, stop
    assert len(storage.quarantined(db)) == 1 and db.exists()


# =========================================================================== causes named


def test_a_directory_in_place_of_the_database_is_named_as_such(tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    db.mkdir()
    for mode_ in ("create", "readwrite", "readonly"):
        with pytest.raises(storage.DatabaseReadOnly, match="is a directory, not a database file"):
            storage.connect(db, mode=mode_)


NO_ACCESS = """
import json, sys
from pathlib import Path
from pmshared import storage
drop_privileges()
out = {}
for mode in ("readonly", "readwrite"):
    try:
        storage.connect(Path(sys.argv[1]), mode=mode).close()
        out[mode] = "opened"
    except storage.StorageError as exc:
        out[mode] = str(exc)
print(json.dumps(out))
"""


@pytest.fixture
def shared_dir():
    """A directory under /tmp that another user may enter (pytest's tmp_path is root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="pmdb", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_a_database_we_may_not_open_names_the_permission_and_the_owner(shared_dir: Path, tmp_path: Path) -> None:
    db = make_db(shared_dir / "data.db", n=1)  # root's, 0600
    out = run_python_as_nobody(NO_ACCESS, str(db))
    for mode_ in ("readonly", "readwrite"):
        assert f"cannot read {db}: permission denied" in out[mode_] or f"cannot read and write {db}" in out[mode_]
        assert "owner uid 0, mode 0600; we are uid 65534" in out[mode_], out
    # A directory on the way that shuts us out is named too, not "unable to open database file".
    hidden = make_db(tmp_path / "data.db", n=1)
    out = run_python_as_nobody(NO_ACCESS, str(hidden))
    assert all(f"cannot reach {hidden}: no permission to enter" in v for v in out.values()), out


# =========================================================================== privacy


def test_a_new_database_and_its_wal_are_private_in_a_private_directory(tmp_path: Path) -> None:
    os.umask(0o022)
    db = tmp_path / "fresh" / "data.db"
    conn = storage.connect(db, mode="create")
    storage.apply(conn, pauses(0, 1)[0])
    assert mode(db.parent) == 0o700
    assert {s: mode(Path(f"{db}{s}")) for s in ("", "-wal", "-shm")} == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    conn.close()


def test_an_existing_open_database_and_data_dir_are_tightened(tmp_path: Path) -> None:
    data = paths.data_dir()
    data.mkdir(parents=True)
    os.chmod(data, 0o755)
    db = paths.db_path()
    conn = storage.connect(db, mode="create")
    storage.apply(conn, pauses(0, 1)[0])
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            os.chmod(f"{db}{suffix}", 0o644)  # as an install from before this change left them
    paths.ensure_data_dir()
    storage.connect(db, mode="create").close()
    assert mode(data) == 0o700
    assert all(mode(Path(f"{db}{s}")) == 0o600 for s in ("", "-wal", "-shm") if Path(f"{db}{s}").exists())
    assert stored_pause_ids(db) == {"inc:0"}  # tightening touched modes only
