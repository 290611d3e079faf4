"""`pmctl history --plot`: stress, PSI and sentinel lateness over the window as terminal charts.

Pure: ``plot(rows, width)`` returns a Rich renderable drawn from the samples alone. One column per
time bucket: solid eighth blocks up to the bucket's mean, ░ from there up to its maximum (so a
one-second spike stays visible in a week without hiding the usual level), a y scale that says its
unit, and the window's times under each chart. A bucket with no sample is a blank column: a hole
in the record looks like one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.text import Text

from cli import format as fmt

EIGHTHS = " ▁▂▃▄▅▆▇█"
SHADE = "░"  # above a column's mean, up to its highest second
LABEL_WIDTH = 8  # the y scale's column: "100 %", "1.2 s"
CHART_ROWS = 6


@dataclass(frozen=True)
class Point:
    """What the charts show of one sample; None where it was not measured."""

    t: float
    stress: float | None
    psi_cpu: float | None
    psi_memory: float | None
    psi_io: float | None
    late_ms: float | None


def points(rows: Iterable[object]) -> list[Point]:
    """Points from stored rows (anything with ``.samples``), ProcessSamples or storage's flight
    Figures (or Points), sorted by time. Takes an iterator: a day of rows need not be held at once."""
    out = []
    for row in rows:
        if isinstance(row, Point):
            out.append(row)
            continue
        s = getattr(row, "samples", row)
        system, sentinel = getattr(s, "system", None), getattr(s, "sentinel", None)
        late = None
        if sentinel is not None:
            # The worst lateness within this sample's interval; the window's max is sticky (it
            # repeats one hitch for a whole minute), so it is only the fallback for old records.
            late = sentinel.interval_max_ms if sentinel.interval_max_ms is not None else sentinel.max_ms
        out.append(Point(
            t=s.timestamp, stress=s.max_score, psi_cpu=_some(system, "psi_cpu"),
            psi_memory=_some(system, "psi_memory"), psi_io=_some(system, "psi_io"), late_ms=late,
        ))
    out.sort(key=lambda p: p.t)
    return out


def _some(system: object, name: str) -> float | None:
    stall = getattr(system, name, None) if system is not None else None
    return None if stall is None else stall.some


def plot(rows: Iterable[object], width: int = 100, elevation: int = 30, critical: int = 60) -> RenderableType:
    pts = points(rows)
    if not pts:
        return Text("nothing to plot: no samples in the window")
    cols = max(10, width - LABEL_WIDTH - 2)
    start, end = pts[0].t, pts[-1].t
    charts: list[RenderableType] = [
        _chart("stress", [(p.t, p.stress) for p in pts], start, end, cols, top=100, unit="",
               colour=lambda v: "bold red" if v >= critical else "yellow" if v >= elevation else "green"),
    ]
    for name, pick in (("PSI cpu some", lambda p: p.psi_cpu), ("PSI memory some", lambda p: p.psi_memory),
                       ("PSI io some", lambda p: p.psi_io)):
        series = [(p.t, pick(p)) for p in pts]
        if any(v is not None for _, v in series):  # macOS has no PSI: no empty chart
            charts.append(_chart(name, series, start, end, cols, top=_nice_top(series, floor=10), unit="%"))
    late = [(p.t, p.late_ms) for p in pts]
    if any(v is not None for _, v in late):
        charts.append(_chart("sentinel lateness, worst per sample", late, start, end, cols,
                             top=_nice_top(late, floor=10), unit="ms"))
    seconds = max(1.0, (end - start) / max(1, min(cols, int(end - start) + 1)))
    charts.append(Text(f"one column = {fmt.human_seconds(seconds)}: █ its mean, {SHADE} up to its highest second",
                       style="dim"))
    return Group(*charts)


def show(rows: Iterable[object]) -> None:
    """Print the charts for ``pmctl history --plot`` at the terminal's width and thresholds."""
    from cli.events_cmd import levels

    console = fmt.console()
    lv = levels()
    console.print(plot(rows, width=console.width, elevation=lv.elevated, critical=lv.critical))


