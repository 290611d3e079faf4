"""Scale: what the running pipeline costs per snapshot as the machine grows to 10,000 processes.

At each process count the pipeline (default config, 1 Hz) runs for a while; then:
- CPU per snapshot of the collector (whole process: sampling, encoding, sending, sentinel), of
  the scorer and of the whole pipeline, from /proc/PID/stat over the window divided by the
  snapshots taken (the live feed counts them);
- the rhythm: the largest gap between two live samples (must stay ~1 s: the snapshot fits the
  interval);
- the sampling step alone: ``LinuxBackend.sample()`` in this process, wall and CPU time (median
  of a few steady-state samples), as bench/bench_collector.py measures it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import zmq

from bench.pipeline_proc import cpu_s, load, process_count, with_children
from bench.pipeline_run import PipelineRun
from collector.linux import LinuxBackend
from pmshared import config as config_mod
from pmshared.endpoints import ENDPOINTS, Sockets


@dataclass
class ScalePoint:
    processes: int
    snapshots: int
    collector_ms: float  # CPU ms per snapshot, whole collector process
    scorer_ms: float
    pipeline_ms: float  # supervisor and every worker
    max_gap_s: float  # largest interval between two live samples
    sample_wall_ms: float  # LinuxBackend.sample() alone, in this process
    sample_cpu_ms: float
    load: str


def measure_point(run: PipelineRun, pids: dict[str, int], seconds: float) -> ScalePoint:
    pids = with_children(pids)  # the collector's sentinel process: its CPU is not the collector's
    sockets = Sockets(config_mod.load().transport)
    live = sockets.connect("live")
    codec = ENDPOINTS["live"].codec()
    poller = zmq.Poller()
    poller.register(live, zmq.POLLIN)
    stamps: list[float] = []
    counts: list[int] = []
    try:
        # Start counting at a live sample, so the window holds whole snapshots.
        while not poller.poll(3000):
            pass
        live.recv()
        c0 = {n: cpu_s(p) for n, p in pids.items()}
        t_first = time.monotonic()
        stamps.append(t_first)
        while time.monotonic() - t_first < seconds:
            if poller.poll(2000):
                sample = codec.decode(live.recv())
                stamps.append(time.monotonic())
                counts.append(sample.samples.process_count)
        c1 = {n: cpu_s(p) for n, p in pids.items()}
    finally:
        sockets.close()
    snaps = max(1, len(stamps) - 1)
    per = {n: (c1[n] - c0[n]) * 1000.0 / snaps for n in pids}
    gaps = [b - a for a, b in zip(stamps, stamps[1:])] or [float("nan")]

    backend = LinuxBackend()
    walls, cpus = [], []
    try:
        backend.sample()
        for _ in range(4):
            time.sleep(0.5)
            w, c = time.perf_counter(), time.process_time()
            backend.sample()
            walls.append((time.perf_counter() - w) * 1000.0)
            cpus.append((time.process_time() - c) * 1000.0)
    finally:
        backend.close()
    return ScalePoint(
        processes=int(statistics.median(counts)) if counts else process_count(),
        snapshots=snaps,
        collector_ms=per.get("collector", 0.0),
        scorer_ms=per.get("scorer", 0.0),
        pipeline_ms=sum(per.values()),
        max_gap_s=max(gaps),
        sample_wall_ms=statistics.median(walls[1:]),
        sample_cpu_ms=statistics.median(cpus[1:]),
        load=load(),
    )


def linear_fit(points: list[ScalePoint], attr: str) -> tuple[float, float]:
    """(µs per process, worst deviation of a point from the line through the first and last, %)."""
    a, b = points[0], points[-1]
    slope = (getattr(b, attr) - getattr(a, attr)) / max(1, b.processes - a.processes)
    worst = 0.0
    for p in points[1:-1]:
        predicted = getattr(a, attr) + slope * (p.processes - a.processes)
        worst = max(worst, abs(getattr(p, attr) - predicted) / predicted * 100.0)
    return slope * 1000.0, worst
