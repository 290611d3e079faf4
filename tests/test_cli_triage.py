"""pmctl events / pauses / history / prune / export over real databases built by storage.apply."""

from __future__ import annotations

import csv
import io
import json
import os
import tarfile
import time
from pathlib import Path

import apsw
import pytest
from typer.testing import CliRunner

from cli.main import app
from pmshared import paths, storage
from tests.cli_people_helpers import HOSTILE, RECOGNISABLE, DbBuilder, control_bytes

DAY = 86400.0


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def db(isolated_home):
    """Three events (one open), two pauses (one with a bundle), hostile process names."""
    now = time.time()
    paths.events_dir().mkdir(parents=True, exist_ok=True)
    b = DbBuilder(paths.db_path())
    b.event(now - 2 * 3600, [40, 55, 70, 90, 85, 60], culprit=HOSTILE["title"], end=now - 2 * 3600 + 10, tier3_from=3)
    b.event(now - 3600, [35, 45], culprit=HOSTILE["csi"], end=now - 3600 + 5)
    b.event(now - 60, [50, 65], culprit=HOSTILE["bidi"])
    pause = b.pause(now - 2 * 3600 + 3, duration_ms=2500.0)
    bundle = paths.events_dir() / "20240501-140003-pause"
    (bundle / "proc").mkdir(parents=True)
    (bundle / "ps.txt").write_text("PID CMD\n4242 evil\n")
    (bundle / "proc" / "meminfo").write_text("MemTotal: 1 kB\n")
    os.symlink("/etc/passwd", bundle / "passwd-link")
    b.bundle([pause], bundle, culprit=HOSTILE["osc52"], cause="cpu")
    b.pause(now - 100, duration_ms=800.0, suspended_ms=3000.0)
    b.close()
    return {"now": now, "bundle": bundle}


def ok(result, code: int = 0):
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def one_line_error(result, *needles: str, code: int | None = None) -> str:
    """The command failed with exactly one `error:` line on stderr and no traceback."""
    assert result.exit_code != 0, result.stdout
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert control_bytes(lines[0]) == []
    return lines[0]


# --------------------------------------------------------------------------- events


def test_events_lists_newest_first_with_culprits_made_inert(runner, db):
    out = ok(runner.invoke(app, ["events"])).stdout
    ids = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert ids == ["3", "2", "1"]
    assert control_bytes(out) == []
    for name in ("title", "csi", "bidi"):
        assert RECOGNISABLE[name] in out
    assert "(open)" in out  # event 3 has not ended


def test_events_filters_by_status_limit_and_since(runner, db):
    ok(runner.invoke(app, ["events", "mark", "2", "--status", "pinned"]))
    out = ok(runner.invoke(app, ["events", "--status", "pinned", "--json"])).stdout
    assert [e["id"] for e in json.loads(out)] == [2]
    assert [e["id"] for e in json.loads(ok(runner.invoke(app, ["events", "-n", "1", "--json"])).stdout)] == [3]
    assert [e["id"] for e in json.loads(ok(runner.invoke(app, ["events", "--since", "90m", "--json"])).stdout)] == [3, 2]
    assert "no events with status dismissed" in ok(runner.invoke(app, ["events", "--status", "dismissed"])).stdout


def test_events_json_is_valid_and_carries_the_exact_names(runner, db):
    out = ok(runner.invoke(app, ["events", "--json"])).stdout
    assert control_bytes(out.replace("\n", "")) == []
    events = json.loads(out)
    assert {e["top_culprit"] for e in events} == {HOSTILE["title"], HOSTILE["csi"], HOSTILE["bidi"]}
    first = events[-1]
    assert (first["peak_score"], first["peak_tier"], first["pause_count"]) == (90, 3, 1)


