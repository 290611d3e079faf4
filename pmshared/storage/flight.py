"""Reading the flight record: the machine second by second, as `pmctl watch` saw it (issue 19).

The recorder stores every sample tiering sends (``FlightSample``): one row per sample while its
minute is young (``flight_recent``), then a compressed block per minute (``flight_blocks``); see
flight_writes.py and flight_codec.py. This module hides that split. Usage::

    conn = storage.open_readonly(path)
    rec = FlightReader(conn)
    frame = rec.frame_at(t)            # the sample at or before t (None: nothing recorded by then)
    frame.timestamp                    # its wall-clock time (epoch s)
    frame.samples                      # messages.ProcessSamples: max_score, stress, system, sentinel,
                                       #   rogues (ProcessScore), top (ProcessInfo), table (or None)
    frame.state                        # messages.TierState after this sample: tier, tier_since, peak
    frame.ring_entry()                 # messages.RingEntry, what cli.watch_feed.FeedState.ring holds
    rec.next_frame(frame.timestamp)    # the next sample strictly after (None at the end)
    rec.prev_frame(frame.timestamp)    # the one strictly before (None at the start)
    rec.frames(since, until[, limit])  # every frame with since <= timestamp <= until, oldest first
    rec.span()                         # (first, last) timestamps recorded, or None
    rec.table_at(t)                    # the latest whole process table at or before t (one a minute)
    rec.next_mark(t) / rec.prev_mark(t)  # the next/previous pause or event START strictly after/before t
    mark_window(conn, "pause:12")      # (start, end) of a pause or event named as pmctl names it

To show a watch screen at time t: ``FeedState(ring=deque(f.ring_entry() for f in rec.frames(t - 30,
t)), tier=frame.state, synced=True)`` gives ``watch_view.render`` the same inputs as the live feed.

Frames are decoded lazily and the last few blocks are cached, so stepping through time one frame
at a time decompresses each minute once. All times are wall-clock epoch seconds (float). Errors:
database problems raise ``StorageError`` subclasses (one-line messages); an unreadable block is
skipped as if nothing were recorded then (counted in ``FlightReader.bad_blocks``).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from typing import Literal

import apsw
import msgspec

from pmshared import messages as m
from pmshared.storage.errors import NotFound, translate_errors
from pmshared.flight_codec import BlockCorrupt, Frame, decode_block, decode_frame

__all__ = ["Frame", "FlightReader", "Mark", "mark_window"]

CACHE_BLOCKS = 8
TABLE_LOOKBACK_S = 180.0  # a table is taken about once a minute; older than this is not "at t"


class Mark(msgspec.Struct, frozen=True, kw_only=True):
    """A pause or an event, as the replay's n/p keys step to them."""

    kind: Literal["pause", "event"]
    id: int  # what `pmctl pauses show ID` / `pmctl events show ID` take
    start: float
    end: float | None  # None: an event still open


class _Block(msgspec.Struct, frozen=True):
    times: list[float]
    raws: list[msgspec.Raw]


