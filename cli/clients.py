"""Small request/reply clients for pmctl commands: ask once, wait a bounded time, never hang.

API (all functions are synchronous and safe to call from any command):

    control("status" | "down", timeout_s=2.0) -> ControlReply | None
        Ask the supervisor (`pmctl up`) on its "control" endpoint.
    snapshot(timeout_s=1.0) -> SnapshotReply | None
        Ask tiering for its ring buffer and tier state on its "snapshot" endpoint (the Clone
        pattern: take the snapshot, then apply "live" updates whose seq > reply.last_live_seq).
    request(endpoint, msg, reply_type, timeout_s) -> reply | None
        The general form both use.

With ``target`` (a pmshared.remote.Target, `--connect`) they ask that machine over CURVE and a
timeout raises ``pmshared.remote.RemoteError`` (one line: why nothing came) instead.

``None`` always means "nobody answered within the timeout" (not running, starting, or hung) —
callers print "not running"/"unknown" instead of waiting. With the ipc transport a missing socket
file answers that at once, without waiting for the timeout. A reply that does not decode as the
expected type raises ``pmshared.codec.BadMessage``; a runtime directory we may not enter (another
user's) raises ``pmshared.paths.PathError``. Each call uses its own sockets and context and
closes them before returning (linger 0), so a dead peer never keeps a command from exiting.
"""

from __future__ import annotations

import time
from typing import TypeVar

import zmq

from pmshared import config as config_mod
from pmshared import messages as m
from pmshared import paths, remote
from pmshared.codec import BadMessage, Stamper
from pmshared.endpoints import ENDPOINTS, Sockets
from pmshared.runtime import new_incarnation

T = TypeVar("T")

CONTROL_TIMEOUT_S = 2.0
SNAPSHOT_TIMEOUT_S = 1.0


def _endpoint_absent(name: str, transport: config_mod.TransportConfig) -> bool:
    """True when we can tell without asking that nobody serves ``name`` (no ipc socket file).

    Raises ``paths.PathError`` (one line) when the runtime directory is not ours to enter, as
    after `su` with the other user's XDG_RUNTIME_DIR: we cannot tell whether anything runs.
    """
    if transport.kind != "ipc":
        return False
    try:
        return not paths.socket_path(name).is_socket()
    except paths.PathError:
        return True
    except PermissionError:
        raise paths.PathError(paths.unusable_runtime_dir()) from None


def request(
    endpoint: str,
    msg: m.Envelope,
    reply_type: type[T],
    timeout_s: float,
    transport: config_mod.TransportConfig | None = None,
    target: remote.Target | None = None,
) -> T | None:
    """Send ``msg`` on a DEALER connected to ``endpoint``; the first reply, or None on timeout.

    With ``target`` (remote watch) the endpoint is that machine's, over CURVE, and a timeout
    raises ``remote.RemoteError`` saying why nothing came (refused key, no server, wrong key).
    """
    transport = transport or config_mod.TransportConfig()
    if target is None and _endpoint_absent(endpoint, transport):
        return None
    codec = ENDPOINTS[endpoint].codec()
    sockets = Sockets(transport, target=target)
    monitor = None
    try:
        sock = sockets.connect(endpoint)
        sock.setsockopt(zmq.LINGER, 0)
        if target is not None:
            monitor = sock.get_monitor_socket()
        sock.send(codec.encode(msg), zmq.NOBLOCK)
        reply = _await_reply(sock, codec, reply_type, timeout_s)
        if reply is None and target is not None:
            raise remote.RemoteError(remote.diagnose(target, sockets.address(endpoint), _events(monitor), timeout_s))
        return reply
    except zmq.Again:
        return None  # could not even queue the request (no peer): same as no answer
    finally:
        if monitor is not None:  # an inproc socket of this context: closed before ctx.term()
            sock.disable_monitor()
            monitor.close(0)
        sockets.close()


def _await_reply(sock: zmq.Socket, codec, reply_type: type[T], timeout_s: float) -> T | None:
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not sock.poll(remaining * 1000, zmq.POLLIN):
            return None
        frames = sock.recv_multipart(zmq.NOBLOCK)
        # A ROUTER replying to a DEALER may or may not add an empty delimiter frame.
        reply = codec.decode(frames[-1])
        if isinstance(reply, reply_type):
            return reply
        raise BadMessage(f"expected {reply_type.__name__}, got {type(reply).__name__}")


def _events(monitor: zmq.Socket | None) -> list[int]:
    """The socket monitor's events so far (what became of the connection and its handshake)."""
    from zmq.utils.monitor import recv_monitor_message

    events = []
    while monitor is not None and monitor.poll(0):
        events.append(recv_monitor_message(monitor, zmq.NOBLOCK)["event"])
    return events


def _stamp() -> Stamper:
    return Stamper("pmctl", new_incarnation())


def control(
    command: str,
    timeout_s: float = CONTROL_TIMEOUT_S,
    transport: config_mod.TransportConfig | None = None,
    target: remote.Target | None = None,
) -> m.ControlReply | None:
    """Ask the supervisor for ``status`` or to go ``down``; None when it does not answer."""
    req = _stamp()(m.ControlRequest, command=command)
    return request("control", req, m.ControlReply, timeout_s, transport, target)


def snapshot(
    timeout_s: float = SNAPSHOT_TIMEOUT_S,
    transport: config_mod.TransportConfig | None = None,
    target: remote.Target | None = None,
) -> m.SnapshotReply | None:
    """Ask tiering for its ring buffer and tier state; None when it does not answer."""
    req = _stamp()(m.SnapshotRequest)
    return request("snapshot", req, m.SnapshotReply, timeout_s, transport, target)


def current_tier(reply: m.SnapshotReply) -> tuple[int, int | None]:
    """(tier, max score of the newest sample in the ring, or None for an empty ring)."""
    score = reply.ring[-1].samples.max_score if reply.ring else None
    return reply.state.tier, score