def test_events_bad_input_is_one_line(runner, db):
    one_line_error(runner.invoke(app, ["events", "--status", "bogus"]), "unknown status 'bogus'", "pinned", code=2)
    one_line_error(runner.invoke(app, ["events", "--since", "last tuesday"]), "--since", "2h", code=2)
    one_line_error(runner.invoke(app, ["events", "show", "abc"]), "must be a number", code=2)
    one_line_error(runner.invoke(app, ["events", "show", "999"]), "no event with id 999", code=1)
    one_line_error(runner.invoke(app, ["events", "mark", "999", "--status", "reviewed"]), "no event with id 999")
    one_line_error(runner.invoke(app, ["events", "mark", "1", "--status", "done"]), "unknown status 'done'", code=2)


def test_event_show_has_timeline_processes_pauses_and_notes(runner, db):
    ok(runner.invoke(app, ["events", "mark", "1", "--status", "reviewed", "--notes", "it was \x1b[2Jthe [b]backup[/b]"]))
    out = ok(runner.invoke(app, ["events", "show", "1"])).stdout
    assert control_bytes(out) == []
    assert "event 1" in out and "peak 90, tier 3 (critical), status reviewed" in out
    assert "▄▅▆█▇▅" in out  # timeline of the six samples' max scores (40..90)
    assert "peak sample" in out and "continuous samples (3)" in out
    assert RECOGNISABLE["title"] in out and "bystander" in out
    assert "2.5 s" in out and "cpu" in out and str(db["bundle"]) in out  # the pause, cause, bundle
    assert RECOGNISABLE["osc52"] in out  # the bundle's culprit
    assert "the [b]backup[/b]" in out and "^[[2J" in out  # notes shown as typed, inert


def test_event_show_json(runner, db):
    detail = json.loads(ok(runner.invoke(app, ["events", "show", "1", "--json"])).stdout)
    assert detail["event"]["id"] == 1 and len(detail["samples"]) == 6 and len(detail["pauses"]) == 1
    assert detail["samples"][3]["samples"]["rogues"][0]["command"] == HOSTILE["title"]


def test_mark_changes_status_and_notes_in_the_database(runner, db):
    out = ok(runner.invoke(app, ["events", "mark", "3", "--status", "dismissed", "--notes", "false alarm"])).stdout
    assert "event 3: dismissed, notes saved" in out
    conn = storage.open_readonly(paths.db_path())
    try:
        event = storage.get_event(conn, 3).event
        assert (event.status, event.notes) == ("dismissed", "false alarm")
    finally:
        conn.close()
    ok(runner.invoke(app, ["events", "mark", "3", "--status", "unreviewed", "--notes", ""]))
    conn = storage.open_readonly(paths.db_path())
    try:
        assert storage.get_event(conn, 3).event.notes is None
    finally:
        conn.close()


# --------------------------------------------------------------------------- database trouble


def test_no_database_explains_what_to_start(runner, isolated_home):
    for args in (["events"], ["events", "show", "1"], ["pauses"], ["history"], ["prune", "--force"],
                 ["events", "mark", "1", "--status", "pinned"]):
        one_line_error(runner.invoke(app, args), "no database yet", "pmctl up")
    assert not paths.db_path().exists()  # listing never creates it


def test_corrupt_database_is_named_with_the_way_out(runner, isolated_home):
    path = paths.db_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database, just some bytes" * 200)
    line = one_line_error(runner.invoke(app, ["events"]), "corrupt", str(path))
    # The way out is `pmctl up`, which moves it aside itself (issue 17), not a manual mv.
    assert "`pmctl up` moves it aside (kept as data.db.corrupt-<time>) and starts a fresh one" in line


def test_unopenable_database_is_one_line(runner, isolated_home):
    paths.db_path().mkdir(parents=True)  # a directory where the file should be
    one_line_error(runner.invoke(app, ["events"]), f"{paths.db_path()} is a directory, not a database file")


def test_locked_database_is_reported_busy(runner, db, monkeypatch):
    # Another process holding the write lock (as a long recorder batch would): marking must wait a
    # bounded time, then say so in one line.
    import cli.errors

    monkeypatch.setattr(cli.errors, "BUSY_TIMEOUT_MS", 200)
    holder = apsw.Connection(str(paths.db_path()))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        one_line_error(runner.invoke(app, ["events", "mark", "1", "--status", "pinned"]), "locked")
        assert time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# --------------------------------------------------------------------------- pauses


