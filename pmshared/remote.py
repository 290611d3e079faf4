"""Remote watch over tcp with CURVE: the serving side (tiering, supervisor) and the viewing side.

Port layout: ``[remote] port_base`` + the offset below. A viewer names the machine as
``tcp://HOST:PORT_BASE`` and finds every endpoint from there.

Serving: the endpoint's socket is bound to its usual ipc address first, then, with CURVE server
options set, to tcp as well. libzmq copies a socket's options into each listener when it binds, so
the ipc listener stays plain (local workers and pmctl as before) and only the tcp one demands
CURVE. A ZAP handler (pyzmq's ThreadAuthenticator, one per process that publishes) accepts a
client only when its public key is in ``keys/allowed_clients/``, read at each handshake: `pmctl
keys allow` works without a restart, and deleting a file refuses that client's next connection. A
client without CURVE fails the handshake (mechanism mismatch) and gets nothing.

Viewing: ``Target`` holds the address, the server key and our client keypair and sets the CURVE
client options on each socket. A refused client is simply never answered (CURVE's design); the
socket monitor's handshake events let ``diagnose`` say which failure it was, in one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import zmq

from pmshared import curve_keys
from pmshared.config import REMOTE_PORT_COUNT, RemoteConfig

# endpoint name -> port offset from port_base. Only what a viewer needs: never "record", "raw",
# "pause" or "health" (a remote peer must not be able to inject into the pipeline).
REMOTE_PORTS = {"live": 0, "snapshot": 1, "control": 2, "lifecycle": 3}
ZAP_DOMAIN = "pause-monitor"
_URL_RE = re.compile(r"tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})")


class RemoteError(curve_keys.KeyFileError):
    """Remote watch cannot go on (bad --connect, nothing answered). ``str()`` is one line."""


# ------------------------------------------------------------------------------- serving
class _AllowedClients:
    """ZAP credentials provider: a client key is allowed when a file in the directory holds it."""

    def callback(self, domain: str, key: bytes) -> bool:
        return domain == ZAP_DOMAIN and key.decode("ascii", "replace") in curve_keys.allowed_keys()


class Publisher:
    """Binds the remote endpoints of one process on tcp with CURVE (created by ``Sockets``)."""

    def __init__(self, ctx: zmq.Context, config: RemoteConfig) -> None:
        self.ctx = ctx
        self.config = config
        self._auth = None
        self._server: curve_keys.KeyPair | None = None

    def _start(self) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self._server = curve_keys.load_pair("server")
        auth = ThreadAuthenticator(self.ctx)
        auth.start()
        auth.configure_curve_callback(ZAP_DOMAIN, _AllowedClients())
        self._auth = auth

    def address(self, name: str) -> str:
        return f"tcp://{_bracketed(self.config.listen_host)}:{self.config.port_base + REMOTE_PORTS[name]}"

    def bind(self, sock: zmq.Socket, name: str) -> None:
        """Also bind ``sock`` (already bound to its ipc address) on tcp, CURVE only."""
        if self._auth is None:
            self._start()
        assert self._server is not None
        sock.setsockopt(zmq.IPV6, _is_ipv6(self.config.listen_host))
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self._server.secret.encode("ascii"))
        try:
            sock.bind(self.address(name))
        except zmq.ZMQError as exc:  # in use, no such interface: the [remote] config's to fix
            where = self.address(name)
            raise RemoteError(f"cannot serve remote watch on {where}: {exc} (see [remote] in the config)") from None

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def _is_ipv6(host: str) -> bool:
    return ":" in host  # an IPv6 literal ("::", "[::1]"); zmq resolves names to IPv4 unless told


def _bracketed(host: str) -> str:
    """zmq wants an IPv6 literal in brackets in a tcp:// address."""
    return f"[{host}]" if _is_ipv6(host) and not host.startswith("[") else host


def remote_client(frame: zmq.Frame) -> str | None:
    """The public key of the remote watch client that sent ``frame`` (received with copy=False),
    None for a local (ipc) peer. The ZAP handler sets it as the connection's User-Id."""
    try:
        return frame.get("User-Id") or None
    except zmq.ZMQError:  # no ZAP on this connection: a local peer
        return None


# ------------------------------------------------------------------------------- viewing
@dataclass(frozen=True)
class Target:
    """A remote machine to watch: ``tcp://HOST:PORT_BASE``, its server key, our client keypair."""

    host: str
    port_base: int
    server_key: str
    client: curve_keys.KeyPair

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port_base}"

    def address(self, name: str) -> str:
        if name not in REMOTE_PORTS:
            raise RemoteError(f"{name} is not served over remote watch")
        return f"tcp://{self.host}:{self.port_base + REMOTE_PORTS[name]}"

    def secure(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.IPV6, _is_ipv6(self.host))
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key.encode("ascii"))
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.client.public.encode("ascii"))
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.client.secret.encode("ascii"))


def parse_url(url: str) -> tuple[str, int]:
    """'tcp://HOST:PORT' -> (HOST, PORT); RemoteError (one line) for anything else."""
    match = _URL_RE.fullmatch(url.strip())
    port = int(match.group("port")) if match else 0
    if not match or not 1 <= port <= 65535 - REMOTE_PORT_COUNT + 1:
        raise RemoteError(
            f"--connect: expected tcp://HOST:PORT (PORT: the server's [remote] port_base, "
            f"1-{65535 - REMOTE_PORT_COUNT + 1})"
        )
    return match.group("host"), port


def target(url: str, server_key: str | None = None) -> Target:
    """The Target for ``--connect URL``: the server key from ``server_key`` or known_servers."""
    if not zmq.has("curve"):
        raise RemoteError("this pyzmq's libzmq was built without CURVE; remote watch cannot work")
    host, port = parse_url(url)
    if server_key is not None:
        key = curve_keys.check_key(server_key, "--server-key")
    else:
        key = curve_keys.server_key_for(host)
    return Target(host, port, key, curve_keys.load_pair("client"))


# ------------------------------------------------------------------------------- diagnosis
def diagnose(target: Target, address: str, events: list[int], waited_s: float) -> str:
    """One line on why ``address`` did not answer, from the client socket's monitor events."""
    head = f"no reply from {address} within {waited_s:g} s"
    if zmq.EVENT_HANDSHAKE_FAILED_AUTH in events:
        return (f"{head}: the server refused this client's key; on the server run "
                f"`pmctl keys allow -- '{target.client.public}'`")
    if zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL in events or zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL in events:
        return (f"{head}: the CURVE handshake failed (wrong server key for {target.host}? compare "
                "`pmctl keys show --role server` there; or the server has remote disabled)")
    if zmq.EVENT_CONNECTED not in events and zmq.EVENT_HANDSHAKE_SUCCEEDED not in events:
        return f"{head}: nothing accepts connections there (pause-monitor not running, or [remote] not enabled)"
    if zmq.EVENT_HANDSHAKE_SUCCEEDED in events:
        return f"{head}: connected, but that worker did not answer (starting, or stopped)"
    return f"{head}: the server refused this key or is not running"
