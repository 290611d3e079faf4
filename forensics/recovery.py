"""Pauses left without a bundle: found once at forensics' start, so none stays "pending" for ever.

A bundle is lost when forensics stops before writing it: killed or restarted while the disk was
full (session.py keeps retrying only while the worker runs), or a crash mid-capture. The record of
the pause is in the database (the recorder keeps it even while the disk is full, and writes it once
there is room), so the sweep reads the pauses that no ForensicsDone names — read-only, through the
storage queries — and the engine writes a recovered bundle for each (session.py RECOVERED_NOTE).

Which pauses: those that started within RECOVER_WINDOW_S (older ones are history, not worth a
bundle whose only capture is the kernel log) and at least SETTLE_S ago (a younger one may still be
on its way to this worker or its bundle's record to the recorder). A pause whose bundle directory
already exists (metadata.json names it) is skipped: its ForensicsDone is in flight or was sent.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from pmshared import messages as m
from pmshared import storage

from forensics.bundle import bundle_name

log = logging.getLogger("forensics")

RECOVER_WINDOW_S = 86400.0
SETTLE_S = 30.0
RECOVER_MAX = 50  # per start; the newest first


class _Meta(msgspec.Struct):
    pause_ids: list[str] = []


_meta_decoder = msgspec.json.Decoder(_Meta)


def bundle_on_disk(events_dir: Path, pause_id: str, start: float) -> bool:
    """Does a bundle directory named for ``start`` list ``pause_id`` in its metadata.json?"""
    for path in events_dir.glob(bundle_name(start) + "*"):
        try:
            if pause_id in _meta_decoder.decode((path / "metadata.json").read_bytes()).pause_ids:
                return True
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue
    return False


def as_pause(record: storage.PauseRecord) -> m.Pause:
    """The stored timing of a pause as the message forensics works from (no process list)."""
    return m.Pause(
        sender="collector", incarnation=record.pause_id.rpartition(":")[0], seq=0, sent_at=record.end,
        pause_id=record.pause_id, start=record.start, end=record.end, duration_ms=record.duration_ms,
        expected_ms=record.expected_ms, suspended_ms=record.suspended_ms,
    )


def find_pending(db_path: Path, events_dir: Path, now: float, exclude: set[str]) -> list[m.Pause]:
    """Recent pauses without a bundle, oldest first; [] (one log line) when the database cannot
    be read — a fresh install has none yet."""
    try:
        conn = storage.open_readonly(db_path, busy_timeout_ms=1000)
    except storage.DatabaseMissing:
        return []
    except storage.StorageError as exc:
        log.warning("cannot look for pauses left without a bundle: %s", exc)
        return []
    try:
        rows = storage.pending_pauses(conn, since=now - RECOVER_WINDOW_S, until=now - SETTLE_S, limit=RECOVER_MAX)
    except storage.StorageError as exc:
        log.warning("cannot look for pauses left without a bundle: %s", exc)
        return []
    finally:
        conn.close()
    found = [as_pause(r) for r in reversed(rows)
             if r.pause_id not in exclude and not bundle_on_disk(events_dir, r.pause_id, r.start)]
    if found:
        log.info("%d recent pause(s) have no bundle (forensics was stopped before writing them): "
                 "writing recovered bundles", len(found))
    return found
