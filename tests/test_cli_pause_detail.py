"""`pmctl pauses show`: the culprits' cgroup and the interval each evidence figure covers."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console

from cli.events_view import pause_detail
from pmshared import messages as m

LEVELS = SimpleNamespace(style=lambda score: "")


def render(**fields: object) -> list[str]:
    pause = SimpleNamespace(
        id=3, pause_id="col:3", start=1_800_000_000.0, duration_ms=950.0, expected_ms=20.0,
        suspended_ms=0.0, event_id=None, cause="cpu", bundle_path="/b", artifacts=[], **fields,
    )
    console = Console(width=200, record=True, color_system=None)
    console.print(pause_detail(pause, LEVELS))  # type: ignore[arg-type]
    return console.export_text().splitlines()


def test_evidence_intervals_sit_beside_their_figure() -> None:
    lines = render(
        evidence={"cpu_busy_pct": 99.87, "cpu_busy_pct_over": "+0.00..+0.95 s (stall estimate; sample -0.55..+0.95 s pause)",
                  "rule": "cpu_busy=99.9% >= 90", "stall": "+0.00..+0.95 s"},
        culprits=[],
    )
    (row,) = [line for line in lines if line.split()[:1] == ["cpu_busy_pct"]]
    assert "99.87" in row and "stall estimate; sample -0.55..+0.95 s pause" in row
    assert not any(line.split()[:1] == ["cpu_busy_pct_over"] for line in lines)  # not a row of its own


def test_culprits_show_their_cgroup_by_its_end() -> None:
    long_path = "/user.slice/user-1000.slice/user@1000.service/app.slice/app-build.scope"
    lines = render(evidence={}, culprits=[
        m.Culprit(pid=901, command="busy-loop", score=49, categories=["cpu"], cgroup=long_path, ppid=900),
        m.Culprit(pid=12, command="kworker", score=3, categories=["cpu"]),
    ])
    header = next(line for line in lines if "command" in line and "cgroup" in line)
    assert [c.strip() for c in header.split("┃")][4] == "cgroup"
    (loop,) = [[c.strip() for c in line.split("│")] for line in lines if "busy-loop" in line]
    assert loop[4].startswith("…") and loop[4].endswith("app-build.scope") and len(loop[4]) == 40
    (kworker,) = [[c.strip() for c in line.split("│")] for line in lines if "kworker" in line]
    assert kworker[4] == "-"
