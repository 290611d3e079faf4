"""The scorer worker: collector snapshots in, scored rogues out.

In the pipeline it binds PULL "raw" and PUB "scored". With ``--jsonl`` it reads snapshots as JSON
lines on stdin and writes scored samples on stdout, so ``python -m collector --jsonl | python -m
scorer --jsonl`` works; other workers' messages in the stream (the collector's pauses) are
passed on. Either way a malformed input is logged, counted and dropped; the worker keeps going. Scoring itself is the pure ``scorer.scoring.build_samples``.
"""

from __future__ import annotations

import argparse

import zmq

from pmshared import messages as m
from pmshared.endpoints import ENDPOINTS, send_nowait
from pmshared.paths import PathError
from pmshared.runtime import Worker, fail
from pmshared.workerio import FrameInput, LineInput, LineOutput, one_frame, serve_frames, serve_lines

from scorer.scoring import ScoringRules, build_samples

NAME = "scorer"


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


def run_pipeline(worker: Worker, rules: ScoringRules) -> None:
    assert worker.sockets is not None
    try:
        pull = worker.sockets.bind("raw")
        pub = worker.sockets.bind("scored")
    except (PathError, zmq.ZMQError) as exc:
        fail(f"scorer cannot bind its endpoints: {exc}")
    worker.start_heartbeat()
    scored = ENDPOINTS["scored"].codec()
    stamp = worker.stamper()

    def score(snapshot: m.Snapshot) -> None:
        # PUB never blocks: a slow or absent subscriber loses samples, never stalls us.
        send_nowait(pub, scored.encode(build_samples(snapshot, rules, stamp)))
        worker.counters["scored"] += 1

    worker.log.info("scoring snapshots from %s", worker.sockets.address("raw"))
    serve_frames(worker, [FrameInput(pull, one_frame(ENDPOINTS["raw"].codec()), score, "frame on raw")])


def run_jsonl(worker: Worker, rules: ScoringRules) -> None:
    stamp = worker.stamper()
    output = LineOutput(m.ProcessSamples)

    def score(snapshot: m.Snapshot) -> list[m.ProcessSamples]:
        worker.counters["scored"] += 1
        return [build_samples(snapshot, rules, stamp)]

    serve_lines(worker, LineInput(worker, m.Snapshot, output), output, score)
