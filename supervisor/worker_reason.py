"""Why a worker is unhealthy, read from its own output: `pmctl status` shows it beside a FAILED or
backing-off worker, so nobody has to dig through the supervisor's log to learn that the database
is corrupt or a directory cannot be written.

A line counts as a reason when it is an ERROR/CRITICAL line of the workers' log format
(pmshared.runtime: ``<time> <name>[<pid>] <LEVEL> <message>``), a one-line ``error: ...`` (what
``runtime.fail`` prints), or the last line of a Python traceback (``SomeError: ...``). Pure.
"""

from __future__ import annotations

import re

from pmshared.safetext import inert

MAX_REASON = 240  # characters kept: one line in `pmctl status`

_LOG = re.compile(r"^\S+ \S+ \S+\[\d+\] (?:ERROR|CRITICAL) (?P<message>.+)$")
_FAIL = re.compile(r"^error: (?P<message>.+)$")
_TRACEBACK_END = re.compile(r"^(?P<message>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b.*)$")


def reason_in(line: str) -> str | None:
    """The reason ``line`` gives, made inert and cut to MAX_REASON, or None."""
    line = line.rstrip()
    for pattern in (_LOG, _FAIL, _TRACEBACK_END):
        match = pattern.match(line)
        if match:
            return inert(match.group("message"), MAX_REASON)
    return None
