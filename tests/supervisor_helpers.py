"""Helpers for the supervisor tests: run `pmctl up` as a real subprocess in the isolated home
(tests/conftest.py), poll for conditions with deadlines, and prove no process is left behind.

Every process a test starts carries ``PM_SUPERVISOR_TEST=<tag>`` in its environment (children and
grandchildren inherit it), so a scan of /proc/*/environ finds anything that escaped, whoever its
parent is now.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from cli import clients
from pmshared import messages as m
from pmshared import paths, storage
from tests.procutil import kill_tagged, pid_gone, wait_for  # noqa: F401 - re-exported to the tests
from tests.procutil import tagged_pids as _tagged_pids

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "tests" / "fake_workers" / "worker.py"
TAG_VAR = "PM_SUPERVISOR_TEST"


def tagged_pids(tag: str) -> list[int]:
    """Live processes started by the pipeline tagged ``tag`` (see Pipeline)."""
    return _tagged_pids(TAG_VAR, tag)


# Fast, but with margins for a loaded 2-core machine: the watchdog fires after 1 s of silence.
FAST_SUPERVISOR = {
    "backoff_initial_s": 0.1,
    "backoff_max_s": 1.0,
    "stable_after_s": 10.0,
    "max_restarts": 3,
    "restart_window_s": 60.0,
    "heartbeat_interval_s": 0.25,
    "missed_heartbeats": 4,
    "grace_period_s": 1.0,
}


def fake(name: str, *flags: str) -> str:
    """A Procfile command running the fake worker (``python`` = the interpreter under test)."""
    return " ".join(["python", str(FAKE), name, *flags])


# A worker for the stop-order tests: heartbeats like a real one; on SIGTERM it notes when the signal
# came, takes LINGER seconds (as a worker flushing its queues would), then notes when it exits, in
# LOG (one appended line per worker, a single write: lines from several workers never mix).
#     orderly.py NAME LOG LINGER
ORDERLY_WORKER = """\
import os, signal, sys, time
from pmshared.runtime import Worker

name, log, linger = sys.argv[1], sys.argv[2], float(sys.argv[3])
worker = Worker(name)
worker.install_signal_handlers()
termed = []

def on_term(signum, frame):
    termed.append(time.monotonic())  # CLOCK_MONOTONIC: one clock for every process on the machine
    worker.stopping.set()

signal.signal(signal.SIGTERM, on_term)
worker.start_heartbeat()
while worker.running:
    worker.heartbeat()
    worker.sleep(0.05)
time.sleep(linger)
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
os.write(fd, f"{name} {termed[0]!r} {time.monotonic()!r}\\n".encode())
os.close(fd)
worker.close()
"""


def orderly(tmp: Path, name: str, log: Path, linger: float) -> str:
    """A Procfile command running ORDERLY_WORKER (written into ``tmp``)."""
    script = tmp / "orderly.py"
    if not script.exists():
        script.write_text(ORDERLY_WORKER)
    return " ".join(["python", str(script), name, str(log), str(linger)])


def stop_times(log: Path) -> dict[str, tuple[float, float]]:
    """What ORDERLY_WORKERs wrote: name -> (SIGTERM received, exiting), monotonic."""
    found = {}
    for line in log.read_text().splitlines():
        name, termed, exited = line.split()
        found[name] = (float(termed), float(exited))
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def main_thread_sleeps(pid: int) -> int:
    """How often the process's main thread has blocked so far (voluntary context switches): each
    wait of the supervisor's poll is one, so the difference over a window counts its wake-ups."""
    for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_bundled_pauses(read_pauses: Callable[[], list[dict]], timeout: float, output: Callable[[], str],
                        interval: float = 0.2) -> list[dict]:
    """Poll ``read_pauses`` (`pmctl pauses --json`) until there is a pause and every pause has its
    bundle; a timeout names the last list read and the supervisor's ``output()``."""
    last: list[list[dict]] = [[]]

    def bundled() -> list[dict] | None:
        last[0] = pauses = read_pauses()
        return pauses if pauses and all(p["bundle_path"] for p in pauses) else None

    return wait_for(bundled, timeout, lambda: f"pauses with their bundles; pauses: {last[0]}\noutput:\n{output()}",
                    interval=interval)


