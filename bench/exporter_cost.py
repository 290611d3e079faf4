"""The exporter's CPU while a Prometheus scrapes it every 15 s (issue 20: <= 0.05 % of a core).

A real `pmctl up` (the repository's Procfile, the exporter switched on, a temporary home) and a
real Prometheus server (Debian's `prometheus`) scraping it at ``--scrape-interval``; after a
warm-up, the exporter's CPU time (its process CPU-time clock: every thread, the short-lived scrape
threads included, in ns) over ``--seconds``, beside tiering's over the same window (a worker that
also wakes once a second for the live feed: the floor of any 1 Hz worker on this machine).
Without prometheus installed, the bench scrapes /metrics itself at the same interval and says so.

    .venv/bin/python bench/exporter_cost.py [--seconds 180] [--scrape-interval 15]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.pipeline_proc import cpu_s, load, thread_switches, threads_runtime_s  # noqa: E402
from bench.pipeline_run import PipelineRun  # noqa: E402
from tests.prometheus_helpers import PROMETHEUS, PrometheusServer, free_port, scrape  # noqa: E402

TARGET_PCT = 0.05
WARMUP_S = 20.0


def measure(pids: dict[str, int], seconds: float) -> tuple[dict[str, float], list[str]]:
    """% of one core of each pid over ``seconds`` (own CPU only), and the exporter's threads:
    each one's % and context switches a second; threads that came and went in the window (one
    per scrape) are what the process clock counted beyond the threads alive at both ends."""
    before = {name: cpu_s(pid, children=False) for name, pid in pids.items()}
    threads0, switches0 = threads_runtime_s(pids["exporter"]), thread_switches(pids["exporter"])
    start = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - start
    threads1, switches1 = threads_runtime_s(pids["exporter"]), thread_switches(pids["exporter"])
    pct = {name: 100 * (cpu_s(pid, children=False) - before[name]) / took for name, pid in pids.items()}
    lines, kept = [], 0.0
    for name in sorted(set(threads0) & set(threads1)):
        used = threads1[name] - threads0[name]
        kept += used
        wakes = (switches1.get(name, 0) - switches0.get(name, 0)) / took
        lines.append(f"  {name:<22} {100 * used / took:.4f} %  {wakes:.2f} switches/s")
    lines.append(f"  {'threads that came and went':<22} {pct['exporter'] - 100 * kept / took:.4f} %")
    return pct, lines


def self_scraper(port: int, every: float, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(every):
            scrape(port)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--scrape-interval", type=int, default=15, help="seconds")
    args = parser.parse_args()
    port = free_port()
    with PipelineRun(f"[exporter]\nenabled = true\nport = {port}\n", label="exporter cost") as run, \
            tempfile.TemporaryDirectory(prefix="pm-prom-") as prom_dir:
        run.start()
        pids = {n: p for n, (state, p) in run.workers().items() if n in ("exporter", "tiering")}
        stop = threading.Event()
        prometheus = None
        if PROMETHEUS:
            prometheus = PrometheusServer(Path(prom_dir), [f"127.0.0.1:{port}"], f"{args.scrape_interval}s")
            prometheus.start()
            scraper = f"prometheus ({PROMETHEUS}) every {args.scrape_interval} s"
        else:
            self_scraper(port, args.scrape_interval, stop)
            scraper = f"this bench's own client every {args.scrape_interval} s (prometheus is not installed)"
        try:
            time.sleep(WARMUP_S)
            load_before = load()
            pct, thread_lines = measure(pids, args.seconds)
            scrapes = None
            if prometheus is not None:
                result = prometheus.query('count_over_time(up{job="pause-monitor"}[10m])')
                scrapes = int(float(result[0]["value"][1])) if result else 0
        finally:
            stop.set()
            if prometheus is not None:
                prometheus.stop()
        print(f"scraped by {scraper}; window {args.seconds:.0f} s after {WARMUP_S:.0f} s warm-up; "
              f"load {load_before} -> {load()}" + (f"; {scrapes} scrapes in Prometheus" if scrapes is not None else ""))
        print(f"exporter: {pct['exporter']:.4f} % of a core (target <= {TARGET_PCT} %): "
              f"{'met' if pct['exporter'] <= TARGET_PCT else 'NOT met'}")
        print(f"tiering (same window, 1 Hz live feed, for scale): {pct['tiering']:.4f} % of a core")
        print("exporter by thread (schedstat run time; context switches: its wake-ups):")
        print("\n".join(thread_lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
