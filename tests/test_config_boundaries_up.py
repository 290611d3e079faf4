"""A real `pmctl up` with the transport and supervisor keys at the ends of their ranges: the
pipeline starts, samples flow from the collector to tiering, no worker is killed as hung, and
`pmctl down` stops it all (it used to hang in ctx.term() after a failed setsockopt, or spin the
supervisor at 86 % CPU and kill every worker)."""

from __future__ import annotations

import pytest

from cli import clients
from pmshared import config as cfg
from tests.procutil import wait_for
from tests.supervisor_helpers import Pipeline, pipeline, runtime_files  # noqa: F401

WORKERS = ["collector", "scorer", "tiering", "recorder", "forensics"]


def _bound(section: type, key: str, end: str) -> float:
    """The declared lower ("lo") or upper ("hi") bound of a key."""
    import msgspec.inspect as mi

    t = next(f.type for f in mi.type_info(section).fields if f.name == key)
    return (t.ge if t.ge is not None else t.gt) if end == "lo" else (t.le if t.le is not None else t.lt)


def _fewest_missed_heartbeats(interval: float) -> int:
    """The smallest missed_heartbeats the config accepts at this interval (the cross-field rule)."""
    for missed in range(int(_bound(cfg.SupervisorConfig, "missed_heartbeats", "lo")), 1001):
        try:
            cfg.parse(f"[supervisor]\nheartbeat_interval_s = {interval!r}\nmissed_heartbeats = {missed}\n")
            return missed
        except cfg.ConfigError:
            continue
    raise AssertionError("no missed_heartbeats is accepted")


def _boundary_config(end: str) -> str:
    sup, trans = cfg.SupervisorConfig, cfg.TransportConfig
    values = {
        "supervisor": {k: _bound(sup, k, end) for k in (
            "grace_period_s", "backoff_initial_s", "backoff_max_s", "stable_after_s", "max_restarts",
            "restart_window_s", "heartbeat_interval_s")},
        "transport": {k: _bound(trans, k, end) for k in ("record_queue", "max_message_bytes")},
    }
    interval = values["supervisor"]["heartbeat_interval_s"]
    values["supervisor"]["missed_heartbeats"] = (
        _fewest_missed_heartbeats(interval) if end == "lo" else _bound(sup, "missed_heartbeats", "hi"))
    text = "".join(f"[{section}]\n" + "".join(f"{k} = {v!r}\n" for k, v in keys.items())
                   for section, keys in values.items())
    cfg.parse(text)  # the test is about values `validate` accepts
    return text


@pytest.mark.parametrize("end", ["lo", "hi"])
def test_the_pipeline_runs_and_stops_at_the_ends_of_the_ranges(pipeline: Pipeline, end: str):
    pipeline.config.write_text(_boundary_config(end))
    check = pipeline.cli("config", "validate")
    assert check.returncode == 0, check
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=60)

    # Samples flow all the way (collector -> scorer -> tiering): three in tiering's ring take
    # about three seconds, many heartbeat intervals at the low end.
    def ring_of_three():
        reply = clients.snapshot(timeout_s=2.0)
        return reply if reply is not None and len(reply.ring) >= 3 else None

    wait_for(ring_of_three, 60, lambda: f"three samples in tiering's ring; output:\n{pipeline.output()}")
    workers = pipeline.workers()
    assert {n: (w.state, w.restarts) for n, w in workers.items()} == {n: ("running", 0) for n in WORKERS}, (
        pipeline.output())

    down = pipeline.cli("down", timeout=60)
    assert down.returncode == 0, (down, pipeline.output())
    assert pipeline.wait_exit(timeout=30) == 0
    assert runtime_files() == [], runtime_files()
