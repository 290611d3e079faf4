"""Hostile process names under the real pipeline: inert everywhere a user looks, still recognisable.

Real processes rename themselves (through /proc/self/comm, at most 15 bytes, and through the name
of the executable they were started as) to strings carrying terminal escapes (window title,
colours, an OSC 52 clipboard write), C1 controls, a bidi override, Rich markup and a newline with
a parenthesis (which confuses a naive /proc/PID/stat parser). One of them burns CPU so an event
opens with it as the top culprit; the others are stopped, and the config selects stopped
processes as rogues, so every sample carries all of them. Then the collector is stopped for a
second: a pause, a forensics bundle, notifications.

Every view must be free of C0/C1 controls (except newline and tab) and bidi controls — in plain
output and on a (forced) colour terminal, where only Rich's own colour sequences may appear —
while each name stays recognisable; `--json` and the bundle keep the exact names, escaped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pmshared.safetext import inert
from tests.hostile_helpers import unsafe_chars
from tests.procutil import freeze, proc_state, thaw
from tests.supervisor_helpers import REPO, Pipeline, pipeline, wait_for  # noqa: F401

pytestmark = pytest.mark.slow

WORKERS = ["collector", "scorer", "tiering", "recorder", "forensics"]

# comm bytes (<= 15) -> a piece of the inert rendering that must still be visible.
HOG = (b"\x1b]0;pwn\x07<b>hog", "pwn")  # "<b>": libnotify renders a markup subset
STOPPED = [
    (b"\x1b[31m[b]sgr", "[b]sgr"),
    (b"\x1b]52;c;ZXZp\x07", "ZXZp"),
    ("\u202eexe.gol".encode(), "exe.gol"),
    (b"[red]mk[/red]", "[red]mk[/red]"),
    ("\u009b31mcsi".encode(), "31mcsi"),
    (b"nl\n) R 1 (x", "nl"),
]
EXE_NAME = ("\x1b]0;xbin\x07", "xbin")  # the name of the executable itself (a symlink)

# Renames itself (hex of the new comm in argv[1]; empty: keep the executable's name), takes
# argv[3] MiB of touched memory, then stops itself or burns CPU. argv[4] is hostile too: it lands in
# /proc/PID/cmdline.
ACTOR = r"""
import os, signal, sys
name = bytes.fromhex(sys.argv[1])
if name:
    with open("/proc/self/comm", "wb") as f:
        f.write(name)
keep = bytearray(int(sys.argv[3]) << 20)
for i in range(0, len(keep), 4096):
    keep[i] = 1
if sys.argv[2] == "busy":
    while True:
        pass
os.kill(os.getpid(), signal.SIGSTOP)
"""
HOG_MIB = 2048
ACTOR_MIB = 128  # scores 1: above the zero-score zombies and stopped children of other tests

# A Procfile entry whose output is hostile: the supervisor prefixes and prints every worker line.
CHATTER = r"""
import sys
from pmshared.runtime import Worker
NAMES = [bytes.fromhex(h) for h in sys.argv[1:]]
worker = Worker("chatter")
worker.install_signal_handlers()
worker.start_heartbeat()
for name in NAMES:
    sys.stdout.buffer.write(b"said " + name + b"\n")
    sys.stderr.buffer.write(b"warned " + name + b"\n")
sys.stdout.flush()
sys.stderr.flush()
while worker.running:
    worker.heartbeat()
    worker.stopping.wait(0.2)
