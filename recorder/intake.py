"""Turning frames (or JSON lines) into records: anything undecodable is logged, counted, dropped."""

from __future__ import annotations

import logging
from collections import Counter

from pmshared import messages as m
from pmshared.codec import BadMessage, Codec, JsonLines
from pmshared.safetext import inert
from recorder.ratelimit import RateLimitedLog


class Intake:
    """Decodes with the endpoint's codec; a bad frame bumps ``bad_input`` (the name every worker's heartbeat uses) and never raises."""

    def __init__(self, codec: Codec | JsonLines, counters: Counter, log: logging.Logger) -> None:
        self.codec = codec
        self.counters = counters
        self._bad_log = RateLimitedLog(log, interval_s=10.0)

    def decode(self, frame: bytes) -> m.Record | None:
        self.counters["frames_received"] += 1
        try:
            record = self.codec.decode(frame)
        except BadMessage as exc:
            self.counters["bad_input"] += 1
            self._bad_log(logging.WARNING, "dropped an undecodable frame (%d bytes): %s", len(frame),
                          inert(str(exc), 200))
            return None
        return record

    def decode_message(self, frames: list[bytes]) -> m.Record | None:
        """A zmq message: a record is exactly one frame; a multipart message is dropped whole
        (counted once), whatever its parts hold."""
        if len(frames) == 1:
            return self.decode(frames[0])
        self.counters["frames_received"] += 1
        self.counters["bad_input"] += 1
        self._bad_log(logging.WARNING, "dropped a message of %d frames (a record is one frame)", len(frames))
        return None
