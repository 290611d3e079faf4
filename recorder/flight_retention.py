"""Keeping the flight record within its limits: every minute, by age and by size (issue 19).

The rule (oldest minutes first, pinned events' minutes never) is ``storage.prune_flight``; this
is only its schedule. A minute is the record's own grain (one block a minute), so the record never
outgrows ``retention.flight_max_mb`` by more than a minute of samples. A busy or full database
postpones the prune by ``RETRY_S``, like the daily prune.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

import apsw

from pmshared import storage
from pmshared.config import RetentionConfig

EVERY_S = 60.0
RETRY_S = 60.0
MB = 10**6


class FlightRetention:
    def __init__(self, retention: RetentionConfig, *, counters: Counter, log: logging.Logger,
                 every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.max_age_days = retention.flight_days
        self.max_bytes = retention.flight_max_mb * MB
        self.counters = counters
        self.log = log
        self.every_s = every_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.next_at = clock()

    def run_if_due(self, conn: apsw.Connection, now: float | None = None) -> storage.FlightPruneResult | None:
        now = self.clock() if now is None else now
        if now < self.next_at:
            return None
        try:
            result = storage.prune_flight(conn, max_age_days=self.max_age_days, max_bytes=self.max_bytes,
                                          now=self.wall_clock())
        except storage.TRANSIENT as exc:
            self.next_at = now + RETRY_S
            self.log.warning("flight record prune postponed: %s", exc)
            return None
        self.next_at = now + self.every_s
        self.counters["flight_bytes"] = result.bytes_kept
        if result.blocks_by_age or result.blocks_by_size:
            self.counters["flight_minutes_pruned"] += result.blocks_by_age + result.blocks_by_size
            self.log.info("flight record: pruned %d minutes by age, %d by size (%.1f MB freed, %.1f MB kept)",
                          result.blocks_by_age, result.blocks_by_size, result.bytes_freed / MB,
                          result.bytes_kept / MB)
        return result
