"""Pauses left without a bundle: found once at forensics' start, so none stays "pending" for ever.

A bundle is lost when forensics stops before writing it: killed or restarted while the disk was
full (session.py keeps retrying only while the worker runs), or a crash mid-capture. The record of
the pause is in the database (the recorder keeps it even while the disk is full, and writes it once
there is room), so the sweep reads the pauses that no ForensicsDone names — read-only, through the
storage queries — and the engine writes a recovered bundle for each (session.py RECOVERED_NOTE).

Which pauses: those that started within RECOVER_WINDOW_S (older ones are history, not worth a
bundle whose only capture is the kernel log) and at least SETTLE_S ago (a younger one may still be
on its way to this worker or its bundle's record to the recorder). A pause whose bundle directory
exists (its metadata.json names it) gets no new bundle: that one is adopted (``adopt``) — a
bundle a killed worker left "capturing" is marked "interrupted", and either way its ForensicsDone
is sent (again: the first may have been dropped; the recorder keeps the newest for a pause).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import msgspec

from pmshared import messages as m
from pmshared import storage

from forensics.bundle import bundle_name, write_json
from forensics.session import SessionResult

log = logging.getLogger("forensics")

RECOVER_WINDOW_S = 86400.0
SETTLE_S = 30.0
RECOVER_MAX = 50  # per start; the newest first


INTERRUPTED_NOTE = "forensics stopped while capturing; found and closed at its next start"


# Lenient readers of bundles on disk (which older versions may have written): only the fields the
# sweep needs, not forensics.bundle's BundleMetadata / CulpritsFile, so a bundle whose other
# fields differ is still found and adopted.
class _Meta(msgspec.Struct):
    pause_ids: list[str] = []


class _CulpritsFile(msgspec.Struct):
    culprits: list[m.Culprit] = []


_meta_decoder = msgspec.json.Decoder(_Meta)
_culprits_decoder = msgspec.json.Decoder(_CulpritsFile)


@dataclass
class Pending:
    pauses: list[m.Pause] = field(default_factory=list)  # no bundle anywhere: write a recovered one
    bundles: list[Path] = field(default_factory=list)  # a bundle on disk the database lacks


def bundle_on_disk(events_dir: Path, pause_id: str, start: float) -> Path | None:
    """The bundle directory named for ``start`` whose metadata.json lists ``pause_id``, if any."""
    for path in events_dir.glob(bundle_name(start) + "*"):
        try:
            if pause_id in _meta_decoder.decode((path / "metadata.json").read_bytes()).pause_ids:
                return path
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue
    return None


def adopt(path: Path) -> SessionResult | None:
    """The ForensicsDone-to-be of a bundle on disk; one left "capturing" becomes "interrupted"
    (metadata.json rewritten). None (one log line) when it cannot be read or rewritten."""
    try:
        meta = json.loads((path / "metadata.json").read_bytes())
        if meta.get("status") == "capturing":
            meta.update(status="interrupted", interrupted=INTERRUPTED_NOTE)
            write_json(path / "metadata.json", meta)
        found = _culprits_decoder.decode((path / "culprits.json").read_bytes()).culprits
    except (OSError, ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("bundle %s has no record and cannot be adopted: %s", path.name, exc)
        return None
    artifacts = []
    for name, capture in (meta.get("captures") or {}).items():
        try:
            artifacts.append(msgspec.convert({**capture, "name": name}, m.Artifact))
        except msgspec.ValidationError:
            continue
    cause = meta.get("cause") if meta.get("cause") in get_args(m.PauseCause) else "unknown"
    evidence = known_evidence(meta.get("evidence"))
    return SessionResult(
        pause_ids=[str(p) for p in meta.get("pause_ids", [])], bundle_path=str(path), artifacts=artifacts,
        culprits=found, cause=cause, evidence=evidence, status=meta["status"], recovered=True,
    )


def known_evidence(raw: object) -> m.Evidence:
    """The entries of a bundle's evidence this version knows, each of the type it expects; the
    rest (keys of another version, a hand-edited value) are left out rather than losing all."""
    if not isinstance(raw, dict):
        return m.Evidence()
    kept = {}
    for key, value in raw.items():
        try:
            msgspec.convert({key: value}, m.Evidence)
        except msgspec.ValidationError:
            continue
        if key in m.Evidence.__struct_fields__:
            kept[key] = value
    return msgspec.convert(kept, m.Evidence)


def as_pause(record: storage.PauseRecord) -> m.Pause:
    """The stored timing of a pause as the message forensics works from (no process list)."""
    return m.Pause(
        sender="collector", incarnation=record.pause_id.rpartition(":")[0], seq=0, sent_at=record.end,
        pause_id=record.pause_id, start=record.start, end=record.end, duration_ms=record.duration_ms,
        expected_ms=record.expected_ms, suspended_ms=record.suspended_ms,
    )


def _pending_rows(db_path: Path, now: float) -> list[storage.PauseRecord]:
    try:
        conn = storage.open_readonly(db_path, busy_timeout_ms=1000)
    except storage.DatabaseMissing:
        return []  # a fresh install: nothing recorded yet
    except storage.StorageError as exc:
        log.warning("cannot look for pauses left without a bundle: %s", exc)
        return []
    try:
        return storage.pending_pauses(conn, since=now - RECOVER_WINDOW_S, until=now - SETTLE_S, limit=RECOVER_MAX)
    except storage.StorageError as exc:
        log.warning("cannot look for pauses left without a bundle: %s", exc)
        return []
    finally:
        conn.close()


def find_pending(db_path: Path, events_dir: Path, now: float, exclude: set[str]) -> Pending:
    """Recent pauses no ForensicsDone names (oldest first), split into those with a bundle
    directory on disk and those without; empty (one log line) when the database cannot be read."""
    pending = Pending()
    for row in reversed(_pending_rows(db_path, now)):
        if row.pause_id in exclude:
            continue
        path = bundle_on_disk(events_dir, row.pause_id, row.start)
        if path is None:
            pending.pauses.append(as_pause(row))
        elif path not in pending.bundles:
            pending.bundles.append(path)
    if pending.pauses or pending.bundles:
        log.info("%d recent pause(s) without a record of their bundle (forensics was stopped before "
                 "sending it): %d bundle(s) to write, %d to adopt", len(pending.pauses) + len(pending.bundles),
                 len(pending.pauses), len(pending.bundles))
    return pending
