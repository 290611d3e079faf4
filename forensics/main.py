"""The forensics worker process: ``python -m forensics``.

Sockets (pmshared.endpoints): SUB "live" (tiering's feed, for the ring buffer and the alert
rules), PULL "pause" (bound here; the collector pushes each Pause with a fresh process list),
PUSH "record" (ForensicsDone to the recorder, never blocking; drops are counted).

The loop polls both inputs and the worker's signal wakeup fd, until the next heartbeat is due
(POLL_MS while a capture runs, to pick up its result), so it heartbeats every second whatever the
captures do: they run on their own threads and process groups. On SIGTERM the loop wakes and
ends, running captures' process groups are killed, and the worker exits within a second (the
record socket's linger is shortened to fit).

``--jsonl``: standalone for debugging, with no sockets: LiveSample and Pause JSON lines on stdin,
ForensicsDone JSON lines on stdout; at end of input it waits for the running capture.
"""

from __future__ import annotations

import argparse
import selectors
import sys
import time
from typing import Callable

import zmq

from pmshared import messages as m
from pmshared import paths
from pmshared.codec import BadMessage, Codec, JsonLines, Stamper
from pmshared.endpoints import ENDPOINTS, send_nowait
from pmshared.runtime import POLL_MS, Worker, fail

from forensics.caffeinate import Caffeinate
from forensics.engine import Engine
from forensics.session import SessionResult

DRAIN_BUDGET = 200  # messages per socket per loop turn, so one busy input cannot starve the other


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m forensics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jsonl", action="store_true", help="JSON lines on stdin/stdout instead of sockets")
    return parser.parse_args(argv)


def done_message(stamp: Stamper, result: SessionResult) -> m.ForensicsDone:
    return stamp(
        m.ForensicsDone,
        pause_ids=result.pause_ids,
        bundle_path=result.bundle_path,
        artifacts=result.artifacts,
        culprits=result.culprits,
        cause=result.cause,
        evidence=result.evidence,
        error=result.error,
    )


def _drain(sock: zmq.Socket, codec: Codec, handle: Callable[[object], object], worker: Worker, name: str) -> None:
    for _ in range(DRAIN_BUDGET):
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            if len(frames) != 1:
                raise BadMessage(f"{len(frames)} frames")
            msg = codec.decode(frames[0])
        except BadMessage as exc:
            worker.counters[f"bad_input_{name}"] += 1
            worker.drop_bad(f"{name} frame", exc)
            continue
        handle(msg)


def run_sockets(worker: Worker, engine: Engine) -> None:
    assert worker.sockets is not None
    try:
        pause_sock = worker.sockets.bind("pause")
        live_sock = worker.sockets.connect("live")
        record_sock = worker.sockets.connect("record")
    except (paths.PathError, zmq.ZMQError) as exc:
        fail(f"forensics cannot open its sockets: {exc}")
        return
    worker.start_heartbeat()
    live_codec, pause_codec = ENDPOINTS["live"].codec(), ENDPOINTS["pause"].codec()
    record_codec = ENDPOINTS["record"].codec()
    stamp = worker.stamper()
    poller = zmq.Poller()
    poller.register(pause_sock, zmq.POLLIN)
    poller.register(live_sock, zmq.POLLIN)
    if worker.wakeup_fd is not None:
        poller.register(worker.wakeup_fd, zmq.POLLIN)  # a signal wakes the loop: no timed polling
    worker.log.info("forensics ready (bundles in %s)", engine.events_dir)

    while worker.running:
        try:
            # While a capture runs its result is picked up within POLL_MS; idle, the loop sleeps
            # until a heartbeat is due (or a frame or signal comes).
            ready = dict(poller.poll(POLL_MS if engine.busy else worker.poll_timeout_ms()))
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EINTR:  # a signal arrived: go look at the stop flag
                continue
            raise
        if worker.wakeup_fd in ready:
            worker.drain_wakeup()
        if pause_sock in ready:
            _drain(pause_sock, pause_codec, engine.on_pause, worker, "pause")  # type: ignore[arg-type]
        if live_sock in ready:
            _drain(live_sock, live_codec, engine.on_live, worker, "live")  # type: ignore[arg-type]
        engine.tick()
        for result in engine.take_done():
            msg = done_message(stamp, result)
            if send_nowait(record_sock, record_codec.encode(msg)):
                worker.counters["forensics_done_sent"] += 1
            else:
                worker.counters["forensics_done_dropped"] += 1
                worker.log.warning("recorder queue full: ForensicsDone for %s dropped",
                                   result.bundle_path or ", ".join(result.pause_ids))
        worker.heartbeat()


def run_jsonl(worker: Worker, engine: Engine) -> None:
    reader = JsonLines(m.LiveSample | m.Pause)
    writer = JsonLines(m.ForensicsDone)
    stamp = worker.stamper()
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.buffer, selectors.EVENT_READ)
    out = sys.stdout.buffer

    def emit() -> None:
        for result in engine.take_done():
            out.write(writer.encode(done_message(stamp, result)))
            out.flush()

    eof = False
    while worker.running and not eof:
        if sel.select(POLL_MS / 1000):
            line = sys.stdin.buffer.readline()
            if not line:
                eof = True
            elif line.strip():
                try:
                    msg = reader.decode(line)
                except BadMessage as exc:
                    worker.drop_bad("input line", exc)
                else:
                    engine.on_live(msg) if isinstance(msg, m.LiveSample) else engine.on_pause(msg)
        engine.tick()
        emit()
    # End of input: let the running capture finish (bounded by its own timeouts), then report.
    deadline = time.monotonic() + 120
    while worker.running and not engine.wait_idle(POLL_MS / 1000) and time.monotonic() < deadline:
        pass
    emit()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    worker = Worker("forensics", sockets=not args.jsonl)
    worker.install_signal_handlers()
    engine = Engine(worker.config, incarnation=worker.incarnation, counters=worker.counters, sweep=not args.jsonl)
    caffeinate = Caffeinate()
    caffeinate.start()
    try:
        if args.jsonl:
            run_jsonl(worker, engine)
        else:
            run_sockets(worker, engine)
    finally:
        engine.shutdown()
        caffeinate.stop()
        worker.close()
