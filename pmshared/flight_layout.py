"""One recorded second (``Frame``) and its layout on disk: figures rounded, every struct an array.

Readers get the wire's own shapes back (``messages.ProcessSamples``, ``ProcessScore``,
``SystemStats``, ``TierState``), so a frame renders exactly like a live sample. On disk two
things differ, both measured in bench/flight_size.py:
- figures are rounded to the precision worth keeping (``_q``, ``_q_bytes``): the collector's rates
  carry noise in every digit, which no compressor can shrink;
- the busiest-few processes keep only what they are picked by (``_plans()['top']``);
- every struct is written as an array in field order (the ``_Stored*`` mirrors below), not as a map:
  a second's ten rogues and its system figures would otherwise repeat ~60 field names, which cost
  more after compression than the figures themselves.
New message fields are appended at the end (messages.py rule), so an older frame, shorter by those
fields, decodes with their defaults.
"""

from __future__ import annotations

import functools
import typing

import msgspec

from pmshared import messages as m


class Frame(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded sample: what ``pmctl watch`` shows for that second."""

    samples: m.ProcessSamples
    state: m.TierState

    @property
    def timestamp(self) -> float:
        return self.samples.timestamp

    def ring_entry(self) -> m.RingEntry:
        """The frame as an entry of watch's ring buffer (``cli.watch_feed.FeedState.ring``)."""
        return m.RingEntry(samples=self.samples, tier=self.state.tier)


# --------------------------------------------------------------------------- the stored mirrors


class _Score(m.ProcessScore, frozen=True, kw_only=True, array_like=True):
    pass


class _Stall(m.PressureStall, frozen=True, kw_only=True, array_like=True):
    pass


class _System(m.SystemStats, frozen=True, kw_only=True, array_like=True):
    psi_cpu: _Stall | None = None
    psi_memory: _Stall | None = None
    psi_io: _Stall | None = None


class _Sentinel(m.SentinelStats, frozen=True, kw_only=True, array_like=True):
    pass


class _Samples(m.ProcessSamples, frozen=True, kw_only=True, array_like=True, tag=False):
    rogues: list[_Score]
    system: _System | None = None
    sentinel: _Sentinel | None = None


class _State(m.TierState, frozen=True, kw_only=True, array_like=True):
    pass


class StoredFrame(msgspec.Struct, frozen=True, array_like=True):
    samples: _Samples
    state: _State


_PSI = ("psi_cpu", "psi_memory", "psi_io")


# --------------------------------------------------------------------------- rounding


_INF = float("inf")


def _q(x: float) -> float | int:
    """A measured figure to the precision worth keeping: whole from 10 up, one decimal from 1,
    two below (2 significant digits at least, within 5 %). 0.0 becomes 0 (one byte)."""
    if -10.0 < x < 10.0:
        if not x:
            return 0
        # Scaled, rounded whole and scaled back: the same figure as round(x, 2) at half its cost,
        # but for a decimal tie (5.55 -> 5.6, where round(x, 1) gives 5.5); either is as precise.
        return round(x * 100.0) / 100 if -1.0 < x < 1.0 else round(x * 10.0) / 10
    if x != x or x in (_INF, -_INF):
        return x
    return round(x)


def _q_bytes(n: int) -> int:
    """A size in bytes to 3 significant digits (1536454827 -> 1540000000: 0.3 %, finer than any
    view shows); resident sizes move by a page or two every second, which is noise too."""
    if -1000 < n < 1000:
        return n
    return round(n, 3 - len(str(abs(n))))


_BYTES = frozenset(("mem", "cmprs", "mem_total", "mem_available", "swap_used"))


class _Layout:
    """Where a struct's rounded figures are in its array: (float indices, byte-size indices)."""

    def __init__(self, cls: type, drop: tuple[str, ...] = ()) -> None:
        # msgspec's own view of the annotations (typing.get_type_hints would compile every one
        # of them again: ~40 ms on each pmctl start).
        types = {f.name: f.type for f in msgspec.structs.fields(cls)}
        self.names = cls.__struct_fields__
        self.floats = tuple(i for i, k in enumerate(self.names) if float in (typing.get_args(types[k]) or (types[k],))
                            and k not in drop)
        self.sizes = tuple(i for i, k in enumerate(self.names) if k in _BYTES)
        self.drop = tuple(i for i, k in enumerate(self.names) if k in drop)

        self.row = self._compiled(len(self.names))

    def _compiled(self, width: int):
        """``row(r)``: round ``r`` (the struct as an array) in place and return it, as straight-line
        code made once per struct: the recorder runs it on ~35 rows a second (600 once a minute),
        where a loop over index tuples and a call per figure cost twice as much."""
        lines = [f"def row(r):", f"    if len(r) != {width}:", "        return slow(r)"]
        for i in self.drop:
            lines.append(f"    r[{i}] = None")
        for i in self.floats:  # _q, inlined
            lines += [f"    v = r[{i}]", "    if v.__class__ is float:",
                      "        if -10.0 < v < 10.0:",
                      f"            r[{i}] = (round(v * 100.0) / 100 if -1.0 < v < 1.0 else round(v * 10.0) / 10) if v else 0",
                      "        elif v == v and v != INF and v != -INF:", f"            r[{i}] = round(v)"]
        for i in self.sizes:
            lines += [f"    v = r[{i}]", "    if v.__class__ is int and not -1000 < v < 1000:",
                      f"        r[{i}] = q_bytes(v)"]
        lines.append("    return r")
        scope = {"slow": self._row_loop, "INF": _INF, "q_bytes": _q_bytes}
        exec("\n".join(lines), scope)  # noqa: S102 -- our own field indices, nothing from outside
        return scope["row"]

    def _row_loop(self, row: list) -> list:
        """The same rounding for a row of another length (never from astuple; kept for safety)."""
        n = len(row)
        for i in self.drop:
            if i < n:
                row[i] = None
        for i in self.floats:
            if i < n:
                v = row[i]
                if v.__class__ is float:
                    row[i] = _q(v)
        for i in self.sizes:
            if i < n:
                v = row[i]
                if v.__class__ is int:
                    row[i] = _q_bytes(v)
        return row

    def map(self, fields: dict) -> list:
        return self.row([fields[k] for k in self.names])


# A busiest-few entry answers "who was running": its identity and the figures it is picked by
# (cpu, memory, io, page-ins) are kept; its other rates, noise in every second's row, are not
# (None: not recorded). Rogues and the minute's whole table keep every figure.
@functools.cache
def _plans() -> dict[str, _Layout]:
    """Built on first use (the recorder's): readers, every pmctl command, never pay for them."""
    return {
        "top": _Layout(m.ProcessInfo, drop=("csw", "sysbsd", "cpu_children", "run_delay", "mem_growth")),
        "table": _Layout(m.ProcessInfo), "score": _Layout(_Score), "stall": _Layout(_Stall),
        "system": _Layout(_System), "sentinel": _Layout(_Sentinel),
    }


_IDX = {k: i for i, k in enumerate(_Samples.__struct_fields__)}
_PSI_IDX = tuple(i for i, k in enumerate(_System.__struct_fields__) if k in _PSI)


def _array(obj) -> list:
    return list(msgspec.structs.astuple(obj))


def stored_plain(frame: Frame) -> list:
    """``frame`` as the nested arrays ``StoredFrame`` decodes, figures rounded (times exact).
    Built from the structs' tuples (``astuple``, in C): cheaper than ``to_builtins`` and maps."""
    plans = _plans()
    src = frame.samples
    s = _array(src)
    s[_IDX["rogues"]] = [plans["score"].row(_array(r)) for r in src.rogues]
    s[_IDX["top"]] = [plans["top"].row(_array(p)) for p in src.top]
    if src.table is not None:
        s[_IDX["table"]] = [plans["table"].row(_array(p)) for p in src.table]
    if src.system is not None:
        system = _array(src.system)
        for i in _PSI_IDX:
            if system[i] is not None:
                system[i] = plans["stall"].row(_array(system[i]))
        s[_IDX["system"]] = plans["system"].row(system)
    if src.sentinel is not None:
        s[_IDX["sentinel"]] = plans["sentinel"].row(_array(src.sentinel))
    s[_IDX["elapsed_ms"]] = _q(src.elapsed_ms)
    return [s, _array(frame.state)]


# --------------------------------------------------------------------------- back to messages


def message_frame(stored: StoredFrame) -> Frame:
    """The stored frame in the wire's own types (what watch renders and JSON shows as maps):
    msgspec copies it over attribute by attribute, in C."""
    return msgspec.convert(stored, Frame, from_attributes=True)
