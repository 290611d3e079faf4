"""`pmctl prune`: delete old reviewed/dismissed events (pinned and unreviewed stay), old pauses
and their forensics bundles — the seed's rule, with the retention from the config — and the
flight record's minutes beyond its age and size limits (``storage.prune_flight``, the rule the
recorder applies every ten minutes; pinned events' minutes stay).

The list of what would go is always computed first (storage runs the same deletes and rolls them
back), so `--dry-run` shows exactly what a real run deletes and the question names the numbers.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from cli.errors import confirm


def prune(
    events_days: Annotated[int | None, typer.Option("--events-days", min=1, help="Keep reviewed/dismissed events younger than this (default: config retention.events_days).")] = None,
    samples_days: Annotated[int | None, typer.Option("--samples-days", min=1, help="Keep pauses and bundles younger than this (default: config retention.samples_days).")] = None,
    flight_days: Annotated[int | None, typer.Option("--flight-days", min=1, help="Keep this many days of the flight record (default: config retention.flight_days).")] = None,
    flight_mb: Annotated[int | None, typer.Option("--flight-mb", min=1, help="Keep the flight record within this many MB (default: config retention.flight_max_mb).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete reviewed/dismissed events older than the retention; pinned events are never pruned."""
    from cli import format as fmt
    from cli.errors import load_config, open_db
    from pmshared import paths, storage

    cfg = load_config()
    events_days = events_days or cfg.retention.events_days
    samples_days = samples_days or cfg.retention.samples_days
    flight = {"max_age_days": flight_days or cfg.retention.flight_days,
              "max_bytes": (flight_mb or cfg.retention.flight_max_mb) * MB}
    now = time.time()
    console = fmt.console()
    with open_db(readonly=False) as db:
        plan = storage.prune(db, events_days=events_days, samples_days=samples_days, dry_run=True, now=now)
        flight_plan = storage.prune_flight(db, **flight, now=now, dry_run=True)
        what = (f"{len(plan.events)} events ({plan.samples} samples), {len(plan.pauses)} pauses, "
                f"{len(plan.bundle_paths)} bundles, {flight_minutes(flight_plan)}")
        if not (plan.events or plan.pauses or plan.bundle_paths or _flight_removed(flight_plan)):
            console.print(f"nothing to prune (events: reviewed/dismissed older than {events_days} days; "
                          f"pauses older than {samples_days} days; flight record: older than "
                          f"{flight['max_age_days']} days or beyond {flight['max_bytes'] // MB} MB)")
            return
        if dry_run or not force:
            _show_plan(console, plan)
            if _flight_removed(flight_plan):
                console.print(flight_line(flight_plan))
        if dry_run:
            console.print(f"dry run: would delete {what}")
            return
        if not force and not confirm(f"Delete {what}?", "--force"):
            console.print("nothing deleted")
            raise typer.Exit(1)
        done = storage.prune(db, events_days=events_days, samples_days=samples_days, dry_run=False, now=now)
        flight_done = storage.prune_flight(db, **flight, now=now)
    removed = storage.remove_bundle_dirs(done.bundle_paths, paths.events_dir())
    console.print(f"deleted {len(done.events)} events ({done.samples} samples), {len(done.pauses)} pauses, "
                  f"{len(done.bundle_paths)} bundles ({len(removed)} bundle directories removed), "
                  f"{flight_minutes(flight_done)}")


MB = 10**6


def _flight_removed(result) -> int:
    return result.blocks_by_age + result.blocks_by_size


def flight_minutes(result) -> str:
    """'N minutes of flight record (X MB)': what a flight prune removes, for the summary line."""
    return f"{_flight_removed(result)} minutes of flight record ({result.bytes_freed / MB:.1f} MB)"


def flight_line(result) -> str:
    """The flight part of the plan: how many minutes, why, which span, what stays."""
    from cli import format as fmt

    why = " and ".join(part for part in (
        f"{result.blocks_by_age} past the age limit" if result.blocks_by_age else "",
        f"{result.blocks_by_size} beyond the size limit" if result.blocks_by_size else "") if part)
    return (f"flight record: {_flight_removed(result)} minutes ({why}), {result.bytes_freed / MB:.1f} MB, "
            f"from {fmt.timestamp(result.removed_from)} to {fmt.timestamp(result.removed_until)}; "
            f"{result.bytes_kept / MB:.1f} MB stay")


def _show_plan(console, plan) -> None:
    from cli import format as fmt
    from cli.events_view import Levels, events_table

    if plan.events:
        console.print(events_table(plan.events, time.time(), Levels()))
    for path in plan.bundle_paths:
        console.print(fmt.safe(f"bundle {path}"))