worker.close()
"""

# Other tests on this machine run CPU hogs and stopped children of their own, and the collector sees
# every process. So the score here counts CPU and memory only: our hog, busy *and* holding 2 GiB,
# scores 25 (memory) + up to 25 (CPU), and only it reaches the elevated threshold; any plain CPU
# hog stays at or below 25. Stopped processes are selected as rogues by state, so every sample
# lists them; ours hold a little memory, so they rank above others' zero-score zombies.
CONFIG = """
[supervisor]
grace_period_s = 3.0
[scoring]
model = "seed"
[scoring.weights]
cpu = 25
mem = 100
state = 0
pageins = 0
cmprs = 0
csw = 0
sysbsd = 0
threads = 0
[tiers]
elevated_threshold = 30
critical_threshold = 95
deescalation_delay_s = 2.0
[rogue_selection.state]
states = ["zombie", "stopped"]
[alerts]
pause_min_duration = 0.3
elevated_entered = true
rate_limit_s = 0
[forensics]
logs_timeout = 3
proc_timeout = 3
"""


def _decoded(name: bytes) -> str:
    return name.decode("utf-8", "replace")  # what the collector reports


def _cli_outputs(pipeline: Pipeline, event_id: int, pause_id: int) -> dict[str, subprocess.CompletedProcess]:
    """Every view, plain and on a forced colour terminal (Rich then emits colour sequences)."""
    views = {
        "watch --once": ["watch", "--once"],
        "status": ["status"],
        "events": ["events"],
        "events --json": ["events", "--json"],
        "events show": ["events", "show", str(event_id)],
        "events show --json": ["events", "show", str(event_id), "--json"],
        "history": ["history"],
        "history json": ["history", "--format", "json"],
        "history csv": ["history", "--format", "csv"],
        "pauses": ["pauses"],
        "pauses show": ["pauses", "show", str(pause_id)],
        "pauses show --json": ["pauses", "show", str(pause_id), "--json"],
    }
    colour_env = {**pipeline.env, "FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "200"}

    def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", *argv], cwd=REPO, env=env, capture_output=True,
                              text=True, errors="surrogateescape", timeout=60)

    jobs = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for label, argv in views.items():
            jobs[label] = pool.submit(run, argv, pipeline.env)
            if "json" not in label and "csv" not in label:
                jobs[label + " (colour)"] = pool.submit(run, argv, colour_env)
    return {label: job.result() for label, job in jobs.items()}


def test_hostile_process_names_are_inert_in_every_view(pipeline: Pipeline, tmp_path: Path):
    notify_log = tmp_path / "notify.log"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "notify-send").symlink_to(REPO / "tests" / "fake_bin" / "notify-send")
    pipeline.env["PATH"] = f"{fake_bin}:{pipeline.env['PATH']}"
    pipeline.env["FAKE_BIN_LOG"] = str(notify_log)
    pipeline.config.write_text(CONFIG)
    chatter = tmp_path / "chatter.py"
    chatter.write_text(CHATTER)
    procfile = {line.split(":", 1)[0]: line.split(":", 1)[1].strip()
                for line in (REPO / "Procfile").read_text().splitlines() if line and not line.startswith("#")}
    hexes = " ".join(n.hex() for n, _ in [HOG, *STOPPED])
    procfile["chatter"] = f"python {chatter} {hexes}"
    pipeline.write_procfile(procfile)
    pipeline.start()
    pipeline.wait_running([*WORKERS, "chatter"], timeout=30)

    exe = tmp_path / EXE_NAME[0]
    exe.symlink_to(os.path.realpath(sys.executable))
    actors: list[subprocess.Popen] = []
    try:
        for name, _ in STOPPED:
            actors.append(subprocess.Popen([sys.executable, "-c", ACTOR, name.hex(), "stop", str(ACTOR_MIB),
                                            name.decode("latin-1")], env=pipeline.env))
        actors.append(subprocess.Popen([str(exe), "-c", ACTOR, "", "stop", str(ACTOR_MIB), EXE_NAME[0]],
                                       env=pipeline.env))
        wait_for(lambda: all(proc_state(a.pid) == "T" for a in actors), 20, "the actors to stop themselves")
        hog = subprocess.Popen([sys.executable, "-c", ACTOR, HOG[0].hex(), "busy", str(HOG_MIB), HOG[0].decode()],
                               env=pipeline.env)
        actors.append(hog)
        _check_views(pipeline, hog, actors, notify_log)
    finally:
        for actor in actors:
            actor.kill()
            actor.wait()


def _check_views(pipeline: Pipeline, hog: subprocess.Popen, actors: list[subprocess.Popen], notify_log: Path):
    hog_name = _decoded(HOG[0])

    def event_naming_hog():  # polled in this process (Pipeline.events), then read with `pmctl`
        return next((e for e in pipeline.events() if e["top_culprit_pid"] == hog.pid), None)

    found = wait_for(event_naming_hog, 30, lambda: f"an event naming the hog; output:\n{pipeline.output()}",
                     interval=0.25)
    event = next(e for e in json.loads(pipeline.cli("events", "--json").stdout) if e["id"] == found["id"])
    # The data keeps the exact name; only the display is made inert.
    assert event["top_culprit"] == hog_name

    def all_actors_in_a_sample():
        detail = pipeline.event_detail(event["id"])
        pids = {r["pid"] for s in detail["samples"] for r in s["samples"]["rogues"]}
        return {a.pid for a in actors} <= pids

    wait_for(all_actors_in_a_sample, 20, "an event sample with every actor among the rogues", interval=0.25)
    detail = json.loads(pipeline.cli("events", "show", str(event["id"]), "--json").stdout)
    commands = {r["pid"]: r["command"] for s in detail["samples"] for r in s["samples"]["rogues"]}
    expected = {a.pid: _decoded(n) for a, (n, _) in zip(actors, STOPPED)}
    expected[actors[len(STOPPED)].pid] = EXE_NAME[0][:15]
    expected[hog.pid] = hog_name
    assert {pid: commands[pid] for pid in expected} == expected

    # A pause: the sampler stopped for a second, with the hostile names in the ring buffer.
    wait_for(lambda: pipeline.cli("watch", "--once").returncode == 0, 20, "the live feed")
    collector = pipeline.workers()["collector"].pid
    freeze(collector)
    time.sleep(1.0)  # the stall under test
    thaw(collector)

    def pause_with_bundle():
        pauses = json.loads(pipeline.cli("pauses", "--json").stdout or "[]")
        return next((p for p in pauses if p["bundle_path"]), None)

    pause = wait_for(pause_with_bundle, 40, lambda: f"a pause with its bundle; output:\n{pipeline.output()}")
    wait_for(lambda: "Forensics captured" in _read(notify_log), 20, lambda: f"notifications: {_read(notify_log)}")

    outputs = _cli_outputs(pipeline, event["id"], pause["id"])
    problems = []
    for label, proc in outputs.items():
        if proc.returncode != 0:
            problems.append(f"{label}: exit {proc.returncode}: {proc.stderr[-500:]}")
        text = proc.stdout + proc.stderr
        bad = unsafe_chars(text, allow_sgr="colour" in label)
        if bad:
            problems.append(f"{label}: {bad} in {text[:2000]!r}")
    assert not problems, "\n".join(problems)

    # Recognisable: the hog (the top culprit) in every view that names processes; and in the rogue
    # tables, each of our processes that made it into the (length-limited) table is on one line
    # with its pid: a name cannot break the table apart.
    for label in ("watch --once", "events", "events show", "history", "history csv", "pauses show"):
        assert HOG[1] in outputs[label].stdout, (label, outputs[label].stdout)
    tokens = {a.pid: t for a, t in zip(actors, [*(t for _, t in STOPPED), EXE_NAME[1], HOG[1]])}
    for label in ("events show", "watch --once", "events show (colour)", "watch --once (colour)"):
        rows = {pid: line for line in outputs[label].stdout.splitlines()
                for pid in tokens if re.search(rf"│\s*{pid}\s*│", line)}
        assert len(rows) >= 4, (label, outputs[label].stdout)
        for pid, line in rows.items():
            assert tokens[pid] in line, (label, tokens[pid], line)
    assert inert(hog_name) in outputs["events"].stdout
    # --json escapes what a terminal would act on, and parses back to the exact names.
    shown = json.loads(outputs["events show --json"].stdout)
    assert {r["command"] for s in shown["samples"] for r in s["samples"]["rogues"]} >= set(
        _decoded(n) for n, _ in [HOG, *STOPPED])

    # The forensics bundle: JSON files without raw controls, culprits still exact when parsed.
    bundle = Path(pause["bundle_path"])
    for path in sorted(bundle.glob("*.json")):
        raw = path.read_text(errors="replace")
        assert not unsafe_chars(raw), (path.name, unsafe_chars(raw))
    culprits = json.loads((bundle / "culprits.json").read_text())["culprits"]
    assert hog_name in {c["command"] for c in culprits}, culprits
    _check_event_log(hog_name)

    # The supervisor's output: the chatter's hostile lines, prefixed and inert. (A newline in a
    # name ends the line there: the supervisor reads lines.)
    out = pipeline.output()
    assert not unsafe_chars(out), unsafe_chars(out)
    for name, _ in [HOG, *STOPPED]:
        if b"\n" not in name:
            assert f"said {inert(_decoded(name))}" in out and f"warned {inert(_decoded(name))}" in out, name

    # Notifications went out through the fake notify-send, inert (and HTML-escaped for libnotify).
    sent = [json.loads(line) for line in notify_log.read_text().splitlines()]
    assert sent, "no notification"
    for call in sent:
        for arg in call["argv"]:
            assert not unsafe_chars(arg), (arg, call)
    # The forensics notification names the top culprit: inert, and HTML-escaped for libnotify.
    body = next(call["argv"][-1] for call in sent if "Forensics captured" in call["argv"])
    assert f"top culprit: {inert(hog_name).replace('<', '&lt;').replace('>', '&gt;')}" in body, body


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _strings(v)]
    if isinstance(value, list):
        return [t for v in value for t in _strings(v)]
    return [value] if isinstance(value, str) else []


def _check_event_log(hog_name: str) -> None:
    """The event log for log shippers: printable ASCII lines, values inert once decoded too."""
    from pmshared import paths

    log = paths.event_log_path()

    def with_bundle_line():
        lines = log.read_bytes().splitlines(keepends=True) if log.exists() else []
        return lines if any(b'"kind":"forensics"' in line for line in lines) else None

    lines = wait_for(with_bundle_line, 20, lambda: f"the bundle's line in {log}: {_read(log)}")
    for raw in lines:
        assert raw.endswith(b"\n") and all(0x20 <= b <= 0x7E for b in raw[:-1]), raw
        bad = [t for t in _strings(json.loads(raw)) if unsafe_chars(t)]
        assert not bad, bad
    bundle = next(json.loads(raw) for raw in lines if b'"kind":"forensics"' in raw)
    assert inert(hog_name, 200) in {c["command"] for c in bundle["culprits"]}, bundle


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(none)"
