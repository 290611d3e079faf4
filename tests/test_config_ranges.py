"""Every numeric config key has a range the pipeline can run with, and `validate` holds to it.

The keys are found by walking the Config structs (msgspec.inspect), so a key added later is held
to the same rules without touching this file: it must declare a lower and an upper bound, and the
boundaries, the values just outside them and the absurd ones (2**63, 1e308, 5e-324, nan, inf) are
fed to it. Whatever `validate` accepts then goes through the real startup code of every worker
that turns config into something concrete: zmq socket options, the supervisor's timers and
watchdog allowance, the restart policy, the sentinel's lateness ring, the tiering and forensics
rings, the scorer and tiering on a real snapshot, the recorder's line bound and the prune cutoffs.
One real `pmctl up` with the boundary values of the transport and supervisor keys completes the
picture (tests/test_config_boundaries_up.py).
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pmshared import config as cfg
from pmshared import runtime

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass(frozen=True, repr=False)
class Key:
    path: tuple[str, ...]
    kind: type  # int or float
    lo: float | None
    lo_open: bool  # gt rather than ge
    hi: float | None
    hi_open: bool

    @property
    def name(self) -> str:
        return ".".join(self.path)

    def __repr__(self) -> str:
        return self.name

    def in_range(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        low_ok = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        high_ok = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        return low_ok and high_ok


def numeric_keys(typ: type = cfg.Config, prefix: tuple[str, ...] = ()) -> list[Key]:
    """Every int and float key under ``typ``, found by walking the structs."""
    keys = []
    for field in mi.type_info(typ).fields:
        t, path = field.type, (*prefix, field.encode_name)
        if isinstance(t, mi.StructType):
            keys.extend(numeric_keys(t.cls, path))
        elif isinstance(t, (mi.IntType, mi.FloatType)):
            kind = int if isinstance(t, mi.IntType) else float
            lo = t.ge if t.ge is not None else t.gt
            hi = t.le if t.le is not None else t.lt
            keys.append(Key(path, kind, lo, t.gt is not None, hi, t.lt is not None))
    return keys


KEYS = numeric_keys()
HUGE_INTS = [2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63), -(2**64)]
ODD_FLOATS = [0.0, -0.0, 5e-324, 1e-9, 1e308, -1e308, math.inf, -math.inf, math.nan]


def extremes(key: Key) -> list[float]:
    """The boundaries, just inside and just outside, and the absurd values TOML can carry."""
    # (A key without a bound fails test_every_numeric_key_declares_both_bounds; its extremes are
    # still tried, from the far ends.)
    lo = key.lo if key.lo is not None else -(2**63)
    hi = key.hi if key.hi is not None else 2**63
    if key.kind is int:
        return sorted({lo, hi, lo - 1, hi + 1, lo + 1, hi - 1, 0, -1, *HUGE_INTS})
    near = [lo, hi, math.nextafter(lo, -math.inf), math.nextafter(lo, math.inf),
            math.nextafter(hi, -math.inf), math.nextafter(hi, math.inf)]
    # TOML integers are accepted for a float key as well.
    as_ints = [int(lo), math.ceil(hi), 2**63, 2**64]
    return [float(v) for v in near] + ODD_FLOATS + as_ints


def valid_values(key: Key) -> st.SearchStrategy:
    """The boundaries and anything between (cross-field rules may still reject a combination)."""
    inside = (st.integers(int(math.ceil(key.lo)), int(key.hi)) if key.kind is int
              else st.floats(key.lo, key.hi, exclude_min=key.lo_open, exclude_max=key.hi_open))
    bounds = [key.kind(v) for v in (key.lo, key.hi) if key.in_range(key.kind(v))]
    return st.one_of(st.sampled_from(bounds), inside)


def toml_value(value: float) -> str:
    if isinstance(value, float):
        return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan" if math.isnan(value) else repr(value))
    return str(value)


def render(overrides: dict[Key, float]) -> str:
    """A config file setting these keys (one table per section)."""
    tables: dict[tuple[str, ...], list[str]] = {}
    for key, value in overrides.items():
        tables.setdefault(key.path[:-1], []).append(f"{key.path[-1]} = {toml_value(value)}")
    return "".join(f"[{'.'.join(table)}]\n" + "\n".join(lines) + "\n" for table, lines in tables.items())


# ----------------------------------------------------------------------------- the real startup
class Startup:
    """Runs what the workers and the supervisor derive from a config at start (and a first turn
    of each), with a real zmq context and a real SQLite file."""

    def __init__(self, db_path: Path) -> None:
        from pmshared import storage

        self.db = storage.connect(db_path, mode="create")

    def close(self) -> None:
        self.db.close()

    def run(self, config: cfg.Config) -> None:
        self.sockets(config)
        self.supervisor(config)
        self.collector(config)
        self.scorer_and_tiering(config)
        self.forensics(config)
        self.recorder(config)
        self.exporter(config)

    def sockets(self, config: cfg.Config) -> None:
        """Every socket of every endpoint, both sides, with the options the workers set; close()
        must return (a socket left open by a failed setsockopt made ctx.term() hang)."""
        from pmshared.endpoints import ENDPOINTS, Sockets

        sockets = Sockets(config.transport)
        try:
            for ep in ENDPOINTS.values():
                sockets._make(ep, ep.bind_type)
                sockets._make(ep, ep.connect_type)
        finally:
            sockets.close()

    def supervisor(self, config: cfg.Config) -> None:
        from supervisor.daemon import Supervisor
        from supervisor.output import Printer
        from supervisor.procfile import ProcessEntry
        from supervisor.restart_policy import Restart, RestartTracker

        entry = ProcessEntry("probe", "python -m probe", 1)
        sup = Supervisor([entry], config, Printer(["probe"], stream=io.StringIO(), colour=False))
        # The watchdog must not kill a healthy worker: its longest silence fits the allowance.
        assert sup.heartbeat_gap_s <= sup.heartbeat_allowance, (sup.heartbeat_gap_s, sup.heartbeat_allowance)
        # No busy loop: the supervisor sleeps at least 10 ms a turn while nothing is due.
        assert sup.max_tick_s >= 0.01, sup.max_tick_s
        now = time.monotonic()
        slot = sup.slots[0]
        slot.heartbeat_deadline = now + sup.heartbeat_allowance
        timeout = sup._next_timeout(now)
        assert 0 <= int(timeout * 1000) < 2**31, timeout  # what zmq_poll is given
        tracker = RestartTracker(config.supervisor)
        started = now
        for _ in range(min(config.supervisor.max_restarts + 1, 50)):
            decision = tracker.on_exit(started, started + 0.001)
            if isinstance(decision, Restart):
                assert math.isfinite(decision.delay_s) and decision.delay_s >= 0
                started += decision.delay_s + 0.001

    def collector(self, config: cfg.Config) -> None:
        from collector.main import next_deadline
        from collector.sentinel import Sentinel

        sentinel = Sentinel(config.sentinel, lambda pause: None)
        assert sentinel.window.capacity <= 200_000, sentinel.window.capacity
        now = time.monotonic()
        deadline, _ = next_deadline(now, config.sampling.interval_s, now + 3600)
        assert math.isfinite(deadline) and deadline >= now + 3600

    def scorer_and_tiering(self, config: cfg.Config) -> None:
        from pmshared.codec import Stamper
        from scorer.scoring import ScoringRules, build_samples
        from tests.hostile_helpers import Valid
        from tiering.engine import Tiering

        snapshot = Valid().snapshot()
        samples = build_samples(snapshot, ScoringRules.from_config(config), Stamper("scorer", "probe"))
        tiering = Tiering(config, "probe")
        tiering.start()
        for i in range(3):
            tiering.handle(samples, time.monotonic() + i * 3600)
        tiering.snapshot_reply()

    def forensics(self, config: cfg.Config) -> None:
        from forensics import linux_captures
        from forensics.notify import RateLimiter
        from forensics.ring import LiveRing
        from tests.hostile_helpers import Valid

        now = time.time()
        pause = Valid().pause()
        linux_captures.plan(pause, config.forensics, None)
        linux_captures.journalctl_argv(pause.start - config.forensics.log_window_s)
        LiveRing(config.sentinel.ring_buffer_seconds)
        limiter = RateLimiter(config.alerts.rate_limit_s)
        limiter.admit("pause", now)
        limiter.admit("pause", now)
        limiter.due_summaries(now + config.alerts.rate_limit_s)

    def recorder(self, config: cfg.Config) -> None:
        from pmshared import storage
        from pmshared.jsonlpipe import iter_lines

        read_fd, write_fd = os.pipe()
        os.write(write_fd, b"{}\n")
        os.close(write_fd)
        list(iter_lines(read_fd, lambda: False, max_line_bytes=config.transport.max_message_bytes))
        os.close(read_fd)
        retention = config.retention
        storage.prune(self.db, events_days=retention.events_days, samples_days=retention.samples_days,
                      dry_run=True, now=time.time())
        storage.prune_flight(self.db, max_age_days=retention.flight_days,
                             max_bytes=retention.flight_max_mb * 10**6, now=time.time())
        self.event_log(config)

    def event_log(self, config: cfg.Config) -> None:
        """The recorder's event log at these bounds: a line written, the file rotated (keep)."""
        import logging
        from collections import Counter

        from pmshared.journald import JournalSender
        from recorder.event_log import EventLog, log_path
        from tests.hostile_helpers import Valid

        path = log_path(Path(self.db.filename))
        counters = Counter()
        elog = EventLog(config.event_log, path, counters=counters, log=logging.getLogger("ranges"),
                        journal=JournalSender(str(path.parent / "no-journal"), counters))
        elog.stored(None, [Valid().pause()])
        if config.event_log.enabled:
            assert counters["event_log_lines"] == 1, counters
            elog.file.rotate()
            assert len(elog.file.files()) <= config.event_log.keep + 1
        elog.close()


    def exporter(self, config: cfg.Config) -> None:
        """The exporter's listen address and port make a socket address (no name lookup)."""
        import socket

        exporter = config.exporter
        assert socket.getaddrinfo(exporter.listen_address, exporter.port, type=socket.SOCK_STREAM,
                                  flags=socket.AI_NUMERICHOST)


