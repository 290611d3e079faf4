"""The scorer worker: collector snapshots in, scored rogues out.

In the pipeline it binds PULL "raw" and PUB "scored". With ``--jsonl`` it reads snapshots as JSON
lines on stdin and writes scored samples on stdout, so ``python -m collector --jsonl | python -m
scorer --jsonl`` works; other workers' messages in the stream (the collector's pauses) are
passed on. Either way a malformed input is logged, counted and dropped; the worker keeps going.
Scoring itself is the pure ``scorer.scoring.build_samples``.
"""

from __future__ import annotations

from pmshared import messages as m, schedclass
from pmshared.endpoints import ENDPOINTS, send_nowait
from pmshared.runtime import Worker
from pmshared.workerio import (FrameInput, LineInput, LineOutput, jsonl_parser, one_frame, open_endpoints, running,
                               serve_frames, serve_lines)

from scorer.scoring import ScoringRules, build_samples

NAME = "scorer"


def main(argv: list[str] | None = None) -> int:
    args = jsonl_parser(NAME, __doc__, "read snapshots as JSON lines on stdin, write scored samples to stdout "
                        "(no sockets)").parse_args(argv)
    with running(NAME, jsonl=args.jsonl) as worker:
        rules = ScoringRules.from_config(worker.config)
        schedclass.apply_to_worker(worker)  # a context-switch storm must not starve it
        (run_jsonl if args.jsonl else run_pipeline)(worker, rules)
    return 0


def run_pipeline(worker: Worker, rules: ScoringRules) -> None:
    pull, pub = open_endpoints(worker, bind=("raw", "scored"))
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
