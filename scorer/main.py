"""The scorer worker: collector snapshots in, scored rogues out.

In the pipeline it binds PULL "raw" and PUB "scored". With ``--jsonl`` it reads snapshots as JSON
lines on stdin and writes scored samples on stdout, so ``python -m collector --jsonl | python -m
scorer --jsonl`` works. Either way a malformed input is logged, counted and dropped; the worker
keeps going. Scoring itself is the pure ``scorer.scoring.build_samples``.
"""

from __future__ import annotations

import argparse
import sys

import zmq

from pmshared import messages as m
from pmshared.codec import BadMessage, Codec, JsonLines
from pmshared.endpoints import ENDPOINTS, send_nowait
from pmshared.jsonlpipe import IDLE, iter_lines, write_lines
from pmshared.paths import PathError
from pmshared.runtime import POLL_MS, Worker, fail

from scorer.scoring import ScoringRules, build_samples

NAME = "scorer"
# Frames handled per wake-up before the loop looks at heartbeat and stop flag again.
DRAIN_MAX = 64
# Besides snapshots, a collector's --jsonl stream may carry its other messages (pauses): not ours.
_JSONL_INPUT = m.Snapshot | m.Pause


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scorer", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help="read snapshots as JSON lines on stdin, write scored samples to stdout (no sockets)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    worker = Worker(NAME, sockets=not args.jsonl)
    worker.install_signal_handlers()
    rules = ScoringRules.from_config(worker.config)
    try:
        if args.jsonl:
            run_jsonl(worker, rules)
        else:
            run_pipeline(worker, rules)
    finally:
        worker.close()
    worker.log.info("stopped; counters %s", dict(worker.counters))
    return 0


def decode_frames(codec: Codec, frames: list[bytes]) -> m.Snapshot:
    """One snapshot per message; a multipart message is not one of ours."""
    if len(frames) != 1:
        raise BadMessage(f"expected 1 frame, got {len(frames)}")
    return codec.decode(frames[0])


def run_pipeline(worker: Worker, rules: ScoringRules) -> None:
    assert worker.sockets is not None
    try:
        pull = worker.sockets.bind("raw")
        pub = worker.sockets.bind("scored")
    except (PathError, zmq.ZMQError) as exc:
        fail(f"scorer cannot bind its endpoints: {exc}")
    worker.start_heartbeat()
    raw = ENDPOINTS["raw"].codec()
    scored = ENDPOINTS["scored"].codec()
    stamp = worker.stamper()
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    if worker.wakeup_fd is not None:
        poller.register(worker.wakeup_fd, zmq.POLLIN)  # a signal wakes the loop: no timed polling
    worker.log.info("scoring snapshots from %s", worker.sockets.address("raw"))

    while worker.running:
        worker.heartbeat()
        ready = dict(poller.poll(worker.poll_timeout_ms()))
        if worker.wakeup_fd in ready:
            worker.drain_wakeup()
        if pull not in ready:
            continue
        for _ in range(DRAIN_MAX):
            try:
                frames = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                snapshot = decode_frames(raw, frames)
            except BadMessage as exc:
                worker.drop_bad("frame on raw", exc)
                continue
            # PUB never blocks: a slow or absent subscriber loses samples, never stalls us.
            send_nowait(pub, scored.encode(build_samples(snapshot, rules, stamp)))
            worker.counters["scored"] += 1


def run_jsonl(worker: Worker, rules: ScoringRules) -> None:
    reader = JsonLines(_JSONL_INPUT)
    writer = JsonLines(m.ProcessSamples)
    stamp = worker.stamper()
    out = sys.stdout.buffer
    for line in iter_lines(sys.stdin.fileno(), lambda: not worker.running, POLL_MS):
        if line is IDLE or not line.strip():
            continue
        try:
            msg = reader.decode(line)
        except BadMessage as exc:
            worker.drop_bad("input line", exc)
            continue
        if not isinstance(msg, m.Snapshot):
            worker.counters["ignored"] += 1
            continue
        if not write_lines(out, [writer.encode(build_samples(msg, rules, stamp))]):
            return  # the reader went away (e.g. `| head`)
        worker.counters["scored"] += 1
