"""Make untrusted text (process names, notes, paths) inert before it reaches a terminal.

Process names are chosen by whoever runs the process: a name may carry ESC sequences (colours,
OSC 52 clipboard writes, window titles), C1 controls, bidi overrides that reorder what is shown, or
Rich markup. Rich lets ESC through, so every such string passes through ``inert()`` and is then put
into ``rich.text.Text`` (never into markup).
"""

from __future__ import annotations

import unicodedata

# Bidi embeddings/overrides/isolates and other invisible format characters that change display.
_FORMAT_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _replacement(ch: str) -> str:
    code = ord(ch)
    if code < 0x20:
        return "^" + chr(code + 0x40)  # ESC -> ^[ : visible and recognisable
    if code == 0x7F:
        return "^?"
    return f"\\u{code:04x}"


def inert(text: str, limit: int | None = None) -> str:
    """``text`` with every control/format character made visible; markup stays plain text."""
    if text.isprintable() and text.isascii():
        out = text
    else:
        out = "".join(
            _replacement(ch) if (ch != " " and unicodedata.category(ch) in _FORMAT_CATEGORIES) else ch
            for ch in text
        )
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 1, 0)] + "…"
    return out
