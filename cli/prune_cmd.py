"""`pmctl prune`: delete old reviewed/dismissed events (pinned and unreviewed stay), old pauses
and their forensics bundles — the seed's rule, with the retention from the config.

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
    now = time.time()
    console = fmt.console()
    with open_db(readonly=False) as db:
        plan = storage.prune(db, events_days=events_days, samples_days=samples_days, dry_run=True, now=now)
        what = (f"{len(plan.events)} events ({plan.samples} samples), {len(plan.pauses)} pauses, "
                f"{len(plan.bundle_paths)} bundles")
        if not (plan.events or plan.pauses or plan.bundle_paths):
            console.print(f"nothing to prune (events: reviewed/dismissed older than {events_days} days; "
                          f"pauses older than {samples_days} days)")
            return
        if dry_run or not force:
            _show_plan(console, plan)
        if dry_run:
            console.print(f"dry run: would delete {what}")
            return
        if not force and not confirm(f"Delete {what}?", "--force"):
            console.print("nothing deleted")
            raise typer.Exit(1)
        done = storage.prune(db, events_days=events_days, samples_days=samples_days, dry_run=False, now=now)
    removed = storage.remove_bundle_dirs(done.bundle_paths, paths.events_dir())
    console.print(f"deleted {len(done.events)} events ({done.samples} samples), {len(done.pauses)} pauses, "
                  f"{len(done.bundle_paths)} bundles ({len(removed)} bundle directories removed)")


def _show_plan(console, plan) -> None:
    from cli import format as fmt
    from cli.events_view import Levels, events_table

    if plan.events:
        console.print(events_table(plan.events, time.time(), Levels()))
    for path in plan.bundle_paths:
        console.print(fmt.safe(f"bundle {path}"))
