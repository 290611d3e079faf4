"""`pmctl history --plot`: stress, PSI and sentinel lateness over the window as terminal charts.

Pure: ``plot(rows, width)`` returns a Rich renderable drawn from the samples alone; given the
window's ``span`` it aggregates the rows as they stream past (``Buckets``), so a week of seconds
is never held at once. One column per
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


SERIES = ("stress", "psi_cpu", "psi_memory", "psi_io", "late_ms")  # a Point's fields after t


def _values(row: object) -> tuple:
    """(t, stress, psi_cpu, psi_memory, psi_io, late_ms) of a Point, storage's flight Figures
    (already that tuple), a stored row (anything with ``.samples``) or a ProcessSamples."""
    if isinstance(row, tuple):
        return row
    if isinstance(row, Point):
        return (row.t, row.stress, row.psi_cpu, row.psi_memory, row.psi_io, row.late_ms)
    s = getattr(row, "samples", row)
    system, sentinel = getattr(s, "system", None), getattr(s, "sentinel", None)
    late = None
    if sentinel is not None:
        # The worst lateness within this sample's interval; the window's max is sticky (it
        # repeats one hitch for a whole minute), so it is only the fallback for old records.
        late = sentinel.interval_max_ms if sentinel.interval_max_ms is not None else sentinel.max_ms
    return (s.timestamp, s.max_score, _some(system, "psi_cpu"), _some(system, "psi_memory"),
            _some(system, "psi_io"), late)


def points(rows: Iterable[object]) -> list[Point]:
    """Points from stored rows, ProcessSamples or storage's flight Figures, sorted by time."""
    return sorted((Point(*_values(row)) for row in rows), key=lambda p: p.t)


def _some(system: object, name: str) -> float | None:
    stall = getattr(system, name, None) if system is not None else None
    return None if stall is None else stall.some


class Buckets:
    """Every series' (maximum, total, count) per time bucket, filled as rows stream past: memory
    is the chart's width, never the window's length. ``cols`` equal buckets from ``start`` to
    ``end``; fewer seconds than columns: one column per second."""

    def __init__(self, start: float, end: float, cols: int, series: int = len(SERIES)) -> None:
        self.start, self.span = start, end - start
        self.n = max(1, min(cols, int(self.span) + 1))
        self.peak: list[list[float | None]] = [[None] * self.n for _ in range(series)]
        self.total = [[0.0] * self.n for _ in range(series)]
        self.count = [[0] * self.n for _ in range(series)]
        self.rows = 0

    def add(self, t: float, values: Sequence[float | None]) -> None:
        n, span = self.n, self.span
        i = min(n - 1, max(0, int((t - self.start) / span * n))) if span > 0 else 0
        self.rows += 1
        for k, v in enumerate(values):
            if v is None:
                continue
            cur = self.peak[k][i]
            if cur is None or v > cur:
                self.peak[k][i] = v
            self.total[k][i] += v
            self.count[k][i] += 1

    def stats(self, k: int) -> list[tuple[float, float] | None]:
        """(maximum, mean) of each bucket of series ``k``, None for a bucket with no value."""
        total, count = self.total[k], self.count[k]
        return [None if p is None else (p, total[i] / count[i]) for i, p in enumerate(self.peak[k])]

    def mean(self, k: int) -> float | None:
        n = sum(self.count[k])
        return sum(self.total[k]) / n if n else None


def plot(rows: Iterable[object], width: int = 100, elevation: int = 30, critical: int = 60,
         span: tuple[float, float] | None = None) -> RenderableType:
    """The charts of ``rows``. With ``span`` (first, last time) given, rows are aggregated as they
    stream (a week's worth never held); without it they are gathered first to find it."""
    cols = max(10, width - LABEL_WIDTH - 2)
    if span is None:
        pts = points(rows)
        if not pts:
            return Text("nothing to plot: no samples in the window")
        rows, span = pts, (pts[0].t, pts[-1].t)
    start, end = span
    buckets = Buckets(start, end, cols)
    for row in rows:
        t, *values = _values(row)
        buckets.add(t, values)
    if not buckets.rows:
        return Text("nothing to plot: no samples in the window")
    charts: list[RenderableType] = [
        _chart("stress", buckets, 0, start, end, top=100, unit="",
               colour=lambda v: "bold red" if v >= critical else "yellow" if v >= elevation else "green"),
    ]
    for k, name in ((1, "PSI cpu some"), (2, "PSI memory some"), (3, "PSI io some")):
        if buckets.mean(k) is not None:  # macOS has no PSI: no empty chart
            charts.append(_chart(name, buckets, k, start, end, top=_nice_top(buckets.peak[k], floor=10), unit="%"))
    if buckets.mean(4) is not None:
        charts.append(_chart("sentinel lateness, worst per sample", buckets, 4, start, end,
                             top=_nice_top(buckets.peak[4], floor=10), unit="ms"))
    seconds = max(1.0, (end - start) / buckets.n)
    charts.append(Text(f"one column = {fmt.human_seconds(seconds)}: █ its mean, {SHADE} up to its highest second",
                       style="dim"))
    return Group(*charts)


def show(rows: Iterable[object], span: tuple[float, float] | None = None) -> None:
    """Print the charts for ``pmctl history --plot`` at the terminal's width and thresholds."""
    from cli.events_cmd import levels

    console = fmt.console()
    lv = levels()
    console.print(plot(rows, width=console.width, elevation=lv.elevated, critical=lv.critical, span=span))


def _chart(title: str, buckets: Buckets, k: int, start: float, end: float, top: float, unit: str,
           colour: Callable[[float], str] | None = None) -> RenderableType:
    stats = buckets.stats(k)
    peaks = [b[0] for b in stats if b is not None]
    head = Text(title, style="bold")
    if peaks:
        head.append(f"  max {_value(max(peaks), unit)}, mean {_value(buckets.mean(k), unit)}", style="dim")
    else:
        head.append("  no data", style="dim")
    lines = [head]
    for row in range(CHART_ROWS):
        level_top = CHART_ROWS - row  # this row covers heights (level_top - 1, level_top] in rows
        label = _value(top, unit) if row == 0 else (_value(0, unit) if row == CHART_ROWS - 1 else "")
        line = Text(f"{label:>{LABEL_WIDTH}} │", style="dim")
        for b in stats:
            line.append(*_column_cell(b, top, level_top, colour))
        lines.append(line)
    lines.append(Text(" " * LABEL_WIDTH + " └" + "─" * len(stats), style="dim"))
    lines.append(_time_axis(start, end, len(stats)))
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
    buckets = Buckets(start, end, cols, series=1)
    for t, v in series:
        buckets.add(t, (v,))
    return buckets.stats(0)


def _cell(value: float | None, top: float, level_top: int) -> str:
    if value is None or value <= 0:
        return " "
    height = min(value / top, 1.0) * CHART_ROWS * 8  # in eighths of a row
    filled = height - (level_top - 1) * 8
    if filled <= 0:
        return " "
    return EIGHTHS[min(8, max(1, math.ceil(filled)))]


def _nice_top(peaks: Iterable[float | None], floor: float) -> float:
    """The y scale's top: the data's maximum rounded up to 1, 2 or 5 times a power of ten."""
    peak = max((v for v in peaks if v is not None), default=0.0)
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
