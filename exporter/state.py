"""What the exporter knows, as plain values: pure logic, no sockets, no clock, no HTTP.

The main loop feeds it (``on_live``, ``on_lifecycle``, ``on_status``, ``on_pause``, ``on_event``)
and ``exporter.families`` turns it into Prometheus metric families at scrape time. The scrape runs
on the HTTP server's thread, so every change and every read holds ``lock`` (briefly: a sample is a
few dict updates).

Cardinality is bounded by construction: no pid label anywhere; culprit groups are the first
``MAX_GROUPS`` seen (later ones add to ``other``); workers, their drop counters and stress
resources are capped too. A group name is a process command (chosen by whoever runs the process):
it is cut, kernel-thread suffixes dropped, and made inert before it becomes a label value.
"""

from __future__ import annotations

import bisect
import re
import threading
import typing
from dataclasses import dataclass, field

from exporter.live import LiveView, Samples
from pmshared import messages as m
from pmshared.safetext import inert

# Pause durations, seconds: the sentinel's threshold (200 ms by default, 70 ms at the lowest
# useful setting) up to a freeze long enough that a user reached for the power button.
PAUSE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The sentinel's worst lateness of each interval, seconds: a tick's jitter (1-10 ms) to a pause.
LATENESS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
# Every label value a counter can take where the set is known, present at 0 from the start: a
# series that appears already at 1 loses that first increment to rate() and increase().
PAUSE_CAUSES = (*typing.get_args(m.PauseCause), "none")  # none: no forensics bundle in time
PEAK_TIERS = (2, 3)  # an event is a stay above tier 1
MAX_GROUPS = 20  # culprit groups with a series of their own; the rest count as OTHER
OTHER = "other"
MAX_GROUP_CHARS = 40
MAX_WORKERS = 32  # worker names (the Procfile's few, plus "supervisor"); more are ignored
MAX_DROP_COUNTERS = 8  # per worker
MAX_RESOURCES = 16  # stress parts by resource (the pressure model has 7)
# A sample's interval counted toward culprit seconds at most this long: the sample after a pause
# spans it, and the machine was stalled, not busy with the culprit, for most of it.
MAX_SAMPLE_S = 10.0
# A worker's counters that say something was lost (records, frames, pauses, bad input).
DROP_COUNTER = re.compile(r"dropped|lost|bad_input|rejected")
# Processes whose names carry a per-instance suffix ("kworker/u8:2", "irq/35-eth0").
_KERNEL_SUFFIX = re.compile(r"[/:].*$")
_LABEL_SAFE = re.compile(r"[^\w.@+ -]")


class Histogram:
    """Cumulative-on-output bucket counts, a sum and a count (Prometheus histogram semantics)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """[(le, count <= le)] with "+Inf" last, as prometheus_client's HistogramMetricFamily takes."""
        out, running = [], 0
        for bound, n in zip([*map(_le, self.bounds), "+Inf"], self.counts):
            running += n
            out.append((bound, running))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


def culprit_group(command: str) -> str:
    """The label a process command is counted under: kernel-thread instance suffixes dropped
    ("kworker/u8:2" -> "kworker"), anything but word characters and a few separators replaced,
    cut to MAX_GROUP_CHARS; never empty."""
    name = _KERNEL_SUFFIX.sub("", command) or command
    name = _LABEL_SAFE.sub("_", inert(name)).strip()
    return name[:MAX_GROUP_CHARS] or "_"


@dataclass
class WorkerHealth:
    up: bool = False
    restarts: int = 0
    pid: int | None = None
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass
class Gaps:
    """Messages missed on one subscription, from the senders' sequence numbers."""

    incarnation: str | None = None
    seq: int = 0
    missed: int = 0

    def see(self, msg: m.Envelope) -> None:
        if msg.incarnation == self.incarnation and msg.seq > self.seq + 1:
            self.missed += msg.seq - self.seq - 1
        self.incarnation, self.seq = msg.incarnation, msg.seq