def test_pauses_list_and_show(runner, db):
    out = ok(runner.invoke(app, ["pauses"])).stdout
    assert control_bytes(out) == []
    assert "pending" in out and "cpu" in out and "3.0 s" in out  # no bundle yet / cause / suspended
    pauses = json.loads(ok(runner.invoke(app, ["pauses", "--json"])).stdout)
    assert [p["duration_ms"] for p in pauses] == [800.0, 2500.0]
    assert pauses[1]["event_id"] == 1 and pauses[1]["bundle_path"] == str(db["bundle"])
    shown = ok(runner.invoke(app, ["pauses", "show", str(pauses[1]["id"])])).stdout
    assert control_bytes(shown) == []
    assert "permission denied" in shown and "ps.txt" in shown and "psi_cpu_some" in shown
    assert RECOGNISABLE["osc52"] in shown
    # Figures are rounded for reading, an unknown one is "-" rather than blank; --json keeps them whole.
    evidence = {line.split()[0]: line.split()[-1] for line in shown.splitlines() if line.strip()}
    assert evidence["cpu_busy_pct"] == "59.41" and evidence["last_resume_ago_s"] == "-"
    by_key = json.loads(ok(runner.invoke(app, ["pauses", "show", pauses[1]["pause_id"], "--json"])).stdout)
    assert by_key["id"] == pauses[1]["id"]
    assert by_key["evidence"]["cpu_busy_pct"] == 59.40594059405941
    one_line_error(runner.invoke(app, ["pauses", "show", "77"]), "no pause with id '77'")
    assert json.loads(ok(runner.invoke(app, ["pauses", "--since", "10m", "--json"])).stdout)[0]["duration_ms"] == 800.0


# --------------------------------------------------------------------------- history


def test_history_table(runner, db):
    out = ok(runner.invoke(app, ["history", "--hours", "3"])).stdout
    assert control_bytes(out) == []
    assert "10 samples" in out and "max score 90" in out
    for name in ("title", "csi", "bidi"):
        assert RECOGNISABLE[name] in out
    narrow = ok(runner.invoke(app, ["history", "--hours", "1.5"])).stdout
    assert "4 samples" in narrow


def test_history_json_and_csv(runner, db):
    rows = json.loads(ok(runner.invoke(app, ["history", "--format", "json"])).stdout)
    assert len(rows) == 10 and [r["event_id"] for r in rows[:6]] == [1] * 6
    out = ok(runner.invoke(app, ["history", "-f", "csv"])).stdout
    assert control_bytes(out) == []
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == 10
    assert table[3]["tier"] == "3" and table[3]["max_score"] == "90" and table[3]["top_pid"] == "4242"
    assert RECOGNISABLE["title"] in table[0]["top_command"]
    one_line_error(runner.invoke(app, ["history", "--format", "xml"]), "unknown format 'xml'", code=2)


def test_history_empty_window_says_why(runner, db):
    out = ok(runner.invoke(app, ["history", "--since", "2m"])).stdout
    assert "no samples recorded" not in out  # event 3 has samples in the last minute
    out = ok(runner.invoke(app, ["history", "--since", "1s"])).stdout
    assert "no samples recorded between" in out and "pmctl up" in out


# --------------------------------------------------------------------------- prune


@pytest.fixture
def old_db(isolated_home):
    """Old events in every status, and an old pause outside events with its bundle directory."""
    now = time.time()
    b = DbBuilder(paths.db_path())
    for i, _status in enumerate(storage.STATUSES):
        b.event(now - (100 + i) * DAY, [50, 60], end=now - (100 + i) * DAY + 30)
    b.event(now - DAY, [50], end=now - DAY + 10)  # recent: stays whatever its status
    pause = b.pause(now - 40 * DAY)
    bundle = paths.events_dir() / "old-bundle"
    bundle.mkdir(parents=True)
    (bundle / "ps.txt").write_text("x")
    b.bundle([pause], bundle)
    b.close()
    conn = storage.open_readwrite(paths.db_path())
    for event_id, status in enumerate(storage.STATUSES, start=1):
        storage.set_status(conn, event_id, status)
    storage.set_status(conn, 5, "reviewed")
    conn.close()
    return {"bundle": bundle}


