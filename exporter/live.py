"""The live sample as the exporter reads it: only the fields it publishes, decoded in C.

tiering's ``LiveSample`` carries every rogue's full record (cpu, memory, page-ins, categories,
cgroup...), the machine's figures, the sentinel's window and the busiest processes; the exporter
uses the tier, the event key, the stress (total and per resource), the sample's time and length,
each rogue's command and score, and the sentinel's pause count and worst lateness. These Structs
declare just those, under the same tag, so msgspec skips the rest without building Python
objects for it (a lean decode of the same msgpack frame; ``m.LiveSample`` stays the contract,
and tests/test_exporter_units.py holds the two to the same figures).

Field types match ``pmshared.messages`` (the same constraints are checked, so a frame this
decoder accepts is one the full decoder would accept on these fields).
"""

from __future__ import annotations

from msgspec import Struct

from pmshared import messages as m
from pmshared.codec import Codec


class Rogue(Struct, frozen=True, kw_only=True):
    command: str
    score: m.Score


class Sentinel(Struct, frozen=True, kw_only=True):
    pauses: int = 0
    interval_max_ms: float | None = None


class Samples(Struct, frozen=True, kw_only=True, tag_field="type", tag="process_samples"):
    timestamp: float
    elapsed_ms: float
    max_score: m.Score
    rogues: list[Rogue]
    sentinel: Sentinel | None = None
    stress: dict[str, m.Score] = {}


class LiveView(m.Envelope, frozen=True, kw_only=True, tag="live_sample"):
    """``m.LiveSample`` with only what the exporter reads (same tag, same envelope)."""

    samples: Samples
    state: m.TierState


def live_codec() -> Codec:
    """The live socket's decoder for the exporter (it never encodes)."""
    return Codec(LiveView)
