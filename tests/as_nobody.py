"""Run a Python snippet as ``nobody`` (uid/gid 65534) when the tests run as root.

The snippet starts as root and calls ``drop_privileges()`` once its imports are done: the
interpreter may live where nobody cannot read (pyenv under /root, mode 0700), so executing it as
nobody from the start fails before the test begins. What the test checks (DAC on /proc files, on
sockets) happens after the drop, as nobody.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534

PRELUDE = """\
import ctypes, os
def drop_privileges():
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        assert os.geteuid() == 65534
        # A uid change makes the process non-dumpable, which would leave its own /proc files
        # (io among them) root's; a process started as nobody is dumpable. PR_SET_DUMPABLE = 4.
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)
"""


def run_python_as_nobody(script: str, *args: str, timeout: float = 60) -> dict:
    """Run ``script`` (which calls drop_privileges() after its imports); its stdout is one JSON
    document, returned decoded."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"}
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + script, *args], capture_output=True, text=True, timeout=timeout,
        cwd="/", env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
