"""How `pmctl history` shows flight frames: JSON rows, CSV rows and the table (pure; no database).

A frame is one recorded second (``storage.Frame``): system figures, sentinel lateness, stress, the
tier, and the processes (scored rogues, then the busiest others). Process names are untrusted:
the table builds ``Text`` through ``fmt.safe``, CSV cells go through ``fmt.csv_cell`` and JSON is
escaped by ``fmt.to_json``.
"""

from __future__ import annotations

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


def table(frames: list, lv) -> Any:
    """The rich table: one line a second. ``lv`` colours scores (events_view.Levels)."""
    from rich.table import Table
    from rich.text import Text

    from cli import format as fmt

    out = Table(show_edge=False, pad_edge=False)
    for name in ("time", "tier", "score", "cpu %", "load", "run", "blkd", "psi c/m/io", "pgin/s", "p99 ms",
                 "top process", "pid", "cpu %", "mem"):
        out.add_column(name, justify="left" if name in ("time", "top process") else "right", no_wrap=True)
    for f in frames:
        s, system, sentinel = f.samples, f.samples.system, f.samples.sentinel
        proc, _ = top_process(f)
        psi = "/".join(fmt.number(system and _psi(stall), 0)
                       for stall in ((system.psi_cpu, system.psi_memory, system.psi_io) if system else (None,) * 3))
        out.add_row(
            fmt.timestamp(f.timestamp), str(f.state.tier), Text(str(s.max_score), style=lv.style(s.max_score)),
            fmt.number(system and system.cpu_busy_pct, 0), fmt.number(system and system.load1, 2),
            fmt.number(system and system.procs_running), fmt.number(system and system.procs_blocked), psi,
            fmt.number(system and system.pageins, 0), fmt.number(sentinel and sentinel.p99_ms),
            fmt.safe(proc.command, limit=40) if proc else Text(fmt.MISSING), str(proc.pid) if proc else fmt.MISSING,
            fmt.number(proc and proc.cpu), fmt.human_bytes(proc.mem) if proc else fmt.MISSING,
        )
    return out
