"""The exporter as a real process: its HTTP side under a scrape storm and hostile clients while its
heartbeat stays on time and its memory stays flat; off by default (the supervisor does not start
it, and run by hand it exits 0); a port in use is one line and exit 1.

The storm test binds the health endpoint itself (tests/hostile_helpers.World), as the supervisor
would, and timestamps every heartbeat: a gap longer than the supervisor's allowance
(missed_heartbeats x the interval the last heartbeat announced, never less than
heartbeat_interval_s) is what would get the worker killed as hung.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time

import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families

from exporter.httpd import DEADLINE_S, MAX_CLIENTS
from pmshared import messages as m
from pmshared.codec import Stamper
from pmshared.endpoints import ENDPOINTS
from tests.hostile_helpers import World
from tests.prometheus_helpers import NO_PROMETHEUS, PROMETHEUS, PrometheusServer, free_port, scrape
from tests.procutil import wait_for
from tests.supervisor_helpers import Pipeline, fake, pid_gone, pipeline  # noqa: F401

pytestmark = pytest.mark.slow

HEARTBEAT_S = 0.5
MISSED = 3


def _config(port: int, enabled: bool = True) -> str:
    return (f"[supervisor]\nheartbeat_interval_s = {HEARTBEAT_S}\nmissed_heartbeats = {MISSED}\n"
            f"[exporter]\nenabled = {str(enabled).lower()}\nport = {port}\n")


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _threads(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads")


class Beats:
    """Arrival times of the exporter's heartbeats, read from the health SUB between scrapes.

    A heartbeat is seen when the test next looks, so a gap seen is the real one plus at most the
    longest time between two looks (``worst_look``): on this shared machine the test itself is
    sometimes not run for seconds. That much is allowed on top of the supervisor's allowance,
    as the supervisor itself forgives heartbeats missed while the whole machine stalled."""

    def __init__(self, world: World) -> None:
        self.world, self.times, self.intervals = world, [], []
        self.counters: dict[str, int] = {}  # the newest heartbeat's
        self.codec = ENDPOINTS["health"].codec()
        self.last_look: float | None = None
        self.worst_look = 0.0

    def pump(self) -> None:
        now = time.monotonic()
        if self.last_look is not None:
            self.worst_look = max(self.worst_look, now - self.last_look)
        self.last_look = now
        while True:
            try:
                frame = self.world.health.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            hb = self.codec.decode(frame)
            if hb.sender == "exporter":
                self.times.append(time.monotonic())
                self.intervals.append(max(HEARTBEAT_S, hb.interval_s or 0.0))
                self.counters = hb.counters

    def worst_gap(self) -> float:
        return max(b - a for a, b in zip(self.times, self.times[1:]))

    def assert_on_time(self) -> None:
        """Each gap within the supervisor's allowance after the heartbeat that began it."""
        for a, b, every in zip(self.times, self.times[1:], self.intervals):
            assert b - a < MISSED * every + self.worst_look, (
                f"heartbeats {b - a:.2f} s apart, allowed {MISSED * every:.2f} s (looked every "
                f"{self.worst_look:.2f} s at worst): the supervisor would kill it")


@pytest.fixture
def world():
    w = World(own_health=True)
    try:
        yield w
    finally:
        w.close()


def _start(world: World, port: int):
    world.config.write_text(_config(port))
    live = world.socket(zmq.PUB)
    live.bind(world.addr("live"))
    proc = world.start("exporter")
    wait_for(lambda: _answers(port, world), 20, lambda: f"the exporter serving; log:\n{world.log('exporter')}")
    return proc, live


def _answers(port: int, world: World) -> bool:
    world.alive("exporter")
    try:
        return "pause_monitor_pauses_total" in scrape(port, 1.0)
    except OSError:
        return False


def _publish(live: zmq.Socket, stamp: Stamper, tier: int) -> None:
    """One live sample whose top rogue has a hostile name (an escape sequence and a newline)."""
    rogue = m.ProcessScore(pid=7, command="hog\x1b[31m\n", cpu=99.0, state="running", mem=0, cmprs=None,
                           pageins=None, csw=None, sysbsd=None, threads=1, score=60, categories=["cpu"])
    samples = Stamper("scorer", "test")(m.ProcessSamples, timestamp=time.time(), elapsed_ms=1000.0,
                                        process_count=1, max_score=60, rogues=[rogue])
    live.send(ENDPOINTS["live"].codec().encode(stamp(m.LiveSample, samples=samples, state=m.TierState(tier=tier))))


