"""Raw terminal input as key names: `pmctl replay` needs arrows and PgUp/PgDn, which arrive as
escape sequences (``ESC [ C``), not as single characters like watch's q/e/r.

Pure: ``split_keys("\\x1b[Cnq") == ["right", "n", "q"]``. Unknown sequences are dropped whole, so
a key we do not know (F5, a mouse report) never turns into stray letters that would move the view.
"""

from __future__ import annotations

RIGHT, LEFT, UP, DOWN = "right", "left", "up", "down"
PGUP, PGDN, HOME, END = "pgup", "pgdn", "home", "end"
ENTER, ESC, BACKSPACE = "enter", "esc", "backspace"

# CSI (ESC [) and SS3 (ESC O, "application cursor" mode that some terminals use) sequences.
_SEQUENCES = {
    "[C": RIGHT, "[D": LEFT, "[A": UP, "[B": DOWN, "OC": RIGHT, "OD": LEFT, "OA": UP, "OB": DOWN,
    "[5~": PGUP, "[6~": PGDN, "[H": HOME, "[F": END, "OH": HOME, "OF": END,
    "[1~": HOME, "[4~": END, "[7~": HOME, "[8~": END,
}
_SINGLE = {"\r": ENTER, "\n": ENTER, "\x7f": BACKSPACE, "\x08": BACKSPACE}


def split_keys(data: str) -> list[str]:
    """Key names (see the constants) and plain characters, in the order typed."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        ch = data[i]
        if ch != "\x1b":
            keys.append(_SINGLE.get(ch, ch))
            i += 1
            continue
        length = _sequence_length(data, i + 1)
        if length == 0:  # ESC alone (or ESC ESC): the Escape key
            keys.append(ESC)
            i += 1
            continue
        name = _SEQUENCES.get(data[i + 1 : i + 1 + length])
        if name is not None:
            keys.append(name)
        i += 1 + length
    return keys


def _sequence_length(data: str, start: int) -> int:
    """Characters after ESC that belong to its sequence: CSI runs to a final byte @..~, SS3 is
    one more character. 0 when ESC starts no sequence."""
    if start >= len(data) or data[start] not in "[O":
        return 0
    if data[start] == "O":
        return 2 if start + 1 < len(data) else 1
    end = start + 1
    while end < len(data) and not ("@" <= data[end] <= "~"):
        end += 1
    return min(end + 1, len(data)) - start
