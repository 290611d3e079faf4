"""What every worker process shares at run time: stop flag, logging, heartbeat, counters.

Signal handlers only set the stop flag; every loop polls with a timeout (<= 200 ms) and checks it,
so a worker exits within a second of SIGTERM/SIGINT. The heartbeat is sent from the worker's own
main loop (never from a helper thread), so a hung loop stops heartbeating and the supervisor's
watchdog notices.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

from pmshared import config as config_mod
from pmshared import messages as m
from pmshared.codec import Stamper
from pmshared.endpoints import ENDPOINTS, Sockets, send_nowait
from pmshared.safetext import inert

POLL_MS = 200  # longest any receive loop waits before looking at the stop flag again


def new_incarnation() -> str:
    """Unique per process start: keys records so a resend after a restart is recognised."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def setup_logging(name: str, level: int = logging.INFO) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return logging.getLogger(name)


def fail(message: str, code: int = 2) -> None:
    """One clear line on stderr for a user mistake, then exit (never a traceback)."""
    # The message may quote the config file, a path or a key: text from outside, made inert.
    print(f"error: {inert(message)}", file=sys.stderr)
    raise SystemExit(code)


def load_config_or_exit() -> config_mod.Config:
    try:
        return config_mod.load()
    except config_mod.ConfigError as exc:
        fail(str(exc))
        raise  # unreachable


class Worker:
    """Runtime of one worker process: identity, stop flag, counters, sockets, heartbeat."""

    def __init__(self, name: str, config: config_mod.Config | None = None, *, sockets: bool = True) -> None:
        self.name = name
        self.config = config or load_config_or_exit()
        self.incarnation = new_incarnation()
        self.log = setup_logging(name)
        self.stopping = threading.Event()
        self.counters: Counter[str] = Counter()
        self.sockets = Sockets(self.config.transport) if sockets else None
        self._heartbeat_sock = None
        self._heartbeat_stamp = Stamper(name, self.incarnation)
        self._heartbeat_codec = ENDPOINTS["health"].codec()
        self._heartbeat_every = self.config.supervisor.heartbeat_interval_s
        self._next_heartbeat = 0.0

    def stamper(self) -> Stamper:
        return Stamper(self.name, self.incarnation)

    # -- counted warnings ------------------------------------------------------------------------
    def warn_counted(self, counter: str, message: str, *args: object) -> None:
        """Count one lost input or output; log the first ten, then every thousandth, so a flood
        of garbage or a dead peer never floods the log (the counter, in the heartbeat, is exact)."""
        self.counters[counter] += 1
        n = self.counters[counter]
        if n <= 10 or n % 1000 == 0:
            self.log.warning(message + " (%d so far)", *args, n)

    def drop_bad(self, source: str, error: object) -> None:
        """A malformed frame or line: counted as ``bad_input``, logged (inert), dropped."""
        self.warn_counted("bad_input", "dropped malformed %s: %s", source, inert(str(error), 200))

    # -- signals ---------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self.stopping.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    @property
    def running(self) -> bool:
        return not self.stopping.is_set()

    # -- heartbeat -------------------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        assert self.sockets is not None
        self._heartbeat_sock = self.sockets.connect("health")

    def heartbeat(self, now: float | None = None) -> None:
        """Send a heartbeat if one is due; cheap to call on every loop iteration."""
        if self._heartbeat_sock is None:
            return
        now = time.monotonic() if now is None else now
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self._heartbeat_every
        msg = self._heartbeat_stamp(m.Heartbeat, pid=os.getpid(), counters=dict(self.counters))
        # PUB never blocks; with no supervisor listening the message is simply dropped.
        send_nowait(self._heartbeat_sock, self._heartbeat_codec.encode(msg))

    def close(self) -> None:
        if self.sockets is not None:
            self.sockets.close()
