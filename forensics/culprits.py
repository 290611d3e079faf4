"""Who stressed the machine around the pause.

Seed (identify_culprits): the peak score of each rogue over the ring buffer, keyed by pid (two
processes with the same name are two culprits), sorted by score. Here also:
- the categories are the union over every sample the process was a rogue in (what made it rogue
  at any time in the window, not only at its peak);
- ``seen`` counts those samples, and breaks ties (a process rogue for 20 s outranks one rogue once);
- commands matching a configured suspect pattern (case-insensitive substring, as the seed) are
  flagged ``suspect``;
- when the ring buffer holds no rogue (the worker just started, or the feed was down), the
  snapshot taken right after the pause fills in: stuck processes first, then the busiest by CPU,
  with score 0 since nobody scored them. culprits.json says which source was used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pmshared import messages as m


def is_suspect(command: str, patterns: list[str]) -> bool:
    lowered = command.lower()
    return any(p.lower() in lowered for p in patterns if p)


@dataclass
class _Peak:
    pid: int
    command: str
    score: int
    categories: set[str] = field(default_factory=set)
    seen: int = 0


def rank_from_ring(entries: list[m.LiveSample]) -> list[tuple[m.Culprit, int]]:
    """(culprit without suspect flag, samples seen) for every rogue in ``entries``, best first."""
    peaks: dict[int, _Peak] = {}
    for entry in entries:
        for rogue in entry.samples.rogues:
            peak = peaks.get(rogue.pid)
            if peak is None:
                peak = peaks[rogue.pid] = _Peak(rogue.pid, rogue.command, rogue.score)
            elif rogue.score > peak.score:
                peak.score = rogue.score
                peak.command = rogue.command
            peak.categories.update(rogue.categories)
            peak.seen += 1
    ordered = sorted(peaks.values(), key=lambda p: (-p.score, -p.seen, p.pid))
    return [
        (m.Culprit(pid=p.pid, command=p.command, score=p.score, categories=sorted(p.categories)), p.seen)
        for p in ordered
    ]


def rank_from_processes(processes: list[m.ProcessInfo], count: int) -> list[m.Culprit]:
    """Fallback when no rogue was seen: stuck processes, then the busiest by CPU."""
    stuck = [p for p in processes if p.state == "stuck"]
    busy = sorted(
        (p for p in processes if p.state != "stuck" and (p.cpu or 0) > 0),
        key=lambda p: -(p.cpu or 0),
    )
    out = [m.Culprit(pid=p.pid, command=p.command, score=0, categories=["stuck"]) for p in stuck]
    out += [m.Culprit(pid=p.pid, command=p.command, score=0, categories=["cpu"]) for p in busy]
    return out[:count]


@dataclass
class CulpritReport:
    culprits: list[m.Culprit]
    source: str  # "ring" or "snapshot" or "none"
    seen: dict[int, int]  # pid -> samples it was rogue in
    suspects_present: list[dict[str, object]]  # suspects running but not among the culprits


def identify(
    entries: list[m.LiveSample],
    processes: list[m.ProcessInfo] | None,
    patterns: list[str],
    count: int,
) -> CulpritReport:
    ranked = rank_from_ring(entries)
    seen = {c.pid: n for c, n in ranked}
    chosen = [c for c, _ in ranked[:count]]
    source = "ring" if chosen else "none"
    if not chosen and processes:
        chosen = rank_from_processes(processes, count)
        source = "snapshot" if chosen else "none"
    culprits = [
        m.Culprit(
            pid=c.pid,
            command=c.command,
            score=c.score,
            categories=c.categories,
            suspect=is_suspect(c.command, patterns),
        )
        for c in chosen
    ]
    chosen_pids = {c.pid for c in culprits}
    present = [
        {"pid": p.pid, "command": p.command, "state": p.state, "cpu": p.cpu}
        for p in (processes or [])
        if p.pid not in chosen_pids and is_suspect(p.command, patterns)
    ]
    return CulpritReport(culprits=culprits, source=source, seen=seen, suspects_present=present)
