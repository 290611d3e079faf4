"""The Grafana dashboard (dashboards/pause-monitor.json) parses, has the panels issue 20 asks for,
and every metric its queries name is one the exporter really exposes (rendered here from a state
with every series present). tests/e2e/test_exporter_prometheus.py runs every query against a
real Prometheus scraping the real exporter.
"""

from __future__ import annotations

import json
import re

from prometheus_client import generate_latest

from exporter.families import registry_for
from exporter.state import ExporterState
from pmshared import messages as m
from pmshared.codec import Stamper
from tests.prometheus_helpers import DASHBOARD, dashboard_exprs, dashboard_panels

METRIC = re.compile(r"\b(pause_monitor_\w+)")


def exposed_names() -> set[str]:
    state = ExporterState()
    stamp = Stamper("t", "t")
    rogue = m.ProcessScore(pid=1, command="hog", cpu=99.0, state="running", mem=0, cmprs=None, pageins=None,
                           csw=None, sysbsd=None, threads=1, score=80, categories=["cpu"])
    samples = stamp(m.ProcessSamples, timestamp=1.0, elapsed_ms=1000.0, process_count=1, max_score=80,
                    rogues=[rogue], stress={"cpu": 80},
                    sentinel=m.SentinelStats(tick_ms=20, window_s=60, interval_max_ms=3.0))
    state.on_live(stamp(m.LiveSample, samples=samples, state=m.TierState(tier=3)))
    state.on_pause("cpu", 1000.0)
    state.on_event(3)
    state.on_status(stamp(m.ControlReply, ok=True, supervisor_pid=1, started_at=1.0, workers=[
        m.WorkerStatus(name="collector", state="running", pid=2, counters={"dropped_raw": 1})]))
    text = generate_latest(registry_for(state, cpu_of=lambda pid, children=True: 1.0, suspended=lambda: 1.0)).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_the_dashboard_parses_and_has_the_panels_the_issue_asks_for():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "pause-monitor"
    titles = " | ".join(p["title"].lower() for p in dashboard_panels(dashboard))
    for wanted in ("pauses by cause", "lateness p99", "top culprit groups", "tier", "workers up", "monitor cpu"):
        assert wanted in titles, (wanted, titles)
    ids = [p["id"] for p in dashboard_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard_panels(dashboard):
        if panel["type"] != "row":
            assert panel.get("targets") and all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_every_metric_a_query_names_is_exposed_by_the_exporter():
    exposed = exposed_names()
    named = set()
    queries = [expr for _, expr in dashboard_exprs()]
    queries += [json.loads(DASHBOARD.read_text())["templating"]["list"][2]["definition"]]
    for expr in queries:
        named |= set(METRIC.findall(expr))
    assert named, "no metric found in the dashboard's queries"
    assert named <= exposed, f"not exposed by the exporter: {sorted(named - exposed)}"
    # The other way round: every family the exporter has is on the dashboard somewhere.
    families = {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n in exposed}
    shown = {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n in named}
    assert families - shown == {"pause_monitor_last_sample_timestamp_seconds"}, sorted(families - shown)
