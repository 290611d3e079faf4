"""The supervisor loop behind `pmctl up`: spawn the Procfile's workers, restart the ones that exit
(restart_policy), kill and restart the ones that stop heartbeating (the watchdog), answer the
control endpoint and publish every lifecycle change.

Lifecycle events (pmshared.messages.Lifecycle on the "lifecycle" PUB): spawn, exit (exit_code or
signal), restart (detail: the back-off), failed (detail: why), watchdog_kill, and stop — one with
worker="supervisor" when the supervisor begins to stop, then one per worker it stops.

One thread does everything, driven by a zmq.Poller over the heartbeat SUB, the control ROUTER,
the workers' output pipes and a wake-up pipe that signal handlers write to (signal.set_wakeup_fd):
handlers only record the signal; a SIGTERM takes the same path as a remote `pmctl down`.

The pause rule: this tool exists to live through machine freezes. When the loop itself wakes up
much later than it asked to (the whole machine was stopped, suspended or starved), every worker's
missed heartbeats from that window are forgiven — killing workers right after a freeze would throw
away the ring buffers the forensics runner needs at exactly that moment.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable

import zmq

from cli.child import Child, describe_exit
from cli.output import Printer
from cli.procfile import ProcessEntry
from cli.restart_policy import Fail, Policy, RestartTracker
from pmshared import messages as m
from pmshared.codec import BadMessage, Stamper
from pmshared.config import Config
from pmshared.endpoints import ENDPOINTS, Sockets, send_nowait
from pmshared.runtime import POLL_MS, new_incarnation

# Longest poll. Deadlines (restart, kill, watchdog) set the poll's timeout themselves; this cap
# only bounds how long a freeze can go unnoticed (see _max_tick). Each turn costs ~0.1 ms of CPU
# (zmq_poll's syscalls, five waitpids), so a fixed 100 ms tick alone cost ~0.1 % of a core.
MAX_TICK_S = 0.5
MIN_TICK_S = 0.1
# A freshly spawned worker gets this long (on top of the normal heartbeat allowance) to import its
# modules and send its first heartbeat; a cold start on a busy machine can take seconds.
STARTUP_ALLOWANCE_S = 10.0
# After SIGKILL a process is gone within milliseconds unless stuck in the kernel (D state); we do
# not wait for such a process forever on shutdown.
KILL_WAIT_S = 5.0
MAX_MESSAGES_PER_TURN = 1000  # a heartbeat/control flood cannot starve the rest of the loop


@dataclass
class Slot:
    """One Procfile entry across all its incarnations."""

    entry: ProcessEntry
    tracker: RestartTracker
    state: m.WorkerRunState = "stopped"
    child: Child | None = None
    restarts: int = 0
    restart_at: float | None = None  # monotonic, while in back-off
    heartbeat_at: float | None = None  # monotonic time of the current child's last heartbeat
    heartbeat_deadline: float = 0.0  # monotonic; past it the watchdog kills
    kill_at: float | None = None  # monotonic: SIGKILL the group if still alive then
    last_exit: str | None = None
    detail: str = ""


@dataclass
class Counters:
    heartbeats: int = 0
    foreign_heartbeats: int = 0  # from a pid that is none of our current children
    bad_messages: int = 0
    late_wakeups: int = 0
    lifecycle_dropped: int = 0
    spawns: int = 0


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
        policy = Policy.from_config(self.cfg)
        self.slots = [Slot(entry=e, tracker=RestartTracker(policy)) for e in entries]
        self.by_pid: dict[int, Slot] = {}
        self.env = dict(os.environ if env is None else env)
        # Workers' print() output should reach us line by line, not in 8 KiB blocks at exit.
        self.env["PYTHONUNBUFFERED"] = "1"
        self.heartbeat_allowance = self.cfg.missed_heartbeats * self.cfg.heartbeat_interval_s
        # Lateness of our own wake-up that counts as "the machine was frozen".
        self.late_wake_s = max(0.5, self.cfg.heartbeat_interval_s)
        self.max_tick_s = self._max_tick()
        self.started_at = time.time()
        self.counters = Counters()
        self.stamp = Stamper("supervisor", new_incarnation())
        self.exit_code = 0
        self._stopping = False
        self._stop_kill_at: float | None = None
        self._give_up_at: float | None = None
        self._signals_seen = 0
        self._signals_handled = 0
        self._last_signal = 0
        self._stop_requested: tuple[str, int] | None = None

    # ============================================================================ public
    def run(self) -> int:
        """Supervise until stopped; returns the exit code (0 after `pmctl down`, 128+signal)."""
        sockets = Sockets(self.config.transport)
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
            for slot in self.slots:
                self._spawn(slot, now)
            self._loop(wake_r)
            c = self.counters
            self.printer.system(
                f"stopped: {c.spawns} spawns, {c.heartbeats} heartbeats ({c.foreign_heartbeats} from "
                f"unknown pids), {c.late_wakeups} late wake-ups, {c.bad_messages} bad messages, "
                f"{c.lifecycle_dropped} lifecycle events dropped"
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
        out = []
        for slot in self.slots:
            child = slot.child
            out.append(
                m.WorkerStatus(
                    name=slot.entry.name,
                    state=slot.state,
                    pid=child.pid if child else None,
                    started_at=child.started_wall if child else None,
                    restarts=slot.restarts,
                    last_heartbeat_age_s=(
                        round(now - slot.heartbeat_at, 3) if child and slot.heartbeat_at is not None else None
                    ),
                    last_exit=slot.last_exit,
                )
            )
        return out

    # ============================================================================ loop
    def _on_signal(self, signum: int, _frame: Any) -> None:
        # Only record it; the wake-up fd makes the poller return, the loop does the work.
        if signum != signal.SIGCHLD:
            self._last_signal = signum
            self._signals_seen += 1

    def _loop(self, wake_r: int) -> None:
        poller = zmq.Poller()
        poller.register(wake_r, zmq.POLLIN)
        poller.register(self.health, zmq.POLLIN)
        poller.register(self.control, zmq.POLLIN)
        registered: set[int] = set()
        last_turn = self.clock()
        last_timeout = 0.0
        while True:
            # Register the output pipes of the current children (they change with restarts).
            live_fds = {s.child.fileno() for s in self.slots if s.child and s.child.output_open}
            for fd in registered - live_fds:
                poller.unregister(fd)
            for fd in live_fds - registered:
                poller.register(fd, zmq.POLLIN)
            registered = live_fds

            timeout = self._next_timeout(self.clock())
            events = dict(poller.poll(timeout * 1000))
            now = self.clock()
            lateness = now - last_turn - last_timeout
            if lateness > self.late_wake_s:
                self._forgive(now, lateness)
            last_turn, last_timeout = now, timeout

            if wake_r in events:
                _drain(wake_r)
            if self.health in events:
                self._read_heartbeats(now)
            if self.control in events:
                self._serve_control(now)
            for slot in self.slots:
                child = slot.child
                if child and child.output_open and child.fileno() in events:
                    self._print_output(slot)
            self._handle_signals()
            self._reap(now)
            self._check_deadlines(now)
            if self._stopping and all(s.child is None for s in self.slots):
                return
            if self._give_up_at is not None and now >= self._give_up_at:
                stuck = [f"{s.entry.name} (pid {s.child.pid})" for s in self.slots if s.child]
                self.printer.system(f"giving up waiting for {', '.join(stuck)} to die")
                return

    def _next_timeout(self, now: float) -> float:
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        due += [s.kill_at for s in self.slots if s.kill_at is not None]
        if self._stop_kill_at is not None:
            due.append(self._stop_kill_at)
        # The watchdog's deadlines too: a silent worker is acted on when its allowance runs out
        # (not while stopping: the watchdog is off then, and a passed deadline would spin the loop).
        if not self._stopping:
            due += [s.heartbeat_deadline for s in self.slots if s.child is not None and s.kill_at is None]
        if self._give_up_at is not None:
            due.append(self._give_up_at)
        timeout = self.max_tick_s
        if due:
            timeout = min(timeout, max(0.0, min(due) - now))
        return timeout

    def _max_tick(self) -> float:
        """The poll cap that keeps the pause rule sound.

        A freeze shows as lateness only when it outlasts the poll's timeout by late_wake_s; a
        shorter one goes unforgiven, so the workers' silence across it (the freeze, one heartbeat
        interval, one worker poll) must still fit the heartbeat allowance.
        """
        slack = (
            self.heartbeat_allowance - self.cfg.heartbeat_interval_s - POLL_MS / 1000.0 - self.late_wake_s
        )
        return min(MAX_TICK_S, max(MIN_TICK_S, slack))

    def _forgive(self, now: float, lateness: float) -> None:
        """We woke up ``lateness`` s late: the machine was frozen, so were the workers."""
        self.counters.late_wakeups += 1
        self.printer.system(
            f"woke up {lateness:.1f} s late (machine paused?); forgiving missed heartbeats"
        )
        for slot in self.slots:
            if slot.child is not None and slot.kill_at is None:
                slot.heartbeat_deadline = max(slot.heartbeat_deadline, now + self.heartbeat_allowance)

    # ============================================================================ inputs
    def _read_heartbeats(self, now: float) -> None:
        for _ in range(MAX_MESSAGES_PER_TURN):
            try:
                frames = self.health.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
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
            slot.heartbeat_at = now
            if slot.kill_at is None:
                slot.heartbeat_deadline = now + self.heartbeat_allowance
                if slot.state == "starting":
                    slot.state = "running"

    def _serve_control(self, now: float) -> None:
        for _ in range(MAX_MESSAGES_PER_TURN):
            try:
                frames = self.control.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # ROUTER: [identity, (empty delimiter from REQ peers), payload]; reply on the same route.
            route, payload = frames[:-1], frames[-1]
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
        )
        try:
            self.control.send_multipart([*route, self.control_codec.encode(reply)], zmq.NOBLOCK)
        except zmq.Again:
            pass  # the asker's queue is full or it left; it will time out

    def _print_output(self, slot: Slot) -> None:
        assert slot.child is not None
        for line in slot.child.read_lines():
            self.printer.line(slot.entry.name, line)

    def _handle_signals(self) -> None:
        if self._signals_seen == self._signals_handled:
            return
        self._signals_handled = self._signals_seen
        sig = self._last_signal
        if self._stopping:
            # A second Ctrl-C / SIGTERM while stopping: do not wait out the grace period.
            self.printer.system(f"{signal.Signals(sig).name} again: killing what is left now")
            self._stop_kill_at = self.clock()
            return
        self._request_stop(signal.Signals(sig).name, 128 + sig)

    def _request_stop(self, reason: str, exit_code: int) -> None:
        if self._stopping:
            return
        now = self.clock()
        self._stopping = True
        self.exit_code = exit_code
        self.printer.system(f"stopping ({reason}): SIGTERM to every worker")
        self._publish("supervisor", "stop", detail=reason)
        for slot in self.slots:
            slot.restart_at = None
            slot.kill_at = None
            if slot.child is None:
                if slot.state != "failed":
                    slot.state = "stopped"
                continue
            slot.state = "stopping"
            self._terminate(slot)
            self._publish(slot.entry.name, "stop", pid=slot.child.pid, detail=reason)
        self._stop_kill_at = now + self.cfg.grace_period_s

    # ============================================================================ children
    def _spawn(self, slot: Slot, now: float) -> None:
        slot.restart_at = None
        slot.heartbeat_at = None
        slot.kill_at = None
        name = slot.entry.name
        try:
            child = Child(name, slot.entry.argv(), self.env, self.cwd)
        except OSError as exc:
            # A command that cannot start counts as an exit, so a typo ends FAILED, not in a loop.
            slot.last_exit = f"could not start: {exc.strerror or exc}"
            self.printer.system(f"{name}: {slot.last_exit}")
            self._publish(name, "exit", detail=slot.last_exit)
            self._after_exit(slot, started_at=now, now=now)
            return
        self.counters.spawns += 1
        slot.child = child
        slot.state = "starting"
        slot.heartbeat_deadline = now + STARTUP_ALLOWANCE_S + self.heartbeat_allowance
        self.by_pid[child.pid] = slot
        self.printer.system(f"{name} started (pid {child.pid})")
        self._publish(name, "spawn", pid=child.pid)

    def _reap(self, now: float) -> None:
        for slot in self.slots:
            child = slot.child
            if child is None or child.poll() is None:
                continue
            code = child.proc.returncode
            # Its last words, then make sure nothing of its group outlives it: a grandchild left
            # running would hold the output pipe open and escape every later stop.
            for line in child.read_lines():
                self.printer.line(slot.entry.name, line)
            child.signal_group(signal.SIGKILL)
            child.close_output()
            self.by_pid.pop(child.pid, None)
            slot.child = None
            slot.kill_at = None
            slot.last_exit = describe_exit(code)
            self._publish(
                slot.entry.name,
                "exit",
                pid=child.pid,
                exit_code=code if code >= 0 else None,
                signal=-code if code < 0 else None,
                detail=slot.last_exit,
            )
            if self._stopping:
                slot.state = "stopped"
                self.printer.system(f"{slot.entry.name} (pid {child.pid}) stopped: {slot.last_exit}")
                continue
            self.printer.system(f"{slot.entry.name} (pid {child.pid}) exited: {slot.last_exit}")
            self._after_exit(slot, started_at=child.started_mono, now=now)

    def _after_exit(self, slot: Slot, *, started_at: float, now: float) -> None:
        decision = slot.tracker.on_exit(started_at, now)
        name = slot.entry.name
        if isinstance(decision, Fail):
            slot.state = "failed"
            slot.detail = decision.reason
            self.printer.system(f"{name} FAILED: {decision.reason}; not restarting it")
            self._publish(name, "failed", detail=decision.reason)
            return
        slot.state = "backoff"
        slot.restart_at = now + decision.delay_s
        self.printer.system(f"{name}: restarting in {decision.delay_s:g} s")
        self._publish(name, "restart", detail=f"in {decision.delay_s:g} s")

    def _check_deadlines(self, now: float) -> None:
        for slot in self.slots:
            child = slot.child
            if child is not None and slot.kill_at is not None and now >= slot.kill_at:
                self.printer.system(f"{slot.entry.name} (pid {child.pid}) still alive: SIGKILL")
                child.signal_group(signal.SIGKILL)
                # Stays set until the reap: no second watchdog kill meanwhile, and a process stuck
                # in the kernel (D state) gets another SIGKILL now and then.
                slot.kill_at = now + KILL_WAIT_S
                continue
            if self._stopping:
                continue
            if child is not None and slot.kill_at is None and now >= slot.heartbeat_deadline:
                self._watchdog_kill(slot, now)
            elif child is None and slot.restart_at is not None and now >= slot.restart_at:
                slot.restarts += 1
                self._spawn(slot, now)
        if self._stopping and self._stop_kill_at is not None and now >= self._stop_kill_at:
            alive = [s for s in self.slots if s.child]
            if alive:
                names = ", ".join(f"{s.entry.name} (pid {s.child.pid})" for s in alive if s.child)
                self.printer.system(f"grace period over: SIGKILL to {names}")
            for slot in alive:
                assert slot.child is not None
                slot.child.signal_group(signal.SIGKILL)
            self._stop_kill_at = None
            self._give_up_at = now + KILL_WAIT_S

    def _watchdog_kill(self, slot: Slot, now: float) -> None:
        assert slot.child is not None
        since = slot.heartbeat_at if slot.heartbeat_at is not None else slot.child.started_mono
        silent = now - since
        what = "no heartbeat" if slot.heartbeat_at is not None else "no first heartbeat"
        detail = f"{what} for {silent:.1f} s"
        self.printer.system(f"{slot.entry.name} (pid {slot.child.pid}) hung ({detail}): killing it")
        self._publish(slot.entry.name, "watchdog_kill", pid=slot.child.pid, detail=detail)
        self._terminate(slot)
        slot.kill_at = now + self.cfg.grace_period_s

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
            if child.poll() is None:
                child.signal_group(signal.SIGKILL)
                try:
                    child.proc.wait(timeout=KILL_WAIT_S)
                except Exception:  # noqa: BLE001 - stuck in the kernel: PDEATHSIG still applies
                    pass
            else:
                child.signal_group(signal.SIGKILL)
            child.close_output()
            slot.child = None
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


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, InterruptedError):
        pass