def _event_ids() -> list[int]:
    conn = storage.open_readonly(paths.db_path())
    try:
        return sorted(e.id for e in storage.list_events(conn, limit=None))
    finally:
        conn.close()


def test_prune_dry_run_lists_and_deletes_nothing(runner, old_db):
    out = ok(runner.invoke(app, ["prune", "--dry-run"])).stdout
    assert "would delete 2 events (4 samples), 1 pauses, 1 bundles" in out
    assert str(old_db["bundle"]) in out
    assert _event_ids() == [1, 2, 3, 4, 5] and old_db["bundle"].exists()


def test_prune_force_keeps_pinned_unreviewed_and_recent(runner, old_db):
    out = ok(runner.invoke(app, ["prune", "--force"])).stdout
    assert "deleted 2 events" in out and "1 bundle directories removed" in out
    assert _event_ids() == [1, 3, 5]  # unreviewed, pinned, recent-reviewed stay
    assert not old_db["bundle"].exists()
    assert "nothing to prune" in ok(runner.invoke(app, ["prune", "--force"])).stdout


def test_prune_asks_and_refuses_without_an_answer(runner, old_db):
    one_line_error(runner.invoke(app, ["prune"]), "refusing", "--force", code=2)  # stdin at EOF
    assert _event_ids() == [1, 2, 3, 4, 5]
    result = runner.invoke(app, ["prune"], input="n\n")
    assert result.exit_code == 1 and "nothing deleted" in result.stdout
    assert _event_ids() == [1, 2, 3, 4, 5]
    ok(runner.invoke(app, ["prune"], input="y\n"))
    assert _event_ids() == [1, 3, 5]


def test_prune_events_days_override(runner, old_db):
    assert "nothing to prune" in ok(runner.invoke(app, ["prune", "--events-days", "200", "--samples-days", "200", "--force"])).stdout
    out = ok(runner.invoke(app, ["prune", "--events-days", "1", "--dry-run"])).stdout
    assert "would delete 3 events" in out  # the recent reviewed one too


# --------------------------------------------------------------------------- export


def test_export_archive_contents_are_safe_and_complete(runner, db, tmp_path):
    target = tmp_path / "event1.tar.gz"
    out = ok(runner.invoke(app, ["events", "export", "1", "-o", str(target)])).stdout
    assert "6 samples, 1 pauses, 1 bundles" in out and "not a regular file" in out  # the symlink
    with tarfile.open(target) as tar:
        names = tar.getnames()
        for member in tar.getmembers():
            assert not member.name.startswith("/") and ".." not in member.name.split("/")
            assert member.isfile() or member.isdir()
            assert member.uid == 0 and member.uname == ""
        prefix = "pause-monitor-event-1"
        assert f"{prefix}/bundles/20240501-140003-pause/ps.txt" in names
        assert f"{prefix}/bundles/20240501-140003-pause/proc/meminfo" in names
        assert not any("passwd" in n for n in names)
        doc = json.loads(tar.extractfile(f"{prefix}/event.json").read())
        samples = json.loads(tar.extractfile(f"{prefix}/samples.json").read())
        assert tar.extractfile(f"{prefix}/bundles/20240501-140003-pause/ps.txt").read() == b"PID CMD\n4242 evil\n"
    assert doc["event"]["id"] == 1 and doc["pauses"][0]["cause"] == "cpu"
    assert len(samples) == 6 and samples[0]["samples"]["rogues"][0]["command"] == HOSTILE["title"]
    one_line_error(runner.invoke(app, ["events", "export", "1", "-o", str(target)]), "already exists", "--force")
    ok(runner.invoke(app, ["events", "export", "1", "-o", str(target), "--force"]))
    one_line_error(runner.invoke(app, ["events", "export", "42", "-o", str(tmp_path / "x.tar.gz")]), "no event with id 42")
    assert not (tmp_path / "x.tar.gz").exists()


