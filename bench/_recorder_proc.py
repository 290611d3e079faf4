"""A real recorder process in a private home for the recorder benchmarks, always stopped.

``running_recorder(home, extra_args)`` points this process's environment at the private home (so
``Sockets`` connects to that recorder), binds the supervisor's "health" endpoint (as ``pmctl up``
does: without it the recorder's heartbeat socket retries the missing endpoint ~10 times a second,
a process kept busier and warmer than in the pipeline), starts ``python [extra_args] -m
recorder``, waits until its
socket and database exist, yields the process, a ``Sockets`` and the database path, and on the
way out closes the sockets, stops the recorder (SIGTERM, then SIGKILL), restores the environment
and removes the runtime directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_ENV_KEYS = ("XDG_RUNTIME_DIR", "XDG_DATA_HOME")


@contextmanager
def running_recorder(home: Path, python_args: tuple[str, ...] = ()) -> Iterator[tuple[subprocess.Popen, object, Path]]:
    from pmshared.endpoints import Sockets

    runtime = Path(tempfile.mkdtemp(prefix="pmb", dir="/tmp"))
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_DATA_HOME": str(home / "data"), "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("PAUSE_MONITOR_CONFIG", None)
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    os.environ.update({k: env[k] for k in _ENV_KEYS})
    db = home / "data" / "pause-monitor" / "data.db"
    sockets = Sockets()
    sockets.bind("health")  # heartbeats go where the supervisor's would
    proc = subprocess.Popen([sys.executable, *python_args, "-m", "recorder"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock_path = runtime / "pause-monitor" / "record.sock"
        deadline = time.monotonic() + 10
        while not (sock_path.exists() and db.exists()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("recorder did not start")
            time.sleep(0.02)
        yield proc, sockets, db
    finally:
        sockets.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(runtime, ignore_errors=True)
