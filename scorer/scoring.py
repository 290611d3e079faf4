"""Scoring of one snapshot, under the configured model (``[scoring] model``).

"pressure" (the default) is scorer.pressure: the machine's stress, charged to the processes that
hold the contended resource. "seed" is the seed's per-process formula, bit for bit, below:
eight weighted factors, each normalised to 0..1.

    cpu      cpu% / 100                  (capped at 1.0, so 400 % on four cores counts as 1.0)
    state    stuck 1.0, zombie 0.8, halted 0.6, stopped 0.4, anything else 0
    pageins  page-ins/s / 1000
    mem      resident bytes / 8 GiB
    cmprs    swapped/compressed bytes / 1 GiB
    csw      context switches/s / 100,000
    sysbsd   syscalls/s / 100,000
    threads  threads / 1000

score = int(sum(factor * weight)), capped at 100 — ``int`` truncates as the seed did, so 27.5
scores 27. An unknown figure (``None``) contributes 0. Scores are never below 0, even if a
collector bug hands us a negative rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pmshared.codec import Stamper
from pmshared.config import Config, ScoringWeights
from pmshared.messages import ProcessInfo, ProcessSamples, ProcessScore, Snapshot

from scorer.flight_pick import busiest, table_due
from scorer.pressure import PressureRules, score_pressure
from scorer.selection import SelectionRules, select_rogues

GIB = 1024**3
STATE_FACTOR = {"stuck": 1.0, "zombie": 0.8, "halted": 0.6, "stopped": 0.4}


@dataclass(frozen=True)
class ScoringRules:
    """Everything the scorer needs from the config, read once at start."""

    weights: ScoringWeights
    selection: SelectionRules
    model: str = "seed"
    pressure: PressureRules | None = None  # set when model == "pressure"
    interval_s: float = 1.0  # the sampling interval: how often the flight recorder gets the table

    @classmethod
    def from_config(cls, config: Config) -> ScoringRules:
        model = config.scoring.model
        return cls(
            weights=config.scoring.weights,
            selection=SelectionRules.from_config(config.rogue_selection),
            model=model,
            pressure=PressureRules.from_config(config) if model == "pressure" else None,
            interval_s=config.sampling.interval_s,
        )


def _known(value: float | None) -> float:
    """An unknown figure scores 0; so does NaN (``min(1.0, nan)`` would count it as full)."""
    if value is None or value != value:
        return 0.0
    return value


def score_process(proc: ProcessInfo, weights: ScoringWeights) -> int:
    """The 0..100 score of one process (the seed's formula, in the seed's order of terms)."""
    cpu = _known(proc.cpu)
    pageins = _known(proc.pageins)
    cmprs = _known(proc.cmprs)
    csw = _known(proc.csw)
    sysbsd = _known(proc.sysbsd)
    total = (
        min(1.0, cpu / 100.0) * weights.cpu
        + STATE_FACTOR.get(proc.state, 0.0) * weights.state
        + min(1.0, pageins / 1000.0) * weights.pageins
        + min(1.0, proc.mem / (8 * GIB)) * weights.mem
        + min(1.0, cmprs / GIB) * weights.cmprs
        + min(1.0, csw / 100_000.0) * weights.csw
        + min(1.0, sysbsd / 100_000.0) * weights.sysbsd
        + min(1.0, proc.threads / 1000.0) * weights.threads
    )
    return max(0, min(100, int(total)))


def score_rogues(
    rogues: Iterable[tuple[ProcessInfo, set[str]]], weights: ScoringWeights
) -> list[ProcessScore]:
    return [
        ProcessScore(
            pid=proc.pid,
            command=proc.command,
            cpu=proc.cpu,
            state=proc.state,
            mem=proc.mem,
            cmprs=proc.cmprs,
            pageins=proc.pageins,
            csw=proc.csw,
            sysbsd=proc.sysbsd,
            threads=proc.threads,
            score=score_process(proc, weights),
            categories=sorted(categories),
        )
        for proc, categories in rogues
    ]


def score_snapshot(snapshot: Snapshot, rules: ScoringRules) -> tuple[int, list[ProcessScore]]:
    """``(max_score, rogues)`` of one snapshot under the seed model; max_score is 0 when nothing
    was selected."""
    scored = score_rogues(select_rogues(snapshot.processes, rules.selection), rules.weights)
    return max((r.score for r in scored), default=0), scored


def build_samples(snapshot: Snapshot, rules: ScoringRules, stamp: Stamper) -> ProcessSamples:
    """The scored message for one snapshot (``stamp`` fills sender, incarnation and seq)."""
    if rules.pressure is not None:
        max_score, stress, rogues = score_pressure(snapshot, rules.pressure)
    else:
        (max_score, rogues), stress = score_snapshot(snapshot, rules), {}
    return stamp(
        ProcessSamples,
        timestamp=snapshot.timestamp,
        elapsed_ms=snapshot.elapsed_ms,
        process_count=snapshot.process_count,
        max_score=max_score,
        rogues=rogues,
        snapshot_seq=snapshot.seq,
        system=snapshot.system,
        sentinel=snapshot.sentinel,
        model=rules.model,
        stress=stress,
        top=busiest(snapshot.processes, {r.pid for r in rogues}),
        table=snapshot.processes if table_due(snapshot.seq, rules.interval_s) else None,
    )
