"""The forensics worker process: ``python -m forensics``.

Sockets (pmshared.endpoints): SUB "live" (tiering's feed, for the ring buffer and the alert
rules), PULL "pause" (bound here; the collector pushes each Pause with a fresh process list),
PUSH "record" (ForensicsDone to the recorder, never blocking; drops are counted).

The loop polls the pause socket and the worker's signal wakeup fd until the next heartbeat is due
(every HEARTBEAT_S; POLL_MS while a capture runs, to pick up its result), whatever the captures do:
they run on their own threads and process groups. The live feed waits in ZeroMQ's queue and is
taken in on every wake-up and before each pause (polled too where an alert rule needs each sample
at once: ``prompt_alerts``). On SIGTERM the loop wakes and
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
from pmshared.config import AlertsConfig
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


# Forensics has nothing to do every second: the live feed only fills its ring buffer. It heartbeats
# every HEARTBEAT_S (the watchdog allows missed_heartbeats of it) and takes the queued live samples
# in on each wake-up, and before every pause it is sent, so the ring is whole when a pause needs it.
# Waking for each sample was most of an idle forensics worker's CPU (a Python wake-up costs
# ~0.3-0.4 ms of CPU on a VM; one a second is ~0.04 % of a core).
HEARTBEAT_S = 5.0
# Samples that wait between two wake-ups: HEARTBEAT_S plus slack at the collector's fastest rate
# (interval_s 0.1 s) is ~63; room for four times that.
LIVE_QUEUE = 256


def prompt_alerts(alerts: AlertsConfig) -> bool:
    """Do the alert rules need each live sample as it comes? A tier-2 notification (off by
    default), or a critical-score one due sooner than a lazy wake-up's delay would matter: then
    the live feed is polled as before."""
    return alerts.enabled and (alerts.elevated_entered or (alerts.critical_stress and alerts.critical_duration < 2 * HEARTBEAT_S))


def live_first(worker: Worker, live: FrameInput, on_pause: Callable[[m.Pause], object]) -> Callable[[m.Pause], None]:
    """``on_pause`` after every live sample queued so far is taken in: a pause's session reads
    the ring buffer, which must hold the samples up to the pause."""

    def handle(pause: m.Pause) -> None:
        live.drain(worker)
        on_pause(pause)

    return handle


def run_sockets(worker: Worker, engine: Engine) -> None:
    prompt = prompt_alerts(worker.config.alerts)
    if not prompt:
        worker.heartbeat_every(HEARTBEAT_S)
    pause_sock, live_sock, record_sock = open_endpoints(worker, bind=("pause",), connect=("live", "record"),
                                                         hwm={"live": LIVE_QUEUE})
    record_codec = ENDPOINTS["record"].codec()
    stamp = worker.stamper()

    def inbox(sock: zmq.Socket, name: str, handle: Callable[[Any], object], budget: int) -> FrameInput:
        return FrameInput(sock, one_frame(ENDPOINTS[name].codec()), handle, f"{name} frame",
                          budget=budget, bad_counter=f"bad_input_{name}")

    live = inbox(live_sock, "live", engine.on_live, LIVE_QUEUE)
    on_pause = live_first(worker, live, engine.on_pause)

    def tick() -> None:
        live.drain(worker)  # not polled: taken in on every wake-up
        engine.tick()
        for result in engine.take_done():
            msg = done_message(stamp, result)
            if send_nowait(record_sock, record_codec.encode(msg)):
                worker.counters["forensics_done_sent"] += 1
            else:
                worker.counters["forensics_done_dropped"] += 1
                worker.log.warning("recorder queue full: ForensicsDone for %s dropped",
                                   result.bundle_path or ", ".join(result.pause_ids))

    worker.log.info("forensics ready (bundles in %s)", engine.events_dir)
    # While a capture runs its result is picked up (and the live feed taken in) within POLL_MS;
    # idle, the loop sleeps until a heartbeat is due (or a pause or a signal comes).
    polled = [inbox(pause_sock, "pause", on_pause, DRAIN_BUDGET)] + ([live] if prompt else [])
    serve_frames(worker, polled, tick, timeout_ms=lambda: POLL_MS if engine.busy else worker.poll_timeout_ms())


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
