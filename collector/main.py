"""The collector worker: sample every process on a fixed rhythm, publish snapshots and pauses.

Two ways to run:
- pipeline: ``python -m collector`` PUSHes a ``Snapshot`` on "raw" every ``sampling.interval_s``;
  each pause the sentinel finds goes at once to "record" (without processes) and to "pause" (the
  same pause_id) with the processes of the snapshot whose interval spans the stall: the regular
  one when it was taken after the stall, else a sample taken right away, which then stands in for
  the next regular one if that was due within ``MIN_SPAN`` of an interval (so no snapshot covers a
  few ms: a rate over a tiny interval is mostly measurement error);
- standalone: ``python -m collector --jsonl`` prints the same snapshots and pauses as JSON lines.

Nothing here waits on a consumer: sends never block and what cannot be queued is counted
(dropped_raw, dropped_record, dropped_pause in the heartbeat).
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import select
import sys
import threading
import time
from typing import BinaryIO, Callable, Protocol

import zmq

from collector.backend import PLATFORM, Backend, UnsupportedPlatform, make_backend
from collector.sentinel import DetectedPause, Sentinel
from pmshared import messages as m
from pmshared import paths, schedclass
from pmshared.codec import Stamper
from pmshared.endpoints import ENDPOINTS, Sockets, send_nowait
from pmshared.runtime import POLL_MS, WakePipe, Worker, drain_fd, fail
from pmshared.workerio import LineOutput

NAME = "collector"
log = logging.getLogger(NAME)
# The shortest interval a snapshot may cover, as a fraction of the sampling interval. Shorter, a
# clock tick is a large share of it; longer, a pause's sample delays the next regular one more
# (a sample after a pause at most 1 + MIN_SPAN intervals before the next: the live feed's gap).
MIN_SPAN = 0.25
COUNTERS = ("samples", "dropped_raw", "dropped_record", "dropped_pause", "pauses", "sample_errors", "late_ticks")


# --------------------------------------------------------------------------- outputs


class Outputs(Protocol):
    """Where messages go. Each method returns False when the message could not be queued."""

    def snapshot(self, msg: m.Snapshot) -> bool: ...

    def pause_record(self, msg: m.Pause) -> bool: ...

    def pause_forensics(self, msg: m.Pause) -> bool: ...

    def close(self) -> None: ...


class SocketOutputs:
    """PUSH "raw" (scorer), PUSH "record" (recorder) and PUSH "pause" (forensics), all connected.

    Two destinations need two sockets: one PUSH connected to both would round-robin between them.
    """

    def __init__(self, sockets: Sockets) -> None:
        self._raw = sockets.connect("raw")
        self._record = sockets.connect("record")
        self._pause = sockets.connect("pause")
        self._raw_codec = ENDPOINTS["raw"].codec()
        self._record_codec = ENDPOINTS["record"].codec()
        self._pause_codec = ENDPOINTS["pause"].codec()

    def snapshot(self, msg: m.Snapshot) -> bool:
        return send_nowait(self._raw, self._raw_codec.encode(msg))

    def pause_record(self, msg: m.Pause) -> bool:
        return send_nowait(self._record, self._record_codec.encode(msg))

    def pause_forensics(self, msg: m.Pause) -> bool:
        return send_nowait(self._pause, self._pause_codec.encode(msg))

    def close(self) -> None:
        pass  # the sockets belong to the worker's Sockets, closed (with a bounded linger) there


class JsonOutputs:
    """JSON lines on a byte stream (the kit's ``LineOutput``). A pause is printed once, without
    processes: the snapshot whose interval spans it carries them — the line just before it when
    the regular snapshot was taken after the stall, else the next line."""

    def __init__(self, stream: BinaryIO) -> None:
        self._out = LineOutput(m.Snapshot | m.Pause, stream)

    def _write(self, msg: m.Snapshot | m.Pause) -> bool:
        # One line per interval, flushed: readers downstream see it at once.
        if not self._out.write([msg]):
            raise BrokenPipeError("the reader of stdout went away")  # ends the run: see main()
        return True

    def snapshot(self, msg: m.Snapshot) -> bool:
        return self._write(msg)

    def pause_record(self, msg: m.Pause) -> bool:
        return self._write(msg)

    def pause_forensics(self, msg: m.Pause) -> bool:
        return True

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- the collector


class Collector:
    """Takes samples, builds and sends snapshots, turns detected pauses into messages.

    No sockets, threads or sleeps: the loop (``run_loop``) decides when; tests call it directly.
    """

    def __init__(
        self,
        backend: Backend,
        outputs: Outputs,
        *,
        incarnation: str,
        interval_s: float,
        counters: dict[str, int],
        sentinel_stats: Callable[[], m.SentinelStats | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.outputs = outputs
        self.incarnation = incarnation
        self.interval_ms = interval_s * 1000.0
        self.counters = counters
        self.sentinel_stats = sentinel_stats
        self.clock = clock
        self.wall = wall
        # One stamper per output stream, so each receiver sees consecutive sequence numbers.
        self._raw_stamp = Stamper(NAME, incarnation)
        self._record_stamp = Stamper(NAME, incarnation)
        self._pause_stamp = Stamper(NAME, incarnation)
        self._last_sample_at: float | None = None
        self._last_snap: m.Snapshot | None = None
        self._last_started_wall: float | None = None  # wall time its sample began

    def prime(self) -> None:
        """Take a first sample that only sets the baseline: rates need a previous sample."""
        self.backend.sample()
        self._last_sample_at = self.clock()

    def sample_and_send(self) -> m.Snapshot:
        started = self.wall()
        processes, system = self.backend.sample()
        now = self.clock()
        elapsed_ms = (now - self._last_sample_at) * 1000.0 if self._last_sample_at is not None else 0.0
        self._last_sample_at = now
        snap = self._raw_stamp(
            m.Snapshot,
            timestamp=self.wall(),
            elapsed_ms=round(elapsed_ms, 3),
            interval_ms=self.interval_ms,
            platform=PLATFORM,
            process_count=len(processes),
            processes=processes,
            system=system,
            sentinel=self.sentinel_stats(),
        )
        self.counters["samples"] += 1
        self._last_snap, self._last_started_wall = snap, started
        if not self.outputs.snapshot(snap):
            self.counters["dropped_raw"] += 1
        return snap

    def handle_pauses(self, detected: list[DetectedPause]) -> m.Snapshot:
        """Record each pause at once, then send it to forensics with the processes of the snapshot
        whose interval spans the stall: the last one if it was sampled after the stall, else a
        new sample (its interval starts at the last one, before the stall)."""
        for pause in detected:
            self.counters["pauses"] += 1
            if not self.outputs.pause_record(self._pause_msg(self._record_stamp, pause)):
                self.counters["dropped_record"] += 1
        snap = self._last_snap if self._sampled_after(detected) else None
        if snap is None:
            snap = self.sample_and_send()
        for pause in detected:
            msg = self._pause_msg(self._pause_stamp, pause, snap.processes, snap.system)
            if not self.outputs.pause_forensics(msg):
                self.counters["dropped_pause"] += 1
        return snap

    def _sampled_after(self, detected: list[DetectedPause]) -> bool:
        """Did the last snapshot's sample begin after the stall(s)? The stall runs from the last
        on-time tick (``start``) to about ``end`` (when the sentinel woke); a sample begun before
        it started less than a tick after ``start``, one begun after it close to ``end``: the
        midpoint tells them apart whatever the threads' wake-up order."""
        if self._last_snap is None or self._last_started_wall is None:
            return False
        return all(self._last_started_wall >= (p.start + p.end) / 2 for p in detected)

    def _pause_msg(
        self,
        stamp: Stamper,
        pause: DetectedPause,
        processes: list[m.ProcessInfo] | None = None,
        system: m.SystemStats | None = None,
    ) -> m.Pause:
        return stamp(
            m.Pause,
            pause_id=f"{self.incarnation}:{pause.number}",
            start=pause.start,
            end=pause.end,
            duration_ms=round(pause.duration_ms, 3),
            expected_ms=round(pause.expected_ms, 3),
            suspended_ms=round(pause.suspended_ms, 3),
            processes=processes,
            system=system,
        )


def next_deadline(deadline: float, interval: float, now: float) -> tuple[float, int]:
    """The next absolute deadline after ``deadline`` that lies in the future, and how many were
    skipped. Absolute deadlines keep the rhythm from drifting; after a stall the missed ticks are
    skipped, not sent in a burst."""
    deadline += interval
    if deadline > now:
        return deadline, 0
    missed = math.floor((now - deadline) / interval) + 1
    return deadline + missed * interval, missed


class PauseInbox:
    """Hands pauses from the sentinel's thread (or the thread relaying the sentinel process's) to
    the main loop and wakes the loop early.

    The wake-up is a pipe, not an Event: the loop waits on it and on the worker's signal
    wakeup fd in one select, so SIGTERM wakes it at once without the signal handler touching a
    lock (an Event set from a handler can deadlock against the loop's own wait on it)."""

    def __init__(self, signal_fd: int | None = None) -> None:
        # deque's append and popleft are atomic: a thread-safe queue without the queue module
        self._queue: collections.deque[DetectedPause] = collections.deque()
        self._wake = WakePipe()
        self._fds = [self._wake.fd] + ([signal_fd] if signal_fd is not None else [])

    def put(self, pause: DetectedPause) -> None:  # sentinel thread, or the relay thread
        self._queue.append(pause)
        self._wake.poke()

    def wait(self, timeout: float) -> None:
        """Until a pause is put, a signal arrives (signal_fd) or ``timeout`` passes."""
        readable, _, _ = select.select(self._fds, [], [], timeout)
        for fd in readable:  # the bytes carry nothing: the queue and the stop flag do
            drain_fd(fd)

    def close(self) -> None:
        self._wake.close()

    def drain(self) -> list[DetectedPause]:
        out = []
        while self._queue:
            out.append(self._queue.popleft())
        return out


def run_loop(
    collector: Collector,
    inbox: PauseInbox,
    interval_s: float,
    *,
    stopping: threading.Event,
    heartbeat: Callable[[], None] = lambda: None,
    count: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    max_wait_s: Callable[[], float] = lambda: POLL_MS / 1000.0,
) -> None:
    """Sample on absolute deadlines, forward pauses as soon as they arrive, heartbeat, stop when
    ``stopping`` is set or after ``count`` snapshots. Between steps it waits at most
    ``max_wait_s()``: POLL_MS by default (to look at ``stopping``); main() passes the time until
    the next heartbeat, since its inbox also wakes on signals."""
    collector.prime()
    deadline = clock() + interval_s
    while not stopping.is_set():
        detected = inbox.drain()
        if detected:
            before = collector.counters["samples"]
            _guarded(collector, lambda: collector.handle_pauses(detected))
            if collector.counters["samples"] > before and deadline - clock() < interval_s * MIN_SPAN:
                # That sample was the regular one's: a second now would cover a few ms.
                deadline, missed = next_deadline(deadline, interval_s, clock())
                collector.counters["late_ticks"] += missed
        if clock() >= deadline:
            _guarded(collector, collector.sample_and_send)
            deadline, missed = next_deadline(deadline, interval_s, clock())
            collector.counters["late_ticks"] += missed
        if count is not None and collector.counters["samples"] >= count:
            break
        heartbeat()
        timeout = min(deadline - clock(), max_wait_s())
        if timeout > 0:
            inbox.wait(timeout)  # pauses are drained at the top of the loop, woken or not


def _guarded(collector: Collector, step: Callable[[], object]) -> None:
    """Run one sampling step; an OS error (say, /proc unreadable for a moment) is logged and
    counted, and the next interval tries again."""
    try:
        step()
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise  # stdout reader gone (--jsonl): handled by main()
        collector.counters["sample_errors"] += 1
        log.error("sampling failed: %s", exc)


# --------------------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        fail(message)  # one line, no usage dump


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0.1 <= value <= 60:  # the bounds of sampling.interval_s in the config
        raise argparse.ArgumentTypeError(f"expected 0.1 to 60 seconds, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m collector",
        description=(
            "Sample every process once per interval and watch for machine-wide pauses.\n"
            "By default PUSH a Snapshot to the scorer (\"raw\") every interval and each pause\n"
            "to the recorder (\"record\") and to forensics (\"pause\")."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "standalone mode:\n"
            "  --jsonl prints JSON lines to stdout instead, with no sockets at all: one Snapshot\n"
            "  per interval. A detected pause is printed as its own line (\"type\": \"pause\"),\n"
            "  next to the snapshot whose interval spans it (just before or just after it).\n"
            "  Stops after --count snapshots,\n"
            "  on SIGTERM/SIGINT, or quietly when the reader closes the pipe.\n\n"
            "  python -m collector --jsonl --count 5 | python -m scorer --jsonl"
        ),
    )
    parser.add_argument("--jsonl", action="store_true", help="print JSON lines to stdout instead of using sockets")
    parser.add_argument("--count", type=_count, metavar="N", help="stop after N snapshots")
    parser.add_argument(
        "--interval", type=_interval, metavar="S", help="seconds between snapshots (default: sampling.interval_s)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    worker = Worker(NAME, sockets=not args.jsonl)
    for name in COUNTERS:
        worker.counters[name] = 0
    interval_s = args.interval or worker.config.sampling.interval_s
    worker.install_signal_handlers()
    # Before the sentinel starts: a thread leaves the class itself, a process inherits it and
    # leaves it too (threads started later, ZeroMQ's among them, inherit the class).
    schedclass.apply_to_worker(worker)

    # The sentinel first: in process mode it forks, and a fork is safest (and its child smallest)
    # before any other thread, ZeroMQ socket or /proc file of the backend exists. (Forking later
    # would be safe too, only untidy: the child sleeps, reads clocks, writes its pipe and leaves
    # through os._exit, touching nothing it inherited; it closes the descriptors it would inherit.)
    inbox = PauseInbox(signal_fd=worker.wakeup_fd)
    sentinel = Sentinel(worker.config.sentinel, inbox.put)
    try:
        sentinel.start()
    except OSError as exc:  # fork refused (process limit, memory)
        inbox.close()
        worker.close()
        fail(f"cannot start the pause sentinel: {exc.strerror or exc}")

    def give_up(message: str) -> None:
        sentinel.stop()
        inbox.close()
        worker.close()
        fail(message)

    try:
        backend = make_backend()
    except (UnsupportedPlatform, OSError) as exc:
        give_up(str(exc))
        return 2  # unreachable

    outputs: Outputs
    if args.jsonl:
        outputs = JsonOutputs(sys.stdout.buffer)
    else:
        assert worker.sockets is not None
        try:
            outputs = SocketOutputs(worker.sockets)
            worker.start_heartbeat()
        except (paths.PathError, zmq.ZMQError) as exc:
            backend.close()
            give_up(f"cannot open sockets: {exc}")

    collector = Collector(
        backend,
        outputs,
        incarnation=worker.incarnation,
        interval_s=interval_s,
        counters=worker.counters,
        sentinel_stats=sentinel.stats,
    )
    failed = False

    def heartbeat() -> None:
        nonlocal failed
        # A collector whose sentinel died would look healthy while missing every pause: stop
        # it with an error instead, so the supervisor restarts it. Not when we are stopping: a
        # SIGTERM to our process group (the supervisor's stop) ends the sentinel process too.
        if not sentinel.alive and not worker.stopping.is_set():
            worker.log.error("pause sentinel died (%s); exiting", sentinel.describe_death())
            failed = True
            worker.stopping.set()
            return
        worker.heartbeat()

    where = f"sentinel process {sentinel.pid}" if sentinel.pid is not None else "sentinel thread"
    worker.log.info("started (%s, every %.2f s, %s, incarnation %s)", PLATFORM, interval_s, where, worker.incarnation)
    try:
        run_loop(collector, inbox, interval_s, stopping=worker.stopping, heartbeat=heartbeat, count=args.count,
                 max_wait_s=lambda: worker.poll_timeout_ms() / 1000.0)
    except BrokenPipeError:
        pass  # the reader went away (e.g. `| head`): stop quietly (LineOutput muted stdout)
    finally:
        sentinel.stop()
        inbox.close()
        backend.close()
        outputs.close()
        worker.close()
        worker.log.info("stopped (%s)", ", ".join(f"{k}={worker.counters[k]}" for k in COUNTERS))
    return 1 if failed else 0