@pytest.fixture(scope="module")
def startup(tmp_path_factory):
    runner = Startup(tmp_path_factory.mktemp("ranges") / "data.db")
    yield runner
    runner.close()


def check(text: str, overrides: dict[Key, float], startup: Startup) -> bool:
    """What `validate` accepts runs; what a key's range excludes is rejected; parse agrees.
    True when the config was accepted (and the startup ran)."""
    errors = cfg.validate_all(text, "c.toml")
    try:
        config = cfg.parse(text, "c.toml")
    except cfg.ConfigError as exc:
        assert errors, f"validate_all accepted what parse rejects: {exc}"
        return False
    assert not errors, f"validate_all rejects what parse accepts: {errors}"
    for key, value in overrides.items():
        assert key.in_range(value), f"{key.name} = {value!r} is outside its range but was accepted"
    startup.run(config)
    return True


# ----------------------------------------------------------------------------------- the tests
def test_every_numeric_key_declares_both_bounds():
    assert len(KEYS) > 40  # the walk found the keys (sections nested too)
    unbounded = [k.name for k in KEYS if k.lo is None or k.hi is None]
    assert unbounded == [], f"numeric config keys without a lower and an upper bound: {unbounded}"


def test_the_heartbeat_rule_uses_the_runtime_constants():
    assert cfg._HEARTBEAT_SLACK == runtime.HEARTBEAT_SLACK
    assert cfg._POLL_S == runtime.POLL_MS / 1000