class FlightReader:
    """Reads frames from one open connection (read-only is enough). See the module docstring."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self._cache: OrderedDict[int, _Block] = OrderedDict()
        self.bad_blocks = 0

    # -- single frames ---------------------------------------------------------------------------
    def frame_at(self, t: float) -> Frame | None:
        """The frame at or before ``t``."""
        return self._before(t, inclusive=True)

    def prev_frame(self, t: float) -> Frame | None:
        """The last frame strictly before ``t``."""
        return self._before(t, inclusive=False)

    def next_frame(self, t: float) -> Frame | None:
        """The first frame strictly after ``t``."""
        best: tuple[float, bytes | msgspec.Raw] | None = None
        row = self._one("SELECT ts, data FROM flight_recent WHERE ts > ? ORDER BY ts LIMIT 1", t)
        if row is not None:
            best = (row[0], row[1])
        for block in self._blocks("end_at > ? ORDER BY end_at LIMIT 2", t):
            i = bisect.bisect_right(block.times, t)
            if i < len(block.times) and (best is None or block.times[i] < best[0]):
                best = (block.times[i], block.raws[i])
        return self._decode(best)

    def frames(self, since: float, until: float, limit: int | None = None) -> list[Frame]:
        """Every frame with ``since <= timestamp <= until``, oldest first (the first ``limit``)."""
        found: dict[float, bytes | msgspec.Raw] = {}
        for block in self._blocks("end_at >= ? AND start_at <= ? ORDER BY start_at", since, until):
            lo, hi = bisect.bisect_left(block.times, since), bisect.bisect_right(block.times, until)
            found.update(zip(block.times[lo:hi], block.raws[lo:hi]))
        with translate_errors(self.conn.filename):
            found.update(self.conn.execute(
                "SELECT ts, data FROM flight_recent WHERE ts >= ? AND ts <= ? ORDER BY ts", (since, until)))
        items = sorted(found.items(), key=lambda kv: kv[0])[:limit]  # only these are decoded
        return [f for f in (self._decode(item) for item in items) if f]

    def span(self) -> tuple[float, float] | None:
        """(first, last) timestamp recorded, or None when nothing is."""
        with translate_errors(self.conn.filename):
            first = self.conn.execute(
                "SELECT min(x) FROM (SELECT min(start_at) AS x FROM flight_blocks"
                " UNION ALL SELECT min(ts) FROM flight_recent)").get
            last = self.conn.execute(
                "SELECT max(x) FROM (SELECT max(end_at) AS x FROM flight_blocks"
                " UNION ALL SELECT max(ts) FROM flight_recent)").get
        return None if first is None else (first, last)

    def table_at(self, t: float) -> tuple[float, list[m.ProcessInfo]] | None:
        """(its time, every process) of the latest whole table at or before ``t``, within
        TABLE_LOOKBACK_S; None when there is none that recent."""
        for frame in reversed(self.frames(t - TABLE_LOOKBACK_S, t)):
            if frame.samples.table is not None:
                return frame.timestamp, frame.samples.table
        return None

    # -- pauses and events -----------------------------------------------------------------------
    def next_mark(self, t: float) -> Mark | None:
        """The pause or event starting first strictly after ``t``."""
        return self._mark(">", "ASC", t)

    def prev_mark(self, t: float) -> Mark | None:
        """The pause or event starting last strictly before ``t``."""
        return self._mark("<", "DESC", t)

    def _mark(self, op: str, order: str, t: float) -> Mark | None:
        with translate_errors(self.conn.filename):
            rows = [
                *(("pause", *r) for r in self.conn.execute(
                    f"SELECT id, start_at, end_at FROM pauses WHERE start_at {op} ? ORDER BY start_at {order} LIMIT 1",
                    (t,))),
                *(("event", *r) for r in self.conn.execute(
                    f"SELECT id, start_at, end_at FROM events WHERE start_at {op} ? ORDER BY start_at {order} LIMIT 1",
                    (t,))),
            ]
        if not rows:
            return None
        pick = min if order == "ASC" else max
        kind, ident, start, end = pick(rows, key=lambda r: r[2])
        return Mark(kind=kind, id=ident, start=start, end=end)

    # -- internals -------------------------------------------------------------------------------
    def _before(self, t: float, *, inclusive: bool) -> Frame | None:
        op = "<=" if inclusive else "<"
        best: tuple[float, bytes | msgspec.Raw] | None = None
        row = self._one(f"SELECT ts, data FROM flight_recent WHERE ts {op} ? ORDER BY ts DESC LIMIT 1", t)
        if row is not None:
            best = (row[0], row[1])
        for block in self._blocks(f"start_at {op} ? ORDER BY start_at DESC LIMIT 2", t):
            i = (bisect.bisect_right if inclusive else bisect.bisect_left)(block.times, t) - 1
            if i >= 0 and (best is None or block.times[i] > best[0]):
                best = (block.times[i], block.raws[i])
        return self._decode(best)

    def _one(self, sql: str, *args):
        with translate_errors(self.conn.filename):
            rows = self.conn.execute(sql, args).fetchall()
        return rows[0] if rows else None

    def _blocks(self, where: str, *args) -> list[_Block]:
        """The blocks ``WHERE <where>`` (condition and order), decoded. Only their ids are read
        first: a cached block is not read again."""
        with translate_errors(self.conn.filename):
            ids = [row[0] for row in self.conn.execute(f"SELECT id FROM flight_blocks WHERE {where}", args)]
            return [b for b in (self._block(i) for i in ids) if b is not None]

    def _block(self, block_id: int) -> _Block | None:
        if block_id in self._cache:
            self._cache.move_to_end(block_id)
            return self._cache[block_id]
        row = self.conn.execute("SELECT codec, data FROM flight_blocks WHERE id = ?", (block_id,)).fetchall()
        if not row:
            return None
        try:
            pairs = decode_block(bytes(row[0][1]), row[0][0])
        except BlockCorrupt:
            self.bad_blocks += 1
            return None
        block = _Block([ts for ts, _ in pairs], [raw for _, raw in pairs])
        self._cache[block_id] = block
        if len(self._cache) > CACHE_BLOCKS:
            self._cache.popitem(last=False)
        return block

    def _decode(self, item: tuple[float, bytes | msgspec.Raw] | None) -> Frame | None:
        if item is None:
            return None
        try:
            return decode_frame(item[1])
        except BlockCorrupt:
            self.bad_blocks += 1
            return None


def mark_window(conn: apsw.Connection, spec: str) -> tuple[float, float]:
    """``"pause:ID"`` or ``"event:ID"`` (the ids pmctl lists; a pause also by its pause_id text)
    as its (start, end); an open event ends now-ish at its last sample. Raises ``ValueError`` for
    another form and ``NotFound`` for an id that is not there (both one line)."""
    kind, sep, ident = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in ("pause", "event") or not ident.strip():
        raise ValueError(f"cannot read {spec!r}: use pause:ID or event:ID")
    ident = ident.strip()
    with translate_errors(conn.filename):
        if kind == "pause":
            rows = conn.execute("SELECT start_at, end_at FROM pauses WHERE id = ? OR pause_id = ?",
                                (int(ident) if ident.isdigit() else -1, ident)).fetchall()
        else:
            rows = conn.execute(
                "SELECT start_at, coalesce(end_at, last_sample_at, start_at) FROM events WHERE id = ?"
                " OR event_key = ?", (int(ident) if ident.isdigit() else -1, ident)).fetchall()
    if not rows:
        raise NotFound(f"no {kind} {ident} in the database", conn.filename)
    return float(rows[0][0]), float(rows[0][1])
