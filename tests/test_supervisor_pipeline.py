"""`pmctl up` as a real subprocess supervising fake workers (tests/fake_workers/worker.py): real
signals, real process groups, real ZeroMQ. Every test ends with a /proc scan: nothing may be left.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import zmq

from pmshared import messages as m
from pmshared import paths
from pmshared.endpoints import ENDPOINTS
from tests.procutil import cmdline, comm
from tests.supervisor_helpers import (  # noqa: F401 - pipeline is a fixture
    FAKE,
    Pipeline,
    fake,
    fd_count,
    main_thread_sleeps,
    orderly,
    pid_gone,
    pipeline,
    rss_kib,
    runtime_files,
    stop_times,
    tagged_pids,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_a_worker_failing_at_start_ends_failed_and_the_others_keep_running(pipeline: Pipeline):
    pipeline.write_procfile({"good": fake("good"), "bad": fake("bad", "--exit-code", "1")})
    pipeline.start()
    first = pipeline.wait_running(["good"])

    def bad_failed():
        ws = pipeline.workers()
        return ws if ws.get("bad") and ws["bad"].state == "failed" else None

    ws = wait_for(bad_failed, 20, lambda: f"bad FAILED; output:\n{pipeline.output()}")
    assert ws["bad"].restarts == 3  # max_restarts = 3 in the test config
    assert ws["bad"].pid is None and ws["bad"].last_exit == "code 1"
    assert ws["good"].state == "running"
    assert ws["good"].pid == first["good"].pid and ws["good"].restarts == 0
    assert "bad FAILED: exited 4 times within 60 s" in pipeline.output()
    assert pipeline.proc.poll() is None  # the supervisor itself carries on


def _lifecycle_sub() -> tuple[zmq.Context, zmq.Socket]:
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RECONNECT_IVL, 20)  # join the supervisor's PUB soon after it binds
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"ipc://{paths.socket_path('lifecycle')}")
    return ctx, sub


def test_a_worker_dying_after_seconds_is_still_backed_off(pipeline: Pipeline):
    # Runs 1.5 s each time: past any "start window", yet the delays must keep doubling.
    pipeline.write_config(backoff_initial_s=0.25, backoff_max_s=8.0, max_restarts=10)
    pipeline.write_procfile({"flaky": fake("flaky", "--die-after", "1.5")})
    codec = ENDPOINTS["lifecycle"].codec()
    ctx, sub = _lifecycle_sub()
    try:
        pipeline.start()
        events: list[m.Lifecycle] = []
        deadline = time.monotonic() + 30
        delays: list[float] = []
        runs: list[float] = []
        last_spawn: float | None = None
        last_exit: float | None = None
        while len(delays) < 3:
            assert time.monotonic() < deadline, f"events so far: {events}\n{pipeline.output()}"
            if not sub.poll(200):
                continue
            ev = codec.decode(sub.recv())
            if ev.worker != "flaky":
                continue
            events.append(ev)
            if ev.kind == "spawn":
                if last_exit is not None:
                    delays.append(ev.sent_at - last_exit)
                last_spawn = ev.sent_at
            elif ev.kind == "exit":
                if last_spawn is not None:
                    runs.append(ev.sent_at - last_spawn)
                last_exit = ev.sent_at
    finally:
        sub.close()
        ctx.term()
    assert all(r >= 1.5 for r in runs), runs
    # 0.25, 0.5, 1.0 s: never shorter than the policy says; late by at most a loaded machine's
    # scheduling delay (a restart at constant speed would fail the lower bounds at once).
    for i, delay in enumerate(delays):
        expected = 0.25 * 2**i
        assert expected - 0.02 <= delay <= expected + 0.5, delays
    kinds = {e.kind for e in events}
    assert {"spawn", "exit", "restart"} <= kinds


def test_stop_goes_in_procfile_order_each_worker_after_the_one_before_exited(pipeline: Pipeline, tmp_path: Path):
    # Each worker takes 0.3 s to exit after SIGTERM: signalled all at once, the second would get
    # its SIGTERM before the first had exited.
    log = tmp_path / "stops.log"
    names = ["producer", "middle", "sink"]
    pipeline.write_config(grace_period_s=5.0)
    pipeline.write_procfile({n: orderly(tmp_path, n, log, 0.3) for n in names})
    pipeline.start()
    ws = pipeline.wait_running(names)
    stop_sent = time.monotonic()
    os.kill(pipeline.pid, signal.SIGTERM)
    assert pipeline.wait_exit(15) == 143
    took = time.monotonic() - stop_sent
    times = stop_times(log)
    assert sorted(times, key=lambda n: times[n][0]) == names, times
    for before, after in zip(names, names[1:]):
        assert times[after][0] >= times[before][1], f"{after} got SIGTERM before {before} exited: {times}"
    out = pipeline.output()
    stopped = [out.index(f"{n} (pid {ws[n].pid}) stopped: code 0") for n in names]
    assert stopped == sorted(stopped), out
    print(f"three workers taking 0.3 s each stopped in order in {took:.2f} s")
    assert took < 5.0  # within the grace period
    assert tagged_pids(pipeline.tag) == []
    assert runtime_files() == []


def test_stop_kills_a_term_ignoring_worker_with_its_whole_group(pipeline: Pipeline, tmp_path: Path):
    pidfile = tmp_path / "grandchild.pid"
    log = tmp_path / "stops.log"
    pipeline.write_procfile({
        "stubborn": fake("stubborn", "--ignore-term", "--grandchild", str(pidfile)),
        "polite": orderly(tmp_path, "polite", log, 0.0),
    })
    pipeline.start()
    ws = pipeline.wait_running(["stubborn", "polite"])
    grandchild = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), 10, "grandchild pid"))
    assert not pid_gone(grandchild)
    stop_sent = time.monotonic()
    os.kill(pipeline.pid, signal.SIGTERM)
    assert pipeline.wait_exit(15) == 143
    for pid in (grandchild, ws["stubborn"].pid, ws["polite"].pid):
        assert pid_gone(pid), pid
    assert tagged_pids(pipeline.tag) == []
    out = pipeline.output()
    # Two workers, a 1 s grace period: stubborn is killed after its half, then polite is stopped
    # (not killed) and exits cleanly.
    share = "did not stop within its 0.5 s share of the grace period: SIGKILL"
    assert f"stubborn (pid {ws['stubborn'].pid}) {share}" in out
    assert f"polite (pid {ws['polite'].pid}) stopped: code 0" in out
    termed, _ = stop_times(log)["polite"]
    assert termed - stop_sent >= 0.5, "polite was signalled before stubborn's share ran out"
    assert runtime_files() == []


def test_sigint_stops_with_exit_code_130(pipeline: Pipeline):
    pipeline.write_procfile({"a": fake("a")})
    pipeline.start()
    ws = pipeline.wait_running(["a"])
    os.kill(pipeline.pid, signal.SIGINT)
    assert pipeline.wait_exit(15) == 130
    assert pid_gone(ws["a"].pid)
    assert "a (pid" in pipeline.output() and "stopped: code 0" in pipeline.output()
    assert runtime_files() == []


def test_the_watchdog_kills_and_restarts_a_stopped_worker(pipeline: Pipeline):
    pipeline.write_procfile({"hung": fake("hung"), "fine": fake("fine")})
    pipeline.start()
    before = pipeline.wait_running(["hung", "fine"])
    old = before["hung"].pid
    os.kill(old, signal.SIGSTOP)

    def replaced():
        ws = pipeline.workers()
        h = ws.get("hung")
        return ws if h and h.pid not in (None, old) and h.state == "running" else None

    after = wait_for(replaced, 15, lambda: f"hung replaced; output:\n{pipeline.output()}")
    assert after["hung"].restarts == 1
    assert after["fine"].pid == before["fine"].pid and after["fine"].restarts == 0
    assert pid_gone(old)
    assert f"hung (pid {old}) hung (no heartbeat for" in pipeline.output()


def test_once_every_worker_runs_the_supervisor_wakes_once_per_heartbeat_interval(pipeline: Pipeline):
    # 12 x 0.25 s: an allowance that leaves the freeze rule room for a tick of a whole interval.
    pipeline.write_config(heartbeat_interval_s=0.25, missed_heartbeats=12)
    names = ["a", "b", "c", "d"]
    pipeline.write_procfile({n: fake(n) for n in names})
    pipeline.start()
    before = pipeline.wait_running(names)
    # Nothing talks to the supervisor during the window (a status request would wake it).
    first, started = main_thread_sleeps(pipeline.pid), time.monotonic()
    time.sleep(3.0)  # the measurement window, not a synchronisation
    rate = (main_thread_sleeps(pipeline.pid) - first) / (time.monotonic() - started)
    print(f"supervisor wake-ups with four workers heartbeating every 0.25 s: {rate:.1f}/s")
    # Each worker heartbeats 4-5 times a second: woken by every heartbeat, the loop would turn
    # ~20 times a second; draining them once per interval, it turns 4 times.
    assert rate <= 6.0, rate
    after = pipeline.workers()
    assert {n: (w.pid, w.state) for n, w in after.items()} == {n: (before[n].pid, "running") for n in names}
    # Heartbeats read without polling still show as fresh in `pmctl status`.
    assert all(w.last_heartbeat_age_s is not None and w.last_heartbeat_age_s < 1.0 for w in after.values())


def test_freezing_every_process_and_the_supervisor_restarts_nothing(pipeline: Pipeline):
    # The watchdog's allowance is 2 s here (4 x 0.5 s): a 5 s freeze is far beyond it, while a
    # loaded test machine's scheduling hiccups are not.
    pipeline.write_config(heartbeat_interval_s=0.5, missed_heartbeats=4)
    names = ["a", "b", "c"]
    pipeline.write_procfile({n: fake(n) for n in names})
    pipeline.start()
    before = pipeline.wait_running(names)
    workers = [before[n].pid for n in names]
    # The whole pipeline freezes for 5 s ...
    frozen_at = time.monotonic()
    for pid in [*workers, pipeline.pid]:
        os.kill(pid, signal.SIGSTOP)
    # Meanwhile: a frozen supervisor is reported as such, within the status timeout.
    status = pipeline.cli("status")
    assert status.returncode == 1 and f"(pid {pipeline.pid}) holds the lock but does not answer" in status.stdout
    time.sleep(max(0.0, 5.0 - (time.monotonic() - frozen_at)))  # the stimulus, not synchronisation
    # ... and the supervisor wakes first, while its workers are still frozen (the harder order).
    for pid in [pipeline.pid, *workers]:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: "forgiving missed heartbeats" in pipeline.output(), 10, "the late wake-up to be noticed")
    # Watch for longer than the allowance: any kill would show as a new pid or a restart.
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        ws = pipeline.workers()
        assert ws, "supervisor stopped answering"
        for n in names:
            assert ws[n].pid == before[n].pid and ws[n].restarts == 0, (ws[n], pipeline.output())
        time.sleep(0.2)
    assert "hung" not in pipeline.output()


def test_kill_9_of_the_supervisor_leaves_no_worker_and_the_next_up_cleans_up(pipeline: Pipeline):
    pipeline.write_procfile({"a": fake("a"), "b": fake("b")})
    pipeline.start()
    pipeline.wait_running(["a", "b"])
    os.kill(pipeline.pid, signal.SIGKILL)
    pipeline.wait_exit(5)
    wait_for(lambda: not tagged_pids(pipeline.tag), 5, lambda: f"workers to die: {tagged_pids(pipeline.tag)}")
    assert "control.sock" in runtime_files()  # the crash left its sockets ...
    pipeline.start()
    pipeline.wait_running(["a", "b"])
    assert "removed stale socket" in pipeline.output()  # ... and the next run removed them
    result = pipeline.cli("down")
    assert result.returncode == 0, result.stderr
    assert pipeline.wait_exit(5) == 0
    assert runtime_files() == []


def test_a_second_up_refuses_and_names_the_running_pid(pipeline: Pipeline):
    pipeline.write_procfile({"a": fake("a")})
    pipeline.start()
    ws = pipeline.wait_running(["a"])
    started = time.monotonic()
    second = pipeline.cli("up", "--procfile", str(pipeline.procfile), timeout=20)
    assert second.returncode == 1
    assert f"already running (pid {pipeline.pid}" in second.stderr
    assert time.monotonic() - started < 10
    # The first one still owns its endpoints and its worker.
    reply = pipeline.status()
    assert reply is not None and reply.supervisor_pid == pipeline.pid
    assert {w.name: w.pid for w in reply.workers} == {"a": ws["a"].pid}


def test_status_json_lists_workers_and_down_leaves_nothing(pipeline: Pipeline):
    pipeline.write_procfile({
        "a": fake("a", "--say", "'evil \x1b[31m red'"),
        "b": fake("b"),
        "c": fake("c"),
    })
    pipeline.start("--only", "a,b")
    pipeline.wait_running(["a", "b"])
    result = pipeline.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["running"] is True and doc["supervisor_pid"] == pipeline.pid
    assert doc["tier"] is None  # no tiering in this pipeline: unknown, not an error
    assert [w["name"] for w in doc["workers"]] == ["a", "b"]
    for w in doc["workers"]:
        assert w["state"] == "running" and w["pid"] > 0 and w["restarts"] == 0
        assert w["uptime_s"] >= 0 and w["last_heartbeat_age_s"] < 2
    human = pipeline.cli("status")
    assert human.returncode == 0 and "tier: unknown" in human.stdout and "running" in human.stdout
    # Worker output arrives prefixed, and inert: the ESC is shown, not obeyed.
    wait_for(lambda: "evil" in pipeline.output(), 5, "worker output")
    out = pipeline.output()
    assert "a          | evil ^[[31m red" in out and "\x1b" not in out

    down = pipeline.cli("down")
    assert down.returncode == 0, down.stderr
    assert f"stopped (supervisor pid {pipeline.pid})" in down.stdout
    assert pipeline.proc.poll() is not None  # down waited for the exit
    assert pipeline.wait_exit(1) == 0
    assert runtime_files() == []
    assert tagged_pids(pipeline.tag) == []
    after = pipeline.cli("status")
    assert after.returncode == 3 and "not running" in after.stdout
    assert pipeline.cli("down").returncode == 0  # nothing to stop is not an error


def test_bad_procfile_and_bad_only_are_one_line_errors(pipeline: Pipeline):
    pipeline.procfile.write_text("a: x\nnot an entry\na: y\n")
    result = pipeline.cli("up", "--procfile", str(pipeline.procfile))
    assert result.returncode == 2
    assert "line 2: expected `name: command`" in result.stderr and "line 3: duplicate name 'a'" in result.stderr
    assert "Traceback" not in result.stderr
    pipeline.write_procfile({"a": fake("a")})
    result = pipeline.cli("up", "--procfile", str(pipeline.procfile), "--only", "a,zzz")
    assert result.returncode == 2 and "unknown process name(s) zzz" in result.stderr
    assert runtime_files() == []


def test_200_restarts_leave_fds_and_memory_flat(pipeline: Pipeline):
    pipeline.write_config(backoff_initial_s=0.005, backoff_max_s=0.005, max_restarts=100000, restart_window_s=1.0)
    pipeline.write_procfile({"quick": "true"})
    pipeline.start()

    def restarts_at_least(n: int):
        def check():
            reply = pipeline.status()
            return reply is not None and reply.workers[0].restarts >= n

        return check

    def settled_fds() -> int:
        # A worker restarted every 5 ms has its output pipes open for part of the time: the fewest
        # seen over 50 readings is the supervisor's own count, which a leak would still raise.
        return min(fd_count(pipeline.pid) for _ in range(50))

    wait_for(restarts_at_least(20), 30, "20 restarts")
    fds_20, rss_20 = settled_fds(), rss_kib(pipeline.pid)
    wait_for(restarts_at_least(200), 60, "200 restarts")
    fds_200, rss_200 = settled_fds(), rss_kib(pipeline.pid)
    print(f"after 20 restarts: {fds_20} fds, {rss_20} KiB; after 200: {fds_200} fds, {rss_200} KiB")
    assert fds_200 <= fds_20 + 2
    assert rss_200 <= rss_20 + 2048
    assert pipeline.cli("down").returncode == 0
    assert pipeline.wait_exit(5) == 0


def test_status_when_not_running_shows_the_last_recorded_event(pipeline: Pipeline):
    from pmshared import storage
    from pmshared.codec import Stamper

    result = pipeline.cli("status")
    assert result.returncode == 3
    assert "not running" in result.stdout and "none (no database yet)" in result.stdout

    stamp = Stamper("tiering", "inc-1")
    conn = storage.connect(paths.db_path(), mode="create")
    try:
        storage.apply(conn, stamp(m.EventOpened, event_key="inc-1:1", start=1_700_000_000.0, tier=2, score=50))
        storage.apply(conn, stamp(m.EventClosed, event_key="inc-1:1", start=1_700_000_000.0,
                                  end=1_700_000_042.0, peak_score=70, peak_tier=2))
    finally:
        conn.close()
    result = pipeline.cli("status")
    assert result.returncode == 3
    assert "last recorded event: #1 at" in result.stdout
    assert "lasted 42.0 s, peak tier 2, score 70" in result.stdout
    doc = json.loads(pipeline.cli("status", "--json").stdout)
    assert doc["running"] is False
    assert doc["last_event"]["peak_score"] == 70 and doc["last_event"]["event_key"] == "inc-1:1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked at start on Linux only")
def test_python_workers_are_forked_at_start_and_exec_d_on_restart(pipeline: Pipeline):
    pipeline.write_procfile({"alpha": fake("alpha"), "beta": fake("beta")})
    pipeline.start()
    first = pipeline.wait_running(["alpha", "beta"])
    for name, w in first.items():
        # Forked from the supervisor: named after the worker, its command line the supervisor's.
        assert comm(w.pid) == name
        assert "-m supervisor" in " ".join(cmdline(w.pid))
        assert os.getpgid(w.pid) == w.pid  # its own process group, as an exec'd worker
    assert "alpha started (pid " in pipeline.output() and ", forked)" in pipeline.output()
    os.kill(first["alpha"].pid, signal.SIGKILL)

    def restarted():
        a = pipeline.workers().get("alpha")
        return a if a and a.pid not in (None, first["alpha"].pid) and a.state == "running" else None

    again = wait_for(restarted, 15, lambda: f"alpha restarted; output:\n{pipeline.output()}")
    # A restart happens with the supervisor's ZeroMQ threads running: exec'd, never forked.
    assert str(FAKE) in cmdline(again.pid) and comm(again.pid) != "alpha"
    pipeline.cli("down")
    assert pipeline.wait_exit() == 0


def test_fork_workers_false_execs_every_worker(pipeline: Pipeline):
    pipeline.write_config(fork_workers=False)
    pipeline.write_procfile({"alpha": fake("alpha")})
    pipeline.start()
    w = pipeline.wait_running(["alpha"])["alpha"]
    assert str(FAKE) in cmdline(w.pid)
    assert ", forked)" not in pipeline.output()
    pipeline.cli("down")
    assert pipeline.wait_exit() == 0