def test_the_defaults_run(startup):
    startup.run(cfg.Config())


@pytest.mark.parametrize("key", KEYS, ids=[k.name for k in KEYS])
def test_each_key_at_its_extremes(key: Key, startup):
    failures = []
    for value in extremes(key):
        overrides = {key: value}
        try:
            check(render(overrides), overrides, startup)
        except Exception as exc:  # collected: one report lists every value that failed
            failures.append(f"{key.name} = {value!r}: {type(exc).__name__}: {exc}")
    assert failures == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_combination_that_validates_runs(startup, data):
    """Many keys at once at valid values (often their bounds), now and then an absurd one."""
    keys = data.draw(st.lists(st.sampled_from(KEYS), min_size=2, max_size=15, unique=True), label="keys")
    overrides = {}
    for key in keys:
        absurd = data.draw(st.integers(0, 29), label="one in thirty absurd") == 0
        overrides[key] = data.draw(st.sampled_from(extremes(key)) if absurd else valid_values(key), label=key.name)
    event("accepted: the startup ran" if check(render(overrides), overrides, startup) else "rejected")


def test_nan_and_inf_are_rejected_for_every_float_key():
    for key in (k for k in KEYS if k.kind is float):
        for literal in ("nan", "inf", "-inf", "+inf", "-nan"):
            text = f"[{'.'.join(key.path[:-1])}]\n{key.path[-1]} = {literal}\n"
            with pytest.raises(cfg.ConfigError, match=key.path[-1]):
                cfg.parse(text, "c.toml")


def test_a_socket_whose_option_fails_is_closed_so_the_context_terminates(tmp_path):
    """The socket factory, given a value zmq refuses (a TransportConfig built directly, without
    validation): the error is raised, and closing the Sockets still returns. The socket used to be
    left open, and ctx.term() waited for it forever (`pmctl up` hung, `down` failed)."""
    import subprocess
    import sys

    code = (
        "from pmshared.config import TransportConfig\n"
        "from pmshared.endpoints import Sockets\n"
        "sockets = Sockets(TransportConfig(max_message_bytes=2**63))\n"
        "try:\n"
        "    sockets.connect('record')\n"
        "except OverflowError as exc:\n"
        "    kept = exc  # a handler that keeps the exception keeps its frame, and the socket\n"
        "sockets.close()\n"
        "print('closed')\n"
    )
    repo = Path(__file__).resolve().parent.parent
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("Sockets.close() hung in ctx.term(): the failed socket was left open")
    assert proc.returncode == 0 and proc.stdout == "closed\n", proc
