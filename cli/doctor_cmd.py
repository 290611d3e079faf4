"""`pmctl doctor`: print cli.doctor's findings; exit 1 when any is an error."""

from __future__ import annotations

import typer

from pmshared.safetext import inert

LABELS = {"ok": "ok", "note": "note", "warn": "WARN", "error": "ERROR"}


def doctor() -> None:
    """Check the config, data directory, database, runtime directory and workers; say what to do."""
    from cli.doctor import diagnose

    findings = diagnose()
    for f in findings:
        fix = f" -> {inert(f.fix)}" if f.fix and f.level != "ok" else ""
        typer.echo(f"{LABELS[f.level]:<5} {f.topic:<9} {inert(f.text)}{fix}")
    if any(f.level == "error" for f in findings):
        raise typer.Exit(1)
