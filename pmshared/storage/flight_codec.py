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


def encode_frame(frame: Frame) -> bytes:
    return _frame_encoder.encode(frame)


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
