"""What the event log says about a stored record: stable fields, one JSON line, one journal entry.

Pure functions (no files, no sockets): ``entry_for`` turns a record into the fields of its line
(or None for records that are no event of their own: samples, tiering's start), ``json_line``
encodes them as one line, ``journal_fields`` as a journald entry. README "Event log" lists the
fields; they are a contract with log pipelines: add fields, never rename or retype one.

Every line carries ``kind`` and ``message_id``: a fixed UUID per kind, journald's MESSAGE_ID
convention, so a query can select "all pauses" without matching text. Times are ISO 8601 UTC
(``2026-12-07T10:11:49.123Z``) for people and Loki/Elastic, and epoch seconds (``*_ts``) for
arithmetic.

Process names and paths are untrusted (anyone names their process): they pass through
``inert`` (control, format and bidi characters made visible: ESC -> ``^[``) and are cut to a
bound, and the JSON is ASCII-only (``\\uXXXX`` escapes), so neither the file nor a decoded value
holds a control byte, and no value can split a line.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from pmshared import messages as m
from pmshared.safetext import inert

SCHEMA = 1  # bumped only if a field ever had to change meaning (it should not)
APP = "pause-monitor"
MESSAGE_IDS = {
    "pause": "5494d887ca2d4eeb95b912c26ee1137d",
    "event_opened": "a67a4d7a4fe745d2909e00f23ee04824",
    "event_closed": "ef9ebe4c7302420e8660dc9c0b33126c",
    "forensics": "b79e3c6507464d099dda22b732581a8b",
}
# syslog priorities journald shows: 4 warning, 5 notice, 6 info
PRIORITY = {"pause": 4, "event_opened": 5, "event_closed": 6, "forensics": 5}
MAX_CULPRITS = 5  # per forensics line: the ranking's head is what a dashboard shows
MAX_NAME_CHARS = 200  # a process name (Linux comm is 15, but cmdline-derived names are longer)
MAX_TEXT_CHARS = 1000  # paths and error texts


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds and a ``Z``; None when not a time."""
    if ts is None or not math.isfinite(ts):
        return None
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):  # beyond year 9999 or before year 1
        return None