def test_export_never_reads_bundles_outside_the_events_dir(runner, isolated_home, tmp_path):
    now = time.time()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not ship")
    b = DbBuilder(paths.db_path())
    b.event(now - 50, [50], end=now - 40)
    b.bundle([b.pause(now - 45)], outside)
    b.bundle([b.pause(now - 44)], paths.events_dir() / ".." / ".." / "escape")
    b.close()
    target = tmp_path / "e.tar.gz"
    out = ok(runner.invoke(app, ["events", "export", "1", "-o", str(target)])).stdout
    assert "0 bundles" in out and out.count("outside") == 2
    with tarfile.open(target) as tar:
        assert not any("secret" in n or "escape" in n for n in tar.getnames())


def test_commands_leave_no_control_bytes_on_stderr_either(runner, db):
    result = runner.invoke(app, ["events", "show", "\x1b]0;x\x07"])
    one_line_error(result, "must be a number", code=2)


def test_database_path_is_not_created_by_listing_in_an_empty_home(runner, isolated_home):
    runner.invoke(app, ["pauses"])
    assert not Path(paths.data_dir()).exists() or not paths.db_path().exists()


def test_events_table_on_a_terminal_uses_rich_with_the_same_columns(db):
    """The rich table (terminal, colours allowed) shows what the plain one does, inert."""
    from rich.console import Console

    from cli.event_rows import EVENT_COLUMNS, events_plain
    from cli.events_view import Levels, events_table

    conn = storage.open_readonly(paths.db_path())
    try:
        rows = storage.list_events(conn, limit=None)
    finally:
        conn.close()
    buf = io.StringIO()
    Console(file=buf, width=160, color_system="truecolor", force_terminal=True).print(
        events_table(rows, db["now"], Levels()))
    coloured = buf.getvalue()
    import re

    assert control_bytes(re.sub(r"\x1b\[[0-9;]*m", "", coloured)) == []
    plain = events_plain(rows, db["now"])
    assert control_bytes(plain) == [] and plain.splitlines()[0].split() == ["id", "start", "duration", "peak",
                                                                             "tier", "status", "top", "culprit", "pauses"]
    for header, _ in EVENT_COLUMNS:
        assert header in coloured
    for name in ("title", "csi", "bidi"):
        assert RECOGNISABLE[name] in coloured and RECOGNISABLE[name] in plain


def test_an_event_whose_tally_charged_nobody_says_so_in_both_views(isolated_home):
    from rich.console import Console

    from cli.event_rows import NO_LOCAL_CULPRIT, events_plain
    from cli.events_view import Levels, events_table

    now = time.time()
    b = DbBuilder(paths.db_path())
    key = b.event(now - 30, [86, 70], culprit="init", end=now - 20)
    b.charge_nobody(key, now - 30)
    b.close()
    conn = storage.open_readonly(paths.db_path())
    try:
        rows = storage.list_events(conn)
    finally:
        conn.close()
    buf = io.StringIO()
    Console(file=buf, width=160).print(events_table(rows, now, Levels()))
    for text in (buf.getvalue(), events_plain(rows, now)):
        row = text.splitlines()[-1]
        assert NO_LOCAL_CULPRIT in row and "init" not in row and "4242" not in row, text
    out = CliRunner().invoke(app, ["events", "--json"]).stdout
    (event,) = json.loads(out)
    assert (event["top_culprit"], event["no_local_culprit"]) == (None, True)


def test_an_event_that_charged_nobody_shows_what_was_stressed_inert():
    from types import SimpleNamespace

    from cli.event_rows import NO_LOCAL_CULPRIT, culprit_parts

    event = SimpleNamespace(no_local_culprit=True, stressed=["io", "mem\x1b[31m"])
    name, pid, what = culprit_parts(event)
    assert (name, pid) == (NO_LOCAL_CULPRIT, "") and what.startswith(" (io,mem") and control_bytes(what) == []