def test_scrapes_in_a_tight_loop_leave_the_heartbeat_on_time_and_memory_flat(world: World):
    port = free_port()
    proc, live = _start(world, port)
    beats, stamp = Beats(world), Stamper("tiering", "test-1")
    scrapes, started, rss = 0, time.monotonic(), {}
    next_sample = started
    while (elapsed := time.monotonic() - started) < 8.0:
        if time.monotonic() >= next_sample:  # the live feed keeps coming at 1 Hz meanwhile
            _publish(live, stamp, tier=2)
            next_sample += 1.0
        body = scrape(port)  # far more often than every 100 ms: as fast as the client can
        scrapes += 1
        beats.pump()
        if elapsed > 2.0 and "warm" not in rss:
            rss["warm"] = _rss_kib(proc.pid)
    rss["end"] = _rss_kib(proc.pid)
    world.alive("exporter")
    assert scrapes >= 80, scrapes  # at least one every 100 ms
    assert 'pause_monitor_culprit_seconds_total{group="hog___31m_J"}' in body, body  # made inert
    assert "pause_monitor_live_missed_total 0.0" in body
    # Every gap between two heartbeats is checked (a missing one is a long gap); the count only
    # says there were gaps to check (the whole machine, exporter included, may stall for seconds).
    assert len(beats.times) >= 4, beats.times
    print(f"{scrapes} scrapes in 8 s; worst heartbeat gap {beats.worst_gap():.3f} s; RSS {rss}")
    beats.assert_on_time()
    assert rss["end"] - rss["warm"] < 2048, rss


def _publish_late(live: zmq.Socket, stamp: Stamper, late_ms: float) -> None:
    """One live sample whose sentinel saw ``late_ms`` of lateness (one lateness observation)."""
    sentinel = m.SentinelStats(tick_ms=20, window_s=60, interval_max_ms=late_ms)
    samples = Stamper("scorer", "test")(m.ProcessSamples, timestamp=time.time(), elapsed_ms=1000.0,
                                        process_count=1, max_score=0, rogues=[], sentinel=sentinel)
    live.send(ENDPOINTS["live"].codec().encode(stamp(m.LiveSample, samples=samples, state=m.TierState(tier=1))))


JOIN_MS = 1.0  # the samples sent until the SUB has joined: the 1 ms bucket, apart from the counted ones


def _lateness(port: int) -> tuple[float, float, float, float]:
    """From one scrape: (observations above JOIN_MS, their sum in seconds, live messages missed,
    all observations)."""
    values = {(s.name, s.labels.get("le")): s.value for f in text_string_to_metric_families(scrape(port))
              for s in f.samples if s.name.startswith("pause_monitor_sentinel_lateness") or "missed" in s.name}
    name = "pause_monitor_sentinel_lateness_seconds"
    joined = values[(name + "_bucket", repr(JOIN_MS / 1000))]
    return (values[(name + "_count", None)] - joined, values[(name + "_sum", None)] - joined * JOIN_MS / 1000,
            values[("pause_monitor_live_missed_total", None)], values[(name + "_count", None)])


