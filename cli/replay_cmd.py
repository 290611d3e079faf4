"""`pmctl replay [TIME]`: the `pmctl watch` screen on the flight record, stepping through time.

Reads only the database (read-only), never the pipeline: a replay works with the monitor stopped.
The navigation is ``replay_nav``, the picture ``replay_view``, the record ``replay_source``; this
module parses the command line, opens the database and runs the key loop.
"""

from __future__ import annotations

import select
import signal
import sys
import time
from typing import Annotated

import typer

from cli.errors import USAGE, fail

IDLE_REDRAW_S = 1.0  # the "(3m ago)" in the header ticks on while nobody presses a key


def replay(
    when: Annotated[str | None, typer.Argument(
        metavar="[TIME]",
        help="Where to start: 14:03, 2026-12-01T14:03, '5m ago', pause:ID, event:ID (default: the newest sample).",
    )] = None,
    once: Annotated[bool, typer.Option("--once", help="Print the frame at TIME and exit (for scripts).")] = False,
) -> None:
    """Replay the recorded screen of `pmctl watch` at a past time, stepping through the record.

    Keys: ←/→ one sample, PgUp/PgDn a minute, n/p next/previous pause or event, g go to a time,
    Home/End the ends of the record, q quit. When stdout is not a terminal, prints one frame (as --once).
    """
    from cli.errors import load_config, open_db
    from cli.timespec import TimeSpecError, parse_point

    config = load_config()
    try:
        target = None if when is None else parse_point(when)
    except TimeSpecError as exc:
        fail(str(exc), USAGE)
    with open_db() as db:
        nav = _start(db, target)
        ring_s = config.sentinel.ring_buffer_seconds
        thresholds = (config.sampling.elevation_threshold, config.sampling.critical_threshold)
        if once or not (sys.stdout.isatty() and sys.stdin.isatty()):  # no keys to step with
            _print_once(nav, ring_s, thresholds)
        else:
            _interactive(nav, ring_s, thresholds)


def _start(db, target):
    """The navigation state at the requested moment (None: the newest sample, however old), or a
    one-line ``fail`` saying why not."""
    from cli import format as fmt
    from cli.replay_nav import RecordError, ReplayState, gap_note, position_for, position_for_mark
    from cli.replay_source import RecordTimeline
    from cli.timespec import Marker

    timeline = RecordTimeline(db)
    nav = ReplayState(timeline, pos=0.0, fmt_time=fmt.timestamp)
    try:
        if target is None:
            nav.pos = position_for(timeline, timeline.last() or 0.0, fmt.timestamp)
        elif isinstance(target, Marker):
            mark = timeline.resolve(target)
            nav.pos, nav.mark = position_for_mark(timeline, mark), mark
        else:
            nav.pos = position_for(timeline, target, fmt.timestamp)
            nav.note = gap_note(timeline, target, nav.pos, fmt.timestamp)
    except RecordError as exc:
        fail(str(exc))
    return nav


def _draw(nav, ring_s: float, thresholds: tuple[int, int], width: int, interactive: bool,
          height: int | None = None):
    from cli import replay_view

    frame = nav.timeline.frame(nav.pos, ring_s)
    return replay_view.render(frame, nav, wall_now=time.time(), elevation=thresholds[0], critical=thresholds[1],
                              width=width, interactive=interactive, height=height)


def _print_once(nav, ring_s: float, thresholds: tuple[int, int]) -> None:
    from cli import format as fmt

    console = fmt.console()
    console.print(_draw(nav, ring_s, thresholds, console.width, interactive=False))


def _interactive(nav, ring_s: float, thresholds: tuple[int, int]) -> None:
    from rich.live import Live

    from cli import format as fmt
    from cli.keys import KeyReader
    from cli.replay_keys import split_keys

    stop = {"flag": False}

    def on_term(_signum, _frame):
        stop["flag"] = True

    console = fmt.console()
    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        with KeyReader() as keys, Live(console=console, screen=True, auto_refresh=False) as live:
            live.update(_draw(nav, ring_s, thresholds, console.width, True, console.height), refresh=True)
            while not (stop["flag"] or nav.done):
                ready = select.select([keys.fd], [], [], IDLE_REDRAW_S)[0] if keys.fd is not None else []
                for key in split_keys(keys.read()) if ready else []:
                    nav.press(key)
                    if nav.done:
                        break
                if not nav.done:  # the size is read each time: a resized terminal gets a fitting frame
                    live.update(_draw(nav, ring_s, thresholds, console.width, True, console.height), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old_term)
