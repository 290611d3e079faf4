"""Reaped children's CPU, bounded to what can belong to one interval (scorer and forensics).

The kernel adds a child's whole lifetime of CPU to its parent when the parent reaps it: a shell
reaping an hour-long build, a supervisor a worker it ran all day. That CPU was spent (and charged
to the child) in earlier intervals. Only the part of this interval's busy time that the live
processes' own CPU leaves unexplained can have been the reaped children's: each parent's figure
is capped at it, and all are scaled down together if they add up to more. A fork storm's
short-lived children (never sampled alive) fill exactly that gap, so the storm's parent keeps
its charge.
"""

from __future__ import annotations


def bound_reaped(children: list[float], unexplained: float) -> list[float]:
    """``children`` (% of one core each) bounded by ``unexplained`` busy time (% of one core)."""
    unexplained = max(0.0, unexplained)
    capped = [min(max(c, 0.0), unexplained) for c in children]
    total = sum(capped)
    if total > unexplained:
        scale = unexplained / total
        capped = [c * scale for c in capped]
    return capped
