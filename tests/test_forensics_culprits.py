"""Culprit ranking, suspects, the ring buffer, and the standalone --jsonl mode."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from forensics import culprits
from forensics.ring import LiveRing, window
from pmshared import messages as m
from tests.forensics_helpers import REPO, child_env, live, pause, processes, rogue, system


def test_peak_score_per_pid_with_union_of_categories() -> None:
    entries = [
        live(1.0, [rogue(10, "chrome", 40, ["cpu"]), rogue(11, "chrome", 70, ["mem"])]),
        live(2.0, [rogue(10, "chrome", 65, ["pageins"]), rogue(12, "backupd", 65, ["state"], "stuck")]),
        live(3.0, [rogue(12, "backupd", 30, ["cpu"])]),
        live(4.0, [rogue(12, "backupd", 20, ["cpu"])]),
    ]
    report = culprits.identify(entries, processes(), ["backup"], count=5)
    assert [(c.pid, c.score) for c in report.culprits] == [(11, 70), (12, 65), (10, 65)]  # tie: seen more
    by_pid = {c.pid: c for c in report.culprits}
    assert by_pid[10].categories == ["cpu", "pageins"]
    assert by_pid[12].categories == ["cpu", "state"] and by_pid[12].suspect
    assert not by_pid[11].suspect
    assert report.source == "ring" and report.seen == {10: 2, 11: 1, 12: 3}
    assert culprits.identify(entries, None, [], count=1).culprits[0].pid == 11


def test_suspect_match_is_case_insensitive_substring() -> None:
    assert culprits.is_suspect("/Applications/CodeMeter.app/CodeMeter", ["codemeter"])
    assert culprits.is_suspect("windowserver", ["WindowServer"])
    assert not culprits.is_suspect("code", ["codemeter", ""])


def test_empty_ring_falls_back_to_the_snapshot_after_the_pause() -> None:
    report = culprits.identify([], processes(), ["codemeter"], count=5)
    assert report.source == "snapshot"
    assert [(c.pid, c.categories, c.score) for c in report.culprits][:2] == [
        (4243, ["stuck"], 0), (4242, ["cpu"], 0),
    ]
    assert report.culprits[0].suspect
    assert culprits.identify([], [], [], 5).source == "none"


def test_suspects_present_but_not_culprits_are_listed() -> None:
    report = culprits.identify([live(1.0, [rogue(4242, "hog", 50, ["cpu"])])], processes(), ["codemeter"], 5)
    assert [c.pid for c in report.culprits] == [4242]
    assert [s["pid"] for s in report.suspects_present] == [4243]


def test_ring_keeps_only_the_configured_seconds() -> None:
    ring = LiveRing(seconds=30)
    for t in range(100):
        ring.push(live(1000.0 + t, []))
    kept = ring.freeze()
    assert len(ring) == 31 and kept[0].samples.timestamp == 1069.0 and kept[-1].samples.timestamp == 1099.0
    assert [e.samples.timestamp for e in window(kept, 1090.0, 1092.0)] == [1090.0, 1091.0, 1092.0]
    ring.push(live(5000.0, []))  # a clock step forward drops the old window
    assert len(ring) == 1


def test_jsonl_mode_standalone(tmp_path: Path) -> None:
    """`python -m forensics --jsonl`: Pause/LiveSample lines in, ForensicsDone lines out."""
    now = time.time()
    enc = msgspec.json.Encoder()
    lines = [enc.encode(live(now - 2 + i * 0.5, [rogue(77, "spinner", 90, ["cpu"])], system(cpu_busy_pct=100.0)))
             for i in range(3)]
    lines.append(b"not json at all")
    lines.append(enc.encode(pause("c:5", now - 0.5, 1200, processes=processes())))
    config = tmp_path / "config.toml"
    config.write_text("[forensics]\nproc_timeout = 2\nlogs_timeout = 3\n[alerts]\nenabled = false\n")
    proc = subprocess.run(
        [sys.executable, "-m", "forensics", "--jsonl"],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        cwd=REPO,
        env=child_env(PAUSE_MONITOR_CONFIG=str(config)),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    (out,) = proc.stdout.splitlines()
    done = msgspec.json.decode(out, type=m.ForensicsDone)
    assert done.pause_ids == ["c:5"] and done.culprits[0].command == "spinner"
    assert json.loads((Path(done.bundle_path) / "metadata.json").read_text())["status"] == "complete"
    assert b"dropped malformed input line" in proc.stderr
