"""The event log's parts without a pipeline: the line formatter (pure), the rotating file and
the EventLog hook on a real directory and a real SQLite file (faults included)."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections import Counter
from pathlib import Path

import pytest

from pmshared import messages as m
from pmshared import storage
from pmshared.config import EventLogConfig
from pmshared.journald import JournalSender
from recorder import event_entries as ee
from recorder.event_log import MAX_QUEUED, EventLog, log_path
from recorder.rotating_file import RotatingFile
from recorder.writer import BatchWriter
from tests.hostile_helpers import unsafe_chars
from tests.recorder_helpers import Tiering, forensics_done, pause, rogue

T0 = 1_765_101_109.25  # 2025-12-07T09:51:49.250Z
HOSTILE = "\x1b[31mred\x1b[0m\nfake\"line\x9b2J\u202eevil\x7f" + "L" * 5000


def decoded(line: bytes) -> dict:
    assert line.endswith(b"\n") and line.count(b"\n") == 1, line
    assert all(0x20 <= b <= 0x7E for b in line[:-1]), "only printable ASCII on a line"
    return json.loads(line)


# ------------------------------------------------------------------------------------ formatter
COMMON = {"time", "ts", "kind", "message_id", "message", "host", "app", "schema"}
FIELDS = {  # the contract with log pipelines (README "Event log"): add, never rename
    "pause": COMMON | {"pause_id", "start", "start_ts", "end", "end_ts", "duration_ms", "expected_ms",
                       "suspended_ms"},
    "event_opened": COMMON | {"event_key", "start", "start_ts", "tier", "score"},
    "event_closed": COMMON | {"event_key", "start", "start_ts", "end", "end_ts", "duration_ms", "peak_tier",
                              "peak_score", "event_id", "top_culprit", "top_culprit_pid", "pause_count",
                              "interrupted"},
    "forensics": COMMON | {"pause_id", "pause_ids", "bundle_path", "cause", "top_culprit", "top_culprit_pid",
                           "culprits", "error"},
}


def test_a_pause_line_has_its_fields_times_in_iso_utc_and_epoch():
    entry = decoded(ee.json_line(ee.entry_for(pause("coll:1", T0, duration_ms=1520.0), "host-a")))
    assert set(entry) == FIELDS["pause"]
    assert entry["kind"] == "pause" and entry["message_id"] == ee.MESSAGE_IDS["pause"]
    assert entry["time"] == entry["start"] == "2025-12-07T09:51:49.250Z" and entry["ts"] == T0
    assert entry["end"] == "2025-12-07T09:51:50.770Z" and entry["end_ts"] == pytest.approx(T0 + 1.52)
    assert entry["pause_id"] == "coll:1" and entry["duration_ms"] == 1520.0 and entry["host"] == "host-a"
    assert entry["message"] == "the machine paused for 1.52 s"


def test_event_lines_open_and_close_and_the_close_names_the_stored_top_culprit():
    tiering = Tiering()
    key = tiering.new_key()
    opened = decoded(ee.json_line(ee.entry_for(tiering.opened(key, T0, tier=3, score=70), "h")))
    assert set(opened) == FIELDS["event_opened"] and opened["tier"] == 3 and opened["event_key"] == key
    summary = storage.EventSummary(
        id=7, event_key=key, start=T0, end=T0 + 12, peak_score=80, peak_tier=3, status="unreviewed",
        notes=None, interrupted=False, incarnation="tiering-A", last_sample_at=None, sample_count=3,
        pause_count=1, top_culprit=HOSTILE, top_culprit_pid=4242, top_culprit_score=80)
    closed = decoded(ee.json_line(ee.entry_for(tiering.closed(key, T0, T0 + 12, 80), "h", summary)))
    assert set(closed) == FIELDS["event_closed"]
    assert closed["event_id"] == 7 and closed["top_culprit_pid"] == 4242 and closed["pause_count"] == 1
    assert closed["time"] == closed["end"] and closed["message_id"] == ee.MESSAGE_IDS["event_closed"]
    assert closed["interrupted"] is False
    unread = decoded(ee.json_line(ee.entry_for(tiering.closed(key, T0, T0 + 12, 80), "h", None)))
    assert unread["top_culprit"] is None and unread["event_id"] is None
    nobody = storage.EventSummary(
        id=8, event_key=key, start=T0, end=T0 + 12, peak_score=86, peak_tier=3, status="unreviewed",
        notes=None, interrupted=False, incarnation="tiering-A", last_sample_at=None, sample_count=7,
        pause_count=0, top_culprit=None, top_culprit_pid=None, top_culprit_score=None, no_local_culprit=True)
    line = decoded(ee.json_line(ee.entry_for(tiering.closed(key, T0, T0 + 12, 86), "h", nobody)))
    assert line["top_culprit"] is None and line["message"].endswith("; no process here accounts for it")


def test_a_forensics_line_carries_the_bundle_path_cause_and_a_bounded_culprit_list():
    done = forensics_done(["coll:1", "coll:2"], "/data/events/20251207-095149", culprit="stress-ng")
    done = type(done)(**{**{f: getattr(done, f) for f in done.__struct_fields__},
                         "culprits": done.culprits * 20})
    entry = decoded(ee.json_line(ee.entry_for(done, "h")))
    assert set(entry) == FIELDS["forensics"]
    assert entry["bundle_path"] == "/data/events/20251207-095149" and entry["cause"] == "cpu"
    assert entry["pause_id"] == "coll:1" and entry["pause_ids"] == ["coll:1", "coll:2"]
    assert entry["top_culprit"] == "stress-ng" and len(entry["culprits"]) == ee.MAX_CULPRITS
    assert "stress-ng" in entry["message"] and entry["bundle_path"] in entry["message"]


def test_samples_and_tiering_starts_are_no_lines():
    tiering = Tiering()
    key = tiering.new_key()
    assert ee.entry_for(tiering.started(), "h") is None
    assert ee.entry_for(tiering.sample(key, T0, T0 + 1, [rogue(1, "a", 50)]), "h") is None


def test_message_ids_are_fixed_distinct_uuids():
    assert set(ee.MESSAGE_IDS) == set(FIELDS) == set(ee.PRIORITY)
    assert len(set(ee.MESSAGE_IDS.values())) == 4
    assert all(re.fullmatch(r"[0-9a-f]{32}", v) for v in ee.MESSAGE_IDS.values())
    # Pinned: a dashboard or alert may select on them.
    assert ee.MESSAGE_IDS["pause"] == "5494d887ca2d4eeb95b912c26ee1137d"


def test_a_hostile_process_name_stays_one_inert_bounded_line():
    done = forensics_done(["coll:1"], "/data/events/x\x1b]52;c;ZXZpbA==\x07", culprit=HOSTILE)
    line = ee.json_line(ee.entry_for(done, "host\nname"))
    entry = decoded(line)  # one line, printable ASCII only: no ESC, no CSI (\x9b), no raw newline
    for text in (entry["top_culprit"], entry["culprits"][0]["command"], entry["message"], entry["bundle_path"],
                 entry["host"]):
        assert unsafe_chars(text) == [], text  # and decoded, still no control character
    assert entry["top_culprit"].startswith("^[[31mred^[[0m^Jfake\"line\\u009b2J\\u202eevil^?")
    assert len(entry["top_culprit"]) == ee.MAX_NAME_CHARS and len(line) < 4096


def test_non_finite_and_out_of_range_times_become_null_not_invalid_json():
    assert ee.iso(float("nan")) is None and ee.iso(1e20) is None and ee.iso(None) is None
    assert ee.iso(0.0) == "1970-01-01T00:00:00.000Z"


def test_journal_fields_mirror_the_line_with_valid_names():
    entry = ee.entry_for(forensics_done(["coll:1"], "/b", culprit="x\ny"), "h")
    fields = dict(ee.journal_fields(entry))
    assert fields["MESSAGE_ID"] == ee.MESSAGE_IDS["forensics"] and fields["PRIORITY"] == "5"
    assert fields["SYSLOG_IDENTIFIER"] == "pause-monitor" and fields["PM_BUNDLE_PATH"] == "/b"
    assert json.loads(fields["PM_PAUSE_IDS"]) == ["coll:1"] and "PM_ERROR" not in fields
    assert fields["PM_TOP_CULPRIT"] == "x^Jy"


# -------------------------------------------------------------------------------- rotating file
def lines_in(files: list[Path]) -> list[bytes]:
    return [line for f in reversed(files) for line in f.read_bytes().splitlines(keepends=True)]


def test_rotation_at_the_size_limit_keeps_n_files_none_over_the_limit(tmp_path):
    log = RotatingFile(tmp_path / "events.jsonl", max_bytes=1000, keep=3)
    written = [b"%04d " % i + b"x" * 94 + b"\n" for i in range(100)]  # 100 bytes each: 10 per file
    for line in written:
        log.write_line(line)
    log.close()
    files = log.files()
    assert [f.name for f in files] == ["events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"]
    assert all(f.stat().st_size <= 1000 for f in files)
    assert lines_in(files) == written[-40:]  # 4 files of 10 lines; the oldest rotated away
    assert log.rotations == 9 and not (tmp_path / "events.jsonl.4").exists()
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_a_smaller_keep_removes_the_files_past_it_at_the_next_rotation(tmp_path):
    for n in range(1, 8):
        (tmp_path / f"events.jsonl.{n}").write_text("old\n")
    (tmp_path / "events.jsonl").write_text("x" * 200 + "\n")
    log = RotatingFile(tmp_path / "events.jsonl", max_bytes=100, keep=2)
    log.write_line(b"new\n")
    log.close()
    assert sorted(p.name for p in tmp_path.glob("events*")) == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]


def test_an_open_file_is_tightened_and_a_symlink_is_refused(tmp_path):
    target = tmp_path / "events.jsonl"
    target.write_text("")
    os.chmod(target, 0o644)
    log = RotatingFile(target, 4096, 2)
    log.write_line(b"{}\n")
    log.close()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(victim)
    with pytest.raises(OSError):
        RotatingFile(link, 4096, 2).write_line(b"{}\n")
    assert victim.read_text() == "keep me\n"


def test_a_file_moved_away_by_someone_else_is_followed_by_a_new_one(tmp_path):
    path = tmp_path / "events.jsonl"
    log = RotatingFile(path, 4096, 2)
    log.write_line(b"1\n")
    path.rename(tmp_path / "moved")  # logrotate's way
    log.write_line(b"2\n")
    log.close()
    assert (tmp_path / "moved").read_bytes() == b"1\n" and path.read_bytes() == b"2\n"


def test_after_a_partial_line_the_next_line_starts_on_its_own(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"cut in the mid')
    log = RotatingFile(path, 4096, 2)
    log.write_line(b'{"a":1}\n')
    log.close()
    assert path.read_bytes().splitlines()[-1] == b'{"a":1}'


# ------------------------------------------------------------------------------------ the hook
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def event_log(tmp_path: Path, counters: Counter, **config) -> tuple[EventLog, Clock]:
    clock = Clock()
    cfg = EventLogConfig(**{"journald": False, **config})
    return EventLog(cfg, log_path(tmp_path / "data.db"), counters=counters, log=logging.getLogger("t-eventlog"),
                    host="h", clock=clock), clock


def read_lines(tmp_path: Path) -> list[dict]:
    return [decoded(line) for line in (tmp_path / "logs" / "events.jsonl").read_bytes().splitlines(keepends=True)]


def test_one_line_per_record_stored_once_even_when_resent(tmp_path):
    counters = Counter()
    elog, _ = event_log(tmp_path, counters)
    tiering = Tiering()
    key = tiering.new_key()
    records = [tiering.started(), tiering.opened(key, T0), tiering.sample(key, T0, T0 + 1, [rogue(1, "a", 50)]),
               pause("coll:1", T0 + 1), forensics_done(["coll:1"], "/b"), tiering.closed(key, T0, T0 + 5, 60)]
    elog.stored(None, records)
    elog.stored(None, records[3:4])  # a resend of the pause
    elog.close()
    assert [e["kind"] for e in read_lines(tmp_path)] == ["event_opened", "pause", "forensics", "event_closed"]
    assert counters["event_log_lines"] == 4
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700


def test_the_writer_tells_the_log_only_what_it_committed(tmp_path):
    """Through the real BatchWriter and SQLite: a busy database logs nothing until the batch is
    stored, a rejected record is never logged, and a closed event is logged with its stored culprit."""
    counters = Counter()
    elog, _ = event_log(tmp_path, counters)
    db = tmp_path / "data.db"
    busy = [True]

    def open_db():
        if busy[0]:
            raise storage.DatabaseBusy("database is locked", db)
        conn = storage.connect(db, mode="create")
        # A trigger stands in for a record SQLite refuses for good (as in test_recorder_units).
        conn.execute("CREATE TEMP TRIGGER refuse BEFORE INSERT ON pauses WHEN NEW.pause_id = 'bad'"
                     " BEGIN SELECT RAISE(ABORT, 'refused'); END")
        return conn

    clock = Clock()
    writer = BatchWriter(open_db, max_pending=100, counters=counters, log=logging.getLogger("t-writer"),
                         clock=clock, on_stored=elog.stored)
    tiering = Tiering()
    key = tiering.new_key()
    for record in [tiering.opened(key, T0), tiering.sample(key, T0, T0 + 1, [rogue(4242, "hog", 80)]),
                   pause("coll:1", T0 + 1), pause("bad", T0 + 2), tiering.closed(key, T0, T0 + 5, 80)]:
        writer.add(record)
    writer.flush()
    assert not (tmp_path / "logs" / "events.jsonl").exists() and len(writer.pending) == 5
    busy[0] = False
    clock.now += 10
    assert writer.flush() == 4
    writer.close()
    elog.close()
    lines = read_lines(tmp_path)
    assert counters["records_rejected"] == 1
    assert [e["kind"] for e in lines] == ["event_opened", "pause", "event_closed"]
    assert lines[1]["pause_id"] == "coll:1"
    assert lines[2]["top_culprit"] == "hog" and lines[2]["top_culprit_pid"] == 4242 and lines[2]["event_id"] == 1


def test_an_event_its_tiering_never_closed_gets_its_close_line_when_the_next_tiering_starts(tmp_path):
    """Tiering A dies with an event open; tiering B starts: the database ends the event at its last
    sample (storage close_interrupted) and the log says so, once, with ``interrupted``."""
    counters = Counter()
    elog, _ = event_log(tmp_path, counters)
    db = storage.connect(tmp_path / "data.db", mode="create")
    writer = BatchWriter(lambda: db, max_pending=100, counters=counters, log=logging.getLogger("t-writer"),
                         on_stored=elog.stored)
    a, b = Tiering("tiering-A", T0), Tiering("tiering-B", T0 + 100)
    key = a.new_key()
    for batch in ([a.started(), a.opened(key, T0, tier=3, score=70)],
                  [a.sample(key, T0, T0 + 1, [rogue(4242, "hog", 80)])],
                  [a.sample(key, T0, T0 + 2, [rogue(4242, "hog", 85)])],  # same tiering: no look-up
                  [b.started()],
                  [b.started()]):  # a resend: nothing more
        for record in batch:
            writer.add(record)
        writer.flush()
    writer.close()
    elog.close()
    lines = read_lines(tmp_path)
    assert [e["kind"] for e in lines] == ["event_opened", "event_closed"]
    closed = lines[1]
    assert closed["interrupted"] is True and closed["event_key"] == key and closed["end_ts"] == T0 + 2
    assert closed["top_culprit"] == "hog" and closed["peak_score"] == 85
    assert closed["message"].startswith("stress event ended at its last sample (tiering restarted)")


def test_an_unwritable_log_directory_is_counted_logged_once_and_retried_later(tmp_path, caplog):
    counters = Counter()
    elog, clock = event_log(tmp_path, counters)
    (tmp_path / "logs").write_text("not a directory")  # the log directory cannot be made
    with caplog.at_level(logging.INFO, logger="t-eventlog"):
        elog.stored(None, [pause("coll:1", T0)])
        elog.stored(None, [pause("coll:2", T0 + 1)])  # within the back-off: not even tried
        clock.now += 1.5
        elog.retry_if_due()  # tried again, fails again: counted, not logged again
        assert counters["event_log_failures"] == 2 and len(elog.queued) == 2
        (tmp_path / "logs").unlink()  # fixed
        elog.retry_if_due()  # the back-off doubled: not yet
        assert len(elog.queued) == 2
        clock.now += 2.5
        elog.retry_if_due()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the database is not affected" in warnings[0].getMessage()
    assert any("writable again" in r.getMessage() for r in caplog.records)
    assert [e["pause_id"] for e in read_lines(tmp_path)] == ["coll:1", "coll:2"]
    assert counters["event_log_lines"] == 2 and not elog.queued
    elog.close()


def test_past_the_queue_bound_the_oldest_lines_are_dropped_and_counted(tmp_path):
    counters = Counter()
    elog, _ = event_log(tmp_path, counters)
    (tmp_path / "logs").write_text("")
    elog.stored(None, [pause(f"coll:{n}", T0 + n, seq=n) for n in range(MAX_QUEUED + 10)])
    assert len(elog.queued) == MAX_QUEUED and counters["event_log_dropped"] == 10
    (tmp_path / "logs").unlink()
    elog.close()
    lines = read_lines(tmp_path)
    assert len(lines) == MAX_QUEUED and lines[0]["pause_id"] == "coll:10"


def test_disabled_writes_no_file(tmp_path):
    counters = Counter()
    elog, _ = event_log(tmp_path, counters, enabled=False)
    elog.stored(None, [pause("coll:1", T0)])
    elog.close()
    assert not (tmp_path / "logs").exists() and counters["event_log_lines"] == 0


def test_each_line_also_goes_to_journald_as_a_structured_entry(tmp_path):
    import socket
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="pmj-", dir="/tmp"))
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(where / "journal"))
    receiver.settimeout(5)
    counters = Counter()
    try:
        elog = EventLog(EventLogConfig(), log_path(tmp_path / "data.db"), counters=counters,
                        log=logging.getLogger("t-eventlog"), host="h",
                        journal=JournalSender(str(where / "journal"), counters))
        elog.stored(None, [pause("coll:1", T0), forensics_done(["coll:1"], "/b/ü", culprit=HOSTILE)])
        elog.close()
        first, second = receiver.recv(65536), receiver.recv(65536)
    finally:
        receiver.close()
        (where / "journal").unlink()
        where.rmdir()
    assert b"MESSAGE_ID=" + ee.MESSAGE_IDS["pause"].encode() + b"\n" in first
    assert b"PM_PAUSE_ID=coll:1\n" in first and b"SYSLOG_IDENTIFIER=pause-monitor\n" in first
    assert b"PM_BUNDLE_PATH=/b/\xc3\xbc\n" in second and b"\x1b" not in second and b"\xc2\x9b" not in second
    assert counters["journal_sent"] == 2 and counters["event_log_lines"] == 2


def test_no_journald_is_counted_and_nothing_else(tmp_path):
    counters = Counter()
    elog = EventLog(EventLogConfig(), log_path(tmp_path / "data.db"), counters=counters,
                    log=logging.getLogger("t-eventlog"), host="h",
                    journal=JournalSender(str(tmp_path / "no-journal"), counters))
    elog.stored(None, [pause("coll:1", T0)])
    elog.close()
    assert counters["journal_absent"] == 1 and counters["event_log_lines"] == 1


# ------------------------------------------------------------------------------------ pmctl doctor
def doctor_lines(topic: str) -> list[str]:
    import subprocess
    import sys

    from tests.supervisor_helpers import REPO

    out = subprocess.run([sys.executable, "-m", "cli", "doctor"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert "Traceback" not in out.stderr, out.stderr
    return [line for line in out.stdout.splitlines() if line.split(None, 1)[1].startswith(topic)]


def test_pmctl_doctor_says_where_the_event_log_is_and_whether_journald_gets_it(monkeypatch, tmp_path):
    from pmshared import journald, paths

    where = paths.event_log_path()
    [line] = doctor_lines("event log")
    assert line.startswith(f"ok    event log {where} (not written yet")
    [line] = doctor_lines("journald")
    assert line == f"ok    journald  {journald.socket_path()}: no journald socket here: skipped"

    paths.ensure_private_dir(where.parent)
    where.write_text('{"kind":"pause"}\n')
    where.with_name("events.jsonl.1").write_text("")
    os.chmod(where, 0o644)
    [line] = doctor_lines("event log")
    assert line.startswith(f"WARN  event log {where} is readable by other users (mode 0644)")
    os.chmod(where, 0o600)
    [line] = doctor_lines("event log")
    assert line.startswith(f"ok    event log {where} (0.0 MB, 1 rotated; rotated at 10 MiB, 5 kept)")

    config = tmp_path / "c.toml"
    config.write_text("[event_log]\nenabled = false\njournald = false\n")
    monkeypatch.setenv("PAUSE_MONITOR_CONFIG", str(config))
    assert doctor_lines("event log") == [f"ok    event log off ([event_log] enabled = false); it would be {where}"]
    assert doctor_lines("journald") == []


def test_a_record_the_formatter_cannot_encode_is_counted_and_the_rest_still_logged(tmp_path, caplog):
    """msgspec does not check ranges when a Struct is built in-process, so a NaN can reach the
    hook; JSON (allow_nan=False) refuses it. Times are nulled; a NaN in a counted field is not."""
    counters = Counter()
    elog, _ = event_log(tmp_path, counters)
    done = forensics_done(["coll:1"], "/b")
    bad = type(done)(**{**{f: getattr(done, f) for f in done.__struct_fields__},
                        "culprits": [m.Culprit(pid=1, command="x", score=float("nan"), categories=[])]})
    with caplog.at_level(logging.ERROR, logger="t-eventlog"):
        elog.stored(None, [bad, pause("coll:1", float("nan"), duration_ms=float("inf"))])
    elog.close()
    [line] = read_lines(tmp_path)
    assert line["pause_id"] == "coll:1" and line["time"] is None and line["duration_ms"] is None
    assert counters["event_log_bad_records"] == 1 and "no forensics line for forensics-inc:1" in caplog.text


FULL_DISK = r"""
import errno, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from recorder.rotating_file import RotatingFile
d = Path(sys.argv[1])
log = RotatingFile(d / "events.jsonl", 1 << 20, 2)
log.write_line(b'{"n":1}\n')
with open(d / "filler", "wb", buffering=0) as f:  # the rest of the disk, to the last byte
    for size in (65536, 4096, 512, 1):
        while True:
            try:
                f.write(b"\0" * size)
            except OSError:
                break
# Two pages free again: the 20 KB line below starts to go in, and the write comes back short.
os.truncate(d / "filler", (d / "filler").stat().st_size - 8192)
try:
    log.write_line(b'{"n":2,"pad":"' + b"x" * 20000 + b'"}\n')
    print("written")
except OSError as exc:
    print("refused", errno.errorcode[exc.errno])
print("size", (d / "events.jsonl").stat().st_size)
os.remove(d / "filler")
log.write_line(b'{"n":3}\n')
log.close()
print("lines", (d / "events.jsonl").read_bytes().decode().splitlines())
"""


def test_a_full_disk_leaves_no_partial_line(tmp_path):
    """On a real full filesystem (a private 256 KiB tmpfs with two pages left): a line that does not
    fit goes in partly (a short write), is cut back off and refused whole (ENOSPC), the file keeps
    only complete lines, and writing resumes once there is room."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a private tmpfs mount")
    from tests.supervisor_helpers import REPO

    d = tmp_path / "small"
    d.mkdir()
    script = 'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" -c "$3" "$1" "$4"'
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(d),
                          sys.executable, FULL_DISK, str(REPO)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["refused ENOSPC", "size 8", "lines ['{\"n\":1}', '{\"n\":3}']"], out.stdout
