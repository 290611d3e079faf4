"""A worker's inputs, outputs and serve loop, once: sockets in the pipeline, JSON lines standalone.

A worker is its pure step (message in, messages out) plus wiring. In the pipeline its inputs are
``FrameInput`` sockets served by ``serve_frames``; with ``--jsonl`` they are one ``LineInput`` on
stdin and a ``LineOutput`` on stdout, served by ``serve_lines``. Either way the same step runs and
malformed input is counted as ``bad_input`` (``Worker.drop_bad``) and dropped.

Standalone workers compose into a pipe (``collector | scorer | tiering | recorder``), so a line
holding another worker's message is not bad input: a stage in the middle of the pipe passes it on
unchanged (downstream may want it: the collector's pauses go on to the recorder), the end of the
pipe skips it. Both are counted and reported on stderr at the end.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO

import zmq

from pmshared import messages as m
from pmshared.codec import BadMessage, Codec, JsonLines
from pmshared.jsonlpipe import IDLE, iter_lines, write_lines
from pmshared.paths import PathError
from pmshared.runtime import POLL_MS, Worker, fail

DRAIN_MAX = 64  # messages taken from one socket per wake-up before heartbeat and stop flag


# --------------------------------------------------------------------------- a worker's life
def jsonl_parser(name: str, doc: str, jsonl_help: str) -> argparse.ArgumentParser:
    """``python -m <name>``'s command line: the first line of ``doc`` and ``--jsonl``."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}", description=doc.splitlines()[0])
    parser.add_argument("--jsonl", action="store_true", help=jsonl_help)
    return parser


@contextmanager
def running(name: str, *, jsonl: bool) -> Iterator[Worker]:
    """The worker process (sockets unless ``jsonl``) with its signal handlers; closed at the end,
    when its counters are logged."""
    worker = Worker(name, sockets=not jsonl)
    worker.install_signal_handlers()
    try:
        yield worker
    finally:
        worker.close()
    worker.log.info("stopped; counters %s", dict(worker.counters))


def open_endpoints(worker: Worker, *, bind: Iterable[str] = (), connect: Iterable[str] = (),
                   hwm: Mapping[str, int] | None = None) -> list[zmq.Socket]:
    """Bind, then connect the named endpoints (a connected one with its own high-water mark where
    ``hwm`` gives one) and start the heartbeat; one clear line and exit when they cannot be opened
    (a path too long, an address in use)."""
    assert worker.sockets is not None
    hwm = hwm or {}
    try:
        socks = [worker.sockets.bind(name) for name in bind]
        socks += [worker.sockets.connect(name, hwm=hwm.get(name)) for name in connect]
    except (PathError, zmq.ZMQError) as exc:
        fail(f"{worker.name} cannot open its endpoints: {exc}")
    worker.start_heartbeat()
    return socks


# --------------------------------------------------------------------------- JSON lines (--jsonl)
class LineOutput:
    """Messages as JSON lines on stdout; ``gone`` once the reader went away (``... | head -1``)."""

    def __init__(self, types: Any, stream: BinaryIO | None = None) -> None:
        self._codec = JsonLines(types)
        self._stream = stream if stream is not None else sys.stdout.buffer
        self.gone = False

    def write(self, messages: Iterable[Any]) -> bool:
        return self.write_raw([self._codec.encode(msg) for msg in messages])

    def write_raw(self, lines: list[bytes]) -> bool:
        if not self.gone and lines:
            self.gone = not write_lines(self._stream, lines)
        return not self.gone


class LineInput:
    """This worker's messages from JSON lines on stdin (``IDLE`` after each quiet ``POLL_MS``).

    A known message of another kind is passed on to ``output`` (or skipped without one), counted
    as ``passed_on`` / ``skipped``; anything else is bad input. Ends at end of input, at the stop
    flag, or once the output's reader has gone.
    """

    def __init__(self, worker: Worker, takes: Any, output: LineOutput | None, *, fd: int | None = None,
                 max_line_bytes: int | None = None) -> None:
        self.worker = worker
        self.output = output
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.max_line_bytes = max_line_bytes or worker.config.transport.max_message_bytes
        self._own = JsonLines(takes)
        self._any = JsonLines(m.AnyMessage)
        self.foreign: Counter[str] = Counter()  # other workers' messages by type tag
        self.line_no = 0

    def _stopping(self) -> bool:
        return not self.worker.running or (self.output is not None and self.output.gone)

    def __iter__(self) -> Iterator[Any]:
        for line in iter_lines(self.fd, self._stopping, POLL_MS, self.max_line_bytes):
            if line is IDLE:
                yield IDLE
                continue
            self.line_no += 1
            if not line.strip():
                continue
            try:
                yield self._own.decode(line)  # the hot path: one decode, as before
                continue
            except BadMessage as exc:
                error = exc
            try:
                other = self._any.decode(line)
            except BadMessage:
                self.worker.drop_bad(f"line {self.line_no}", error)
                continue
            self._pass_on(other.__struct_config__.tag, line)

    def _pass_on(self, tag: str, line: bytes) -> None:
        self.foreign[tag] += 1
        if self.output is None:
            self.worker.counters["skipped"] += 1
        elif self.output.write_raw([line + b"\n"]):
            self.worker.counters["passed_on"] += 1

    def foreign_report(self) -> str:
        """What was not for this worker, e.g. "skipped 5 messages for other workers (live_sample 5)"."""
        if not self.foreign:
            return ""
        how = "skipped" if self.output is None else "passed on"
        kinds = ", ".join(f"{tag} {n}" for tag, n in sorted(self.foreign.items()))
        return f"{how} {sum(self.foreign.values())} messages for other workers ({kinds})"

    def report(self) -> str:
        """The end-of-input line for stderr: what was not for this worker, and what was bad."""
        parts = [self.foreign_report()]
        if bad := self.worker.counters["bad_input"]:
            parts.append(f"{bad} bad lines dropped")
        return "; ".join(part for part in parts if part)


