"""Who an event is about over its whole length: each rogue's scores summed over the event's samples.

An event used to be named after the rogue of its single highest-scoring sample, and one second
could outweigh ten: `stress-ng --hdd 2`'s parent scored 35-43 under cpu in its first second
(forking its workers, which filled the page cache at full speed), and where the disk kept up, its
workers' io charge in the next ten seconds stayed below that, so the event read "stress-ng, cpu".
Summed over the event, those ten seconds of io win. A process's categories are summed the same
way (each of its samples adds its score to each category it was named under that second), and
only those within the category ratio of its leading one are kept, the rule the model applies to
one sample's charges. Tiering tallies the seconds at the elevated threshold only: an event's calm
tail (the de-escalation delay) is not what it is about.

Pure: rogues in, ``EventCulprit`` rankings out; tiering decides when to send them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pmshared import messages as m

KEEP = 64  # processes tallied per event; beyond it the smallest sums go (KEEP_AFTER_PRUNE remain)
KEEP_AFTER_PRUNE = KEEP // 2
SENT = 5  # culprits an EventCulprits carries


@dataclass
class _Entry:
    command: str
    score_sum: int = 0
    peak: int = 0
    samples: int = 0
    by_category: dict[str, int] = field(default_factory=dict)


class CulpritTally:
    def __init__(self, category_ratio: float) -> None:
        self.category_ratio = category_ratio
        self.samples = 0  # samples added
        self._entries: dict[int, _Entry] = {}

    def add(self, rogues: Iterable[m.ProcessScore]) -> None:
        """One sample's rogues. A rogue with score 0 (listed for its state alone) consumed nothing
        the model could charge: it is not tallied."""
        self.samples += 1
        entries = self._entries
        fresh = []
        for r in rogues:
            if r.score <= 0:
                continue
            entry = entries.get(r.pid)
            if entry is None:
                entry = entries[r.pid] = _Entry(r.command)
                fresh.append(r.pid)
            entry.command = r.command  # a worker renames itself once started (stress-ng-hdd)
            entry.score_sum += r.score
            entry.peak = max(entry.peak, r.score)
            entry.samples += 1
            for c in r.categories:
                entry.by_category[c] = entry.by_category.get(c, 0) + r.score
        if len(entries) > KEEP:
            self._prune(set(fresh))

    def _prune(self, keep: set[int]) -> None:
        """The largest sums, and this sample's newcomers (dropping them at once would keep a
        process that appears late in a long event from ever being tallied)."""
        ranked = sorted(self._entries.items(), key=lambda kv: -kv[1].score_sum)
        keep |= {pid for pid, _ in ranked[:KEEP_AFTER_PRUNE]}
        self._entries = {pid: e for pid, e in self._entries.items() if pid in keep}

    def _categories(self, entry: _Entry) -> list[str]:
        ordered = sorted(entry.by_category.items(), key=lambda kv: (-kv[1], kv[0]))
        if not ordered:
            return []
        floor = self.category_ratio * ordered[0][1]
        return [c for c, points in ordered if points >= floor]

    def culprits(self, n: int = SENT) -> list[m.EventCulprit]:
        """The ``n`` largest sums, largest first (on a tie: the higher peak, then the lower pid)."""
        ranked = sorted(self._entries.items(), key=lambda kv: (-kv[1].score_sum, -kv[1].peak, kv[0]))[:n]
        return [m.EventCulprit(pid=pid, command=e.command, score_sum=e.score_sum, peak=e.peak,
                               samples=e.samples, categories=self._categories(e)) for pid, e in ranked]

    def leader(self) -> tuple[int, tuple[str, ...]] | None:
        """(pid, categories) of the top culprit: what ``pmctl events`` names the event after."""
        top = self.culprits(1)
        return (top[0].pid, tuple(top[0].categories)) if top else None
