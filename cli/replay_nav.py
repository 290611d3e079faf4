"""Where `pmctl replay` is in the record and how keys move it: a pure state machine.

The record is a ``Timeline``: sample times (one a second) and marks (pause and event starts). The
database answers the same questions as ``ListTimeline`` does from lists, so the navigation is
tested on plain lists and runs unchanged on seven days of data.

Keys: ←/→ one sample, PgUp/PgDn a minute, Home/End the ends of the record, n/p the next/previous
pause or event, g a prompt for any time ``pmctl replay`` accepts, q quit.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from cli import replay_keys as k
from cli.timespec import Marker, TimeSpecError, parse_point

MINUTE_S = 60.0
PROMPT_MAX = 40  # characters: any accepted time fits


class Mark(NamedTuple):
    """A pause or an event start on the timeline."""

    time: float
    kind: str  # "event" | "pause"
    ident: str  # what `pmctl pauses show` / `pmctl events show` take
    label: str  # what the header shows: "pause 7" / "event 12"


class RecordError(LookupError):
    """A time or marker the record cannot show; str() is one line for a user."""


class Timeline(Protocol):
    def first(self) -> float | None: ...
    def last(self) -> float | None: ...
    def at_or_before(self, t: float) -> float | None: ...
    def at_or_after(self, t: float) -> float | None: ...
    def next_mark(self, t: float) -> Mark | None: ...  # the first starting strictly after t
    def prev_mark(self, t: float) -> Mark | None: ...  # the last starting strictly before t
    def resolve(self, marker: Marker) -> Mark: ...  # raises RecordError for an unknown id


@dataclass
class ListTimeline:
    """A timeline from sorted lists (the tests' record)."""

    times: list[float]
    mark_list: list[Mark] = field(default_factory=list)

    def first(self) -> float | None:
        return self.times[0] if self.times else None

    def last(self) -> float | None:
        return self.times[-1] if self.times else None

    def at_or_before(self, t: float) -> float | None:
        i = bisect.bisect_right(self.times, t)
        return self.times[i - 1] if i else None

    def at_or_after(self, t: float) -> float | None:
        i = bisect.bisect_left(self.times, t)
        return self.times[i] if i < len(self.times) else None

    def next_mark(self, t: float) -> Mark | None:
        return next((mk for mk in self.mark_list if mk.time > t), None)

    def prev_mark(self, t: float) -> Mark | None:
        return next((mk for mk in reversed(self.mark_list) if mk.time < t), None)

    def resolve(self, marker: Marker) -> Mark:
        for mark in self.mark_list:
            if mark.kind == marker.kind and mark.ident == marker.ident:
                return mark
        raise RecordError(f"no {marker.kind} {marker.ident} in the record")


# --------------------------------------------------------------------------- positioning


def position_for(timeline: Timeline, t: float, fmt_time: Callable[[float], str]) -> float:
    """The sample to show for time ``t``: the last one taken at or before it. Raises RecordError
    (naming the recorded range) when ``t`` is outside the record."""
    first, last = timeline.first(), timeline.last()
    if first is None or last is None:
        raise RecordError("nothing recorded yet: the recorder keeps every sample once `pmctl up` runs")
    # A little slack past the last sample: "now" must show the newest frame, not an error.
    if t < first or t > last + 2 * MINUTE_S:
        raise RecordError(f"no record at {fmt_time(t)}; recorded: {fmt_time(first)} to {fmt_time(last)}")
    found = timeline.at_or_before(t)
    return found if found is not None else first


GAP_NOTE_S = 5.0  # samples come every second: further than this before the time asked is a hole


def gap_note(timeline: Timeline, t: float, pos: float, fmt_time: Callable[[float], str]) -> str | None:
    """A line saying the record has a hole at ``t`` (the machine was off, the monitor stopped),
    when the sample shown for it was taken well before; None otherwise."""
    if t - pos <= GAP_NOTE_S:
        return None
    resumes = timeline.at_or_after(t)
    after = f"; it resumes at {fmt_time(resumes)}" if resumes is not None else ""
    return f"nothing recorded at {fmt_time(t)}: showing the last sample before it{after}"


def position_for_mark(timeline: Timeline, mark: Mark) -> float:
    """The sample that reports a mark: the first taken at or after it (a sample covers the second
    before its timestamp), else the last one before it."""
    after = timeline.at_or_after(mark.time)
    if after is not None:
        return after
    before = timeline.at_or_before(mark.time)
    if before is None:
        raise RecordError(f"{mark.label} is outside the record")
    return before


# --------------------------------------------------------------------------- the state machine


@dataclass
class ReplayState:
    timeline: Timeline
    pos: float
    fmt_time: Callable[[float], str]
    clock: Callable[[], float] = time.time  # for "5m ago" typed at the prompt
    mark: Mark | None = None  # the mark the last n/p/g landed on (cleared by other moves)
    prompt: str | None = None  # text typed after g, None when not prompting
    note: str | None = None  # one line under the picture: why a key did nothing, a bad time
    done: bool = False

    def press(self, key: str) -> None:
        """One key (a name from replay_keys or a character)."""
        self.note = None
        if self.prompt is not None:
            self._prompt_key(key)
        elif key in ("q", "Q"):
            self.done = True
        elif key == k.RIGHT:
            self._step(+1)
        elif key == k.LEFT:
            self._step(-1)
        elif key in (k.PGDN, k.DOWN):
            self._minute(+1)
        elif key in (k.PGUP, k.UP):
            self._minute(-1)
        elif key == k.HOME:
            self._move(self.timeline.first())
        elif key == k.END:
            self._move(self.timeline.last())
        elif key in ("n", "N"):
            self._jump(self._next_mark(), "no later pause or event in the record")
        elif key in ("p", "P"):
            self._jump(self._prev_mark(), "no earlier pause or event in the record")
        elif key in ("g", "G"):
            self.prompt = ""

    def goto(self, text: str) -> None:
        """Go to a time or marker as typed; a bad one leaves the position and says why."""
        try:
            target = parse_point(text, self.clock())
            if isinstance(target, Marker):
                mark = self.timeline.resolve(target)
                self.pos, self.mark = position_for_mark(self.timeline, mark), mark
            else:
                self._move(position_for(self.timeline, target, self.fmt_time))
                self.note = gap_note(self.timeline, target, self.pos, self.fmt_time)
        except (TimeSpecError, RecordError) as exc:
            self.note = str(exc)

    # -- moves ---------------------------------------------------------------------------------
    def _move(self, t: float | None, end_note: str | None = None) -> None:
        if t is None or t == self.pos:
            self.note = end_note
            return
        self.pos, self.mark = t, None

    def _step(self, direction: int) -> None:
        if direction > 0:
            found = self.timeline.at_or_after(_next_up(self.pos))
            self._move(found, "end of the record")
        else:
            found = self.timeline.at_or_before(_next_down(self.pos))
            self._move(found, "start of the record")

    def _minute(self, direction: int) -> None:
        if direction > 0:
            found = self.timeline.at_or_after(self.pos + MINUTE_S)
            self._move(found if found is not None else self.timeline.last(), "end of the record")
        else:
            found = self.timeline.at_or_before(self.pos - MINUTE_S)
            self._move(found if found is not None else self.timeline.first(), "start of the record")

    def _anchor(self) -> float:
        # From a mark: the marks after it (two marks can share a sample, and the sample shown is
        # after its mark). From anywhere else: the sample shown.
        return self.mark.time if self.mark is not None else self.pos

    def _next_mark(self) -> Mark | None:
        return self.timeline.next_mark(self._anchor())

    def _prev_mark(self) -> Mark | None:
        return self.timeline.prev_mark(self._anchor())

    def _jump(self, mark: Mark | None, none_note: str) -> None:
        if mark is None:
            self.note = none_note
            return
        try:
            self.pos, self.mark = position_for_mark(self.timeline, mark), mark
        except RecordError as exc:
            self.note = str(exc)

    def _prompt_key(self, key: str) -> None:
        typed = self.prompt or ""
        if key == k.ESC:
            self.prompt = None
        elif key == k.ENTER:
            self.prompt = None
            if typed.strip():
                self.goto(typed)
        elif key == k.BACKSPACE:
            self.prompt = typed[:-1]
        elif len(key) == 1 and key.isprintable() and len(typed) < PROMPT_MAX:
            self.prompt = typed + key


def _next_up(t: float) -> float:
    return math.nextafter(t, math.inf)


def _next_down(t: float) -> float:
    return math.nextafter(t, -math.inf)