def test_between_its_heartbeats_a_scrape_sees_every_sample_sent_before_it_and_none_is_lost(world: World):
    """The exporter's loop wakes every 5 s (its own heartbeat interval, past start-up) and takes the
    live feed in lazily; a scrape has it catch up first (exporter.catchup). Checked in the middle of
    a heartbeat interval (its next wake-up is 3.75 s or more away), with bursts beyond one
    wake-up's former budget (64) and a burst left for the loop's own wake-up: every scrape sees
    exactly what was sent before it, and the heartbeat's counters agree."""
    port = free_port()
    proc, live = _start(world, port)
    beats, stamp = Beats(world), Stamper("tiering", "test-1")
    # The SUB joins asynchronously: samples (in their own bucket) until one is seen.
    wait_for(lambda: (_publish_late(live, stamp, JOIN_MS), _lateness(port)[3] > 0)[1], 20, "the live feed joined")

    def slow_heartbeat() -> bool:
        beats.pump()
        return bool(beats.intervals) and beats.intervals[-1] == 5.0

    wait_for(slow_heartbeat, 30, "a heartbeat announcing 5 s (start-up over)")
    seen = len(beats.times)
    wait_for(lambda: (beats.pump(), len(beats.times) > seen)[1], 10, "the next heartbeat")
    beat_at = beats.times[-1]
    assert _lateness(port)[:3] == (0, pytest.approx(0), 0)
    sent, total = 0, 0.0
    for burst in (100, 1, 150):
        for i in range(burst):
            late_ms = 2.0 + i % 7
            _publish_late(live, stamp, late_ms)
            sent, total = sent + 1, total + late_ms / 1000
        wait_for(lambda: _lateness(port)[0] == sent, 2.0, lambda: f"{sent} observations; scraped {_lateness(port)}")
        assert time.monotonic() - beat_at < 5.0 * 0.75, "too slow to tell a catch-up from a heartbeat's wake-up"
        assert _lateness(port)[1:3] == (pytest.approx(total), 0)
    # A burst no scrape asks for: the loop takes it in on its own next wake-up (its heartbeat).
    for _ in range(200):
        _publish_late(live, stamp, 4.0)
    sent, total = sent + 200, total + 0.8
    seen = len(beats.times)
    wait_for(lambda: (beats.pump(), len(beats.times) >= seen + 2)[1], 20, "two more heartbeats")
    counted, counted_sum, missed, everything = _lateness(port)
    assert (counted, counted_sum, missed) == (sent, pytest.approx(total), 0)
    assert beats.counters["live_received"] == everything, beats.counters
    beats.assert_on_time()
    world.alive("exporter")


@pytest.mark.skipif(PROMETHEUS is None, reason=NO_PROMETHEUS)
def test_a_real_prometheus_scraping_every_100_ms_finds_it_up_every_time(world: World, tmp_path):
    port = free_port()
    proc, live = _start(world, port)
    beats, stamp = Beats(world), Stamper("tiering", "test-1")
    prometheus = PrometheusServer(tmp_path, [f"127.0.0.1:{port}"], scrape_interval="100ms")
    prometheus.start()
    try:
        wait_for(lambda: prometheus.query('up{job="pause-monitor"}'), 10, "the first scrape")
        started = time.monotonic()
        while time.monotonic() - started < 10.0:
            _publish(live, stamp, tier=2)
            beats.pump()
            world.alive("exporter")
            time.sleep(0.2)
        scrapes = int(float(prometheus.query('count_over_time(up{job="pause-monitor"}[10s])')[0]["value"][1]))
        answered = float(prometheus.query('sum_over_time(up{job="pause-monitor"}[10s])')[0]["value"][1])
        slowest = prometheus.query('max_over_time(scrape_duration_seconds{job="pause-monitor"}[10s])')[0]["value"][1]
        # Still serving afterwards: the next scrapes are answered.
        wait_for(lambda: prometheus.query('up{job="pause-monitor"}')[0]["value"][1] == "1", 10, "up again")
    finally:
        prometheus.stop()
    print(f"{scrapes} scrapes by Prometheus in 10 s, {answered:.0f} answered within its 100 ms timeout "
          f"(slowest {float(slowest) * 1000:.0f} ms); worst heartbeat gap {beats.worst_gap():.3f} s "
          f"(looked every {beats.worst_look:.3f} s at worst)")
    world.alive("exporter")
    # Prometheus's timeout equals its interval: a scrape this shared machine (at times at load 6 on
    # 2 cores) delayed past 100 ms counts as down. A hung or dead exporter answers none; this one
    # must answer most, and keep its heartbeat.
    assert scrapes >= 30 and answered >= 0.5 * scrapes, (scrapes, answered)
    beats.assert_on_time()


