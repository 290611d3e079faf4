"""The few figures of each recorded second that charts need, read without building whole frames.

``pmctl history --plot`` over a week is 604,800 frames; ``FlightReader.frames`` turns each into the
wire's full ``ProcessSamples`` (ten rogues, the busiest few, a process table a minute): 13 s and
2.2 GB for a single day, measured. Charts need the time, the score, PSI "some" and the sentinel's
lateness, so this decoder mirrors the stored layout (flight_layout.py) down to those numbers, with
every other field left as ``msgspec.Raw`` (skipped, never built), and decodes a decompressed block
in one pass (block list and frames together). Blocks are read one at a time and each second is
yielded as a plain tuple, so a caller that aggregates as it goes holds one block, whatever the
window's length.

The mirrors are derived from the layout's own field lists, so fields appended there are skipped
here without a change; tests/test_flight_figures.py checks them against frames written through
the recorder's write path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import apsw
import msgspec

from pmshared.storage.errors import translate_errors
from pmshared.flight_codec import BlockCorrupt, decode_block, decompress_block
from pmshared.flight_layout import _Samples, _Sentinel, _Stall, _System

__all__ = ["Figures", "figures_in_window", "figures_span"]


class Figures(NamedTuple):
    """One recorded second as charts see it; None where it was not measured."""

    timestamp: float
    max_score: int
    psi_cpu: float | None  # PSI "some", % of the interval
    psi_memory: float | None
    psi_io: float | None
    late_ms: float | None  # the sentinel's worst lateness within the sample's interval


def _mirror(cls: type, wanted: dict[str, object]) -> type:
    """``cls`` (a stored, array-like struct) with only ``wanted`` fields typed, the rest Raw."""
    fields = []
    for f in msgspec.structs.fields(cls):
        kind = wanted.get(f.name, msgspec.Raw)
        if f.required:
            fields.append((f.name, kind))
        else:  # a frame written before the field existed is shorter: its default (None when skipped)
            default = f.default if f.name in wanted and f.default is not msgspec.NODEFAULT else None
            fields.append((f.name, kind, default))
    return msgspec.defstruct(f"_Fig{cls.__name__}", fields, array_like=True, frozen=True)


def _decoders() -> tuple[msgspec.msgpack.Decoder, msgspec.msgpack.Decoder]:
    stall = _mirror(_Stall, {"some": float | None})
    system = _mirror(_System, {k: stall | None for k in ("psi_cpu", "psi_memory", "psi_io")})
    sentinel = _mirror(_Sentinel, {"max_ms": float, "interval_max_ms": float | None})
    samples = _mirror(_Samples, {"timestamp": float, "max_score": int, "system": system | None,
                                 "sentinel": sentinel | None})
    # A stored frame is [samples, state]; the state is not charted.
    frame = msgspec.defstruct("_FigFrame", [("samples", samples), ("state", msgspec.Raw)],
                              array_like=True, frozen=True)
    return msgspec.msgpack.Decoder(frame), msgspec.msgpack.Decoder(list[tuple[float, frame]])


_frame_decoder, _block_decoder = _decoders()


def _figures(s) -> Figures:
    system, sentinel = s.system, s.sentinel
    late = None
    if sentinel is not None:
        # The worst lateness within this sample's interval; the window's max is sticky (it repeats
        # one hitch for a whole minute), so it is only the fallback for old records.
        late = sentinel.interval_max_ms if sentinel.interval_max_ms is not None else sentinel.max_ms
    if system is None:
        return Figures(s.timestamp, s.max_score, None, None, None, late)
    cpu, memory, io = system.psi_cpu, system.psi_memory, system.psi_io
    return Figures(s.timestamp, s.max_score, None if cpu is None else cpu.some,
                   None if memory is None else memory.some, None if io is None else io.some, late)


def _block_frames(codec: str, data: bytes) -> list:
    """A block's (timestamp, figures frame) pairs in one pass; a block with one unreadable frame
    is decoded frame by frame so only that frame is a hole (as FlightReader skips it)."""
    body = decompress_block(data, codec)
    try:
        return _block_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    out = []
    for ts, raw in decode_block(data, codec):
        try:
            out.append((ts, _frame_decoder.decode(raw)))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
    return out


def figures_in_window(conn: apsw.Connection, since: float, until: float) -> Iterator[Figures]:
    """Every recorded second with ``since <= timestamp <= until``, oldest first, a block at a time."""
    with translate_errors(conn.filename):
        ids = [row[0] for row in conn.execute(
            "SELECT id FROM flight_blocks WHERE end_at >= ? AND start_at <= ? ORDER BY start_at", (since, until))]
        last = -float("inf")
        for block_id in ids:
            rows = conn.execute("SELECT codec, data FROM flight_blocks WHERE id = ?", (block_id,)).fetchall()
            try:
                pairs = _block_frames(rows[0][0], bytes(rows[0][1])) if rows else []
            except BlockCorrupt:
                continue
            for ts, frame in pairs:
                if since <= ts <= until and ts > last:
                    last = ts
                    yield _figures(frame.samples)
        recent = conn.execute("SELECT ts, data FROM flight_recent WHERE ts >= ? AND ts <= ? ORDER BY ts",
                              (max(since, last), until)).fetchall()
    for ts, raw in recent:
        if ts > last:
            try:
                yield _figures(_frame_decoder.decode(raw).samples)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue


def figures_span(conn: apsw.Connection, since: float, until: float) -> tuple[float, float] | None:
    """(first, last) recorded time within the window, from the blocks' bounds and the recent rows
    (an edge inside a block is the window's edge), or None when nothing is recorded there; what a
    chart's time axis needs before the seconds are streamed through it."""
    with translate_errors(conn.filename):
        first, last = conn.execute("SELECT min(start_at), max(end_at) FROM flight_blocks"
                                   " WHERE end_at >= ? AND start_at <= ?", (since, until)).fetchall()[0]
        r_first, r_last = conn.execute("SELECT min(ts), max(ts) FROM flight_recent WHERE ts >= ? AND ts <= ?",
                                       (since, until)).fetchall()[0]
    starts = [t for t in (first, r_first) if t is not None]
    ends = [t for t in (last, r_last) if t is not None]
    if not starts:
        return None
    return max(since, min(starts)), min(until, max(ends))
