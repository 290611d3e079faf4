"""The one place that knows the endpoints: names, socket types, addresses and socket options.

Rules (ARCHITECTURE.md): PUB/SUB carries telemetry that may drop; PUSH/PULL carries work that must
arrive (records, pauses) and is sent without blocking, counting what could not be queued; the
long-lived consumer side binds; every socket has linger, high-water marks and a maximum message size.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from pmshared import messages as m
from pmshared import paths
from pmshared.codec import Codec
from pmshared.config import TransportConfig


# How long a closing PUSH socket keeps trying to deliver queued records and pauses.
EXIT_LINGER_MS = 300


@dataclass(frozen=True)
class Endpoint:
    name: str
    index: int  # tcp port offset
    bind_type: int
    connect_type: int
    types: Any  # message type(s) accepted on this socket
    hwm: int
    binder: str  # who binds it
    purpose: str

    def codec(self) -> Codec:
        return Codec(self.types)


_TABLE = [
    Endpoint("raw", 0, zmq.PULL, zmq.PUSH, m.Snapshot, 8, "scorer", "collector snapshots"),
    Endpoint("scored", 1, zmq.PUB, zmq.SUB, m.ProcessSamples, 64, "scorer", "scored samples"),
    Endpoint("live", 2, zmq.PUB, zmq.SUB, m.LiveSample, 64, "tiering", "live feed"),
    Endpoint(
        "snapshot", 3, zmq.ROUTER, zmq.DEALER,
        m.SnapshotRequest | m.SnapshotReply, 64, "tiering", "ring buffer snapshot",
    ),
    Endpoint("record", 4, zmq.PULL, zmq.PUSH, m.Record, 0, "recorder", "records to store"),
    Endpoint("pause", 5, zmq.PULL, zmq.PUSH, m.Pause, 1000, "forensics", "pauses to capture"),
    Endpoint("health", 6, zmq.SUB, zmq.PUB, m.Heartbeat, 1000, "supervisor", "heartbeats"),
    Endpoint("lifecycle", 7, zmq.PUB, zmq.SUB, m.Lifecycle, 1000, "supervisor", "worker lifecycle"),
    Endpoint(
        "control", 8, zmq.ROUTER, zmq.DEALER,
        m.ControlRequest | m.ControlReply, 64, "supervisor", "status/down",
    ),
]
ENDPOINTS: dict[str, Endpoint] = {e.name: e for e in _TABLE}


class Sockets:
    """Creates every socket a process uses, from one context, and closes them in order."""

    def __init__(self, transport: TransportConfig | None = None) -> None:
        self.transport = transport or TransportConfig()
        self.ctx = zmq.Context()
        self._sockets: list[zmq.Socket] = []
        self._bound_files: list[Path] = []

    # -- addresses -------------------------------------------------------------------------------
    def address(self, name: str) -> str:
        ep = ENDPOINTS[name]
        if self.transport.kind == "tcp":
            return f"tcp://{self.transport.tcp_host}:{self.transport.tcp_port_base + ep.index}"
        return f"ipc://{paths.socket_path(name)}"

    # -- sockets ---------------------------------------------------------------------------------
    def _make(self, ep: Endpoint, sock_type: int) -> zmq.Socket:
        sock = self.ctx.socket(sock_type)
        # Tracked before any option is set: a socket whose setsockopt raised must still be
        # closed, or ctx.term() in close() waits for it forever.
        self._sockets.append(sock)
        try:
            _set_options(sock, ep, sock_type, self.transport)
        except BaseException:
            sock.close(0)
            raise
        return sock

    def bind(self, name: str) -> zmq.Socket:
        ep = ENDPOINTS[name]
        sock = self._make(ep, ep.bind_type)
        address = self.address(name)
        if address.startswith("ipc://"):
            path = Path(address[len("ipc://"):])
            paths.ensure_private_dir(path.parent)
            sock.bind(address)
            # The directory is what keeps other users out; checked again right after bind, since
            # a socket file created in a directory that became readable would be reachable.
            mode = stat.S_IMODE(os.stat(path.parent).st_mode)
            if mode & 0o077:
                sock.close(0)
                raise paths.PathError(f"{path.parent} has mode {mode:o}; refusing to serve on it")
            os.chmod(path, 0o600)
            self._bound_files.append(path)
        else:
            sock.bind(address)
        return sock

    def connect(self, name: str, hwm: int | None = None) -> zmq.Socket:
        ep = ENDPOINTS[name]
        sock = self._make(ep, ep.connect_type)
        if hwm is not None:  # before connecting: zmq sizes a pipe's queue when it is made
            sock.setsockopt(zmq.SNDHWM, hwm)
            sock.setsockopt(zmq.RCVHWM, hwm)
        # The size limit protects a binder from whoever connects to it: zmq drops the connection
        # that carried an oversized frame and that peer reconnects. A *connecting* socket that hit
        # the limit would be cut off for good (libzmq treats it as a protocol error and never
        # reconnects): a worker alive but deaf. Its peer is our own binder in our 0700 directory,
        # so it takes any size and leaves the verdict to the decoder.
        try:
            sock.setsockopt(zmq.MAXMSGSIZE, -1)
            sock.connect(self.address(name))
        except BaseException:
            sock.close(0)
            raise
        return sock

    def close(self) -> None:
        for sock in self._sockets:
            if not sock.closed:
                sock.close()
        self._sockets.clear()
        self.ctx.term()
        # libzmq leaves ipc files behind on close; a clean exit leaves none.
        for path in self._bound_files:
            path.unlink(missing_ok=True)
        self._bound_files.clear()


def _set_options(sock: zmq.Socket, ep: Endpoint, sock_type: int, transport: TransportConfig) -> None:
    """High-water marks, maximum message size and linger of one socket (from ``transport``)."""
    hwm = ep.hwm or transport.record_queue
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, transport.max_message_bytes)
    # Records and pauses get a moment to reach a live peer on exit; telemetry is dropped at
    # once. The moment must fit the 1 s exit budget even when the recorder is down.
    durable = sock_type == zmq.PUSH and ep.name in ("record", "pause")
    sock.setsockopt(zmq.LINGER, EXIT_LINGER_MS if durable else 0)
    if sock_type == zmq.SUB:
        sock.setsockopt(zmq.SUBSCRIBE, b"")


def send_nowait(sock: zmq.Socket, frame: bytes) -> bool:
    """Queue a frame without ever blocking; False when the queue is full (caller counts it)."""
    try:
        sock.send(frame, zmq.NOBLOCK)
        return True
    except zmq.Again:
        return False


def remove_stale_sockets() -> list[Path]:
    """Delete socket files of the ipc endpoints (after a crash); the caller holds the lock."""
    removed = []
    for name in ENDPOINTS:
        try:
            path = paths.socket_path(name)
        except paths.PathError:
            continue
        if path.is_socket():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
