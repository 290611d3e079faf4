"""How `pmctl history` shows flight frames: JSON rows, CSV rows and the table (pure; no database).

A frame is one recorded second (``storage.Frame``): system figures, sentinel lateness, stress, the
tier, and the processes (scored rogues, then the busiest others). Process names are untrusted:
the table builds ``Text`` through ``fmt.safe``, CSV cells go through ``fmt.csv_cell`` and JSON is
escaped by ``fmt.to_json``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

CSV_FIELDS = ("time", "timestamp", "tier", "event_key", "max_score", "process_count", "cpu_busy_pct", "load1",
              "procs_running", "procs_blocked", "psi_cpu_some", "psi_memory_some", "psi_io_some", "pageins",
              "late_p99_ms", "late_max_ms", "top_command", "top_pid", "top_score", "top_cpu", "top_mem")


def top_process(frame) -> tuple[Any, int | None]:
    """(process, score) that best answers "who was running": the highest-scored rogue, else the
    busiest other process by cpu; (None, None) when the frame names none."""
    samples = frame.samples
    rogue = max(samples.rogues, key=lambda r: r.score, default=None)
    if rogue is not None:
        return rogue, rogue.score
    busiest = max(samples.top, key=lambda p: p.cpu or 0.0, default=None)
    return busiest, None


def _psi(stall) -> float | None:
    return None if stall is None else stall.some


def json_row(frame) -> dict:
    """One frame as plain data (the whole table, when the frame has one, is left out: too big)."""
    from cli import format as fmt

    s = frame.samples
    return {
        "time": fmt.iso(frame.timestamp), "timestamp": frame.timestamp, "tier": frame.state.tier,
        "event_key": frame.state.event_key, "max_score": s.max_score, "stress": s.stress,
        "process_count": s.process_count, "elapsed_ms": s.elapsed_ms,
        "system": msgspec.to_builtins(s.system), "sentinel": msgspec.to_builtins(s.sentinel),
        "rogues": msgspec.to_builtins(s.rogues),
        # ProcessInfo travels as arrays; people and jq want the field names.
        "top": [msgspec.to_builtins(msgspec.structs.asdict(p)) for p in s.top],
    }


def csv_row(frame) -> list:
    from cli import format as fmt

    s, system, sentinel = frame.samples, frame.samples.system, frame.samples.sentinel
    proc, score = top_process(frame)

    def fig(value, digits: int = 1) -> str:
        return "" if value is None else fmt.number(value, digits)

    return [
        fmt.iso(frame.timestamp), f"{frame.timestamp:.3f}", frame.state.tier, fmt.csv_cell(frame.state.event_key or ""),
        s.max_score, s.process_count,
        fig(system and system.cpu_busy_pct), fig(system and system.load1, 2),
        fig(system and system.procs_running), fig(system and system.procs_blocked),
        fig(system and _psi(system.psi_cpu)), fig(system and _psi(system.psi_memory)),
        fig(system and _psi(system.psi_io)), fig(system and system.pageins),
        fig(sentinel and sentinel.p99_ms), fig(sentinel and sentinel.max_ms),
        fmt.csv_cell(proc.command) if proc else "", proc.pid if proc else "", "" if score is None else score,
        fig(proc and proc.cpu), proc.mem if proc else "",
    ]


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def json_text(rows: list[dict]) -> str:
    """``rows`` as indented JSON, every non-ASCII character escaped (as ``format.to_json`` does,
    so a terminal stays inert), encoded by msgspec: the stdlib's encoder takes ~2 ms a row."""
    text = msgspec.json.format(msgspec.json.encode(rows), indent=2).decode()

    def escape(match: re.Match) -> str:
        code = ord(match.group())
        if code < 0x10000:
            return f"\\u{code:04x}"
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"

    return _NON_ASCII.sub(escape, text)


COLUMNS = (("time", "left"), ("tier", "right"), ("score", "right"), ("cpu %", "right"), ("load", "right"),
           ("run", "right"), ("blkd", "right"), ("psi c/m/io", "right"), ("pgin/s", "right"), ("p99 ms", "right"),
           ("top process", "left"), ("pid", "right"), ("cpu %", "right"), ("mem", "right"))


def cells(frame) -> list[str]:
    """One frame's table cells as inert text (process names through ``format.clean``)."""
    from cli import format as fmt

    s, system, sentinel = frame.samples, frame.samples.system, frame.samples.sentinel
    proc, _ = top_process(frame)
    psi = "/".join(fmt.number(system and _psi(stall), 0)
                   for stall in ((system.psi_cpu, system.psi_memory, system.psi_io) if system else (None,) * 3))
    return [
        fmt.timestamp(frame.timestamp), str(frame.state.tier), str(s.max_score),
        fmt.number(system and system.cpu_busy_pct, 0), fmt.number(system and system.load1, 2),
        fmt.number(system and system.procs_running), fmt.number(system and system.procs_blocked), psi,
        fmt.number(system and system.pageins, 0), fmt.number(sentinel and sentinel.p99_ms),
        fmt.clean(proc.command, limit=40) if proc else fmt.MISSING, str(proc.pid) if proc else fmt.MISSING,
        fmt.number(proc and proc.cpu), fmt.human_bytes(proc.mem) if proc else fmt.MISSING,
    ]


def plain_table(frames: list) -> str:
    """The table as aligned plain text (pipes, NO_COLOR): no rich import, no layout pass."""
    from cli import plain

    return plain.table(COLUMNS, [cells(f) for f in frames])


def table(frames: list, lv) -> Any:
    """The rich table (a terminal): the same cells, the score coloured by level (events_view.Levels)."""
    from rich.table import Table
    from rich.text import Text

    out = Table(show_edge=False, pad_edge=False)
    for name, justify in COLUMNS:
        out.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for f in frames:
        row: list[Any] = cells(f)
        row[2] = Text(row[2], style=lv.style(f.samples.max_score))
        row[10] = Text(row[10])  # already inert: never markup
        out.add_row(*row)
    return out
