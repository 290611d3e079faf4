"""The supervisor loop behind `pmctl up`: spawn the Procfile's workers, restart the ones that exit
(restart_policy), kill and restart the ones that stop heartbeating (the watchdog), answer the
control endpoint, publish every lifecycle change, and stop the workers in order.

Lifecycle events (pmshared.messages.Lifecycle on the "lifecycle" PUB): spawn, exit (exit_code or
signal), restart (detail: the back-off), failed (detail: why), watchdog_kill, and stop — one with
worker="supervisor" when the supervisor begins to stop, then one per worker as it is signalled.

The stop order: workers stop one at a time, in the order the Procfile lists them, each only after
the ones before it have exited (or been SIGKILLed), so the Procfile lists a producer before the
consumers it feeds and the recorder last. What a producer sends on its way out (tiering's records,
the collector's pause, a finished forensics bundle) then still finds its consumer running; stopped
all at once, a record sent after the recorder had gone was lost, uncounted. The stop stays bounded
by `supervisor.grace_period_s` (each worker gets an equal share of what is left; a second SIGTERM
or Ctrl-C kills everything left at once): the sequence itself is supervisor/stop_order.py, a pure
one; this loop carries it out. While stopping there are no restarts and no watchdog.

A worker's state (starting, running, backoff, failed, stopping, stopped) changes only through its
Slot's transitions (supervisor/slot.py).

One thread does everything, driven by a zmq.Poller over the control ROUTER, the workers' output
pipes, a wake-up pipe that signal handlers write to (signal.set_wakeup_fd) and — only while a
worker is starting — the heartbeat SUB: handlers only record the signal; a SIGTERM takes the same
path as a remote `pmctl down`. Once every worker runs, the heartbeat SUB is drained on every loop
turn instead of polled, and the poll waits at most one heartbeat interval: one wake-up per interval
instead of one per worker heartbeat (each wake-up costs the loop ~150 us of CPU on a small VM).

The pause rule: this tool exists to live through machine freezes. When the loop itself wakes up
much later than it asked to (the whole machine was stopped, suspended or starved), every worker's
missed heartbeats from that window are forgiven — killing workers right after a freeze would throw
away the ring buffers the forensics runner needs at exactly that moment. See _freeze_rule for why
the loop's longest poll keeps that rule sound.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable

import zmq

from pmshared import messages as m
from pmshared.codec import BadMessage, Stamper
from pmshared.config import Config
from pmshared.endpoints import ENDPOINTS, Sockets, send_nowait
from pmshared.remote import remote_client
from pmshared.runtime import HEARTBEAT_SLACK, POLL_MS, drain_fd, new_incarnation
from supervisor import launch
from supervisor.child import Child
from supervisor.output import Printer
from supervisor.procfile import ProcessEntry
from supervisor.restart_policy import Fail, RestartTracker
from supervisor.slot import Slot
from supervisor.stop_order import KillAll, StopOrder, Term

# Shortest poll the freeze rule may ask for: a config whose allowance is too tight for any sound
# rule gets this floor (a heartbeat interval shorter than it still caps the poll, see _freeze_rule).
MIN_TICK_S = 0.1
# A wake-up at least this late counts as a freeze whatever the budget (below it, ordinary
# scheduling delays of a loaded machine would be reported as pauses).
LATE_WAKE_MIN_S = 0.5
# A freshly spawned worker gets this long (on top of the normal heartbeat allowance) to import its
# modules and send its first heartbeat; a cold start on a busy machine can take seconds.
STARTUP_ALLOWANCE_S = 10.0
# After SIGKILL a process is gone within milliseconds unless stuck in the kernel (D state); we do
# not wait for such a process forever on shutdown.
KILL_WAIT_S = 5.0
MAX_MESSAGES_PER_TURN = 1000  # a heartbeat/control flood cannot starve the rest of the loop
REMOTE_DOWN_REFUSED = "`down` is not accepted over remote watch; run `pmctl down` on that machine"


@dataclass
class Counters:
    heartbeats: int = 0
    foreign_heartbeats: int = 0  # from a pid that is none of our current children
    bad_messages: int = 0
    late_wakeups: int = 0
    lifecycle_dropped: int = 0
    spawns: int = 0
    turns: int = 0  # loop turns, i.e. wake-ups of the supervisor


class Supervisor:
    def __init__(
        self,
        entries: list[ProcessEntry],
        config: Config,
        printer: Printer,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.cfg = config.supervisor
        self.printer = printer
        self.cwd = cwd
        self.clock = clock
        self.slots = [Slot(entry=e, tracker=RestartTracker(self.cfg)) for e in entries]
        self.by_pid: dict[int, Slot] = {}
        self.by_name = {slot.entry.name: slot for slot in self.slots}
        self.env = dict(os.environ if env is None else env)
        # Workers' print() output should reach us line by line, not in 8 KiB blocks at exit.
        self.env["PYTHONUNBUFFERED"] = "1"
        self.heartbeat_allowance = self.cfg.missed_heartbeats * self.cfg.heartbeat_interval_s
        # The longest a healthy worker is silent: its heartbeat may go out HEARTBEAT_SLACK of an
        # interval late (pmshared.runtime), and a loop that does not poll its wake-up fd sees it
        # due up to one POLL_MS later.
        self.heartbeat_gap_s = (1 + HEARTBEAT_SLACK) * self.cfg.heartbeat_interval_s + POLL_MS / 1000.0
        # Lateness of our own wake-up that counts as "the machine was frozen", and the longest poll.
        self.late_wake_s, self.max_tick_s = self._freeze_rule()
        self.started_at = time.time()  # a label; uptimes come from the clock below
        self.started_mono = clock()
        self.counters = Counters()
        self.stamp = Stamper("supervisor", new_incarnation())
        self.exit_code = 0
        self._stopping = False
        self._stop_reason = ""
        self._stop: StopOrder | None = None  # once stopping
        self._give_up_at: float | None = None
        self._signals_seen = 0
        self._signals_handled = 0
        self._last_signal = 0
        # Exits are reaped on the turn after a SIGCHLD, not with five waitpids every turn. The
        # first turn reaps in any case: a worker may have died before our handler was installed.
        self._sigchld_seen = 1
        self._sigchld_handled = 0
        self._pipes: dict[int, Slot] = {}  # output pipes registered with the poller
        self._health_polled = False
        self._health_backlog = False  # the last drain stopped at MAX_MESSAGES_PER_TURN

    # ============================================================================ public
    def run(self) -> int:
        """Supervise until stopped; returns the exit code (0 after `pmctl down`, 128+signal)."""
        # Fork the Python workers first: now this process has one thread and no ZeroMQ context
        # (Sockets creates both), which is what makes a fork without exec safe.
        forked = self._fork_workers()
        sockets = Sockets(self.config.transport, remote=self.config.remote)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        old_handlers: dict[int, Any] = {}
        old_wakeup = -1
        try:
            self.health = sockets.bind("health")
            self.lifecycle = sockets.bind("lifecycle")
            self.control = sockets.bind("control")
            self.health_codec = ENDPOINTS["health"].codec()
            self.lifecycle_codec = ENDPOINTS["lifecycle"].codec()
            self.control_codec = ENDPOINTS["control"].codec()
            old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                old_handlers[sig] = signal.signal(sig, self._on_signal)
            self.printer.system(
                f"supervising {', '.join(s.entry.name for s in self.slots)} (pid {os.getpid()})"
            )
            now = self.clock()
            for i, slot in enumerate(self.slots):
                self._spawn(slot, now, forked.pop(i, None))
            self._loop(wake_r)
            c = self.counters
            self.printer.system(
                f"stopped: {c.spawns} spawns, {c.heartbeats} heartbeats ({c.foreign_heartbeats} from "
                f"unknown pids), {c.turns} wake-ups, {c.late_wakeups} late wake-ups, "
                f"{c.bad_messages} bad messages, {c.lifecycle_dropped} lifecycle events dropped"
            )
        finally:
            self._kill_everything()
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
            sockets.close()  # also unlinks the ipc socket files we bound
        return self.exit_code

    def statuses(self, now: float | None = None) -> list[m.WorkerStatus]:
        now = self.clock() if now is None else now
        return [slot.status(now) for slot in self.slots]

    # ============================================================================ loop
    def _on_signal(self, signum: int, _frame: Any) -> None:
        # Only record it; the wake-up fd makes the poller return, the loop does the work.
        if signum == signal.SIGCHLD:
            self._sigchld_seen += 1
            return
        self._last_signal = signum
        self._signals_seen += 1

    def _loop(self, wake_r: int) -> None:
        poller = zmq.Poller()
        poller.register(wake_r, zmq.POLLIN)
        poller.register(self.control, zmq.POLLIN)
        last_turn = self.clock()
        last_timeout = 0.0
        while True:
            self._sync_poller(poller)
            timeout = self._next_timeout(self.clock())
            events = dict(poller.poll(timeout * 1000))
            now = self.clock()
            self.counters.turns += 1
            lateness = now - last_turn - last_timeout
            if lateness > self.late_wake_s:
                self._forgive(now, lateness)
            last_turn, last_timeout = now, timeout
            if wake_r in events:
                drain_fd(wake_r)
            if self._turn(events, now):
                return

    def _turn(self, events: dict[Any, int], now: float) -> bool:
        """Everything one wake-up does, given what the poll found ready; True when the loop ends."""
        # Not polled once every worker runs: drained on every turn instead, so a heartbeat is read
        # at most one tick after it came (and always before the watchdog looks at the deadlines).
        if not self._health_polled or self.health in events:
            self._read_heartbeats(now)
        if self.control in events:
            self._serve_control(now)
        for fd, slot in self._pipes.items():
            if fd in events:
                self._print_output(slot)
        self._handle_signals()
        if self._sigchld_seen != self._sigchld_handled:
            self._sigchld_handled = self._sigchld_seen  # before the waitpids: a later exit wakes us again
            self._reap(now)
        self._check_deadlines(now)
        if self._stopping and all(s.child is None for s in self.slots):
            return True
        if self._give_up_at is not None and now >= self._give_up_at:
            stuck = [f"{s.entry.name} (pid {s.child.pid})" for s in self.slots if s.child]
            self.printer.system(f"giving up waiting for {', '.join(stuck)} to die")
            return True
        return False

    def _sync_poller(self, poller: zmq.Poller) -> None:
        """Register the current children's output pipes (they change with restarts), and the
        heartbeat socket only while it must wake us at once: while a worker is starting (or about
        to be restarted) its first heartbeat marks it running, which `pmctl status` should show at
        once, not a tick later; and while a flood the last drain did not finish is left to read.

        Runs every turn, so it is one pass over the slots (Child.fileno() is -1 once the pipe is
        closed); the poller is touched only when something changed."""
        pipes: dict[int, Slot] = {}
        health = self._health_backlog
        for slot in self.slots:
            if slot.child is not None and (fd := slot.child.fileno()) >= 0:
                pipes[fd] = slot
            # Not for a FAILED worker's retry, minutes away: the socket would wake us for every
            # heartbeat of every worker all that time.
            health = health or slot.state in ("starting", "backoff")
        if pipes.keys() != self._pipes.keys():
            for fd in self._pipes.keys() - pipes.keys():
                poller.unregister(fd)
            for fd in pipes.keys() - self._pipes.keys():
                poller.register(fd, zmq.POLLIN)
        self._pipes = pipes
        if health != self._health_polled:
            if health:
                poller.register(self.health, zmq.POLLIN)
            else:
                poller.unregister(self.health)
            self._health_polled = health

    def _next_timeout(self, now: float) -> float:
        """Until the next deadline (restart, kill, watchdog, end of the grace period), at most
        max_tick_s (which also drains the heartbeat socket at least once per interval)."""
        due = now + self.max_tick_s
        for slot in self.slots:
            # Not the heartbeat deadline while stopping: the watchdog is off then, and a passed
            # deadline would spin the loop.
            at = slot.next_due(watchdog=not self._stopping)
            if at is not None:
                due = min(due, at)
        for at in (self._stop.kill_all_at if self._stop else None, self._give_up_at):
            if at is not None:
                due = min(due, at)
        return max(0.0, due - now)

    def _freeze_rule(self) -> tuple[float, float]:
        """(late_wake_s, max_tick_s): the lateness that counts as a freeze, and the longest poll.

        A freeze of F s that begins while we wait in a poll of T s shows as lateness of at least
        F - T, so one of up to T + late_wake_s goes unnoticed and unforgiven. The workers' silence
        across it — the freeze plus the longest gap between two heartbeats — must still fit the
        allowance, or the watchdog kills a worker that was only frozen with the rest:

            max_tick_s + late_wake_s + heartbeat_gap_s <= heartbeat_allowance

        The heartbeat socket is not polled once every worker runs: it is drained on every turn,
        and a heartbeat is stamped with the time it is read, up to one tick after it came. That
        is not in the sum: a later stamp only shortens the silence the watchdog measures (every
        turn reads before it checks a deadline), so it can delay a kill by up to one tick but
        never cause one.

        The tick is one heartbeat interval where the budget allows (one wake-up per interval
        drains every worker's heartbeat); late_wake_s gets what is left, at least
        LATE_WAKE_MIN_S and at most max(LATE_WAKE_MIN_S, interval) (what it used to be).
        Defaults (3 x 1 s): gap 1.45 s, late 0.55 s, tick 1.0 s. Where even LATE_WAKE_MIN_S
        does not fit, the tick shrinks instead, down to MIN_TICK_S (below that the allowance is
        too tight for any sound rule; the floor wins).
        """
        interval = self.cfg.heartbeat_interval_s
        budget = self.heartbeat_allowance - self.heartbeat_gap_s
        late = min(max(LATE_WAKE_MIN_S, interval), max(LATE_WAKE_MIN_S, budget - interval))
        tick = min(interval, max(MIN_TICK_S, budget - late))
        return late, tick

    def _forgive(self, now: float, lateness: float) -> None:
        """We woke up ``lateness`` s late: the machine was frozen, so were the workers."""
        self.counters.late_wakeups += 1
        self.printer.system(
            f"woke up {lateness:.1f} s late (machine paused?); forgiving missed heartbeats"
        )
        for slot in self.slots:
            slot.forgive(now + self.heartbeat_allowance)

    # ============================================================================ inputs
    def _read_heartbeats(self, now: float) -> None:
        self._health_backlog = True
        for _ in range(MAX_MESSAGES_PER_TURN):
            try:
                frames = self.health.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                self._health_backlog = False
                return
            try:
                # A heartbeat is one frame; a multipart message is dropped whole, whatever it holds.
                if len(frames) != 1:
                    raise BadMessage(f"{len(frames)} frames")
                hb = self.health_codec.decode(frames[0])
            except BadMessage:
                self.counters.bad_messages += 1
                continue
            slot = self.by_pid.get(hb.pid)
            if slot is None:
                self.counters.foreign_heartbeats += 1
                continue
            self.counters.heartbeats += 1
            slot.heartbeat(now, self.allowance_for(hb), hb.counters)

    def allowance_for(self, hb: m.Heartbeat) -> float:
        """The silence after ``hb`` that counts as a hang: missed_heartbeats intervals, of the
        worker's own interval when it heartbeats less often than configured (never shorter).
        The freeze rule (``_freeze_rule``) holds for it too: allowance minus longest gap is
        (missed_heartbeats - 1 - HEARTBEAT_SLACK) x I - POLL_MS, which grows with the interval I
        (missed_heartbeats >= 2), so it is at least what the configured interval leaves."""
        if hb.interval_s is None or hb.interval_s <= self.cfg.heartbeat_interval_s:
            return self.heartbeat_allowance
        return self.cfg.missed_heartbeats * hb.interval_s

    def _serve_control(self, now: float) -> None:
        for _ in range(MAX_MESSAGES_PER_TURN):
            try:
                frames = self.control.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            # ROUTER: [identity, (empty delimiter from REQ peers), payload]; reply on the same route.
            route, payload = [f.bytes for f in frames[:-1]], frames[-1].bytes
            viewer = remote_client(frames[-1])  # a remote watch client's key, None for ipc
            try:
                req = self.control_codec.decode(payload)
                if not isinstance(req, m.ControlRequest):
                    raise BadMessage(f"expected a control_request, got {type(req).__name__}")
            except BadMessage as exc:
                self.counters.bad_messages += 1
                self._reply(route, ok=False, error=f"bad request: {exc}", now=now)
                continue
            if req.command == "status":
                self._reply(route, ok=True, now=now)
            elif req.command == "down" and viewer is not None:
                # Remote watch is for looking: stopping a machine's monitor is done on it.
                self._reply(route, ok=False, now=now, error=REMOTE_DOWN_REFUSED)
            elif req.command == "down":
                self._reply(route, ok=True, now=now)
                self._request_stop("pmctl down", 0)

    def _reply(self, route: list[bytes], *, ok: bool, now: float, error: str | None = None) -> None:
        reply = self.stamp(
            m.ControlReply,
            ok=ok,
            supervisor_pid=os.getpid(),
            started_at=self.started_at,
            workers=self.statuses(now),
            error=error,
            uptime_s=round(max(now - self.started_mono, 0.0), 3),
        )
        try:
            self.control.send_multipart([*route, self.control_codec.encode(reply)], zmq.NOBLOCK)
        except zmq.Again:
            pass  # the asker's queue is full or it left; it will time out

    def _print_output(self, slot: Slot) -> None:
        assert slot.child is not None
        self._show_lines(slot, slot.child.read_lines())

    def _show_lines(self, slot: Slot, lines: list[str]) -> None:
        for line in lines:
            self.printer.line(slot.entry.name, line)
            slot.said(line)

    def _handle_signals(self) -> None:
        if self._signals_seen == self._signals_handled:
            return
        self._signals_handled = self._signals_seen
        sig = self._last_signal
        if self._stopping:
            # A second Ctrl-C / SIGTERM while stopping: do not wait out the grace period.
            self.printer.system(f"{signal.Signals(sig).name} again: killing what is left now")
            assert self._stop is not None
            self._stop.hurry(self.clock())
            return
        self._request_stop(signal.Signals(sig).name, 128 + sig)

    def _request_stop(self, reason: str, exit_code: int) -> None:
        if self._stopping:
            return
        now = self.clock()
        self._stopping = True
        self._stop_reason = reason
        self.exit_code = exit_code
        self.printer.system(f"stopping ({reason}): SIGTERM to each worker in turn, in Procfile order")
        self._publish("supervisor", "stop", detail=reason)
        names = []
        for slot in self.slots:
            if not slot.stop_requested():
                continue
            assert slot.child is not None
            # Continue a stopped (SIGSTOP, debugger) worker now, not at its turn: a stopped
            # consumer could not take what its producers flush on their way out.
            slot.child.signal_group(signal.SIGCONT)
            names.append(slot.entry.name)
        self._stop = StopOrder(names, now, self.cfg.grace_period_s)
        self._advance_stop(now)

    def _advance_stop(self, now: float) -> None:
        """Carry out what the stop order says is due now (see supervisor/stop_order.py)."""
        assert self._stop is not None
        for action in self._stop.step(now, alive=lambda name: self._slot(name).child is not None):
            if isinstance(action, KillAll):
                self._kill_the_rest(action, now)
                continue
            slot = self._slot(action.name)
            assert slot.child is not None
            if isinstance(action, Term):
                slot.stopping(kill_at=action.kill_at)
                self._terminate(slot)
                self._publish(slot.entry.name, "stop", pid=slot.child.pid, detail=self._stop_reason)
            else:
                self.printer.system(
                    f"{slot.entry.name} (pid {slot.child.pid}) did not stop within its "
                    f"{action.share_s:.1f} s share of the grace period: SIGKILL"
                )
                slot.child.signal_group(signal.SIGKILL)
                # Reaped when it is gone (SIGCHLD); one stuck in the kernel is left to the end of
                # the grace period, where everything still alive is killed again, then given up on.
                slot.kill_by(None)

    def _kill_the_rest(self, action: KillAll, now: float) -> None:
        """The grace period is over (or a second signal came): SIGKILL every worker still alive,
        whether or not its turn had come."""
        alive = [self._slot(name) for name in action.names]
        if alive:
            names = ", ".join(f"{s.entry.name} (pid {s.child.pid})" for s in alive if s.child)
            self.printer.system(f"grace period over: SIGKILL to {names}")
        for slot in alive:
            assert slot.child is not None
            if slot.entry.name in action.unsignalled:
                slot.stopping(kill_at=now)
                self._publish(slot.entry.name, "stop", pid=slot.child.pid, detail=self._stop_reason)
            slot.child.signal_group(signal.SIGKILL)
            slot.kill_by(None)
        self._give_up_at = now + KILL_WAIT_S

    def _slot(self, name: str) -> Slot:
        return self.by_name[name]

    # ============================================================================ children
    def _fork_workers(self) -> dict[int, Child]:
        """Preload and fork the Python workers (slot index -> child), where that is safe and
        enabled; the rest, and every restart, are exec'd by ``_spawn``. See supervisor/launch.py."""
        if not self.cfg.fork_workers or not launch.fork_supported():
            return {}
        targets = {i: t for i, slot in enumerate(self.slots) if (t := launch.python_target(slot.entry.argv()))}
        for problem in launch.preload(list(targets.values())):
            self.printer.system(problem)
        forked: dict[int, Child] = {}
        for i, target in targets.items():
            try:
                forked[i] = Child.fork(self.slots[i].entry.name, target, self.env, self.cwd)
            except OSError as exc:  # out of processes or memory: _spawn tries an exec instead
                self.printer.system(f"{self.slots[i].entry.name}: cannot fork ({exc})")
        return forked

    def _spawn(self, slot: Slot, now: float, forked: Child | None = None) -> None:
        """Start the slot's worker (exec), or take over the one ``_fork_workers`` started."""
        name = slot.entry.name
        try:
            child = forked or Child.spawn(name, slot.entry.argv(), self.env, self.cwd)
        except OSError as exc:
            why = slot.could_not_start(f"{exc.strerror or exc}")
            self.printer.system(f"{name}: {why}")
            self._publish(name, "exit", detail=why)
            self._after_exit(slot, started_at=now, now=now)
            return
        self.counters.spawns += 1
        slot.spawned(child, first_heartbeat_by=now + STARTUP_ALLOWANCE_S + self.heartbeat_allowance)
        self.by_pid[child.pid] = slot
        self.printer.system(f"{name} started (pid {child.pid}{', forked' if child.forked else ''})")
        self._publish(name, "spawn", pid=child.pid)

    def _reap(self, now: float) -> None:
        for slot in self.slots:
            child = slot.child
            if child is None:
                continue
            code = child.poll()
            if code is None:
                continue
            # Its last words, then make sure nothing of its group outlives it: a grandchild left
            # running would hold the output pipe open and escape every later stop.
            self._show_lines(slot, child.read_lines())
            child.signal_group(signal.SIGKILL)
            child.close_output()
            self.by_pid.pop(child.pid, None)
            how = slot.exited(code, stopping=self._stopping)
            self._publish(
                slot.entry.name,
                "exit",
                pid=child.pid,
                exit_code=code if code >= 0 else None,
                signal=-code if code < 0 else None,
                detail=how,
            )
            if self._stopping:
                self.printer.system(f"{slot.entry.name} (pid {child.pid}) stopped: {how}")
                continue
            self.printer.system(f"{slot.entry.name} (pid {child.pid}) exited: {how}")
            self._after_exit(slot, started_at=child.started_mono, now=now)

    def _after_exit(self, slot: Slot, *, started_at: float, now: float) -> None:
        decision = slot.tracker.on_exit(started_at, now)
        name = slot.entry.name
        if isinstance(decision, Fail):
            slot.failed(decision.reason, retry_at=now + decision.retry_after_s)
            why = f" (last error: {slot.reason})" if slot.reason else ""
            self.printer.system(
                f"{name} FAILED: {decision.reason}{why}; trying it again in {decision.retry_after_s:g} s"
            )
            self._publish(name, "failed", detail=decision.reason)
            return
        slot.backing_off(restart_at=now + decision.delay_s)
        self.printer.system(f"{name}: restarting in {decision.delay_s:g} s")
        self._publish(name, "restart", detail=f"in {decision.delay_s:g} s")

    def _check_deadlines(self, now: float) -> None:
        if self._stopping:
            self._advance_stop(now)
            return
        for slot in self.slots:
            if slot.kill_due(now):
                assert slot.child is not None
                self.printer.system(f"{slot.entry.name} (pid {slot.child.pid}) still alive: SIGKILL")
                slot.child.signal_group(signal.SIGKILL)
                # Stays set until the reap: no second watchdog kill meanwhile, and a process stuck
                # in the kernel (D state) gets another SIGKILL now and then.
                slot.kill_by(now + KILL_WAIT_S)
            elif slot.hung(now):
                self._watchdog_kill(slot, now)
            elif slot.due(now):
                if slot.state == "failed":
                    self.printer.system(f"{slot.entry.name}: retrying after FAILED ({slot.detail})")
                slot.restarting()
                self._spawn(slot, now)

    def _watchdog_kill(self, slot: Slot, now: float) -> None:
        assert slot.child is not None
        since = slot.heartbeat_at if slot.heartbeat_at is not None else slot.child.started_mono
        silent = now - since
        what = "no heartbeat" if slot.heartbeat_at is not None else "no first heartbeat"
        detail = f"{what} for {silent:.1f} s"
        self.printer.system(f"{slot.entry.name} (pid {slot.child.pid}) hung ({detail}): killing it")
        self._publish(slot.entry.name, "watchdog_kill", pid=slot.child.pid, detail=detail)
        self._terminate(slot)
        slot.kill_by(now + self.cfg.grace_period_s)

    def _terminate(self, slot: Slot) -> None:
        assert slot.child is not None
        slot.child.signal_group(signal.SIGTERM)
        # A stopped (SIGSTOPped, or `T` in a debugger) group would hold SIGTERM pending until the
        # grace period ran out; continuing it lets the worker shut down cleanly now.
        slot.child.signal_group(signal.SIGCONT)

    def _kill_everything(self) -> None:
        """Last resort on the way out (also after an exception): no worker outlives us."""
        for slot in self.slots:
            child = slot.child
            if child is None:
                continue
            # Only a leader not yet reaped (running, or exited and waiting for us) keeps its pid,
            # the group's id, from reuse: the group of one reaped earlier may be someone else's.
            if child.returncode is None:
                child.signal_group(signal.SIGKILL)
                try:
                    child.proc.wait(timeout=KILL_WAIT_S)
                except Exception:  # noqa: BLE001 - stuck in the kernel: PDEATHSIG still applies
                    pass
            child.close_output()
            slot.child = None  # we are on the way out: no state to keep
        self.by_pid.clear()

    # ============================================================================ events
    def _publish(
        self,
        worker: str,
        kind: m.LifecycleKind,
        *,
        pid: int | None = None,
        exit_code: int | None = None,
        signal: int | None = None,  # noqa: A002 - the message's field name
        detail: str = "",
    ) -> None:
        msg = self.stamp(
            m.Lifecycle, worker=worker, kind=kind, pid=pid, exit_code=exit_code, signal=signal, detail=detail
        )
        if not send_nowait(self.lifecycle, self.lifecycle_codec.encode(msg)):
            self.counters.lifecycle_dropped += 1

