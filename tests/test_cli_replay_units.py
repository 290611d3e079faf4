"""pmctl replay's pure parts: the time parser's new forms, key decoding, and the navigation state
machine on a plain list of sample times (no database, no terminal, no clock)."""

from __future__ import annotations

from datetime import datetime

import pytest

from cli import replay_keys as k
from cli.replay_keys import split_keys
from cli.replay_nav import ListTimeline, Mark, RecordError, ReplayState, position_for, position_for_mark
from cli.timespec import Marker, TimeSpecError, parse_point, parse_since

# A fixed "now": 2026-12-07 10:30:00 local time.
NOW = datetime(2026, 12, 7, 10, 30, 0).timestamp()


# --------------------------------------------------------------------------- time specs


def test_clock_times_are_today_or_yesterday_whichever_has_happened():
    assert parse_since("10:03", NOW) == datetime(2026, 12, 7, 10, 3).timestamp()
    assert parse_since("9:05:30", NOW) == datetime(2026, 12, 7, 9, 5, 30).timestamp()
    assert parse_since("14:03", NOW) == datetime(2026, 12, 6, 14, 3).timestamp()  # later today: yesterday's


def test_ago_now_and_iso_forms():
    assert parse_since("5m ago", NOW) == NOW - 300
    assert parse_since("1h 30m AGO", NOW) == NOW - 5400
    assert parse_since("now", NOW) == NOW
    assert parse_since("2026-12-01T14:03", NOW) == datetime(2026, 12, 1, 14, 3).timestamp()


@pytest.mark.parametrize("bad", ["25:00", "10:61", "ago", "5x ago", "14:03 tomorrow", "", "pause:"])
def test_bad_times_are_one_line_errors_naming_the_forms(bad):
    with pytest.raises(TimeSpecError) as err:
        parse_point(bad, NOW)
    assert "\n" not in str(err.value)
    assert "14:03" in str(err.value) or "empty" in str(err.value)


def test_markers_are_returned_for_the_caller_to_look_up():
    assert parse_point("pause:7f3a-1", NOW) == Marker("pause", "7f3a-1")
    assert parse_point("Event:12", NOW) == Marker("event", "12")
    assert parse_point("5m ago", NOW) == NOW - 300
    with pytest.raises(TimeSpecError, match="event ids are numbers"):
        parse_point("event:abc", NOW)


# --------------------------------------------------------------------------- keys


def test_escape_sequences_become_key_names_and_unknown_ones_vanish_whole():
    assert split_keys("\x1b[C\x1b[D\x1b[5~\x1b[6~nq") == [k.RIGHT, k.LEFT, k.PGUP, k.PGDN, "n", "q"]
    assert split_keys("\x1bOC\x1bOD") == [k.RIGHT, k.LEFT]  # application cursor mode
    assert split_keys("\x1b[15~g") == ["g"]  # F5: dropped, not "1", "5", "~"
    assert split_keys("\x1b") == [k.ESC]
    assert split_keys("14:03\r\x7f") == ["1", "4", ":", "0", "3", k.ENTER, k.BACKSPACE]


# --------------------------------------------------------------------------- navigation

T0 = 1_000_000.0


def timeline() -> ListTimeline:
    # Samples each second for 10 minutes, with a 5-minute hole (the machine was off) at 300..600.
    times = [T0 + s for s in range(300)] + [T0 + s for s in range(600, 900)]
    marks = [
        Mark(T0 + 10.4, "pause", "1", "pause aa11"),
        Mark(T0 + 10.7, "pause", "2", "pause bb22"),  # two pauses reported by the same sample
        Mark(T0 + 100.0, "event", "5", "event 5"),
        Mark(T0 + 700.2, "pause", "3", "pause cc33"),
    ]
    return ListTimeline(times, marks)


def state(pos: float = T0) -> ReplayState:
    return ReplayState(timeline(), pos=pos, fmt_time=lambda t: f"+{t - T0:g}", clock=lambda: T0 + 1000)


def press(st: ReplayState, *keys: str) -> ReplayState:
    for key in keys:
        st.press(key)
    return st


def test_arrows_step_one_sample_and_stop_at_the_ends_with_a_note():
    st = press(state(), k.RIGHT, k.RIGHT, k.LEFT)
    assert st.pos == T0 + 1
    press(st, k.LEFT, k.LEFT)
    assert st.pos == T0 and st.note == "start of the record"
    st = press(state(T0 + 899), k.RIGHT)
    assert st.pos == T0 + 899 and st.note == "end of the record"


def test_an_arrow_across_a_hole_lands_on_the_next_recorded_sample():
    assert press(state(T0 + 299), k.RIGHT).pos == T0 + 600
    assert press(state(T0 + 600), k.LEFT).pos == T0 + 299


def test_page_keys_move_a_minute_and_clamp_to_the_record():
    st = press(state(T0 + 5), k.PGDN)
    assert st.pos == T0 + 65
    assert press(st, k.PGUP, k.PGUP).pos == T0  # second PgUp: clamped to the first sample
    assert press(state(T0 + 280), k.PGDN).pos == T0 + 600  # a minute later is in the hole
    assert press(state(T0 + 880), k.PGDN).pos == T0 + 899


