"""Bundle directories and their JSON files.

A bundle is ``<data>/events/<YYYYmmdd-HHMMSS.mmm>-pause[-N]``: local time of the pause start, to
the millisecond, and a counter when two pauses share a millisecond. The name never contains a
process name (those are attacker-chosen). Directories are created with O_EXCL semantics
(``mkdir`` without exist_ok), so two sessions can never share one.

JSON files are written atomically (temp file + rename): a reader (``pmctl``) or a crash mid-write
never sees half a file. metadata.json is written when the session starts (status "capturing") and
again when it ends, so even a worker killed mid-capture leaves a bundle that says what it was doing.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path

import msgspec

import pmshared
from pmshared import messages as m

_json = msgspec.json.Encoder()


def bundle_name(start: float, attempt: int = 0) -> str:
    stamp = datetime.fromtimestamp(start)
    base = stamp.strftime("%Y%m%d-%H%M%S") + f".{stamp.microsecond // 1000:03d}-pause"
    return base if attempt == 0 else f"{base}-{attempt + 1}"


def create_bundle_dir(events_dir: Path, start: float) -> Path:
    events_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for attempt in range(1000):
        path = events_dir / bundle_name(start, attempt)
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free bundle name for {bundle_name(start)} in {events_dir}")


# A terminal acts on these even inside a JSON string (`cat culprits.json`), and msgspec escapes only
# C0 controls: DEL, C1 controls, bidi and line/paragraph separators. They can occur only inside
# strings, where the \uXXXX escape parses back to the same character.
_TERMINAL_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape_terminal_unsafe(body: bytes) -> bytes:
    if body.isascii() and b"\x7f" not in body:
        return body
    return _TERMINAL_UNSAFE.sub(lambda c: f"\\u{ord(c.group()):04x}", body.decode("utf-8")).encode("utf-8")


def write_json(path: Path, data: object) -> int:
    """Write ``data`` (msgspec Structs allowed) as indented JSON, atomically; returns bytes.
    Process names in it are attacker-chosen: nothing a terminal would act on is written raw."""
    body = _escape_terminal_unsafe(msgspec.json.format(_json.encode(data), indent=2) + b"\n")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
    except BaseException:
        # A full disk fails the write (or the close that flushes it): leave no empty temp file.
        tmp.unlink(missing_ok=True)
        raise
    return len(body)


def discard_bundle_dir(path: Path) -> None:
    """Remove a bundle an attempt left half-written, so a reader never finds a bundle without
    its metadata.json (the next attempt creates a fresh one)."""
    shutil.rmtree(path, ignore_errors=True)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")


def host_info() -> dict[str, object]:
    return {
        "hostname": os.uname().nodename,
        "platform": sys.platform,
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def versions() -> dict[str, str]:
    return {
        "pause_monitor": pmshared.__version__,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
    }


def pause_record(pause: m.Pause) -> dict[str, object]:
    """The timing of one pause, for metadata.json (the process list goes to processes.json)."""
    return {
        "pause_id": pause.pause_id,
        "start": pause.start,
        "end": pause.end,
        "start_local": iso(pause.start),
        "end_local": iso(pause.end),
        "duration_ms": pause.duration_ms,
        "expected_ms": pause.expected_ms,
        "suspended_ms": pause.suspended_ms,
        "sender": pause.sender,
        "incarnation": pause.incarnation,
        "seq": pause.seq,
    }


def ring_json(entries: list[m.LiveSample]) -> dict[str, object]:
    return {
        "entries": len(entries),
        "first": entries[0].samples.timestamp if entries else None,
        "last": entries[-1].samples.timestamp if entries else None,
        "samples": [
            {"tier": e.state.tier, "tier_state": e.state, "samples": e.samples} for e in entries
        ],
    }
