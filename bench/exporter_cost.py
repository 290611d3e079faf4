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

from bench.pipeline_proc import cpu_s, load  # noqa: E402
from bench.pipeline_run import PipelineRun  # noqa: E402
from tests.prometheus_helpers import PROMETHEUS, PrometheusServer, free_port, scrape  # noqa: E402

TARGET_PCT = 0.05
WARMUP_S = 20.0


def measure(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """% of one core of each pid over ``seconds`` (own CPU only)."""
    before = {name: cpu_s(pid, children=False) for name, pid in pids.items()}
    start = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - start
    return {name: 100 * (cpu_s(pid, children=False) - before[name]) / took for name, pid in pids.items()}


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
            pct = measure(pids, args.seconds)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
