"""How the flight recorder's frames are laid out on disk: one frame, and a block of a minute's frames.

A frame (flight_layout.py) is one sample as `pmctl watch` saw it: the scored ``ProcessSamples``
(system figures, sentinel lateness, stress, rogues, the busiest few processes, sometimes the whole
table) and the ``TierState`` tiering had after it; on disk as msgpack arrays with its figures
rounded, read back in the wire's own types.

A block is a minute of frames: the msgpack list ``[[timestamp, frame bytes], ...]`` compressed
with zstandard (level 6). Frames stay separately encoded inside it, so a reader that wants one
frame decompresses the block and decodes only that frame. Why zstandard: measured in
bench/flight_size.py on a simulated 600-process machine, level 6 makes blocks 10 % smaller than
zlib's level 6 (45 against 50 MB a day, the target being 50) in half its CPU time (3 against 6 ms
a minute), and decompresses faster for `pmctl history`. The codec is stored with each block.
"""

from __future__ import annotations

import functools
import zlib

import msgspec

from pmshared import messages as m
from pmshared.flight_layout import Frame, StoredFrame, message_frame, stored_plain

__all__ = ["CODEC", "BlockCorrupt", "Frame", "check_frame", "decode_block", "decompress_block", "decode_frame",
           "encode_block", "encode_frame", "flight_fields"]

CODEC = "zstd"  # stored with each block, so a later codec can be added without a migration
ZSTD_LEVEL = 6
_encoder = msgspec.msgpack.Encoder()


@functools.cache
def _frame_decoder() -> msgspec.msgpack.Decoder:
    return msgspec.msgpack.Decoder(StoredFrame)


@functools.cache
def _structure() -> msgspec.msgpack.Decoder:
    return msgspec.msgpack.Decoder(list[msgspec.Raw])


@functools.cache
def _zstd():
    """zstandard and the block decoder, made on first use: a pmctl command that reads no block
    (every one but history, export and replay) does not pay for them at start."""
    import zstandard

    return (zstandard, zstandard.ZstdCompressor(level=ZSTD_LEVEL), zstandard.ZstdDecompressor(),
            msgspec.msgpack.Decoder(list[tuple[float, msgspec.Raw]]))


class BlockCorrupt(ValueError):
    """A stored block that does not decompress or decode (reported, never a traceback)."""


def encode_frame(frame: Frame) -> bytes:
    return _encoder.encode(stored_plain(frame))


def flight_fields(samples: m.ProcessSamples, state: m.TierState) -> dict:
    """A ``FlightSample``'s own fields for one sample and the tier state after it."""
    return {"timestamp": samples.timestamp, "frame": encode_frame(Frame(samples=samples, state=state))}


def check_frame(data: bytes) -> None:
    """BlockCorrupt unless ``data`` is one well-formed msgpack array, as every frame is: what a
    socket brings is checked before it is kept, since a minute's block holds its frames verbatim
    and a malformed one (truncated, an invalid byte, trailing bytes) would make the whole block
    unreadable. Only the structure, skipped over without building anything: a typed decode would
    cost cold as much as the insert. A well-formed frame of the wrong shape is found when read
    (``decode_frame``: BlockCorrupt, skipped and counted by the reader), costing only itself."""
    try:
        _structure().decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BlockCorrupt(f"not a flight frame: {exc}") from exc


def decode_frame(data: bytes | msgspec.Raw) -> Frame:
    try:
        return message_frame(_frame_decoder().decode(data))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BlockCorrupt(f"a stored frame does not decode: {exc}") from exc


def encode_block(frames: list[tuple[float, bytes]]) -> bytes:
    """``frames`` (timestamp, encoded frame), by timestamp, into one compressed block."""
    body = _encoder.encode([(ts, msgspec.Raw(data)) for ts, data in frames])
    return _zstd()[1].compress(body)


def decompress_block(data: bytes, codec: str = CODEC) -> bytes:
    """A block's msgpack body (``[[timestamp, frame], ...]``), for a reader with its own decoder."""
    zstandard, decompressor = _zstd()[0], _zstd()[2]
    try:
        if codec == "zstd":
            return decompressor.decompress(data)
        if codec == "zlib":  # what the first measurements wrote; read for free
            return zlib.decompress(data)
    except (zlib.error, zstandard.ZstdError) as exc:
        raise BlockCorrupt(f"a stored block does not decode: {exc}") from exc
    raise BlockCorrupt(f"a stored block uses codec {codec!r}, unknown to this pause-monitor")


def decode_block(data: bytes, codec: str = CODEC) -> list[tuple[float, msgspec.Raw]]:
    """A block's (timestamp, still-encoded frame) pairs; frames decode with ``decode_frame``."""
    body = decompress_block(data, codec)
    try:
        return _zstd()[3].decode(body)
    except msgspec.DecodeError as exc:
        raise BlockCorrupt(f"a stored block does not decode: {exc}") from exc
