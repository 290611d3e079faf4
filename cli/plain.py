"""Plain-text tables for pipes and NO_COLOR: aligned columns, no box drawing, no escape codes.

Used where start-up time matters (`pmctl events` answers in well under 300 ms over 100,000 events):
importing and running rich costs ~40 ms that a pipe gains nothing from. Cells must already be
inert (``format.clean``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def cell_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide East Asian characters count two, combining marks none."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]], gap: str = "  ") -> str:
    """``columns`` is (header, "left"|"right") per column; returns the lines joined, no trailing space."""
    widths = [cell_width(header) for header, _ in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_width(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for (_, justify), width, cell in zip(columns, widths, cells):
            pad = " " * (width - cell_width(cell))
            out.append(pad + cell if justify == "right" else cell + pad)
        return gap.join(out).rstrip()

    return "\n".join([line([h for h, _ in columns]), *(line(r) for r in rows)])
