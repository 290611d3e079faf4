"""Typed encoders/decoders: one pair per socket, created once, never pickle on the wire.

A frame that does not decode into one of the socket's message types raises ``BadMessage`` —
whatever went wrong inside (garbage bytes, truncation, wrong types, pathological nesting) — so a
receive loop needs exactly one ``except`` to drop, count and keep serving.
"""

from __future__ import annotations

import time
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class BadMessage(Exception):
    """A frame that is not a valid message for this socket."""


class Codec(Generic[T]):
    """msgpack on the wire; ``types`` is a message class or a union of them."""

    def __init__(self, types: Any) -> None:
        self.types = types
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(types)

    def encode(self, msg: T) -> bytes:
        return self._encoder.encode(msg)

    def decode(self, frame: bytes | memoryview) -> T:
        try:
            return self._decoder.decode(frame)
        # msgspec raises RecursionError (not DecodeError) on deeply nested input.
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError) as exc:
            raise BadMessage(str(exc)[:200]) from None


class JsonLines(Generic[T]):
    """The same messages as JSON lines, for the standalone ``--jsonl`` mode of every worker."""

    def __init__(self, types: Any) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(types)

    def encode(self, msg: T) -> bytes:
        return self._encoder.encode(msg) + b"\n"

    def decode(self, line: bytes | str) -> T:
        try:
            return self._decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError) as exc:
            raise BadMessage(str(exc)[:200]) from None


class Stamper:
    """Fills the envelope (sender, incarnation, per-stream seq, sent_at) of outgoing messages.

    One per output stream, so a receiver sees consecutive seq numbers and can count gaps.
    """

    def __init__(self, sender: str, incarnation: str) -> None:
        self.sender = sender
        self.incarnation = incarnation
        self.seq = 0

    def __call__(self, cls: type[T], **fields: Any) -> T:
        self.seq += 1
        return cls(
            sender=self.sender,
            incarnation=self.incarnation,
            seq=self.seq,
            sent_at=time.time(),
            **fields,
        )