def _chart(title: str, series: Sequence[tuple[float, float | None]], start: float, end: float, cols: int,
           top: float, unit: str, colour: Callable[[float], str] | None = None) -> RenderableType:
    buckets = bucket_stats(series, start, end, cols)
    peaks = [b[0] for b in buckets if b is not None]
    head = Text(title, style="bold")
    if peaks:
        mean = sum(v for _, v in series if v is not None) / sum(1 for _, v in series if v is not None)
        head.append(f"  max {_value(max(peaks), unit)}, mean {_value(mean, unit)}", style="dim")
    else:
        head.append("  no data", style="dim")
    lines = [head]
    for row in range(CHART_ROWS):
        level_top = CHART_ROWS - row  # this row covers heights (level_top - 1, level_top] in rows
        label = _value(top, unit) if row == 0 else (_value(0, unit) if row == CHART_ROWS - 1 else "")
        line = Text(f"{label:>{LABEL_WIDTH}} │", style="dim")
        for b in buckets:
            line.append(*_column_cell(b, top, level_top, colour))
        lines.append(line)
    lines.append(Text(" " * LABEL_WIDTH + " └" + "─" * len(buckets), style="dim"))
    lines.append(_time_axis(start, end, len(buckets)))
    return Group(*lines)


def _column_cell(bucket: tuple[float, float] | None, top: float, level_top: int,
                 colour: Callable[[float], str] | None) -> tuple[str, str]:
    """(character, style) of one cell: blocks up to the column's mean, ░ from there up to its
    highest second (a column of many seconds shows both the usual level and the spike)."""
    if bucket is None:
        return " ", ""
    peak, mean = bucket
    ch = _cell(mean, top, level_top)
    if ch != " ":
        return ch, colour(mean) if colour else "cyan"
    if _cell(peak, top, level_top) != " ":
        return SHADE, f"dim {colour(peak)}" if colour else "dim cyan"
    return " ", ""


def bucket_max(series: Sequence[tuple[float, float | None]], start: float, end: float, cols: int) -> list[float | None]:
    """The series on ``cols`` equal time buckets from start to end, each the maximum of its values
    (None for a bucket with none). Fewer points than columns: one column per point's second."""
    return [None if b is None else b[0] for b in bucket_stats(series, start, end, cols)]


def bucket_stats(series: Sequence[tuple[float, float | None]], start: float, end: float,
                 cols: int) -> list[tuple[float, float] | None]:
    """(maximum, mean) of each time bucket (see bucket_max), None for a bucket with no value."""
    span = end - start
    n = max(1, min(cols, int(span) + 1))
    peak: list[float | None] = [None] * n
    total = [0.0] * n
    count = [0] * n
    for t, v in series:
        if v is None:
            continue
        i = min(n - 1, int((t - start) / span * n)) if span > 0 else 0
        cur = peak[i]
        peak[i] = v if cur is None else max(cur, v)
        total[i] += v
        count[i] += 1
    return [None if p is None else (p, total[i] / count[i]) for i, p in enumerate(peak)]


def _cell(value: float | None, top: float, level_top: int) -> str:
    if value is None or value <= 0:
        return " "
    height = min(value / top, 1.0) * CHART_ROWS * 8  # in eighths of a row
    filled = height - (level_top - 1) * 8
    if filled <= 0:
        return " "
    return EIGHTHS[min(8, max(1, math.ceil(filled)))]


def _nice_top(series: Sequence[tuple[float, float | None]], floor: float) -> float:
    """The y scale's top: the data's maximum rounded up to 1, 2 or 5 times a power of ten."""
    peak = max((v for _, v in series if v is not None), default=0.0)
    peak = max(peak, floor)
    power = 10 ** math.floor(math.log10(peak))
    for step in (1, 2, 5, 10):
        if peak <= step * power:
            return step * power
    return 10 * power


def _value(v: float | None, unit: str) -> str:
    if v is None:
        return fmt.MISSING
    text = f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"
    return f"{text} {unit}".strip()


def _time_axis(start: float, end: float, cols: int) -> Text:
    left, right = fmt.timestamp(start), fmt.timestamp(end)
    if left[:10] == right[:10]:  # the same day: the date once is enough
        right = right[11:]
    gap = max(1, cols + 1 - len(left) - len(right))
    return Text(" " * LABEL_WIDTH + " " + left + " " * gap + right, style="dim")