def test_n_and_p_visit_every_mark_in_order_even_two_in_one_sample():
    st = state()
    seen = []
    for _ in range(5):
        st.press("n")
        seen.append((st.mark.label if st.mark else None, st.pos - T0, st.note))
    assert seen == [("pause aa11", 11, None), ("pause bb22", 11, None), ("event 5", 100, None),
                    ("pause cc33", 701, None), ("pause cc33", 701, "no later pause or event in the record")]
    labels = []
    for _ in range(3):
        st.press("p")
        labels.append(st.mark.label)
    assert labels == ["event 5", "pause bb22", "pause aa11"]


def test_n_after_stepping_starts_from_the_sample_shown():
    st = press(state(), "n", k.RIGHT)  # on the pause at +11, then one sample on
    assert st.mark is None and st.pos == T0 + 12
    assert press(st, "n").mark.label == "event 5"
    assert press(state(T0 + 150), "p").mark.label == "event 5"


def test_g_prompt_goes_to_a_time_or_marker_and_bad_input_changes_nothing():
    st = press(state(), "g", *"5m ago", k.ENTER)  # clock is T0+1000: +700
    assert st.pos == T0 + 700 and st.prompt is None
    press(st, "g", *"event:5", k.ENTER)
    assert st.pos == T0 + 100 and st.mark.label == "event 5"
    press(st, "g", *"event:9", k.ENTER)
    assert st.pos == T0 + 100 and st.note == "no event 9 in the record"
    press(st, "g", *"nonsense", k.ENTER)
    assert st.pos == T0 + 100 and "cannot read time 'nonsense'" in st.note
    press(st, "g", "q", k.BACKSPACE, k.ESC)  # q while typing is text, Esc cancels
    assert not st.done and st.prompt is None and st.pos == T0 + 100
    assert press(st, "q").done


def test_going_to_a_time_in_a_hole_says_so_and_where_the_record_resumes():
    st = press(state(), "g", *"9m ago", k.ENTER)  # clock T0+1000: +460, in the hole 300..600
    assert st.pos == T0 + 299
    assert st.note == "nothing recorded at +460: showing the last sample before it; it resumes at +600"
    assert press(state(), "g", *"5m ago", k.ENTER).note is None  # +700: recorded


def test_a_time_in_a_hole_shows_the_last_sample_before_it_and_outside_the_record_is_an_error():
    tl = timeline()
    assert position_for(tl, T0 + 450, str) == T0 + 299
    assert position_for(tl, T0 + 899 + 60, str) == T0 + 899  # "now", a moment after the last sample
    with pytest.raises(RecordError, match=r"no record at \+-5; recorded: \+0 to \+899"):
        position_for(tl, T0 - 5, lambda t: f"+{t - T0:g}")
    with pytest.raises(RecordError, match="nothing recorded yet"):
        position_for(ListTimeline([]), T0, str)
    assert position_for_mark(tl, Mark(T0 + 950, "pause", "9", "pause late")) == T0 + 899


# --------------------------------------------------------------------------- the picture


def draw_frame(st: ReplayState, interactive: bool = True) -> list[str]:
    from io import StringIO

    from rich.console import Console

    from cli.replay_view import ReplayFrame, render
    from pmshared import messages as m
    from tests.cli_people_helpers import rogue, samples

    ring = [m.RingEntry(samples=samples(st.pos, [rogue(9, "busy", 70)]), tier=3)]
    frame = ReplayFrame(at=st.pos, ring=ring, state=m.TierState(tier=3, tier_since=st.pos - 5), first=T0,
                        last=T0 + 899)
    buf = StringIO()
    Console(file=buf, width=160, color_system=None).print(render(frame, st, wall_now=T0 + 1000,
                                                                 interactive=interactive))
    return buf.getvalue().splitlines()


def test_the_prompt_and_notes_sit_under_the_header_where_a_short_terminal_keeps_them():
    st = press(state(T0 + 100), "g", *"14:0")
    lines = draw_frame(st)
    assert "REPLAY" in lines[0] and "recorded" in lines[0] and "(15m 00s ago)" in lines[0]
    assert lines[1].startswith("go to (14:03") and lines[1].endswith("14:0█")
    assert lines[-1].startswith("←/→ sample")
    st = press(state(T0 + 899), k.RIGHT)
    assert draw_frame(st)[1] == "end of the record"
    st.note = "no pause \x1b]0;pwn\x07x in the database"  # ids typed by people are untrusted too
    assert draw_frame(st, interactive=False)[1] == "no pause ^[]0;pwn^Gx in the database"


def test_table_rows_shrink_with_the_terminal_and_stacked_panels_leave_fewer():
    from cli.replay_view import table_rows

    assert table_rows(None, 160) == (12, 8)  # --once: everything
    assert table_rows(60, 160) == (12, 8)
    assert table_rows(40, 160) == (8, 6)
    assert table_rows(45, 100) == (4, 3)  # panels stacked: 12 lines more are fixed
    assert table_rows(24, 160) == (3, 2)  # never none at all
