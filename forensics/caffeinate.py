"""Keep App Nap from throttling the pipeline on macOS (the seed's daemon ran ``caffeinate -i``).

``-i`` prevents idle sleep and, as a side effect of holding a power assertion, keeps App Nap off
the process tree; ``-w PID`` makes caffeinate exit by itself when that process does, so a
SIGKILLed forensics worker does not leave a caffeinate behind (the seed relied on its own cleanup).
On other platforms nothing is started.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from pmshared import procgroup

CAFFEINATE = "/usr/bin/caffeinate"
log = logging.getLogger("forensics")


def caffeinate_argv(watch_pid: int, program: str = CAFFEINATE) -> list[str]:
    return [program, "-i", "-w", str(watch_pid)]


class Caffeinate:
    def __init__(self, platform: str = sys.platform, program: str = CAFFEINATE) -> None:
        self.platform = platform
        self.program = program
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        if self.platform != "darwin":
            return False
        try:
            self.proc = procgroup.start(caffeinate_argv(os.getpid(), self.program))
        except OSError as exc:
            log.warning("caffeinate not started (%s): App Nap may slow sampling", exc.strerror or exc)
            return False
        return True

    def stop(self) -> None:
        if self.proc is None:
            return
        procgroup.stop(self.proc)
        self.proc = None
