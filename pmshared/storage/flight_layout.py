"""One recorded second (``Frame``) and its layout on disk: figures rounded, every struct an array.

Readers get the wire's own shapes back (``messages.ProcessSamples``, ``ProcessScore``,
``SystemStats``, ``TierState``), so a frame renders exactly like a live sample. On disk two
things differ, both measured in bench/flight_size.py:
- figures are rounded to the precision worth keeping (``_q``, ``_q_bytes``): the collector's rates
  carry noise in every digit, which no compressor can shrink;
- the busiest-few processes keep only what they are picked by (``_TOP_DROPPED``);
- every struct is written as an array in field order (the ``_Stored*`` mirrors below), not as a map:
  a second's ten rogues and its system figures would otherwise repeat ~60 field names, which cost
  more after compression than the figures themselves.
New message fields are appended at the end (messages.py rule), so an older frame, shorter by those
fields, decodes with their defaults.
"""

from __future__ import annotations

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


def _q(x):
    """A measured figure to the precision worth keeping: whole from 10 up, one decimal from 1,
    two below (2 significant digits at least, within 5 %)."""
    if type(x) is not float or x != x or x in (_INF, -_INF):
        return x
    if -10.0 < x < 10.0:
        return round(x, 2) if -1.0 < x < 1.0 else round(x, 1)
    return round(x)


def _q_bytes(n):
    """A size in bytes to 3 significant digits (1536454827 -> 1540000000: 0.3 %, finer than any
    view shows); resident sizes move by a page or two every second, which is noise too."""
    if type(n) is not int or -1000 < n < 1000:
        return n
    return round(n, 3 - len(str(abs(n))))


_BYTES = frozenset(("mem", "cmprs", "mem_total", "mem_available", "swap_used"))
_ROW_BYTES = tuple(i for i, name in enumerate(m.ProcessInfo.__struct_fields__) if name in _BYTES)


def _row(fields: dict, names: tuple[str, ...]) -> list:
    return [_q_bytes(fields[k]) if k in _BYTES else _q(fields[k]) for k in names]


# A busiest-few entry answers "who was running": its identity and the figures it is picked by
# (cpu, memory, io, page-ins) are kept; its other rates, noise in every second's row, are not
# (None: not recorded). Rogues and the minute's whole table keep every figure.
_TOP_DROPPED = tuple(i for i, name in enumerate(m.ProcessInfo.__struct_fields__)
                     if name in ("csw", "sysbsd", "cpu_children", "run_delay", "mem_growth"))


def _process_row(row: list, slim: bool = False) -> list:
    out = [_q(v) for v in row]
    for i in _ROW_BYTES:
        if i < len(out):
            out[i] = _q_bytes(out[i])
    if slim:
        for i in _TOP_DROPPED:
            if i < len(out):
                out[i] = None
    return out


def stored_plain(frame: Frame) -> list:
    """``frame`` as the nested arrays ``StoredFrame`` decodes, figures rounded (times exact)."""
    plain = msgspec.to_builtins(frame)
    s = plain["samples"]
    s["rogues"] = [_row(r, _Score.__struct_fields__) for r in s["rogues"]]
    s["top"] = [_process_row(r, slim=True) for r in s["top"]]
    if s.get("table"):
        s["table"] = [_process_row(r) for r in s["table"]]
    if s.get("system"):
        system = s["system"]
        for key in _PSI:
            if system.get(key):
                system[key] = _row(system[key], _Stall.__struct_fields__)
        s["system"] = [v if k in _PSI else _q_bytes(v) if k in _BYTES else _q(v)
                       for k, v in ((k, system[k]) for k in _System.__struct_fields__)]
    if s.get("sentinel"):
        s["sentinel"] = _row(s["sentinel"], _Sentinel.__struct_fields__)
    s["elapsed_ms"] = _q(s["elapsed_ms"])
    samples = [s[k] for k in _Samples.__struct_fields__]
    state = [plain["state"][k] for k in _State.__struct_fields__]
    return [samples, state]


# --------------------------------------------------------------------------- back to messages


def _as(cls, obj, **changes):
    fields = {k: getattr(obj, k) for k in obj.__struct_fields__}
    fields.update(changes)
    return cls(**fields)


def _system(stored: _System | None) -> m.SystemStats | None:
    if stored is None:
        return None
    return _as(m.SystemStats, stored, **{k: _as(m.PressureStall, getattr(stored, k))
                                         for k in _PSI if getattr(stored, k) is not None})


def message_frame(stored: StoredFrame) -> Frame:
    """The stored frame in the wire's own types (what watch renders and JSON shows as maps)."""
    s = stored.samples
    samples = _as(m.ProcessSamples, s, rogues=[_as(m.ProcessScore, r) for r in s.rogues],
                  system=_system(s.system), sentinel=None if s.sentinel is None else _as(m.SentinelStats, s.sentinel))
    return Frame(samples=samples, state=_as(m.TierState, stored.state))
