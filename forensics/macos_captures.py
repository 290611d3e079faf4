"""macOS captures, as the seed ran them: spindump, tailspin save, and ``log show``.

- spindump: ``/usr/sbin/spindump -notarget -stdout`` -> spindump.txt (every process's stacks now);
- tailspin: ``/usr/bin/tailspin save -o <bundle>/tailspin.tailspin`` (the kernel's ring of the
  last seconds, i.e. the pause itself; decode later with ``spindump -i FILE -stdout``);
- system log: ``/usr/bin/log show --style ndjson --start … --end … --predicate …`` -> system_log.ndjson,
  the seed's predicate (powerd, kernel, windowserver, hang/stall/timeout messages). The seed used
  ``--last 60s``; here the window is explicit, from ``log_window_s`` before the pause start to now,
  so a capture that starts late still covers the pause.

The executable paths live in ``TOOLS`` and every builder takes a ``tools`` mapping, so tests (and a
machine with tools elsewhere) point them at other files. No Mac runs these tests: they check the
argument lists with fake executables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping

from pmshared import messages as m
from pmshared.config import ForensicsConfig

from forensics.runner import Capture, CommandCapture

TOOLS: dict[str, str] = {
    "spindump": "/usr/sbin/spindump",
    "tailspin": "/usr/bin/tailspin",
    "log": "/usr/bin/log",
}

LOG_PREDICATE = (
    'subsystem == "com.apple.powerd" OR '
    'subsystem == "com.apple.kernel" OR '
    'subsystem == "com.apple.windowserver" OR '
    'eventMessage CONTAINS[c] "hang" OR '
    'eventMessage CONTAINS[c] "stall" OR '
    'eventMessage CONTAINS[c] "timeout"'
)


def _log_time(epoch: float) -> str:
    # `log show --start/--end` take local time "YYYY-MM-DD HH:MM:SS".
    return datetime.fromtimestamp(int(epoch)).strftime("%Y-%m-%d %H:%M:%S")


def spindump(config: ForensicsConfig, tools: Mapping[str, str] = TOOLS) -> CommandCapture:
    return CommandCapture(
        "spindump", [tools["spindump"], "-notarget", "-stdout"], config.spindump_timeout, "spindump.txt"
    )


def tailspin(config: ForensicsConfig, bundle_dir: str, tools: Mapping[str, str] = TOOLS) -> CommandCapture:
    # tailspin writes the file itself (stdout is only chatter), so the cap is watched on the file.
    return CommandCapture(
        "tailspin",
        [tools["tailspin"], "save", "-o", f"{bundle_dir}/tailspin.tailspin"],
        config.tailspin_timeout,
        None,
        produces="tailspin.tailspin",
    )


def system_log(
    start: float, end: float, config: ForensicsConfig, tools: Mapping[str, str] = TOOLS
) -> CommandCapture:
    return CommandCapture(
        "system_log",
        [
            tools["log"], "show", "--style", "ndjson",
            "--start", _log_time(start), "--end", _log_time(end + 1),
            "--predicate", LOG_PREDICATE,
        ],
        config.logs_timeout,
        "system_log.ndjson",
    )


def plan(
    pause: m.Pause,
    config: ForensicsConfig,
    bundle_dir: str,
    now: float,
    tools: Mapping[str, str] = TOOLS,
) -> list[Capture]:
    return [
        spindump(config, tools),
        tailspin(config, bundle_dir, tools),
        system_log(pause.start - config.log_window_s, now, config, tools),
    ]
