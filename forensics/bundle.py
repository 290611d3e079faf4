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
from typing import TypeVar

import msgspec
from msgspec import UNSET, UnsetType

import pmshared
from pmshared import messages as m

from forensics.culprits import CulpritEntry, SuspectPresent

S = TypeVar("S", bound=msgspec.Struct)

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


COALESCING_NOTE = (
    "pauses that arrived while this bundle's captures were running were recorded here "
    "instead of starting another capture"
)


class HostInfo(msgspec.Struct, kw_only=True):
    hostname: str
    platform: str
    system: str
    machine: str
    cpu_count: int | None


class Versions(msgspec.Struct, kw_only=True):
    pause_monitor: str
    python: str
    kernel: str
    kernel_version: str


class PauseTiming(msgspec.Struct, kw_only=True):
    """The timing of one pause (the process list goes to processes.json)."""

    pause_id: str
    start: float
    end: float
    start_local: str
    end_local: str
    duration_ms: float
    expected_ms: float
    suspended_ms: float
    sender: str
    incarnation: str
    seq: int


class CaptureRecord(msgspec.Struct, kw_only=True):
    """One capture in metadata.json: its m.Artifact (the name is the key) and its details."""

    ok: bool
    ran: bool
    path: str | None
    exit_code: int | None
    duration_ms: float | None
    bytes: int
    truncated: bool
    error: str | None
    skipped_reason: str | None
    details: dict[str, object]


class RingInfo(msgspec.Struct, kw_only=True):
    entries: int
    seconds: float


class Timing(msgspec.Struct, kw_only=True):
    received_at: float
    captures_started_at: float | UnsetType = UNSET  # the rest once the session has ended
    finished_at: float | UnsetType = UNSET
    session_ms: float | UnsetType = UNSET


class ForensicsInfo(msgspec.Struct, kw_only=True):
    incarnation: str


class Retries(msgspec.Struct, kw_only=True):
    attempts: int
    last_error: str | None


class CulpritsFile(msgspec.Struct, kw_only=True):
    """culprits.json: the ranked culprits, how they were ranked, the suspects seen. Written before
    the captures (``preliminary``, cause unknown) and again once the cause is known."""

    source: str  # "stall", "ring" or "none" (culprits.py)
    cause: m.PauseCause | None
    preliminary: str | UnsetType = UNSET
    ranking: str
    processes_interval: str | UnsetType = UNSET  # which interval the process list's rates cover
    processes_span_the_stall: bool | UnsetType = UNSET
    culprits: list[CulpritEntry]
    pipeline_pids: list[int]
    suspect_patterns: list[str]
    suspects_present: list[SuspectPresent]


class BundleMetadata(msgspec.Struct, kw_only=True):
    """metadata.json. Written "capturing" when a session starts and again when it ends; the
    start-up sweep (recovery.py) marks one a killed worker left "capturing" as "interrupted"."""

    schema: int = 1
    status: str  # "capturing", "complete", "interrupted"
    bundle: str | None
    pause: PauseTiming
    pause_ids: list[str]
    coalesced: list[PauseTiming]
    coalescing: str = COALESCING_NOTE
    host: HostInfo
    versions: Versions
    cause: m.PauseCause | None
    evidence: m.Evidence
    top_culprits: list[m.Culprit]
    captures: dict[str, CaptureRecord]
    ring_buffer: RingInfo
    timing: Timing
    forensics: ForensicsInfo
    recovered: str | UnsetType = UNSET  # written by the start-up sweep: what it could not capture
    retries: Retries | UnsetType = UNSET  # only when the first write failed
    interrupted: str | UnsetType = UNSET  # set by the sweep when it closes a "capturing" bundle


def host_info() -> HostInfo:
    return HostInfo(
        hostname=os.uname().nodename,
        platform=sys.platform,
        system=platform.system(),
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
    )


def versions() -> Versions:
    return Versions(
        pause_monitor=pmshared.__version__,
        python=platform.python_version(),
        kernel=platform.release(),
        kernel_version=platform.version(),
    )


def _copied(source: object, target: type[S], **extra: object) -> S:
    """A ``target`` record: ``extra``, and every other field of it read from ``source`` by name
    (each record below is a message's fields as metadata.json shows them, plus a few)."""
    names = [name for name in target.__struct_fields__ if name not in extra]
    return target(**{name: getattr(source, name) for name in names}, **extra)


def pause_record(pause: m.Pause) -> PauseTiming:
    """The timing of one pause, for metadata.json (the process list goes to processes.json)."""
    return _copied(pause, PauseTiming, start_local=iso(pause.start), end_local=iso(pause.end))


def capture_record(a: m.Artifact, details: dict[str, object]) -> CaptureRecord:
    return _copied(a, CaptureRecord, details=details)


def ring_json(entries: list[m.LiveSample]) -> dict[str, object]:
    return {
        "entries": len(entries),
        "first": entries[0].samples.timestamp if entries else None,
        "last": entries[-1].samples.timestamp if entries else None,
        "samples": [
            {"tier": e.state.tier, "tier_state": e.state, "samples": e.samples} for e in entries
        ],
    }
