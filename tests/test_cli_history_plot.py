"""pmctl history --plot's charts, drawn from a list of samples (pure: no database, no clock)."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from cli.history_plot import EIGHTHS, SHADE, bucket_max, plot
from pmshared import messages as m

T0 = 1_800_000_000.0


def sample(i: int, score: int, psi: float | None = 1.0, late: float = 2.0) -> m.ProcessSamples:
    system = m.SystemStats(psi_cpu=m.PressureStall(some=psi), psi_memory=m.PressureStall(some=psi),
                           psi_io=m.PressureStall(some=psi)) if psi is not None else m.SystemStats()
    return m.ProcessSamples(sender="scorer", incarnation="i", seq=i, sent_at=T0 + i, timestamp=T0 + i,
                            elapsed_ms=1000, process_count=50, max_score=score, rogues=[], system=system,
                            sentinel=m.SentinelStats(tick_ms=20, window_s=60, max_ms=900.0, interval_max_ms=late))


def draw(rows, width=100) -> list[str]:
    buf = StringIO()
    Console(file=buf, width=width, color_system=None).print(plot(rows, width=width))
    return buf.getvalue().splitlines()


def test_a_one_second_spike_in_a_day_survives_bucketing():
    series = [(T0 + s, 1.0) for s in range(86400)]
    series[50_000] = (T0 + 50_000, 95.0)
    buckets = bucket_max(series, T0, T0 + 86399, 90)
    assert len(buckets) == 90 and max(buckets) == 95.0
    assert buckets.index(95.0) == 50_000 * 90 // 86400


def test_a_column_of_many_seconds_shows_its_mean_solid_and_its_spike_shaded():
    rows = [sample(i, 95 if i == 5000 else 10, psi=None) for i in range(8640)]
    lines = draw(rows, width=100)
    assert lines[0] == "stress  max 95, mean 10"
    chart = [line[line.index("│") + 1:] for line in lines[1:7]]
    spike = 5000 * len(chart[0]) // 8640
    # The column's mean (~11 of 100) is a partial block in the bottom row; its 95 is shaded above.
    assert [row[spike] for row in chart[:5]] == [SHADE] * 5 and chart[5][spike] in EIGHTHS[5:7]
    assert {row[spike + 3] for row in chart[:5]} == {" "}  # a column without a spike: no shade


def test_a_hole_in_the_record_is_a_blank_column():
    series = [(T0 + s, 5.0) for s in range(10)] + [(T0 + s, 5.0) for s in range(20, 30)]
    buckets = bucket_max(series, T0, T0 + 29, 30)
    assert buckets[12] is None and buckets[5] == 5.0


def test_stress_psi_and_lateness_charts_show_the_burst_where_it_happened():
    rows = [sample(i, 80 if 40 <= i < 50 else 5, psi=30.0 if 40 <= i < 50 else 0.5,
                   late=400.0 if i == 45 else 2.0) for i in range(100)]
    lines = draw(rows, width=110)
    assert all(len(line) <= 110 for line in lines)
    titles = [line for line in lines if line and not line[0].isspace() and not line.startswith("one column")]
    assert [t.split("  ")[0] for t in titles] == [
        "stress", "PSI cpu some", "PSI memory some", "PSI io some", "sentinel lateness, worst per sample"]
    assert "max 80" in titles[0] and "max 30 %" in titles[1] and "max 400 ms" in titles[4]
    # The stress chart's top row with ink has it only in the burst's columns (40..49 of 100 samples).
    chart = lines[1:7]
    start = chart[0].index("│") + 1
    inked = {i for row in chart for i, ch in enumerate(row[start:]) if ch in EIGHTHS[1:]}
    top_inked = {i for i, ch in enumerate(chart[1][start:]) if ch != " "}
    assert top_inked == set(range(40, 50)) and inked >= set(range(100))
    assert "100" in chart[0] and chart[-1].strip().startswith("0")


def test_no_psi_no_psi_chart_and_no_samples_says_so():
    lines = draw([sample(i, 10, psi=None) for i in range(5)])
    titles = [line for line in lines[:-1] if line and line[0] != " "]
    assert lines[-1] == "one column = 1.0 s: █ its mean, ░ up to its highest second"
    assert [t.split("  ")[0] for t in titles] == ["stress", "sentinel lateness, worst per sample"]
    assert draw([]) == ["nothing to plot: no samples in the window"]


def test_history_plot_draws_the_recorded_window(isolated_home):
    import time

    from typer.testing import CliRunner

    from cli.main import app
    from pmshared import paths
    from tests.cli_people_helpers import DbBuilder

    db = DbBuilder(paths.db_path())
    db.event(time.time() - 120, [20, 50, 90, 40], end=time.time() - 100)
    db.close()
    result = CliRunner().invoke(app, ["history", "--plot", "--since", "10m"], env={"COLUMNS": "90"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("stress  max 90") and all(len(line) <= 90 for line in lines)
    assert "█" in result.output


def test_streamed_rows_draw_the_same_charts_as_a_list():
    """With the window's span given, rows are aggregated as they stream (a week is never held):
    the picture is the one the whole list gives."""
    rows = [sample(i, (i * 7) % 100, psi=float(i % 13), late=float(i % 40)) for i in range(5000)]
    buf = StringIO()
    streamed = plot((r for r in rows), width=100, span=(rows[0].timestamp, rows[-1].timestamp))
    Console(file=buf, width=100, color_system=None).print(streamed)
    assert buf.getvalue().splitlines() == draw(rows, width=100)
