"""Issue 20's proof: the real pipeline (`pmctl up`, the default Procfile, the exporter switched on)
scraped by a real Prometheus server every second; a real pause (the collector SIGSTOPped ~1 s)
shows in Prometheus's HTTP API as pause counter 1 with the cause forensics recorded, and the
exporter's target is up.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from exporter.state import PAUSE_CAUSES
from tests.procutil import freeze, thaw
from tests.prometheus_helpers import NO_PROMETHEUS, PROMETHEUS, PrometheusServer, dashboard_exprs, free_port
from tests.supervisor_helpers import Pipeline, pipeline, wait_for  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.skipif(PROMETHEUS is None, reason=NO_PROMETHEUS)]

WORKERS = ["collector", "scorer", "tiering", "forensics", "exporter", "recorder"]


def _json(pipeline: Pipeline, *args: str):
    proc = pipeline.cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _value(result: list[dict]) -> dict[str, float]:
    """{cause label (or "" without one): value} of an instant vector."""
    return {r["metric"].get("cause", ""): float(r["value"][1]) for r in result}


def test_prometheus_sees_the_pause_with_its_cause_and_the_exporter_up(pipeline: Pipeline, tmp_path):
    port = free_port()
    pipeline.config.write_text("[supervisor]\ngrace_period_s = 3.0\n[alerts]\nenabled = false\n"
                               f"[exporter]\nenabled = true\nport = {port}\n")
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=30)
    prometheus = PrometheusServer(tmp_path, [f"127.0.0.1:{port}"])
    prometheus.start()
    try:
        wait_for(lambda: _value(prometheus.query('up{job="pause-monitor"}')) == {"": 1.0}, 20,
                 lambda: f"the exporter up in Prometheus: {prometheus.query('up')}")
        # Nothing paused yet: every cause is there at 0 (so the first pause is an increase).
        zeros = wait_for(lambda: _value(prometheus.query("pause_monitor_pauses_total")), 10, "the pause counters")
        assert zeros == dict.fromkeys(PAUSE_CAUSES, 0.0)
        wait_for(lambda: pipeline.cli("watch", "--once").returncode == 0, 20, "the live feed")

        collector = pipeline.workers()["collector"].pid
        freeze(collector)
        time.sleep(1.0)  # the stall under test
        thaw(collector)

        def pause_with_cause():
            pauses = _json(pipeline, "pauses")
            return pauses if pauses and pauses[0]["cause"] else None

        pauses = wait_for(pause_with_cause, 40, lambda: f"a pause with its cause; output:\n{pipeline.output()[-3000:]}")
        assert len(pauses) == 1, pauses
        cause = pauses[0]["cause"]

        def counted():
            values = _value(prometheus.query("pause_monitor_pauses_total"))
            return values if sum(values.values()) else None

        seen = wait_for(counted, 20, lambda: f"the pause in Prometheus; exporter output:\n{pipeline.output()[-3000:]}")
        assert seen == {**dict.fromkeys(PAUSE_CAUSES, 0.0), cause: 1.0}, (seen, cause)
        wait_for(lambda: _value(prometheus.query("sum by (cause) (increase(pause_monitor_pauses_total[1m])) > 0")),
                 10, "increase() to see the pause")
        durations = prometheus.query("pause_monitor_pause_duration_seconds_count")
        assert [float(r["value"][1]) for r in durations] == [1.0]
        assert _value(prometheus.query('up{job="pause-monitor"}')) == {"": 1.0}
        up = {r["metric"]["worker"]: float(r["value"][1]) for r in prometheus.query("pause_monitor_worker_up")}
        assert up == {name: 1.0 for name in WORKERS}, up
        # Every query of the Grafana dashboard runs on this Prometheus (variables as Grafana fills
        # them); the pause panel shows the pause.
        answers = {title + ": " + expr: prometheus.query(expr) for title, expr in dashboard_exprs(substitute=True)}
        by_cause = [v for k, v in answers.items() if k.startswith("Pauses by cause")][0]
        assert any(r["metric"]["cause"] == cause and float(r["value"][1]) > 0 for r in by_cause), by_cause
        empty = [k for k, v in answers.items() if not v]
        print("dashboard queries without data yet:", empty)
    finally:
        prometheus.stop()
