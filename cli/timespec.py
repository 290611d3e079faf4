"""The one parser for `--since`/`--until`: ISO dates and times, or a relative age like 2h.

Accepted forms (a naive date/time is local time, as people type it):
  2h, 30m, 1d, 45s, 2w, 1h30m, 1.5h     an age before now
  2024-05-01, 2024-05-01T14:00, 2024-05-01 14:00:05, 2024-05-01T14:00+02:00
  today, yesterday                      local midnight
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = r"(\d+(?:\.\d+)?)\s*([smhdw])"
_RELATIVE = re.compile(rf"^(?:{_PART}\s*)+$", re.IGNORECASE)
HINT = "use an ISO date/time like 2024-05-01 or 2024-05-01T14:00, or an age like 30m, 2h, 1d"


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
    if _RELATIVE.match(spec):
        seconds = sum(float(n) * _UNITS[u.lower()] for n, u in re.findall(_PART, spec, re.IGNORECASE))
        return now - seconds
    try:
        # Python 3.11 reads dates, 'T' or ' ' separated times, fractions and offsets (and 'Z').
        parsed = datetime.fromisoformat(spec)
    except ValueError:
        raise TimeSpecError(f"cannot read time {spec!r} ({HINT})") from None
    return parsed.timestamp()  # naive -> local time
