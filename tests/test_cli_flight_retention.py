"""pmctl prune and pmctl doctor know the flight record: prune reports (dry run) and removes the
minutes beyond the retention limits, pinned events' kept; doctor shows its span and size and
warns when retention is not keeping up. A real database written through the recorder's path."""

from __future__ import annotations

import time

from typer.testing import CliRunner

from cli.doctor import check_flight
from cli.main import app
from pmshared import config as config_mod
from pmshared import paths, storage
from tests.flight_helpers import Recorder

DAY = 86400.0


def old_record(days: int = 10) -> tuple[Recorder, float]:
    """One sample every 10 minutes over ``days`` ending now (each its own minute block)."""
    rec = Recorder(paths.db_path())
    now = time.time()
    start = now - days * DAY
    for i in range(int(days * DAY / 600)):
        rec.record(start + i * 600)
    rec.record(now - 1)
    rec.flush()
    return rec, now


def blocks() -> int:
    conn = storage.open_readonly(paths.db_path())
    try:
        return conn.execute("SELECT count(*) FROM flight_blocks").get
    finally:
        conn.close()


def test_prune_dry_run_reports_the_flight_minutes_past_retention_then_prunes_them(isolated_home):
    rec, _ = old_record(days=10)
    rec.close()
    before = blocks()
    runner = CliRunner()
    dry = runner.invoke(app, ["prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    # 10 days at one minute in ten: ~3 days x 144 minutes are past the 7-day default.
    line = next(x for x in dry.output.splitlines() if x.startswith("flight record:"))
    gone = int(line.split()[2])
    assert 420 <= gone <= 436 and "past the age limit" in line
    assert f"{gone} minutes of flight record" in dry.output
    assert blocks() == before  # a dry run deletes nothing
    done = runner.invoke(app, ["prune", "--force"])
    assert done.exit_code == 0, done.output
    assert f"{gone} minutes of flight record" in done.output
    assert blocks() == before - gone
    again = runner.invoke(app, ["prune", "--force"])
    assert "nothing to prune" in again.output and "flight record: older than 7 days" in again.output


def test_prune_takes_the_flight_limits_from_the_command_line(isolated_home):
    rec, _ = old_record(days=3)
    rec.close()
    runner = CliRunner()
    assert "nothing to prune" in runner.invoke(app, ["prune", "--dry-run"]).output
    out = runner.invoke(app, ["prune", "--flight-days", "2", "--flight-mb", "7", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "past the age limit" in out.output and "would delete" in out.output


def test_doctor_shows_the_flight_records_span_and_size_and_warns_when_retention_lags(isolated_home):
    rec, now = old_record(days=10)
    rec.close()
    config = config_mod.Config()
    found = check_flight(config, now=now)
    assert found[0].level == "ok" and "samples" in found[0].text and "kept 7 days" in found[0].text
    assert found[0].text.startswith(time.strftime("%Y-%m-%d", time.localtime(now - 10 * DAY)))
    lag = [f for f in found if f.level == "warn"]
    assert len(lag) == 1 and "retention is behind" in lag[0].text and "pmctl prune" in lag[0].fix
    assert CliRunner().invoke(app, ["prune", "--force"]).exit_code == 0
    after = check_flight(config, now=now)
    assert [f.level for f in after] == ["ok"]


def test_doctor_on_an_empty_record_says_so(isolated_home):
    Recorder(paths.db_path()).close()
    found = check_flight(config_mod.Config())
    assert [f.level for f in found] == ["ok"] and found[0].text.startswith("empty")
