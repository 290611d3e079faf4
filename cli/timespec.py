"""The one parser for `--since`/`--until` and `pmctl replay TIME`: ISO dates and times, a clock
time, or a relative age like 2h.

Accepted forms (a naive date/time is local time, as people type it):
  2h, 30m, 1d, 45s, 2w, 1h30m, 1.5h     an age before now ("5m ago" too)
  14:03, 14:03:05                       the latest such local time not in the future
  2024-05-01, 2024-05-01T14:00, 2024-05-01 14:00:05, 2024-05-01T14:00+02:00
  today, yesterday, now                 local midnight; now
``parse_point`` also reads a marker, ``pause:ID`` or ``event:ID``, for the caller to look up.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = r"(\d+(?:\.\d+)?)\s*([smhdw])"
_RELATIVE = re.compile(rf"^(?:{_PART}\s*)+(?:ago)?$", re.IGNORECASE)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?$")
HINT = "use an ISO date/time like 2024-05-01 or 2024-05-01T14:00, a time like 14:03, or an age like 30m, 2h, 1d"


class TimeSpecError(ValueError):
    """Text that is neither a relative age nor an ISO date/time; str() is one line for a user."""


def parse_since(text: str, now: float | None = None) -> float:
    """``text`` as epoch seconds (wall clock). Raises TimeSpecError with the accepted forms."""
    now = time.time() if now is None else now
    spec = text.strip()
    if not spec:
        raise TimeSpecError(f"empty time ({HINT})")
    lowered = spec.lower()
    if lowered in ("today", "yesterday"):
        midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
        if lowered == "yesterday":
            midnight -= timedelta(days=1)
        return midnight.timestamp()
    if lowered == "now":
        return now
    clock = _CLOCK.match(spec)
    if clock:
        return _latest_clock_time(spec, clock, now)
    if _RELATIVE.match(spec):
        seconds = sum(float(n) * _UNITS[u.lower()] for n, u in re.findall(_PART, spec, re.IGNORECASE))
        return now - seconds
    try:
        # Python 3.11 reads dates, 'T' or ' ' separated times, fractions and offsets (and 'Z').
        parsed = datetime.fromisoformat(spec)
    except ValueError:
        raise TimeSpecError(f"cannot read time {spec!r} ({HINT})") from None
    return parsed.timestamp()  # naive -> local time


def _latest_clock_time(spec: str, clock: re.Match[str], now: float) -> float:
    """14:03 means the last 14:03 that has happened: today's, or yesterday's if today's is ahead
    (at 09:00, "replay 14:03" is about yesterday afternoon, not a time with no record yet)."""
    hour, minute, second = int(clock[1]), int(clock[2]), float(clock[3] or 0)
    if hour > 23 or minute > 59 or second >= 60:
        raise TimeSpecError(f"cannot read time {spec!r} ({HINT})")
    base = datetime.fromtimestamp(now).replace(hour=hour, minute=minute, second=int(second),
                                               microsecond=round((second % 1) * 1e6))
    if base.timestamp() > now:
        base -= timedelta(days=1)
    return base.timestamp()


class Marker(NamedTuple):
    """``pause:ID`` or ``event:ID`` as typed; the caller looks the id up in the database."""

    kind: Literal["pause", "event"]
    ident: str


_MARKER = re.compile(r"^(pause|event)s?:(.+)$", re.IGNORECASE)
POINT_HINT = f"{HINT}, or pause:ID / event:ID"


def parse_point(text: str, now: float | None = None) -> float | Marker:
    """A moment to go to: epoch seconds, or a Marker. Raises TimeSpecError naming every form."""
    found = _MARKER.match(text.strip())
    if found:
        ident = found[2].strip()
        if found[1].lower() == "event" and not ident.isdigit():
            raise TimeSpecError(f"event ids are numbers, not {ident!r} (see `pmctl events`)")
        return Marker(found[1].lower(), ident)  # type: ignore[arg-type]
    try:
        return parse_since(text, now)
    except TimeSpecError:
        raise TimeSpecError(f"cannot read time {text.strip()!r} ({POINT_HINT})") from None
