"""Auto-prune: once at start-up and then once a day, by the retention config (the seed's rule).

The rule itself (which rows go) lives in ``pmshared.storage.prune`` so ``pmctl prune`` and the
recorder cannot disagree. Pruned bundles' directories are removed only inside the events directory.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import apsw

from pmshared import storage
from pmshared.config import RetentionConfig

DAY_S = 86400.0
RETRY_S = 60.0  # after a busy/full database


class PruneSchedule:
    def __init__(
        self,
        retention: RetentionConfig,
        events_root: Path,
        *,
        counters: Counter,
        log: logging.Logger,
        every_s: float = DAY_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.retention = retention
        self.events_root = events_root
        self.counters = counters
        self.log = log
        self.every_s = every_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.next_at = clock()  # due at once: the start-up prune

    def run_if_due(self, conn: apsw.Connection, now: float | None = None) -> storage.PruneResult | None:
        now = self.clock() if now is None else now
        if now < self.next_at:
            return None
        try:
            result = storage.prune(
                conn,
                events_days=self.retention.events_days,
                samples_days=self.retention.samples_days,
                now=self.wall_clock(),
            )
        except storage.TRANSIENT as exc:
            self.next_at = now + RETRY_S
            self.log.warning("prune postponed: %s", exc)
            return None
        self.next_at = now + self.every_s
        try:
            storage.optimize(conn)
        except storage.TRANSIENT:
            pass  # statistics can wait for tomorrow
        removed = storage.remove_bundle_dirs(result.bundle_paths, self.events_root)
        self.counters["prune_runs"] += 1
        self.counters["pruned_events"] += len(result.events)
        self.counters["pruned_pauses"] += len(result.pauses)
        if result.events or result.pauses or result.bundle_paths:
            self.log.info(
                "pruned %d events (%d samples), %d pauses, %d bundles (%d directories removed)",
                len(result.events), result.samples, len(result.pauses), len(result.bundle_paths), len(removed),
            )
        return result
