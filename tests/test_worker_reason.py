"""supervisor.worker_reason: which line of a worker's output says why it is unhealthy (pure)."""

from __future__ import annotations

import pytest

from supervisor.worker_reason import MAX_REASON, reason_in


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2026-12-07 07:20:20,435 recorder[10334] ERROR database /d/data.db is corrupt (file is not a database)",
         "database /d/data.db is corrupt (file is not a database)"),
        ("2026-12-07 07:20:20,435 recorder[10334] CRITICAL out of memory", "out of memory"),
        ("error: /c/config.toml: tiers.x: expected int >= 0", "/c/config.toml: tiers.x: expected int >= 0"),
        ("OverflowError: Python int too large to convert to C int", "OverflowError: Python int too large to convert to C int"),
        ("zmq.error.ZMQError: Address already in use", "zmq.error.ZMQError: Address already in use"),
        ("2026-12-07 07:20:20,435 recorder[10334] INFO recording into /d/data.db", None),
        ("2026-12-07 07:20:20,435 recorder[10334] WARNING cannot write yet", None),
        ("  File \"/x.py\", line 3, in <module>", None),
        ("Traceback (most recent call last):", None),
    ],
)
def test_reason_in(line: str, reason: str | None) -> None:
    assert reason_in(line) == reason


def test_a_reason_is_inert_and_one_bounded_line() -> None:
    got = reason_in("2026-12-07 07:20:20,435 x[1] ERROR evil \x1b[31m name " + "y" * 1000)
    assert got is not None and got.startswith("evil ^[[31m name") and "\x1b" not in got
    assert len(got) <= MAX_REASON + 1
    bell = reason_in("error: \x1b]0;title\x07")
    assert bell is not None and "\x07" not in bell and "\x1b" not in bell
