"""Helpers for the fault tests (tests/e2e/test_faults.py): a CPU hog, a live-feed recorder, a
database locker, a pipeline whose data directory sits on a tiny tmpfs, and readers of what the
user sees (``pmctl ... --json``, the supervisor's log, the database file).

The live feed is the ground truth the tests compare the database with: tiering publishes every
sample with its tier and open event *before* it sends that sample's records, and while the tier is
3 every sample becomes one stored event sample (tiering/engine.py). So "every record sent while the
recorder could not store was stored afterwards" is checkable exactly, whatever else the machine
(and the other tests running on it) does: each tier-3 live sample must appear in the database
under its event with its timestamp.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pmshared import paths
from tests.livefeed import Live, LiveWatch  # noqa: F401 - re-exported to the fault tests
from tests.supervisor_helpers import REPO, Pipeline, wait_for

WORKERS = ["collector", "scorer", "tiering", "recorder", "forensics"]
HOG_NAME = "pm-fault-hog"
HOG_THREADS = 600
# A busy loop that renames itself (so the user, and we, recognise it in every view) and holds
# HOG_THREADS idle threads: a mark no other process on the machine carries (see HOG_TIERS).
HOG = (
    "import sys, threading\n"
    "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
    "threading.stack_size(64 * 1024)\n"
    "idle = threading.Event()\n"
    "for _ in range(int(sys.argv[2])):\n"
    "    threading.Thread(target=idle.wait, daemon=True).start()\n"
    "while True:\n"
    "    pass\n"
)

# The event must come and go with *our* hog. A CPU hog alone is not enough on this shared 2-core
# machine: any busy process of another test scores the same 25 (one core x the cpu weight), and a
# 60 s test then sees "its" event held open by a stranger. So the threads factor weighs 100 and
# the hog carries 600 threads: it scores >= 60 even when starved of CPU, while an ordinary process
# (<= a dozen threads) would need to be busy, stuck, paging and swapping at once to reach 50.
# Elevated == critical puts the machine straight into tier 3 while the hog runs, where *every*
# sample is recorded (tier 2 records only peaks): records flow at 1 Hz, and the faults must not
# lose them. Alerts off: there is no notifier on the test machine.
HOG_TIERS = (
    "[tiers]\nelevated_threshold = 50\ncritical_threshold = 50\ndeescalation_delay_s = 2.0\n"
    '[scoring]\nmodel = "seed"\n'  # the per-process thread score above is the seed model's
    "[scoring.weights]\nthreads = 100\n"
    "[alerts]\nenabled = false\n"
)


# ============================================================================ hog
class Hog:
    """A renamed busy-loop child; killed (and reaped) on ``stop`` or when the block ends."""

    def __init__(self, pipeline: Pipeline, name: str = HOG_NAME) -> None:
        self.name = name
        # The pipeline's env carries the test tag: a hog that escaped would fail the test.
        self.proc = subprocess.Popen([sys.executable, "-c", HOG, name, str(HOG_THREADS)], env=pipeline.env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> Hog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ============================================================================ live feed
# LiveWatch and its Live items live in tests/livefeed.py (bench/detection.py uses them too).


@dataclass(frozen=True)
class Scored:
    """One scored sample (scorer -> tiering) as the test received it."""

    received: float  # monotonic, in this process
    timestamp: float  # the sample's own wall-clock time, as its LiveSample will carry it


class ScoredWatch(LiveWatch):
    """Subscribes to the scorer's "scored" PUB: what tiering is sent (the ``Live`` queries work on
    its ``Scored`` items too, except the ones about tiers and sequence numbers)."""

    endpoint: ClassVar[str] = "scored"

    def _item(self, msg: Any, received: float) -> Scored:
        return Scored(received=received, timestamp=msg.timestamp)


# ============================================================================ user-visible reads
def python_argv(pipeline: Pipeline) -> list[str]:
    """How to run Python where the pipeline's files are (inside its mount namespace, if any)."""
    return [*getattr(pipeline, "enter", []), sys.executable]


def cli_json(pipeline: Pipeline, *args: str):
    proc = run_cli(pipeline, *args, "--json")
    assert proc.returncode == 0, f"pmctl {' '.join(args)} --json failed: {proc.stderr}"
    return json.loads(proc.stdout)


def run_cli(pipeline: Pipeline, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*python_argv(pipeline), "-m", "cli", *args], cwd=REPO, env=pipeline.env,
        capture_output=True, text=True, timeout=timeout,
    )


def events_by_key(pipeline: Pipeline) -> dict[str, dict]:
    return {e["event_key"]: e for e in pipeline.events()}


def event_samples(pipeline: Pipeline, event_id: int) -> list[dict]:
    return pipeline.event_detail(event_id)["samples"]


def missing_tier3(pipeline: Pipeline, live: list[Live]) -> list[Live]:
    """The tier-3 live samples in ``live`` that have no stored event sample (same event, same time)."""
    wanted = [s for s in live if s.tier == 3]
    events = events_by_key(pipeline)
    stored: dict[str, set[float]] = {}
    missing = []
    for s in wanted:
        event = events.get(s.event_key or "")
        if event is None:
            missing.append(s)
            continue
        if s.event_key not in stored:
            stored[s.event_key] = {x["timestamp"] for x in event_samples(pipeline, event["id"])}
        if s.timestamp not in stored[s.event_key]:
            missing.append(s)
    return missing