def serve_lines(worker: Worker, lines: LineInput, output: LineOutput,
                step: Callable[[Any], Iterable[Any]], start: Iterable[Any] = ()) -> None:
    """Write ``start``, then ``step(message)`` for each message taken; report at the end."""
    if output.write(start):
        for msg in lines:
            if msg is not IDLE and not output.write(step(msg)):
                break
    if report := lines.report():
        print(f"{worker.name}: {report}", file=sys.stderr)


# --------------------------------------------------------------------------- sockets (pipeline)
def one_frame(codec: Codec) -> Callable[[list[bytes]], Any]:
    """The decoder for a socket whose every message is exactly one frame of ``codec``."""

    def decode(frames: list[bytes]) -> Any:
        if len(frames) != 1:
            raise BadMessage(f"expected 1 frame, got {len(frames)}")
        return codec.decode(frames[0])

    return decode


class FrameInput:
    """One socket read without blocking: ``decode(frames)`` then ``handle(message)``; a
    ``BadMessage`` from either is counted as ``bad_input`` (and ``bad_counter``, for a worker that
    tells its inputs apart) and dropped; ``label`` names the input in the log.

    ``paused()``, when given, is back-pressure: while it is true nothing more is taken and the
    serve loop does not poll the socket, so messages wait in ZeroMQ's queue.
    """

    def __init__(self, sock: zmq.Socket, decode: Callable[[list[bytes]], Any], handle: Callable[[Any], object],
                 label: str, budget: int = DRAIN_MAX, bad_counter: str | None = None,
                 paused: Callable[[], bool] | None = None) -> None:
        self.sock, self.decode, self.handle, self.label = sock, decode, handle, label
        self.budget, self.bad_counter, self.paused = budget, bad_counter, paused

    def drain(self, worker: Worker, budget: int | None = None, until: Callable[[], bool] | None = None) -> int:
        """Handle the queued messages, up to ``budget`` (so one busy input cannot starve the
        rest), while neither ``paused()`` nor ``until()`` is true; returns how many were taken."""
        budget = self.budget if budget is None else budget
        taken = 0
        while taken < budget and not (self.paused is not None and self.paused()) and not (until and until()):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            taken += 1
            try:
                self.handle(self.decode(frames))
            except BadMessage as exc:
                if self.bad_counter is not None:
                    worker.counters[self.bad_counter] += 1
                worker.drop_bad(self.label, exc)
        return taken


def serve_frames(worker: Worker, inputs: list[FrameInput], tick: Callable[[], object] | None = None,
                 timeout_ms: Callable[[], int] | None = None) -> None:
    """Until the stop flag: heartbeat, wait for input or a signal, drain what is ready, ``tick``.

    The poll also watches the signal wakeup fd, so SIGTERM ends the loop at once and an idle
    worker sleeps until its heartbeat is due (or ``timeout_ms()``, when the worker needs sooner).
    """
    poller = zmq.Poller()
    for source in inputs:
        poller.register(source.sock, zmq.POLLIN)
    if worker.wakeup_fd is not None:
        poller.register(worker.wakeup_fd, zmq.POLLIN)
    gated = [source for source in inputs if source.paused is not None]
    while worker.running:
        worker.heartbeat()
        for source in gated:  # flags 0 takes a paused socket out of the poll
            poller.register(source.sock, 0 if source.paused() else zmq.POLLIN)
        wait_ms = worker.poll_timeout_ms() if timeout_ms is None else timeout_ms()
        try:
            ready = dict(poller.poll(wait_ms))
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EINTR:  # a signal arrived: go look at the stop flag
                continue
            raise
        if worker.wakeup_fd in ready:
            worker.drain_wakeup()
        for source in inputs:
            if source.sock in ready:
                source.drain(worker)
        if tick is not None:
            tick()
