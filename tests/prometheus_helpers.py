"""A real Prometheus server for tests (Debian's ``prometheus``, installed by .ci/setup), a free
loopback port, and scraping /metrics; also used by bench/exporter_cost.py (so no pytest here).

``PrometheusServer`` writes its own config (one job scraping the given targets), keeps its TSDB
in a directory the caller owns, listens on a loopback port of its own, and is killed (its whole
process group) by ``stop()``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from pmshared import procgroup
from tests.procutil import wait_for

PROMETHEUS = shutil.which("prometheus")
NO_PROMETHEUS = "prometheus is not installed (Debian package `prometheus`; .ci/setup installs it as root)"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.read()


def scrape(port: int, timeout: float = 2.0) -> str:
    return get(f"http://127.0.0.1:{port}/metrics", timeout).decode()


class PrometheusServer:
    def __init__(self, workdir: Path, targets: list[str], scrape_interval: str = "1s") -> None:
        self.dir = workdir
        self.port = free_port()
        self.config = workdir / "prometheus.yml"
        self.config.write_text(
            "global:\n"
            f"  scrape_interval: {scrape_interval}\n"
            f"  scrape_timeout: {scrape_interval}\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: pause-monitor\n"
            f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n"
        )
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        assert PROMETHEUS is not None, NO_PROMETHEUS
        with open(self.log, "ab") as log:
            self.proc = procgroup.start([
                PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
            ], stdout=log, stderr=log)
        wait_for(self._ready, timeout, lambda: f"prometheus ready; its log:\n{self.log.read_text()[-2000:]}",
                 interval=0.2)

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
        try:
            return get(f"http://127.0.0.1:{self.port}/-/ready", 1.0).startswith(b"Prometheus")
        except (urllib.error.URLError, OSError):
            return False

    def query(self, expr: str) -> list[dict]:
        """The instant vector ``expr`` evaluates to now (Prometheus's HTTP API, /api/v1/query)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = json.loads(get(url))
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def stop(self) -> None:
        if self.proc is not None:
            procgroup.stop(self.proc, grace_s=5.0)
            self.proc = None


DASHBOARD = Path(__file__).resolve().parent.parent / "dashboards" / "pause-monitor.json"
# What Grafana puts in for the dashboard's variables, for running its queries without Grafana.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$instance": ".*", "$job": "pause-monitor"}


def dashboard_panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows too."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_exprs(substitute: bool = False) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the dashboard; variables filled in on request."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [(p["title"], t["expr"]) for p in dashboard_panels(dashboard) for t in p.get("targets", [])]
    if substitute:
        for name, value in GRAFANA_VARIABLES.items():
            exprs = [(title, expr.replace(name, value)) for title, expr in exprs]
    return exprs
