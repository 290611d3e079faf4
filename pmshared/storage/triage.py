"""pmctl's own short transactions: an event's status, and pruning."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import apsw

from pmshared.storage.dryrun import transaction
from pmshared.storage.errors import NotFound, db_errors
from pmshared.storage.queries import EventSummary, PruneResult, check_status, select_events

log = logging.getLogger("pmshared.storage")

PRUNABLE_STATUSES = ("reviewed", "dismissed")  # the seed's rule: pinned and unreviewed stay
_DAY = 86400.0


@db_errors
def set_status(conn: apsw.Connection, event_id: int, status: str, notes: str | None = None) -> EventSummary:
    """Set an event's status (and notes, unless ``notes`` is None; "" clears them).

    Raises BadStatus, NotFound; returns the updated event.
    """
    check_status(status)
    with conn:
        if notes is None:
            changed = conn.execute("UPDATE events SET status = ? WHERE id = ? RETURNING id",
                                   (status, int(event_id))).get
        else:
            changed = conn.execute("UPDATE events SET status = ?, notes = ? WHERE id = ? RETURNING id",
                                   (status, notes or None, int(event_id))).get
    if changed is None:
        raise NotFound(f"no event with id {event_id}")
    return select_events(conn, "WHERE id = ?", (int(event_id),), "")[0]


@db_errors
def prune(
    conn: apsw.Connection,
    *,
    events_days: int,
    samples_days: int,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneResult:
    """Delete old data by the seed's rule; with ``dry_run`` report the same without deleting.

    - events started more than ``events_days`` ago, closed, with status reviewed or dismissed go,
      with their samples; pinned and unreviewed events are never pruned;
    - pauses that started more than ``samples_days`` ago go unless they overlap an event that stays;
    - a forensics bundle goes when none of its pauses stay (and, for a bundle whose pauses never
      arrived, when it is older than ``samples_days``). Its directory is not touched here: pass
      ``bundle_paths`` to ``remove_bundle_dirs``.
    The dry run executes the very same deletes and rolls them back, so it reports exactly what a
    real run would delete; it therefore needs a writable connection.
    """
    if events_days < 1 or samples_days < 1:
        raise ValueError("retention days must be >= 1")
    now = time.time() if now is None else now
    events_cutoff = now - events_days * _DAY
    samples_cutoff = now - samples_days * _DAY
    with transaction(conn, dry_run=dry_run):
        event_ids = [row[0] for row in conn.execute(
            "SELECT id FROM events WHERE start_at < ? AND end_at IS NOT NULL"
            " AND status IN ('reviewed', 'dismissed') ORDER BY start_at",
            (events_cutoff,),
        )]
        doomed = json.dumps(event_ids)
        events = select_events(conn, "WHERE id IN (SELECT value FROM json_each(?))", (doomed,),
                               "") if event_ids else []
        samples = conn.execute(
            "SELECT count(*) FROM event_samples WHERE event_id IN (SELECT value FROM json_each(?))",
            (doomed,),
        ).get
        conn.execute("DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))", (doomed,))
        pause_rows = conn.execute(
            "DELETE FROM pauses WHERE start_at < ? AND NOT EXISTS ("
            " SELECT 1 FROM events e WHERE e.start_at <= pauses.end_at"
            " AND (e.end_at IS NULL OR e.end_at >= pauses.start_at)) RETURNING id, pause_id",
            (samples_cutoff,),
        ).fetchall()
        bundle_paths = [row[0] for row in conn.execute(
            "DELETE FROM bundles WHERE NOT EXISTS ("
            "  SELECT 1 FROM bundle_pauses bp JOIN pauses p ON p.pause_id = bp.pause_id"
            "  WHERE bp.bundle_id = bundles.id)"
            " AND (done_at < ? OR EXISTS (SELECT 1 FROM bundle_pauses bp"
            "  WHERE bp.bundle_id = bundles.id AND bp.pause_id IN (SELECT value FROM json_each(?))))"
            " RETURNING bundle_path",
            (samples_cutoff, json.dumps([row[1] for row in pause_rows])),
        )]
        result = PruneResult(dry_run=dry_run, events=events, samples=samples,
                             pauses=sorted(row[0] for row in pause_rows),
                             bundle_paths=sorted(set(bundle_paths)))
    return result


def remove_bundle_dirs(bundle_paths: Sequence[str], root: str | os.PathLike) -> list[str]:
    """Delete pruned bundles' directories, but only ones inside ``root`` (the events dir).

    Paths come from the database, so nothing outside ``root`` is ever removed. Returns the paths
    removed; a path already gone or outside ``root`` is skipped.
    """
    root_path = Path(root).resolve()
    removed = []
    for raw in bundle_paths:
        try:
            target = Path(raw).resolve()
        except (OSError, RuntimeError):
            continue
        if target == root_path or root_path not in target.parents:
            log.warning("not removing bundle %r: outside %s", raw, root_path)
            continue
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            else:
                continue
        except OSError as exc:
            log.warning("cannot remove bundle %s: %s", target, exc.strerror)
            continue
        removed.append(str(target))
    return removed
