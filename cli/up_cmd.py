"""`pmctl up`, `pmctl down`, `pmctl status`: run the pipeline, stop it, ask how it is doing.

Exit codes:
- up: 130 after SIGINT, 143 after SIGTERM (128 + signal, the shell convention), 0 when stopped by
  `pmctl down`; 1 when another `pmctl up` is running; 2 for a bad Procfile, config or option.
- status: 0 when the supervisor answered and every worker is healthy; 1 when a worker is FAILED or
  backing off (its reason is shown), or when the supervisor exists but does not answer; 3 when
  nothing is running (the LSB "not running" code, as `systemctl status` uses).
- down: 0 when it stopped (or nothing was running); 1 when it did not exit within its grace period
  plus a margin.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from cli import remote_opts
from cli.errors import USAGE, fail
from cli.format import human_seconds
from pmshared import paths
from pmshared.safetext import inert

# zmq and msgspec are imported inside the commands: every other `pmctl` command imports this
# module (to register the commands) and must start fast.
if TYPE_CHECKING:
    from pmshared import config as config_mod
    from pmshared import messages as m

NOT_RUNNING = 3
UNHEALTHY = 1
UNHEALTHY_STATES = ("failed", "backoff")
DOWN_MARGIN_S = 5.0  # on top of the grace period: the supervisor's own SIGKILL and reaping


def _config() -> config_mod.Config:
    from cli.errors import load_config

    return load_config()


def _ask_supervisor(command: str, config: config_mod.Config, target=None) -> m.ControlReply | None:
    """The supervisor's reply to ``command`` (None when nothing answers), locally or at a remote
    ``target``; a reply that does not decode, or a remote that refuses us, is one line and exit 1."""
    from cli import clients
    from pmshared.codec import BadMessage
    from pmshared.remote import RemoteError

    try:
        return clients.control(command, transport=config.transport, target=target)
    except BadMessage as exc:
        fail(f"the supervisor sent a reply that does not decode: {exc}")
    except RemoteError as exc:
        fail(str(exc))


# ================================================================================= up
def up(
    procfile: Annotated[
        Optional[Path], typer.Option("--procfile", help="Procfile to run (default: the installed one).")
    ] = None,
    only: Annotated[
        Optional[str], typer.Option("--only", help="Comma-separated process names to run, e.g. collector,scorer.")
    ] = None,
) -> None:
    """Start the pipeline and keep it running (restarts, watchdog); Ctrl-C or `pmctl down` stops it."""
    # Hand over to the lean supervisor module, same pid: the long-running process then does not
    # keep typer, click and the other commands loaded. It checks the config, Procfile and --only.
    argv = [sys.executable, "-m", "supervisor"]
    if procfile is not None:
        argv.append(f"--procfile={procfile}")  # one word: a path starting with "-" stays a value
    if only is not None:
        argv.append(f"--only={only}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


# ================================================================================= down
def down(
    timeout: Annotated[
        Optional[float],
        typer.Option("--timeout", min=0.1, help="Seconds to wait for the exit (default: grace period + 5)."),
    ] = None,
) -> None:
    """Stop a running `pmctl up` and wait until it has exited."""
    config = _config()
    reply = _ask_supervisor("down", config)
    if reply is None:
        from supervisor.lock import holder_pid

        holder = holder_pid()
        if holder is not None:
            fail(f"supervisor (pid {holder}) holds the lock but does not answer; try `kill {holder}`")
        typer.echo("pause-monitor is not running")
        return
    pid = reply.supervisor_pid
    wait_s = timeout if timeout is not None else config.supervisor.grace_period_s + DOWN_MARGIN_S
    deadline = time.monotonic() + wait_s
    while _alive(pid):
        if time.monotonic() >= deadline:
            fail(f"supervisor (pid {pid}) did not exit within {wait_s:g} s")
        time.sleep(0.05)
    typer.echo(f"pause-monitor stopped (supervisor pid {pid})")


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs. A zombie counts as gone: it has exited, its parent (a shell,
    a service manager, a test) just has not collected it yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not sys.platform.startswith("linux")  # no /proc to ask: trust kill(0)
    # The state follows the parenthesised command (which may itself contain parentheses).
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] != "Z"


# ================================================================================= status
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    connect: remote_opts.Connect = None,
    server_key: remote_opts.ServerKey = None,
) -> None:
    """Each worker's state, pid, uptime, restarts and heartbeat; the current tier and score.

    --json prints one object: {"running": true, "supervisor_pid", "started_at", "uptime_s",
    "tier" (null when tiering does not answer), "max_score", "healthy", "set_aside" (corrupt
    databases moved aside), "workers": [{"name", "state", "pid", "started_at", "uptime_s",
    "restarts", "last_heartbeat_age_s", "last_exit", "reason", "retry_in_s", "counters"}]}; when nothing
    answers: {"running": false, "unresponsive_pid", "last_event", "note"}. Uptimes are measured on
    the supervisor's monotonic clock (a clock change does not move them); started_at is a label.
    Exit codes: see above; with --connect, a machine that does not answer is one line on stderr
    and exit code 1 (why: refused key, nothing listening, wrong server key).
    """
    from cli import clients
    from pmshared.codec import BadMessage
    from pmshared.remote import RemoteError

    config = _config()
    target = remote_opts.resolve(connect, server_key)
    reply = _ask_supervisor("status", config, target)
    if reply is None:
        raise typer.Exit(_not_running(as_json))
    try:
        snap = clients.snapshot(transport=config.transport, target=target)
    except (BadMessage, RemoteError):
        snap = None  # a tiering that answers garbage (or not at all) tells us no tier: "unknown"
    tier, score = clients.current_tier(snap) if snap is not None else (None, None)
    now = time.time()
    healthy = not any(w.state in UNHEALTHY_STATES for w in reply.workers)
    # The database checked for moved-aside copies is this machine's: not the remote one's.
    set_aside = [str(p) for p in _set_aside()] if target is None else []
    if as_json:
        typer.echo(json.dumps(status_doc(reply, tier, score, now, healthy, set_aside)))
    else:
        _print_status(reply, tier, score, now)
        _print_problems(reply, set_aside)
    if not healthy:
        raise typer.Exit(UNHEALTHY)


def _set_aside() -> list[Path]:
    from pmshared.storage.files import quarantined

    return quarantined(paths.db_path())


def _print_problems(reply: m.ControlReply, set_aside: list[str]) -> None:
    """Under the table: why each unhealthy worker is, and the corrupt databases moved aside."""
    for w in reply.workers:
        if w.state not in UNHEALTHY_STATES:
            continue
        retry = f"; next try in {human_seconds(w.retry_in_s)}" if w.retry_in_s is not None else ""
        why = w.reason or w.last_exit or "no reason given"
        typer.echo(f"{inert(w.name)} is {w.state.upper()}: {inert(why)}{retry} (see `pmctl doctor`)")
    for path in set_aside:
        typer.echo(f"corrupt database moved aside (kept): {inert(path)}")


def status_doc(
    reply: m.ControlReply, tier: int | None, score: int | None, now: float,
    healthy: bool = True, set_aside: list[str] | None = None,
) -> dict[str, Any]:
    """`status --json`: the reply with uptimes; see ``status``."""
    from pmshared import messages as m

    return {
        "running": True,
        "supervisor_pid": reply.supervisor_pid,
        "started_at": reply.started_at,
        "uptime_s": _uptime(reply.uptime_s, reply.started_at, now),
        "tier": tier,
        "max_score": score,
        "healthy": healthy,
        "set_aside": set_aside or [],
        "workers": [
            {**m.to_builtins(w), "uptime_s": _uptime(w.uptime_s, w.started_at, now)}  # type: ignore[dict-item]
            for w in reply.workers
        ],
    }


def _uptime(measured: float | None, started_at: float | None, now: float) -> float | None:
    """The supervisor's monotonic measure; from an older supervisor without one, the wall-clock
    difference (wrong after a clock change, never negative)."""
    if measured is not None:
        return measured
    return round(max(now - started_at, 0.0), 3) if started_at is not None else None


def _print_status(reply: m.ControlReply, tier: int | None, score: int | None, now: float) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    console.print(
        Text(
            f"pause-monitor running: supervisor pid {reply.supervisor_pid}, "
            f"up {human_seconds(_uptime(reply.uptime_s, reply.started_at, now))}"
        )
    )
    if tier is None:
        console.print(Text("tier: unknown (tiering did not answer)"))
    else:
        console.print(Text(f"tier: {tier}   max score: {score if score is not None else '-'}"))
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("WORKER", "STATE", "PID", "UPTIME", "RESTARTS", "HEARTBEAT", "LAST EXIT"):
        table.add_column(col, justify="right" if col in ("PID", "RESTARTS") else "left")
    for w in reply.workers:
        state_style = {"running": "green", "failed": "bold red", "backoff": "yellow"}.get(w.state, "")
        age = w.last_heartbeat_age_s
        table.add_row(
            Text(inert(w.name)),
            Text(w.state.upper() if w.state == "failed" else w.state, style=state_style),
            Text(str(w.pid) if w.pid else "-"),
            Text(human_seconds(_uptime(w.uptime_s, w.started_at, now))),
            Text(str(w.restarts)),
            Text(f"{human_seconds(age)} ago" if age is not None else "-"),
            Text(inert(w.last_exit or "-")),
        )
    console.print(table)


def _not_running(as_json: bool) -> int:
    """Say that nothing answers; the exit code: 3 when nothing runs, 1 when a supervisor holds
    the lock but does not answer (hung, frozen, or stopping)."""
    from supervisor.lock import holder_pid

    pid = holder_pid()
    event, note = last_recorded_event()
    if as_json:
        doc = {"running": False, "unresponsive_pid": pid, "last_event": event, "note": note}
        typer.echo(json.dumps(doc))
    elif pid is not None:
        typer.echo(f"pause-monitor supervisor (pid {pid}) holds the lock but does not answer")
    else:
        typer.echo("pause-monitor is not running (start it with `pmctl up`)")
        typer.echo(f"last recorded event: {describe_event(event) if event is not None else note}")
    return 1 if pid is not None else NOT_RUNNING


def last_recorded_event() -> tuple[dict[str, Any] | None, str | None]:
    """The newest event in the database as plain data, or (None, why there is none).

    Any storage failure is a note, never a traceback: `status` must still say "not running" when
    the database is missing, locked, corrupt or from a newer version.
    """
    import msgspec

    from pmshared import storage

    path = paths.db_path()
    if not path.exists():
        return None, "none (no database yet)"
    try:
        db = storage.open_readonly(path)
        try:
            event = storage.last_event(db)
        finally:
            db.close()
    except Exception as exc:  # noqa: BLE001 - StorageError or apsw.Error: one line either way
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, f"cannot read {path}: {first}"
    if event is None:
        return None, "none recorded yet"
    return msgspec.to_builtins(event), None


def describe_event(event: dict[str, Any]) -> str:
    from cli.format import timestamp

    parts = [f"#{event['id']} at {timestamp(event['start'])}"]
    end, duration_ms = event.get("end"), event.get("duration_ms")
    if end is None:
        parts.append("still open")
    else:  # the measured length; the labels' difference only from an older database row
        parts.append(f"lasted {human_seconds(duration_ms / 1000 if duration_ms is not None else end - event['start'])}")
    parts.append(f"peak tier {event['peak_tier']}, score {event['peak_score']}")
    if event.get("top_culprit"):
        parts.append(f"top culprit {inert(event['top_culprit'], limit=60)} (pid {event.get('top_culprit_pid')})")
    parts.append(str(event.get("status", "")))
    return ", ".join(parts)


# ================================================================================= wiring
def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