class ExporterState:
    """Every value the exporter publishes; see the module docstring for the rules."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # From the database (totals at start, then each new row once)
        self.pauses_by_cause: dict[str, int] = dict.fromkeys(PAUSE_CAUSES, 0)
        self.pause_durations = Histogram(PAUSE_BUCKETS)
        self.events_by_peak_tier: dict[int, int] = dict.fromkeys(PEAK_TIERS, 0)
        # From the live feed
        self.tier: int | None = None
        self.stress: int | None = None
        self.stress_by_resource: dict[str, int] = {}
        self._resource_keys: dict[str, str] = {}  # resource name as sent -> its label value
        self.last_sample_at: float | None = None
        self.lateness = Histogram(LATENESS_BUCKETS)
        self.culprit_seconds: dict[str, float] = {}
        self.live_gaps = Gaps()
        self.lifecycle_gaps = Gaps()
        self._sentinel_pauses: int | None = None
        self._event_key: str | None = None
        # From the supervisor (status replies and lifecycle events)
        self.workers: dict[str, WorkerHealth] = {}
        self.supervisor_pid: int | None = None
        self.unsettled = True  # the supervisor's status is worth asking for again soon

    # -- the database ----------------------------------------------------------------------------
    def on_pause(self, cause: str, duration_ms: float) -> None:
        with self.lock:
            cause = culprit_group(cause)
            self.pauses_by_cause[cause] = self.pauses_by_cause.get(cause, 0) + 1
            self.pause_durations.observe(duration_ms / 1000.0)

    def on_event(self, peak_tier: int) -> None:
        with self.lock:
            self.events_by_peak_tier[peak_tier] = self.events_by_peak_tier.get(peak_tier, 0) + 1

    # -- the live feed ---------------------------------------------------------------------------
    def on_live(self, live: m.LiveSample | LiveView) -> bool:
        """Take one live sample (the full message, or the exporter's lean view of it:
        exporter.live); True when the database may hold something new (the sentinel counted a
        pause, or an event ended) and is worth reading now rather than later."""
        samples = live.samples
        with self.lock:
            self.live_gaps.see(live)
            self.tier, self.stress = live.state.tier, samples.max_score
            self.last_sample_at = samples.timestamp
            for resource, score in samples.stress.items():
                key = self._resource_key(resource)
                if key in self.stress_by_resource or len(self.stress_by_resource) < MAX_RESOURCES:
                    self.stress_by_resource[key] = score
            sentinel = samples.sentinel
            if sentinel is not None and sentinel.interval_max_ms is not None:
                self.lateness.observe(sentinel.interval_max_ms / 1000.0)
            if live.state.tier >= 2 and samples.rogues:
                self._count_culprit(samples)
            news = False
            if sentinel is not None:
                news = self._sentinel_pauses is not None and sentinel.pauses != self._sentinel_pauses
                self._sentinel_pauses = sentinel.pauses
            if self._event_key is not None and live.state.event_key != self._event_key:
                news = True
            self._event_key = live.state.event_key
            return news

    def _resource_key(self, resource: str) -> str:
        """``culprit_group(resource)``, remembered: the same few resource names come every second
        (two regex passes each, most of a sample's work here), so each is worked out once. Bounded
        like the series: at most MAX_RESOURCES names are remembered, any other is worked out anew."""
        key = self._resource_keys.get(resource)
        if key is None:
            key = culprit_group(resource)
            if len(self._resource_keys) < MAX_RESOURCES:
                self._resource_keys[resource] = key
        return key

    def on_snapshot(self, reply: m.SnapshotReply) -> None:
        """Tier and stress from tiering's snapshot (``pmctl export``, which has no live feed)."""
        with self.lock:
            self.tier = reply.state.tier
            if reply.ring:
                samples = reply.ring[-1].samples
                self.stress, self.last_sample_at = samples.max_score, samples.timestamp
                for resource, score in list(samples.stress.items())[:MAX_RESOURCES]:
                    self.stress_by_resource[culprit_group(resource)] = score

    def _count_culprit(self, samples: m.ProcessSamples | Samples) -> None:
        top = max(samples.rogues, key=lambda r: r.score)
        if top.score <= 0:
            return
        group = culprit_group(top.command)
        if group not in self.culprit_seconds and len(self.culprit_seconds) >= MAX_GROUPS:
            group = OTHER
        seconds = min(max(samples.elapsed_ms, 0.0) / 1000.0, MAX_SAMPLE_S)
        self.culprit_seconds[group] = self.culprit_seconds.get(group, 0.0) + seconds

    # -- the supervisor --------------------------------------------------------------------------
    def _worker(self, name: str) -> WorkerHealth | None:
        name = culprit_group(name)
        if name not in self.workers and len(self.workers) >= MAX_WORKERS:
            return None
        return self.workers.setdefault(name, WorkerHealth())

    def on_status(self, reply: m.ControlReply) -> None:
        with self.lock:
            self.supervisor_pid = reply.supervisor_pid
            # A worker starting, backing off or stopping is about to change: ask again soon.
            self.unsettled = any(w.state in ("starting", "backoff", "stopping") for w in reply.workers)
            for status in reply.workers:
                health = self._worker(status.name)
                if health is None:
                    continue
                health.up = status.state == "running"
                health.pid = status.pid
                # Restarts only grow while we run: a lifecycle event may have counted one already.
                health.restarts = max(health.restarts, status.restarts)
                for name, value in status.counters.items():
                    if DROP_COUNTER.search(name) and (name in health.dropped
                                                       or len(health.dropped) < MAX_DROP_COUNTERS):
                        health.dropped[culprit_group(name)] = value

    def on_lifecycle(self, event: m.Lifecycle) -> None:
        with self.lock:
            self.lifecycle_gaps.see(event)
            if event.worker == "supervisor":
                return
            health = self._worker(event.worker)
            if health is None:
                return
            # Up means running (heartbeating), which only the status tells: a spawn asks for it.
            self.unsettled = True
            if event.kind == "spawn":
                health.pid, health.dropped = event.pid, {}
            elif event.kind == "restart":
                health.restarts += 1
            else:  # exit, failed, watchdog_kill, stop
                health.up = False

    def pids(self) -> dict[str, int]:
        """The monitor's own processes by name (the supervisor and every worker running)."""
        with self.lock:
            out = {name: w.pid for name, w in self.workers.items() if w.up and w.pid is not None}
            if self.supervisor_pid is not None:
                out["supervisor"] = self.supervisor_pid
            return out
