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
passed on to stdout with every other line (the recorder downstream records the pauses), and
ForensicsDone JSON lines added as bundles are written; at end of input it waits for the running
capture.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import zmq

from pmshared import messages as m
from pmshared.codec import Stamper
from pmshared.endpoints import ENDPOINTS, send_nowait
from pmshared.jsonlpipe import IDLE
from pmshared.runtime import POLL_MS, Worker
from pmshared.workerio import FrameInput, LineInput, LineOutput, jsonl_parser, one_frame, open_endpoints, serve_frames

from forensics.caffeinate import Caffeinate
from forensics.engine import Engine
from forensics.session import SessionResult

DRAIN_BUDGET = 200  # messages per socket per loop turn, so one busy input cannot starve the other


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


def run_sockets(worker: Worker, engine: Engine) -> None:
    pause_sock, live_sock, record_sock = open_endpoints(worker, bind=("pause",), connect=("live", "record"))
    record_codec = ENDPOINTS["record"].codec()
    stamp = worker.stamper()

    def tick() -> None:
        engine.tick()
        for result in engine.take_done():
            msg = done_message(stamp, result)
            if send_nowait(record_sock, record_codec.encode(msg)):
                worker.counters["forensics_done_sent"] += 1
            else:
                worker.counters["forensics_done_dropped"] += 1
                worker.log.warning("recorder queue full: ForensicsDone for %s dropped",
                                   result.bundle_path or ", ".join(result.pause_ids))

    def inbox(sock: zmq.Socket, name: str, handle: Callable[[Any], object]) -> FrameInput:
        return FrameInput(sock, one_frame(ENDPOINTS[name].codec()), handle, f"{name} frame",
                          budget=DRAIN_BUDGET, bad_counter=f"bad_input_{name}")

    worker.log.info("forensics ready (bundles in %s)", engine.events_dir)
    # While a capture runs its result is picked up within POLL_MS; idle, the loop sleeps until a
    # heartbeat is due (or a frame or signal comes).
    serve_frames(worker, [inbox(pause_sock, "pause", engine.on_pause), inbox(live_sock, "live", engine.on_live)],
                 tick, timeout_ms=lambda: POLL_MS if engine.busy else worker.poll_timeout_ms())


def run_jsonl(worker: Worker, engine: Engine) -> None:
    output = LineOutput(m.ForensicsDone | m.LiveSample | m.Pause)
    lines = LineInput(worker, m.LiveSample | m.Pause, output)
    stamp = worker.stamper()

    def emit() -> None:
        output.write([done_message(stamp, result) for result in engine.take_done()])

    for msg in lines:
        if msg is not IDLE:
            # In the pipeline forensics only listens in (the live feed is a PUB, the collector sends
            # the recorder its own copy of each pause): in a pipe it passes its input on too.
            output.write([msg])
            if isinstance(msg, m.LiveSample):
                engine.on_live(msg)
            else:
                engine.on_pause(msg)
        engine.tick()
        emit()
    # End of input: let the running capture finish (bounded by its own timeouts), then report.
    deadline = time.monotonic() + 120
    while worker.running and not engine.wait_idle(POLL_MS / 1000) and time.monotonic() < deadline:
        pass
    emit()
    if report := lines.report():
        print(f"forensics: {report}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = jsonl_parser("forensics", __doc__, "JSON lines on stdin/stdout instead of sockets")
    args = parser.parse_args(argv)
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
