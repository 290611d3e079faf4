"""The tiering worker: scored samples in; the live feed, snapshots and event records out.

In the pipeline it connects SUB "scored", binds PUB "live" (every sample with its tier) and ROUTER
"snapshot" (the ring buffer for joining viewers), and connects PUSH "record" (event records for
the recorder, sent without blocking: a dead recorder costs records, counted and logged, never the
live feed). Flight samples, every sample for the flight record, go in pairs on a PUSH of their
own (tiering/flight_hold.py). One poller serves both inputs. With ``--jsonl`` it reads scored samples as JSON lines
on stdin and writes live samples and records as JSON lines on stdout, passing other workers'
messages on. The logic is the pure
``tiering.engine.Tiering``.
"""

from __future__ import annotations

import math
import time

import zmq

from pmshared import messages as m, schedclass
from pmshared.codec import BadMessage
from pmshared.endpoints import ENDPOINTS, send_nowait
from pmshared.paths import PathError
from pmshared.runtime import Worker, fail
from pmshared.workerio import (FrameInput, LineInput, LineOutput, jsonl_parser, one_frame, open_endpoints, running,
                               serve_frames, serve_lines)

from tiering.engine import Tiering
from tiering.flight_hold import FlightHold

NAME = "tiering"


def main(argv: list[str] | None = None) -> int:
    parser = jsonl_parser(NAME, __doc__, "read scored samples as JSON lines on stdin, write live samples and "
                          "records to stdout")
    parser.add_argument(
        "--clock",
        choices=("sample", "monotonic"),
        default="sample",
        help="--jsonl only: measure the de-escalation delay on the samples' own timestamps "
        "(default, so a recorded stream replays with the same tiers) or on this process's clock",
    )
    args = parser.parse_args(argv)
    with running(NAME, jsonl=args.jsonl) as worker:
        engine = Tiering(worker.config, worker.incarnation)
        schedclass.apply_to_worker(worker)  # a context-switch storm must not starve it
        if args.jsonl:
            run_jsonl(worker, engine, args.clock)
        else:
            run_pipeline(worker, engine)
    return 0


def log_records(worker: Worker, records: list[m.Record]) -> None:
    for rec in records:
        if isinstance(rec, m.EventOpened):
            worker.log.info("event %s opened: tier %d, score %d", rec.event_key, rec.tier, rec.score)
        elif isinstance(rec, m.EventClosed):
            worker.log.info(
                "event %s closed after %.1f s: peak score %d, peak tier %d",
                rec.event_key, (rec.duration_ms or 0.0) / 1000.0, rec.peak_score, rec.peak_tier,
            )


def run_pipeline(worker: Worker, engine: Tiering) -> None:
    live, snapshot, scored, record = open_endpoints(worker, bind=("live", "snapshot"), connect=("scored", "record"))
    flight = open_flight_socket(worker)
    hold = FlightHold()
    live_codec = ENDPOINTS["live"].codec()
    snapshot_codec = ENDPOINTS["snapshot"].codec()
    record_codec = ENDPOINTS["record"].codec()

    def send_records(records: list[m.Record]) -> None:
        for rec in records:
            if send_nowait(record, record_codec.encode(rec)):
                worker.counters["records_sent"] += 1
            else:
                if isinstance(rec, m.EventSample):  # the bulk of what a stalled recorder loses
                    worker.counters["samples_dropped"] += 1
                worker.warn_counted(
                    "records_dropped", "record queue full (recorder down?): dropped %s",
                    rec.__class__.__name__,
                )

    def serve_snapshot(frames: list[bytes]) -> None:
        # ROUTER frames: the requester's routing envelope (identity, and an empty delimiter from
        # a REQ socket), then the request; the reply goes back with the same envelope.
        if len(frames) < 2:
            raise BadMessage(f"expected an envelope and a request, got {len(frames)} frame(s)")
        request = snapshot_codec.decode(frames[-1])
        if not isinstance(request, m.SnapshotRequest):
            raise BadMessage(f"expected a snapshot request, got {request.__class__.__name__}")
        reply = snapshot_codec.encode(engine.snapshot_reply())
        # A ROUTER never blocks; a reply to a peer that has gone is dropped by zmq.
        send_nowait_multipart(snapshot, [*frames[:-1], reply])
        worker.counters["snapshots_served"] += 1

    def send_flight(frames: list[bytes]) -> None:
        for frame in frames:
            if not send_nowait(flight, frame):
                worker.warn_counted("flight_dropped", "flight queue full (recorder down?): dropped a sample")

    def tier(samples: m.ProcessSamples) -> None:
        now = time.monotonic()
        out = engine.handle(samples, now)
        send_nowait(live, live_codec.encode(out.live))
        send_records(out.records)
        if out.flight is not None:
            send_flight(hold.add(record_codec.encode(out.flight), now))
        log_records(worker, out.records)
        worker.counters["samples"] += 1

    def timeout_ms() -> int:
        wait_ms = worker.poll_timeout_ms()
        due_in = hold.seconds_until_due(time.monotonic())
        # Rounded up: waking a millisecond before the held sample is due costs a turn.
        return wait_ms if due_in is None else min(wait_ms, math.ceil(due_in * 1000))

    send_records(engine.start())
    worker.log.info("tiering samples from %s", worker.sockets.address("scored"))
    try:
        serve_frames(worker, [
            FrameInput(scored, one_frame(ENDPOINTS["scored"].codec()), tier, "frame on scored"),
            FrameInput(snapshot, lambda frames: frames, serve_snapshot, "snapshot request"),
        ], tick=lambda: send_flight(hold.take_due(time.monotonic())), timeout_ms=timeout_ms)
    finally:
        send_flight(hold.take_all())  # on its way within EXIT_LINGER_MS, as the records are
        # Records the recorder never took hold the exit for at most the shared EXIT_LINGER_MS.
        record.close()
        flight.close()


FLIGHT_QUEUE = 300  # samples (5 minutes at 1 Hz) held for a recorder that is restarting


def open_flight_socket(worker: Worker) -> zmq.Socket:
    """A second PUSH to "record" for the flight samples. Its own queue, so a recorder that is down
    for long fills this one (bounded to FLIGHT_QUEUE samples) and never crowds out event records,
    which keep the whole ``record_queue``."""
    try:
        return worker.sockets.connect("record", hwm=FLIGHT_QUEUE)
    except (PathError, zmq.ZMQError) as exc:
        fail(f"{NAME} cannot open its endpoints: {exc}")


def send_nowait_multipart(sock: zmq.Socket, frames: list[bytes]) -> bool:
    try:
        sock.send_multipart(frames, zmq.NOBLOCK)
        return True
    except zmq.Again:
        return False


def run_jsonl(worker: Worker, engine: Tiering, clock: str) -> None:
    output = LineOutput(m.LiveSample | m.Record)

    def tier(samples: m.ProcessSamples) -> list:
        now = samples.timestamp if clock == "sample" else time.monotonic()
        result = engine.handle(samples, now)
        log_records(worker, result.records)
        worker.counters["samples"] += 1
        return [result.live, *result.records, *([result.flight] if result.flight else [])]

    serve_lines(worker, LineInput(worker, m.ProcessSamples, output), output, tier, start=engine.start())