def _num(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _name(text: str | None) -> str | None:
    return None if text is None else inert(text, MAX_NAME_CHARS)


def _text(text: str | None) -> str | None:
    return None if text is None else inert(text, MAX_TEXT_CHARS)


def _times(prefix: str, ts: float) -> dict[str, object]:
    return {prefix: iso(ts), f"{prefix}_ts": _num(ts)}


def _head(kind: str, host: str, at: float, message: str) -> dict[str, object]:
    return {"time": iso(at), "ts": _num(at), "kind": kind, "message_id": MESSAGE_IDS[kind],
            "message": message, "host": _name(host), "app": APP, "schema": SCHEMA}


def entry_for(record: m.Record, host: str, event: object | None = None) -> dict[str, object] | None:
    """The fields of ``record``'s line; None for records the log does not carry.

    ``event``: for an EventClosed, the stored event as pmctl lists it (storage.EventSummary), which
    adds its id, top culprit and pause count; None when it could not be read.
    """
    match record:
        case m.Pause():
            return _pause(record, host)
        case m.EventOpened():
            entry = _head("event_opened", host, record.start,
                          f"stress event opened at tier {record.tier} (score {record.score})")
            return entry | {"event_key": record.event_key, **_times("start", record.start),
                            "tier": record.tier, "score": record.score}
        case m.EventClosed():
            return _event_closed(record, host, event)
        case m.ForensicsDone():
            return _forensics(record, host)
    return None


def _pause(record: m.Pause, host: str) -> dict[str, object]:
    seconds = record.duration_ms / 1000
    entry = _head("pause", host, record.start, f"the machine paused for {seconds:.2f} s")
    return entry | {"pause_id": record.pause_id, **_times("start", record.start), **_times("end", record.end),
                    "duration_ms": _num(record.duration_ms), "expected_ms": _num(record.expected_ms),
                    "suspended_ms": _num(record.suspended_ms)}


def _event_closed(record: m.EventClosed, host: str, event: object | None) -> dict[str, object]:
    return _closed(host, record.event_key, record.start, record.end, record.duration_ms, record.peak_tier,
                   record.peak_score, event, interrupted=False)


def interrupted_close(event: object, host: str) -> dict[str, object]:
    """The close line of an event tiering never closed (it died or restarted): the recorder ended
    it at its last sample when the next tiering started. ``event``: a storage.EventSummary."""
    return _closed(host, event.event_key, event.start, event.end, event.duration_ms, event.peak_tier,
                   event.peak_score, event, interrupted=True)


def _closed(host: str, key: str, start: float, end: float, duration_ms: float | None, peak_tier: int,
            peak_score: int, event: object | None, *, interrupted: bool) -> dict[str, object]:
    top = _name(getattr(event, "top_culprit", None))
    pid = getattr(event, "top_culprit_pid", None)
    length = f" after {duration_ms / 1000:.1f} s" if duration_ms is not None else ""
    blame = f"; top culprit {top} (pid {pid})" if top is not None else ""
    if getattr(event, "no_local_culprit", False):  # its tally charged no process here
        blame = "; no process here accounts for it"
    how = "ended at its last sample (tiering restarted)" if interrupted else "closed"
    entry = _head("event_closed", host, end,
                  f"stress event {how}{length}: peak tier {peak_tier}, score {peak_score}{blame}")
    return entry | {
        "event_key": key, **_times("start", start), **_times("end", end),
        "duration_ms": _num(duration_ms), "peak_tier": peak_tier, "peak_score": peak_score,
        "event_id": getattr(event, "id", None), "top_culprit": top, "top_culprit_pid": pid,
        "pause_count": getattr(event, "pause_count", None), "interrupted": interrupted,
    }


def _culprit(c: m.Culprit) -> dict[str, object]:
    return {"pid": c.pid, "command": _name(c.command), "score": c.score, "categories": list(c.categories),
            "cgroup": _name(c.cgroup), "suspect": c.suspect}


def _forensics(record: m.ForensicsDone, host: str) -> dict[str, object]:
    top = record.culprits[0] if record.culprits else None
    bundle = _text(record.bundle_path)
    blame = f", top culprit {_name(top.command)} (pid {top.pid})" if top else ""
    outcome = f"failed: {_text(record.error)}" if record.error else f"cause {record.cause}{blame}"
    entry = _head("forensics", host, record.sent_at, f"forensics bundle {outcome}; {bundle}")
    return entry | {
        "pause_id": record.pause_ids[0] if record.pause_ids else None, "pause_ids": list(record.pause_ids),
        "bundle_path": bundle, "cause": record.cause,
        "top_culprit": _name(top.command) if top else None, "top_culprit_pid": top.pid if top else None,
        "culprits": [_culprit(c) for c in record.culprits[:MAX_CULPRITS]], "error": _text(record.error),
    }


def json_line(entry: dict[str, object]) -> bytes:
    """One line of printable ASCII ending in a newline: JSON escapes every control byte, C1
    (\\x9b) and non-ASCII character as \\uXXXX, so no value can split or colour the line."""
    return json.dumps(entry, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii") + b"\n"


def journal_fields(entry: dict[str, object]) -> list[tuple[str, str]]:
    """The same entry for journald: MESSAGE, MESSAGE_ID, PRIORITY, SYSLOG_IDENTIFIER and every other
    field as ``PM_<NAME>`` (lists as compact JSON); fields without a value are left out."""
    kind = str(entry["kind"])
    fields = [("MESSAGE", str(entry["message"])), ("MESSAGE_ID", str(entry["message_id"])),
              ("PRIORITY", str(PRIORITY[kind])), ("SYSLOG_IDENTIFIER", APP)]
    for name, value in entry.items():
        if name in ("message", "message_id") or value is None:
            continue
        if isinstance(value, (list, dict)):
            text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        fields.append((f"PM_{name.upper()}", text))
    return fields