class Pipeline:
    """A `pmctl up` under test, with its Procfile and config in ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.tag = uuid.uuid4().hex
        self.procfile = tmp_path / "Procfile"
        self.config = tmp_path / "config.toml"
        self.out_path = tmp_path / "supervisor.out"
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ)
        self.env[TAG_VAR] = self.tag
        self.env["PAUSE_MONITOR_CONFIG"] = str(self.config)
        self.env.pop("NO_COLOR", None)
        self.write_config()

    # -- setup -----------------------------------------------------------------------------------
    def write_procfile(self, entries: dict[str, str]) -> None:
        self.procfile.write_text("".join(f"{name}: {cmd}\n" for name, cmd in entries.items()))

    def write_config(self, **overrides: float | bool) -> None:
        values = {**FAST_SUPERVISOR, **overrides}
        body = "".join(f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}\n" for k, v in values.items())
        self.config.write_text(f"[supervisor]\n{body}")

    # -- running ---------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a `pmctl` command to completion (same environment as the supervisor)."""
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout,
        )

    def events(self) -> list[dict]:
        """What `pmctl events --json --limit 0` prints, read in this process: for polling. A `pmctl`
        costs ~0.3 s of CPU on a 2-core machine; run in a loop, its reaper (this test process)
        became the busiest process on the machine, and the top culprit of the event under test."""
        return self._read(lambda conn: storage.list_events(conn, limit=None), [])

    def event_detail(self, event_id: int) -> dict | None:
        """What `pmctl events show ID --json` prints, read in this process (see ``events``)."""
        return self._read(lambda conn: storage.get_event(conn, event_id), None)

    def _read(self, query: Callable, missing: object):
        import json

        from cli.format import to_json

        if not paths.db_path().exists():
            return missing
        conn = storage.open_readonly(paths.db_path())
        try:
            found = query(conn)
        finally:
            conn.close()
        return missing if found is None else json.loads(to_json(found))

    def start(self, *args: str, default_procfile: bool = False) -> subprocess.Popen:
        """Start `pmctl up` with our Procfile (or, with ``default_procfile``, the one it finds)."""
        procfile = [] if default_procfile else ["--procfile", str(self.procfile)]
        out = open(self.out_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "up", *procfile, *args],
                cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        finally:
            out.close()
        return self.proc

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def status(self, timeout: float = 2.0) -> m.ControlReply | None:
        return clients.control("status", timeout_s=timeout)

    def workers(self) -> dict[str, m.WorkerStatus]:
        reply = self.status()
        return {w.name: w for w in reply.workers} if reply else {}

    def wait_running(self, names: list[str], timeout: float = 15) -> dict[str, m.WorkerStatus]:
        """Until every named worker has sent a heartbeat (state running)."""

        def ready() -> dict[str, m.WorkerStatus] | None:
            ws = self.workers()
            return ws if all(n in ws and ws[n].state == "running" for n in names) else None

        return wait_for(ready, timeout, lambda: f"{names} running; output so far:\n{self.output()}")

    def wait_exit(self, timeout: float = 15) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"supervisor did not exit within {timeout} s; output:\n{self.output()}")
            raise

    # -- teardown --------------------------------------------------------------------------------
    def cleanup(self) -> list[int]:
        """Kill whatever is left; return the tagged pids that were still alive (should be none)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        return kill_tagged(TAG_VAR, self.tag)


@pytest.fixture
def pipeline(tmp_path: Path):
    pipe = Pipeline(tmp_path)
    try:
        yield pipe
    finally:
        leftovers = pipe.cleanup()
    assert not leftovers, f"processes left behind: {leftovers}"


def runtime_files() -> list[str]:
    """What is left in the runtime directory (sockets, lock)."""
    rd = paths.runtime_dir()
    return sorted(os.listdir(rd)) if rd.exists() else []