def test_hostile_clients_hold_no_more_than_a_few_threads_and_only_for_a_few_seconds(world: World):
    port = free_port()
    proc, _live = _start(world, port)
    beats = Beats(world)
    baseline_threads = _threads(proc.pid)
    # A slowloris crowd: connections that send a byte now and then and never finish a request,
    # one that sends a head far too big, and one that asks and never reads the answer.
    crowd = [socket.create_connection(("127.0.0.1", port)) for _ in range(3 * MAX_CLIENTS)]
    try:
        big = socket.create_connection(("127.0.0.1", port))
        crowd.append(big)
        threading.Thread(target=lambda: _send_quietly(big, b"GET /" + b"x" * 100_000), daemon=True).start()
        started = time.monotonic()
        while time.monotonic() - started < DEADLINE_S + 2:
            for conn in crowd:
                _send_quietly(conn, b"G")
            beats.pump()
            world.alive("exporter")
            assert _threads(proc.pid) <= baseline_threads + MAX_CLIENTS
            time.sleep(0.1)
    finally:
        for conn in crowd:
            conn.close()
    beats.assert_on_time()
    # Every hostile connection was cut at its deadline: scrapes are answered again, threads gone.
    assert "pause_monitor_pauses_total" in scrape(port)
    wait_for(lambda: _threads(proc.pid) <= baseline_threads, 5, "the scrape threads to end")


def _send_quietly(conn: socket.socket, data: bytes) -> None:
    try:
        conn.sendall(data)
    except OSError:
        pass  # the server cut it: that is the point


def test_a_port_in_use_is_one_line_and_exit_1(world: World):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        world.config.write_text(_config(taken.getsockname()[1]))
        proc = world.start("exporter")
        assert proc.wait(20) == 1
    errors = [line for line in world.log("exporter").splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot listen on 127.0.0.1" in errors[0], world.log("exporter")
    assert "Traceback" not in world.log("exporter")


def test_off_by_default_run_by_hand_it_exits_0_quietly(world: World):
    world.config.write_text("")
    proc = world.start("exporter")
    assert proc.wait(20) == 0
    assert "enabled = false" in world.log("exporter") and "Traceback" not in world.log("exporter")


def test_off_by_default_the_supervisor_does_not_start_it(pipeline: Pipeline):
    pipeline.config.write_text("[supervisor]\ngrace_period_s = 3.0\n")
    pipeline.start(default_procfile=True)
    workers = pipeline.wait_running(["collector", "scorer", "tiering", "forensics", "recorder"], timeout=30)
    assert "exporter" not in workers
    assert "exporter: off in the config, not started" in pipeline.output()


def test_up_with_only_the_switched_off_exporter_is_a_usage_error(pipeline: Pipeline):
    pipeline.config.write_text("")
    proc = pipeline.start("--only", "exporter", default_procfile=True)
    assert pipeline.wait_exit() == 2
    assert "error: nothing to run: exporter switched off in the config" in pipeline.output()
    assert proc.returncode == 2


def test_the_watchdog_honours_the_exporters_own_interval_and_still_restarts_it_when_it_hangs(pipeline: Pipeline):
    """Past start-up the exporter heartbeats every 5 s against a configured 0.25 s (allowance 4 x
    0.25 s = 1 s): the supervisor lets it be silent that long, unrestarted, and still replaces it
    once it hangs (SIGSTOP), after 4 x 5 s without a heartbeat."""
    port = free_port()
    pipeline.write_config()  # the fast supervisor of the supervisor tests
    with open(pipeline.config, "a") as config:
        config.write(f"[exporter]\nenabled = true\nport = {port}\n")
    pipeline.write_procfile({"exporter": "python -m exporter", "fine": fake("fine")})
    pipeline.start()
    old = pipeline.wait_running(["exporter", "fine"], timeout=30)["exporter"].pid

    def silent_beyond_the_configured_allowance() -> bool:
        w = pipeline.workers()["exporter"]
        assert (w.pid, w.restarts) == (old, 0), f"restarted while healthy; output:\n{pipeline.output()}"
        return w.state == "running" and (w.last_heartbeat_age_s or 0.0) > 2.0

    wait_for(silent_beyond_the_configured_allowance, 30, "an exporter silent for 2 s and left running")
    os.kill(old, signal.SIGSTOP)

    def replaced() -> dict | None:
        w = pipeline.workers().get("exporter")
        return w if w and w.pid not in (None, old) and w.state == "running" else None

    new = wait_for(replaced, 40, lambda: f"the exporter replaced; output:\n{pipeline.output()}")
    assert new.restarts == 1 and pid_gone(old)
    hung = re.search(rf"exporter \(pid {old}\) hung \(no heartbeat for ([\d.]+) s\)", pipeline.output())
    assert hung and float(hung.group(1)) >= 4 * 5.0, pipeline.output()
