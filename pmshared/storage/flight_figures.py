"""The few figures of each recorded second that charts need, read without building whole frames.

``pmctl history --plot`` over a day is 86,400 frames; ``FlightReader.frames`` turns each into the
wire's full ``ProcessSamples`` (ten rogues, the busiest few, a process table a minute): 13 s and
2.2 GB for a day, measured. Charts need the time, the score, PSI and the sentinel's lateness, so
this decoder mirrors the stored layout (flight_layout.py) with every other field left as
``msgspec.Raw`` (skipped, never built), and reads one block at a time.

The mirror is derived from the layout's own field list, so fields appended there are skipped
here without a change; tests/test_flight_figures.py checks it against frames written through the
recorder's write path.
"""

from __future__ import annotations

from collections.abc import Iterator

import apsw
import msgspec

from pmshared.storage.errors import translate_errors
from pmshared.storage.flight_codec import BlockCorrupt, decode_block
from pmshared.storage.flight_layout import _Samples, _Sentinel, _System

__all__ = ["Figures", "figures_in_window"]


class Figures(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded second as charts see it (the names a ``ProcessSamples`` has)."""

    timestamp: float
    max_score: int
    system: _System | None = None  # psi_cpu/psi_memory/psi_io .some, like messages.SystemStats
    sentinel: _Sentinel | None = None  # interval_max_ms, max_ms, like messages.SentinelStats


def _mirror() -> type:
    wanted = {"timestamp": float, "max_score": int, "system": _System | None, "sentinel": _Sentinel | None}
    names = _Samples.__struct_fields__
    first_default = len(names) - len(_Samples.__struct_defaults__)
    fields = []
    for i, name in enumerate(names):
        kind = wanted.get(name, msgspec.Raw)
        fields.append((name, kind) if i < first_default else (name, kind, None))
    samples = msgspec.defstruct("_FigureSamples", fields, array_like=True, frozen=True)
    # A stored frame is [samples, state]; the state is not charted.
    return msgspec.defstruct("_FigureFrame", [("samples", samples), ("state", msgspec.Raw)],
                             array_like=True, frozen=True)


_decoder = msgspec.msgpack.Decoder(_mirror())


def _figures(raw: bytes | msgspec.Raw) -> Figures | None:
    try:
        s = _decoder.decode(raw).samples
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # an unreadable frame is a hole in the chart, as FlightReader skips it
    return Figures(timestamp=s.timestamp, max_score=s.max_score, system=s.system, sentinel=s.sentinel)


def figures_in_window(conn: apsw.Connection, since: float, until: float) -> Iterator[Figures]:
    """Every recorded second with ``since <= timestamp <= until``, oldest first, a block at a time."""
    with translate_errors(conn.filename):
        ids = [row[0] for row in conn.execute(
            "SELECT id FROM flight_blocks WHERE end_at >= ? AND start_at <= ? ORDER BY start_at", (since, until))]
        last = -float("inf")
        for block_id in ids:
            rows = conn.execute("SELECT codec, data FROM flight_blocks WHERE id = ?", (block_id,)).fetchall()
            try:
                pairs = decode_block(bytes(rows[0][1]), rows[0][0]) if rows else []
            except BlockCorrupt:
                continue
            for ts, raw in pairs:
                if since <= ts <= until and ts > last and (fig := _figures(raw)) is not None:
                    last = ts
                    yield fig
        recent = conn.execute("SELECT ts, data FROM flight_recent WHERE ts >= ? AND ts <= ? ORDER BY ts",
                              (max(since, last), until)).fetchall()
    for ts, raw in recent:
        if ts > last and (fig := _figures(raw)) is not None:
            yield fig
