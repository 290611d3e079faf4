"""The exporter's state as Prometheus metric families (prometheus_client's custom-collector API).

One ``StateCollector`` is registered in a private ``CollectorRegistry`` (not the library's global
one: no python_gc/process series nobody asked for, nothing imported elsewhere leaks in). Its
``collect()`` runs on the scrape's thread: it copies what it needs under the state's lock and reads
the kernel figures (exporter.machine) outside it. ``pmctl export --textfile`` renders the same
families from a state it filled from the database and the supervisor.

Every name is listed in ``METRICS`` (tests/test_exporter_dashboard.py holds the Grafana dashboard
to it). PSI and load averages are left to node_exporter, which already exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from exporter import machine
from exporter.state import ExporterState, Histogram

P = "pause_monitor_"
METRICS = {
    # name (as scraped; counters end in _total, histograms add _bucket/_sum/_count): help
    P + "pauses_total": "Pauses detected, by the cause forensics found (none: no bundle in time).",
    P + "pause_duration_seconds": "Length of each pause (time suspended excluded).",
    P + "suspended_seconds_total": "Time the machine has spent suspended since boot (excluded from pauses).",
    P + "tier": "Current tier: 1 sentinel, 2 elevated, 3 critical.",
    P + "stress_score": "Current stress score the tiers follow (0-100).",
    P + "stress_resource_score": "Current machine stress per resource (pressure model, 0-100).",
    P + "last_sample_timestamp_seconds": "Wall-clock time of the newest live sample.",
    P + "events_total": "Escalation events closed, by the highest tier they reached.",
    P + "culprit_seconds_total": "Seconds a process group was the top culprit while tier >= 2.",
    P + "sentinel_lateness_seconds": "The pause sentinel's worst wake-up lateness in each sample interval.",
    P + "worker_up": "1 while the supervisor reports the worker running.",
    P + "worker_restarts_total": "Times the supervisor restarted the worker.",
    P + "worker_dropped_total": "Messages a worker dropped or lost, by its counter's name (since it started).",
    P + "live_missed_total": "Live-feed messages the exporter missed (gaps in the sequence numbers).",
    P + "cpu_seconds_total": "CPU time of the monitor's own processes and their children (user + system) since each started.",
}


def _counter(name: str, labels: list[str] | None = None) -> CounterMetricFamily:
    # prometheus_client adds "_total" to a counter family's samples itself.
    return CounterMetricFamily(name.removesuffix("_total"), METRICS[name], labels=labels)


def _gauge(name: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, METRICS[name], labels=labels)


def _histogram(name: str, hist: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, METRICS[name])
    family.add_metric([], hist.cumulative(), hist.sum)
    return family


class StateCollector(Collector):
    """Renders an ``ExporterState``; ``cpu_of`` and ``suspended`` are the kernel reads (seams)."""

    def __init__(self, state: ExporterState, *, live: bool = True,
                 cpu_of: Callable[[int, bool], float | None] | None = None,
                 suspended: Callable[[], float | None] = machine.suspended_seconds) -> None:
        self.state = state
        self.live = live  # False for the textfile: no live feed, so no lateness or culprit series
        self.cpu_of, self.suspended = cpu_of or machine.WithChildren(), suspended

    def collect(self) -> Iterator[Metric]:
        s = self.state
        pids = s.pids()
        with s.lock:
            yield from self._database(s)
            yield from self._now(s)
            if self.live:
                yield from self._live(s)
            yield from self._health(s)
        cpu = _counter(P + "cpu_seconds_total", ["process"])
        for name, pid in sorted(pids.items()):
            seconds = self.cpu_of(pid, name != "supervisor")  # its children are the workers
            if seconds is not None:
                cpu.add_metric([name], seconds)
        yield cpu
        suspended = self.suspended()
        if suspended is not None:
            family = _counter(P + "suspended_seconds_total")
            family.add_metric([], suspended)
            yield family

    @staticmethod
    def _database(s: ExporterState) -> Iterator[Metric]:
        pauses = _counter(P + "pauses_total", ["cause"])
        for cause, n in sorted(s.pauses_by_cause.items()):
            pauses.add_metric([cause], n)
        yield pauses
        yield _histogram(P + "pause_duration_seconds", s.pause_durations)
        events = _counter(P + "events_total", ["peak_tier"])
        for tier, n in sorted(s.events_by_peak_tier.items()):
            events.add_metric([str(tier)], n)
        yield events

    @staticmethod
    def _now(s: ExporterState) -> Iterator[Metric]:
        """Gauges of the newest sample (absent until one arrived: no made-up tier 1)."""
        if s.tier is None:
            return
        for name, value in ((P + "tier", s.tier), (P + "stress_score", s.stress),
                            (P + "last_sample_timestamp_seconds", s.last_sample_at)):
            family = _gauge(name)
            family.add_metric([], value)
            yield family
        parts = _gauge(P + "stress_resource_score", ["resource"])
        for resource, score in sorted(s.stress_by_resource.items()):
            parts.add_metric([resource], score)
        yield parts

    @staticmethod
    def _live(s: ExporterState) -> Iterator[Metric]:
        culprits = _counter(P + "culprit_seconds_total", ["group"])
        for group, seconds in sorted(s.culprit_seconds.items()):
            culprits.add_metric([group], seconds)
        yield culprits
        yield _histogram(P + "sentinel_lateness_seconds", s.lateness)
        missed = _counter(P + "live_missed_total")
        missed.add_metric([], s.live_gaps.missed)
        yield missed

    @staticmethod
    def _health(s: ExporterState) -> Iterator[Metric]:
        up = _gauge(P + "worker_up", ["worker"])
        restarts = _counter(P + "worker_restarts_total", ["worker"])
        dropped = _counter(P + "worker_dropped_total", ["worker", "counter"])
        for name, w in sorted(s.workers.items()):
            up.add_metric([name], 1 if w.up else 0)
            restarts.add_metric([name], w.restarts)
            for counter, n in sorted(w.dropped.items()):
                dropped.add_metric([name, counter], n)
        yield from (up, restarts, dropped)


def registry_for(state: ExporterState, **kwargs) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(state, **kwargs))
    return registry
