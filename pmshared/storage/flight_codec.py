"""How the flight recorder's frames are laid out on disk: one frame, and a block of a minute's frames.

A frame is one sample as `pmctl watch` saw it: the scored ``ProcessSamples`` (system figures,
sentinel lateness, stress, rogues, the busiest few processes, sometimes the whole table) and the
``TierState`` tiering had after it. Encoded as msgpack (msgspec), the wire's own shapes, so a
reader decodes exactly the structs the live viewers render.

A block is a minute of frames: the msgpack list ``[[timestamp, frame bytes], ...]`` compressed
with zlib. Frames stay separately encoded inside it, so a reader that wants one frame decompresses
the block and decodes only that frame. Why zlib: measured in bench/flight_size.py (README, "Flight
recorder"): level 6 already meets the size target, the standard library has it, and zstandard
gained too little over it to earn a dependency.
"""

from __future__ import annotations

import zlib

import msgspec

from pmshared import messages as m

CODEC = "zlib"  # stored with each block, so a later codec can be added without a migration
ZLIB_LEVEL = 6


class Frame(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded sample: what ``pmctl watch`` shows for that second."""

    samples: m.ProcessSamples
    state: m.TierState

    @property
    def timestamp(self) -> float:
        return self.samples.timestamp

    def ring_entry(self) -> m.RingEntry:
        """The frame as an entry of watch's ring buffer (``cli.watch_feed.FeedState.ring``)."""
        return m.RingEntry(samples=self.samples, tier=self.state.tier)


_frame_encoder = msgspec.msgpack.Encoder()
_frame_decoder = msgspec.msgpack.Decoder(Frame)
_block_decoder = msgspec.msgpack.Decoder(list[tuple[float, msgspec.Raw]])


class BlockCorrupt(ValueError):
    """A stored block that does not decompress or decode (reported, never a traceback)."""


def _q(x):
    """A measured figure to the precision worth keeping: two decimals below 100, whole above.
    The collector's rates carry noise in every digit (csw 1.000016027/s), which no compressor
    can shrink; rounded, a minute of frames compresses about twice as well (flight_size.py)."""
    if type(x) is not float or x != x or x in (_INF, -_INF):
        return x
    return round(x, 2) if -100.0 < x < 100.0 else round(x)


_INF = float("inf")


def _q_map(fields: dict) -> dict:
    return {k: (_q_map(v) if type(v) is dict else _q(v)) for k, v in fields.items()}


def _q_row(row: list) -> list:
    return [_q(v) for v in row]


def quantized(frame: Frame) -> dict:
    """The frame as plain objects with its figures rounded (timestamps are kept exact)."""
    plain = msgspec.to_builtins(frame)
    s = plain["samples"]
    s["rogues"] = [_q_map(r) for r in s["rogues"]]
    s["top"] = [_q_row(r) for r in s["top"]]
    if s.get("table"):
        s["table"] = [_q_row(r) for r in s["table"]]
    for key in ("system", "sentinel"):
        if s.get(key):
            s[key] = _q_map(s[key])
    s["elapsed_ms"] = _q(s["elapsed_ms"])
    return plain


def encode_frame(frame: Frame) -> bytes:
    return _frame_encoder.encode(quantized(frame))


def decode_frame(data: bytes | msgspec.Raw) -> Frame:
    try:
        return _frame_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BlockCorrupt(f"a stored frame does not decode: {exc}") from exc


def encode_block(frames: list[tuple[float, bytes]]) -> bytes:
    """``frames`` (timestamp, encoded frame), by timestamp, into one compressed block."""
    body = _frame_encoder.encode([(ts, msgspec.Raw(data)) for ts, data in frames])
    return zlib.compress(body, ZLIB_LEVEL)


def decode_block(data: bytes, codec: str = CODEC) -> list[tuple[float, msgspec.Raw]]:
    """A block's (timestamp, still-encoded frame) pairs; frames decode with ``decode_frame``."""
    if codec != CODEC:
        raise BlockCorrupt(f"a stored block uses codec {codec!r}, unknown to this pause-monitor")
    try:
        return _block_decoder.decode(zlib.decompress(data))
    except (zlib.error, msgspec.DecodeError) as exc:
        raise BlockCorrupt(f"a stored block does not decode: {exc}") from exc
