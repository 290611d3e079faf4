"""A real `pmctl up` for the benchmarks: temporary home, its own config, always cleaned up.

``PipelineRun`` starts ``python -m cli up`` (the Procfile in the repository, as a user runs it)
with HOME, XDG_* and PAUSE_MONITOR_CONFIG pointing into fresh temporary directories, and points
this process's environment there too, so ``cli.clients`` and the database path find *this*
pipeline. Every process it starts carries ``PM_BENCH_TAG=<tag>``; leaving the context manager
stops the supervisor (SIGTERM, then SIGKILL), kills anything still carrying the tag and removes
the temporary directories (created here by ``tempfile``, never a path built from a variable).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cli import clients  # noqa: E402
from pmshared import paths  # noqa: E402
from tests.procutil import kill_tagged, wait_for  # noqa: E402

TAG_VAR = "PM_BENCH_TAG"
WORKERS = ("collector", "scorer", "tiering", "recorder", "forensics")


class PipelineRun:
    """One `pmctl up` with ``config_text`` as its config file."""

    def __init__(self, config_text: str = "", label: str = "pipeline", repo: Path = REPO) -> None:
        self.label = label
        self.repo = repo  # the checkout whose Procfile and code run (bench/pipeline_ab.py: two)
        self.tag = uuid.uuid4().hex
        self.home = Path(tempfile.mkdtemp(prefix="pmbench-"))
        # Short: ipc socket paths must fit 103 bytes.
        self.run_dir = Path(tempfile.mkdtemp(prefix="pm", dir="/tmp"))
        self.config = self.home / "config.toml"
        self.config.write_text(config_text)
        self.log_path = self.home / "supervisor.out"
        self.overrides = {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_DATA_HOME": str(self.home / "data"),
            "XDG_STATE_HOME": str(self.home / "state"),
            "XDG_CACHE_HOME": str(self.home / "cache"),
            "XDG_RUNTIME_DIR": str(self.run_dir),
            "PAUSE_MONITOR_CONFIG": str(self.config),
            TAG_VAR: self.tag,
        }
        self.env = {**os.environ, **self.overrides}
        self.env.pop("NO_COLOR", None)
        self.proc: subprocess.Popen | None = None
        self._saved_env: dict[str, str | None] = {}
        self._db: sqlite3.Connection | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> PipelineRun:
        # This process talks to the pipeline (status, database): same paths as its workers.
        for key, value in self.overrides.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def start(self, timeout: float = 40.0) -> dict[str, int]:
        """Start `pmctl up`; return {name: pid} once every worker has heartbeated."""
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "up"],
                cwd=self.repo, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        return self.wait_running(timeout)

    def wait_running(self, timeout: float = 40.0) -> dict[str, int]:
        def ready() -> dict[str, int] | None:
            ws = self.workers()
            if all(n in ws and ws[n][0] == "running" for n in WORKERS):
                return {n: ws[n][1] for n in WORKERS}
            return None

        try:
            return wait_for(ready, timeout, f"{self.label}: every worker running", interval=0.2)
        except AssertionError as exc:
            raise RuntimeError(f"{exc}; supervisor output:\n{self.output()[-3000:]}") from None

    def workers(self) -> dict[str, tuple[str, int]]:
        reply = clients.control("status", timeout_s=2.0)
        if reply is None:
            return {}
        return {w.name: (w.state, w.pid) for w in reply.workers}

    def pids(self) -> dict[str, int]:
        """Supervisor and current worker pids."""
        ws = self.workers()
        assert self.proc is not None
        return {"supervisor": self.proc.pid, **{n: ws[n][1] for n in WORKERS if n in ws and ws[n][1]}}

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        kill_tagged(TAG_VAR, self.tag)

    # -- the database, read-only, as any reader would ---------------------------------------------
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            path = paths.db_path()
            wait_for(path.exists, 20, f"{path} to exist")
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0, isolation_level=None)
        return self._db

    def query(self, sql: str, *args: object) -> list[tuple]:
        for attempt in range(50):
            try:
                return self.db().execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:  # schema not there yet, or busy: try again
                if attempt == 49:
                    raise
                last = exc
                time.sleep(0.05)
        raise last  # pragma: no cover
