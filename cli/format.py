"""Shared formatting for pmctl output: sizes, durations, times, sparklines, safe text cells.

Everything here is cheap to import (no rich at module level): `pmctl events` must start fast, so
rich is imported only by the functions that build rich objects.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pmshared.safetext import inert

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

MISSING = "-"  # a figure the OS did not let us read (None), never shown as 0
SPARK_CHARS = "▁▂▃▄▅▆▇█"


# --------------------------------------------------------------------------- numbers


def human_bytes(n: int | float | None) -> str:
    """1536 -> '1.5 KiB'; binary units because that is how the OS counts memory."""
    if n is None:
        return MISSING
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float | None) -> str:
    """A duration for people: '850 ms', '2.3 s', '4m 12s', '1h 03m', '2d 04h'."""
    if seconds is None or math.isnan(seconds):
        return MISSING
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def human_ms(ms: float | None) -> str:
    return MISSING if ms is None else human_seconds(ms / 1000)


def number(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return MISSING
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def timestamp(epoch: float | None, *, seconds: bool = True) -> str:
    """Local wall-clock time, ISO-like and sortable: '2024-05-01 14:03:07'."""
    if epoch is None:
        return MISSING
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(epoch))


def iso(epoch: float | None) -> str | None:
    """Machine-readable local time with offset, for --json and csv."""
    if epoch is None:
        return None
    from datetime import datetime

    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- sparkline


def sparkline(values: Sequence[float | None], width: int | None = None, lo: float = 0, hi: float = 100) -> str:
    """Block characters, one per value (or per bucket of values, keeping each bucket's maximum).

    The scale is fixed (0..100 for scores) so two sparklines can be compared by eye; a missing
    value is a space.
    """
    vals = list(values)
    if width is not None and width > 0 and len(vals) > width:
        # Max per bucket: a one-sample spike must stay visible after downsampling.
        buckets = []
        for i in range(width):
            chunk = [v for v in vals[i * len(vals) // width : (i + 1) * len(vals) // width] if v is not None]
            buckets.append(max(chunk) if chunk else None)
        vals = buckets
    span = hi - lo or 1
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
            continue
        frac = min(max((v - lo) / span, 0.0), 1.0)
        out.append(SPARK_CHARS[min(int(frac * len(SPARK_CHARS)), len(SPARK_CHARS) - 1)])
    return "".join(out)


# --------------------------------------------------------------------------- untrusted text


def clean(text: object, limit: int | None = None) -> str:
    """Untrusted text (process names, notes, paths) as an inert plain string."""
    return inert("" if text is None else str(text), limit)


def safe(text: object, limit: int | None = None, style: str = "") -> Text:
    """Untrusted text as a rich ``Text``: never parsed as markup, control characters made visible."""
    from rich.text import Text

    return Text(clean(text, limit), style=style)


def joined(items: Iterable[object], sep: str = ",") -> str:
    return sep.join(clean(i) for i in items)


# --------------------------------------------------------------------------- consoles


def plain_requested() -> bool:
    """NO_COLOR (any non-empty value, see no-color.org) asks for text without styling."""
    return bool(os.environ.get("NO_COLOR"))


def rich_wanted(stream=None) -> bool:
    """Styled output only on a terminal without NO_COLOR; otherwise plain text is as good."""
    stream = stream or sys.stdout
    try:
        return stream.isatty() and not plain_requested()
    except (AttributeError, ValueError):
        return False


def console(*, stderr: bool = False, width: int | None = None) -> Console:
    """The console every command prints through.

    No markup parsing of strings, no emoji codes, no automatic highlighting: what we print is
    either our own Text or a fixed header. NO_COLOR and non-terminal output get no escape codes at
    all (rich already drops them for a pipe; NO_COLOR would otherwise still allow bold).
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    is_tty = stream.isatty() if hasattr(stream, "isatty") else False
    if width is None and not is_tty:
        # A pipe has no width; rich would pick 80 and crop process names. Prefer COLUMNS if set.
        try:
            width = int(os.environ.get("COLUMNS", "")) or None
        except ValueError:
            width = None
        width = width or 160
    return Console(
        file=stream,
        width=width,
        color_system=None if plain_requested() else "auto",
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
    )


# --------------------------------------------------------------------------- machine output


def to_json(obj: object) -> str:
    """--json output: plain data, every non-ASCII and control character escaped.

    JSON escapes C0 controls anyway; ensure_ascii also escapes C1 controls and bidi overrides, so
    `pmctl events --json` on a terminal is as inert as the table. Consumers still get the exact
    names back when they parse it.
    """
    import json

    import msgspec

    return json.dumps(msgspec.to_builtins(obj), ensure_ascii=True, indent=2)


def csv_cell(value: object) -> str:
    """A CSV field from untrusted text: inert, and never a spreadsheet formula."""
    text = clean(value)
    return "'" + text if text[:1] in ("=", "+", "@") else text