def wait_hog_event(pipeline: Pipeline, hog: Hog, timeout: float = 40) -> dict:
    """Until an open event names the hog as its top culprit and has a stored sample."""

    def found():  # polled in this process (Pipeline.events): see there why
        for event in pipeline.events():
            if event["end"] is None and event["top_culprit_pid"] == hog.pid and event["sample_count"]:
                return event
        return None

    return wait_for(found, timeout, lambda: f"an open event naming the hog; output:\n{pipeline.output()}",
                    interval=0.3)


def worker_pids(pipeline: Pipeline) -> dict[str, int | None]:
    return {name: w.pid for name, w in pipeline.workers().items()}


INTEGRITY = (
    "import json, sys\n"
    "from pmshared import paths, storage\n"
    "conn = storage.open_readonly(paths.db_path())\n"
    "print(json.dumps(storage.integrity_check(conn, quick=False)))\n"
)


def integrity(pipeline: Pipeline) -> list[str]:
    """SQLite's full ``PRAGMA integrity_check`` of the pipeline's database, opened read-only
    (in a child, so it also works inside the pipeline's mount namespace)."""
    proc = subprocess.run([*python_argv(pipeline), "-c", INTEGRITY], cwd=REPO, env=pipeline.env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def log_lines(pipeline: Pipeline, pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [line for line in pipeline.output().splitlines() if rx.search(line)]


def runtime_leftovers() -> list[str]:
    """Socket files and the supervisor lock left in the runtime directory."""
    rd = paths.runtime_dir()
    if not rd.exists():
        return []
    return sorted(n for n in os.listdir(rd) if n.endswith(".sock") or n.endswith(".lock"))


# ============================================================================ database locker
LOCKER = r"""
import sys, time, apsw
conn = apsw.Connection(sys.argv[1])
conn.set_busy_timeout(10000)
# In WAL mode BEGIN EXCLUSIVE takes the write lock (readers go on reading the last commit).
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))  # the fault: hold the lock this long
conn.execute("COMMIT")
print("released", flush=True)
"""


class DbLocker:
    """A child process holding the database's write lock (BEGIN EXCLUSIVE) for ``seconds``."""

    def __init__(self, pipeline: Pipeline, db_path: Path, seconds: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(db_path), str(seconds)], env=pipeline.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if line.strip() != "locked":
            self.proc.kill()
            raise AssertionError(f"the locker did not lock: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.locked_at = time.monotonic()

    def wait_released(self, timeout: float) -> float:
        """Until the child committed and exited; returns when (monotonic)."""
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0 and "released" in out, (out, err)
        return time.monotonic()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# ============================================================================ tiny filesystem
class TmpfsPipeline(Pipeline):
    """`pmctl up` in a private mount namespace whose data directory is a tmpfs of ``size``.

    ``unshare -m`` (private propagation) keeps the mount invisible to the rest of the machine and
    it disappears with the supervisor. The test writes its filler file through
    ``/proc/<supervisor pid>/root/...`` (that namespace's view), but runs pmctl and SQLite inside
    the namespace (``nsenter``): SQLite resolves symlinks in a database path, and /proc/PID/root
    is one. Sockets live in the runtime dir, which is not overmounted, so they work from outside.
    """

    def __init__(self, tmp_path: Path, size: str) -> None:
        super().__init__(tmp_path)
        self.size = size

    def start(self, *args: str, default_procfile: bool = True) -> subprocess.Popen:  # noqa: ARG002
        data = paths.data_dir()
        data.mkdir(parents=True, exist_ok=True)
        script = 'mount -t tmpfs -o size="$1",mode=0700 tmpfs "$2" && exec "$3" -m cli up'
        out = open(self.out_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                 self.size, str(data), sys.executable, *args],
                cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        finally:
            out.close()
        return self.proc

    def view(self, path: Path) -> Path:
        """``path`` as the supervisor's mount namespace sees it."""
        return Path(f"/proc/{self.pid}/root") / path.relative_to("/")

    @property
    def enter(self) -> list[str]:
        return ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", "--"]

    # The database is only visible inside the namespace: read with `pmctl` there.
    def events(self) -> list[dict]:
        return cli_json(self, "events", "--limit", "0")

    def event_detail(self, event_id: int) -> dict | None:
        return cli_json(self, "events", "show", str(event_id))


def fill(directory: Path, name: str = "filler") -> tuple[Path, int]:
    """Write zeros into ``directory/name`` until the filesystem is full; (path, bytes written)."""
    path = directory / name
    chunk = b"\0" * 65536
    written = 0
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as exc:
                if exc.errno != 28:  # ENOSPC
                    raise
                break
        # Take the last pages too (a partial chunk may still fit).
        for size in (4096, 512, 1):
            while True:
                try:
                    written += f.write(b"\0" * size)
                except OSError:
                    break
    return path, written


@pytest.fixture
def tmpfs_pipeline(tmp_path: Path):
    """A pipeline whose data dir is a private 4 MiB tmpfs (a disk that can fill up)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("nsenter")):
        pytest.skip("needs Linux, root, unshare and nsenter for a private tmpfs mount")
    pipe = TmpfsPipeline(tmp_path, size="4m")
    try:
        yield pipe
    finally:
        leftovers = pipe.cleanup()
    assert not leftovers, f"processes left behind: {leftovers}"
