"""`pmctl watch`: the live view of the pipeline (Rich Live), and `--once` for scripts and tests.

One thread, one zmq.Poller over: the "live" SUB, a DEALER to tiering's snapshot ROUTER, a DEALER
to the supervisor's control ROUTER, the supervisor's "lifecycle" SUB, and stdin for keys. Nothing
blocks, so keys answer at once and a dead pipeline only changes what is drawn. Data gathering is
here; the picture is ``watch_view.render``; the resync policy is ``watch_feed``. With
``--connect`` the same sockets reach another machine over CURVE (pmshared.remote); its database
is not reachable, so the events panel says where they are.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from cli import remote_opts
from cli.errors import fail

if TYPE_CHECKING:
    import zmq

    from cli.watch_view import WatchView

SENDER = "pmctl-watch"
DB_REFRESH_S = 5.0  # recent events and the last pause: the recorder writes them rarely
STATUS_EVERY_S = 2.0  # supervisor worker states
STATUS_TIMEOUT_S = 1.0
FRAME_EVERY_S = 1.0  # redraw at least this often (durations tick on)
MAX_MESSAGES_PER_TURN = 500  # a flood on one socket cannot starve keys and drawing


class Watcher:
    """The sockets and state behind the view; ``pump()`` handles whatever has arrived."""

    def __init__(self, config, *, clock=time.monotonic, wall=time.time, target=None) -> None:
        import zmq

        from cli.watch_feed import FeedState, Link
        from pmshared.codec import Stamper
        from pmshared.endpoints import ENDPOINTS, Sockets
        from pmshared.runtime import new_incarnation

        self.zmq = zmq
        self.config = config
        self.clock = clock
        self.wall = wall
        self.target = target  # a pmshared.remote.Target with --connect
        self.sockets = Sockets(config.transport, target=target)
        self.stamp = Stamper(SENDER, new_incarnation())
        self.live_codec = ENDPOINTS["live"].codec()
        self.snap_codec = ENDPOINTS["snapshot"].codec()
        self.control_codec = ENDPOINTS["control"].codec()
        self.lifecycle_codec = ENDPOINTS["lifecycle"].codec()
        interval = config.sampling.interval_s
        capacity = max(1, round(config.sentinel.ring_buffer_seconds / interval))
        self.feed = FeedState(capacity=capacity)
        self.link = Link(stall_s=max(5.0, 5 * interval))
        self.bad_messages = 0
        # Subscribe before the first snapshot request (Clone pattern): updates published while the
        # snapshot travels are held, not lost.
        self.live = self.sockets.connect("live")
        self.lifecycle = self.sockets.connect("lifecycle")
        self.snapshot: zmq.Socket | None = None
        self.control: zmq.Socket | None = None
        self.status_sent_at: float | None = None
        self.next_status_at = 0.0
        self.workers = None
        self.supervisor_note: str | None = "asking the supervisor…"
        self.events = None
        self.events_note: str | None = None
        self.last_pause = None
        self.next_db_at = 0.0
        self.changed = True
        self.poller = zmq.Poller()
        self.poller.register(self.live, zmq.POLLIN)
        self.poller.register(self.lifecycle, zmq.POLLIN)

    # -- requests --------------------------------------------------------------------------------
    def _fresh_dealer(self, old: zmq.Socket | None, name: str) -> zmq.Socket:
        # A new socket per attempt: a request queued to a peer that never came must not be
        # delivered, stale, when it finally does.
        if old is not None:
            self.poller.unregister(old)
            old.close(linger=0)
        sock = self.sockets.connect(name)
        self.poller.register(sock, self.zmq.POLLIN)
        return sock

    def request_snapshot(self) -> None:
        from pmshared import messages as m
        from pmshared.endpoints import send_nowait

        self.snapshot = self._fresh_dealer(self.snapshot, "snapshot")
        self.feed.desync()
        send_nowait(self.snapshot, self.snap_codec.encode(self.stamp(m.SnapshotRequest)))
        self.link.start_request(self.clock())

    def request_status(self, now: float) -> None:
        from pmshared import messages as m
        from pmshared.endpoints import send_nowait

        self.control = self._fresh_dealer(self.control, "control")
        send_nowait(self.control, self.control_codec.encode(self.stamp(m.ControlRequest, command="status")))
        self.status_sent_at = now
        self.next_status_at = now + STATUS_EVERY_S

    # -- the loop body ---------------------------------------------------------------------------
    def step(self, timeout_ms: int, extra_fds: tuple[int, ...] = ()) -> set[int]:
        """Advance timers, wait up to ``timeout_ms`` for input, handle it. Returns ready extra fds."""
        now = self.clock()
        if self.link.tick(now) == "request":
            self.request_snapshot()
            self.changed = True
        if self.status_sent_at is not None and now - self.status_sent_at > STATUS_TIMEOUT_S:
            self.status_sent_at = None
            self.workers = None
            self.supervisor_note = "supervisor not running (`pmctl up` starts it)"
            self.changed = True
        if self.status_sent_at is None and now >= self.next_status_at:
            self.request_status(now)
        if now >= self.next_db_at:
            self.read_db()
            self.next_db_at = now + DB_REFRESH_S
        for fd in extra_fds:
            self.poller.register(fd, self.zmq.POLLIN)
        try:
            ready = dict(self.poller.poll(timeout_ms))
        finally:
            for fd in extra_fds:
                self.poller.unregister(fd)
        if self.live in ready:
            self._drain_live()
        if self.snapshot is not None and self.snapshot in ready:
            self._drain_snapshot()
        if self.control is not None and self.control in ready:
            self._drain_control()
        if self.lifecycle in ready:
            self._drain_lifecycle()
        return {fd for fd in extra_fds if fd in ready}

    def _recv(self, sock: zmq.Socket) -> list[bytes] | None:
        try:
            return sock.recv_multipart(self.zmq.NOBLOCK)
        except self.zmq.Again:
            return None

    def _drain_live(self) -> None:
        from pmshared.codec import BadMessage

        for _ in range(MAX_MESSAGES_PER_TURN):
            frames = self._recv(self.live)
            if frames is None:
                return
            try:
                sample = self.live_codec.decode(frames[-1])
            except BadMessage:
                self.bad_messages += 1
                continue
            self.link.got_live(self.clock())
            if self.feed.apply_live(sample) == "resync" and self.link.state != "connecting":
                self.request_snapshot()
            self.changed = True

    def _drain_snapshot(self) -> None:
        from pmshared import messages as m
        from pmshared.codec import BadMessage

        for _ in range(MAX_MESSAGES_PER_TURN):
            frames = self._recv(self.snapshot)
            if frames is None:
                return
            try:
                reply = self.snap_codec.decode(frames[-1])
            except BadMessage:
                self.bad_messages += 1
                continue
            if isinstance(reply, m.SnapshotReply) and self.link.state == "connecting":
                self.feed.apply_snapshot(reply)
                self.link.got_snapshot(self.clock())
                self.changed = True

    def _drain_control(self) -> None:
        from pmshared import messages as m
        from pmshared.codec import BadMessage

        for _ in range(MAX_MESSAGES_PER_TURN):
            frames = self._recv(self.control)
            if frames is None:
                return
            try:
                reply = self.control_codec.decode(frames[-1])
            except BadMessage:
                self.bad_messages += 1
                continue
            if isinstance(reply, m.ControlReply):
                self.workers = list(reply.workers)
                self.supervisor_note = None if reply.ok else (reply.error or "supervisor error")
                self.status_sent_at = None
                self.changed = True

    def _drain_lifecycle(self) -> None:
        from pmshared.codec import BadMessage

        for _ in range(MAX_MESSAGES_PER_TURN):
            frames = self._recv(self.lifecycle)
            if frames is None:
                return
            try:
                self.lifecycle_codec.decode(frames[-1])
            except BadMessage:
                self.bad_messages += 1
                continue
            # A worker changed state: ask for the whole table now rather than patch ours.
            self.next_status_at = 0.0

    # -- the database ----------------------------------------------------------------------------
    def read_db(self) -> None:
        self.events, self.last_pause, self.events_note = read_recent(limit=20, target=self.target)
        self.changed = True

    # -- the picture -----------------------------------------------------------------------------
    def view(self, mode: str = "main", keys_hint: bool = True, width: int = 160) -> WatchView:
        from cli.watch_view import WatchView

        now = self.clock()
        try:
            endpoint = _address(self.config, self.target)
        except Exception as exc:  # a runtime dir path too long to be a socket, say
            endpoint = str(exc)
        return WatchView(
            feed=self.feed,
            now=self.wall(),
            link=self.link.state,
            retry_in_s=self.link.retry_in(now),
            attempts=self.link.attempts,
            endpoint=endpoint,
            elevation_threshold=self.config.sampling.elevation_threshold,
            critical_threshold=self.config.sampling.critical_threshold,
            events=self.events,
            events_note=self.events_note,
            last_pause=self.last_pause,
            workers=self.workers,
            supervisor_note=self.supervisor_note,
            mode=mode,  # type: ignore[arg-type]
            keys_hint=keys_hint,
            width=width,
        )

    def close(self) -> None:
        self.sockets.close()


def read_recent(limit: int, target=None) -> tuple[list | None, object | None, str | None]:
    """(recent events, last pause, note) from the database; a DB problem is a note, not a crash."""
    if target is not None:
        from cli.remote_opts import REMOTE_DB_NOTE

        return None, None, REMOTE_DB_NOTE
    from cli.errors import describe_db_error, storage_exceptions
    from pmshared import paths, storage

    path = paths.db_path()
    try:
        # Short: a recorder holding the lock must not freeze the live view.
        db = storage.open_readonly(path, busy_timeout_ms=300)
    except storage_exceptions() as exc:
        return None, None, describe_db_error(exc, path)
    try:
        events = list(storage.list_events(db, limit=limit))
        pauses = list(storage.list_pauses(db, limit=1))
        return events, (pauses[0] if pauses else None), None
    except storage_exceptions() as exc:
        return None, None, describe_db_error(exc, path)
    finally:
        db.close()


def _load_config():
    from cli.errors import load_config

    return load_config()


def watch(
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit (non-zero if the pipeline is not running).")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="With --once: seconds to wait for the pipeline.")] = 3.0,
    connect: remote_opts.Connect = None,
    server_key: remote_opts.ServerKey = None,
) -> None:
    """Live view: score gauge, tier, rogue processes, pauses, recent events and workers.

    Keys: q quit, e events (again: back), r refresh. When stdout is not a terminal, prints one
    frame (as --once).
    """
    config = _load_config()
    target = remote_opts.resolve(connect, server_key)
    if once or not sys.stdout.isatty():
        raise typer.Exit(_once(config, timeout, target))
    raise typer.Exit(_interactive(config, target))


def _ask(ask):
    """A bounded request; a reply that does not decode is no reply. With --connect, tiering's
    silence is one line on stderr (why: refused key, nothing listening, ...), never a frame."""
    from pmshared.codec import BadMessage
    from pmshared.remote import RemoteError

    try:
        return ask()
    except BadMessage:
        return None
    except RemoteError as exc:
        fail(str(exc))


def _once(config, timeout: float, target=None) -> int:
    """One frame: ask tiering and the supervisor once each (bounded waits), read the DB, print."""
    from cli import clients
    from cli import format as fmt
    from cli.watch_feed import FeedState
    from cli.watch_view import WatchView, render
    from pmshared.codec import BadMessage
    from pmshared.remote import RemoteError

    console = fmt.console()
    feed = FeedState()
    reply = _ask(lambda: clients.snapshot(timeout_s=timeout, transport=config.transport, target=target))
    if reply is not None:
        feed.apply_snapshot(reply)
    try:
        status = clients.control(
            "status", timeout_s=min(timeout, STATUS_TIMEOUT_S), transport=config.transport, target=target
        )
    except (BadMessage, RemoteError):  # tiering answered: the supervisor's silence is a note
        status = None
    events, last_pause, events_note = read_recent(limit=5, target=target)
    try:
        endpoint = _address(config, target)
    except Exception as exc:
        endpoint = str(exc)
    view = WatchView(
        feed=feed,
        now=time.time(),
        link="live" if reply is not None else "down",
        endpoint=endpoint,
        elevation_threshold=config.sampling.elevation_threshold,
        critical_threshold=config.sampling.critical_threshold,
        events=events,
        events_note=events_note,
        last_pause=last_pause,
        workers=list(status.workers) if status is not None else None,
        supervisor_note=None if status is not None else "supervisor not running (`pmctl up` starts it)",
        keys_hint=False,
        width=console.width,
    )
    console.print(render(view))
    return 0 if reply is not None else 1


def _address(config, target=None) -> str:
    """The snapshot endpoint's address, as the user would look for it (no sockets opened)."""
    from pmshared import paths
    from pmshared.endpoints import ENDPOINTS

    if target is not None:
        return target.address("snapshot")

    transport = config.transport
    if transport.kind == "tcp":
        return f"tcp://{transport.tcp_host}:{transport.tcp_port_base + ENDPOINTS['snapshot'].index}"
    return f"ipc://{paths.socket_path('snapshot')}"


def _interactive(config, target=None) -> int:
    from rich.live import Live

    from cli import format as fmt
    from cli.keys import KeyReader
    from cli.watch_view import render

    stop = {"flag": False}

    def on_term(_signum, _frame):
        stop["flag"] = True

    import zmq

    from pmshared.paths import PathError

    console = fmt.console()
    if target is not None:  # first contact: a refused key is one line, not a screen that waits forever
        from cli import clients

        _ask(lambda: clients.snapshot(timeout_s=3.0, transport=config.transport, target=target))
    try:
        watcher = Watcher(config, target=target)
    except (PathError, zmq.ZMQError) as exc:
        fail(f"cannot connect to the pipeline: {exc}")
    old_term = signal.signal(signal.SIGTERM, on_term)
    mode = "main"
    try:
        with KeyReader() as keys, Live(console=console, screen=True, auto_refresh=False) as live:
            last_frame = 0.0
            key_fds = (keys.fd,) if keys.fd is not None else ()
            while not stop["flag"]:
                ready = watcher.step(timeout_ms=200, extra_fds=key_fds)
                if ready:
                    for key in keys.read():
                        if key in ("q", "Q"):
                            stop["flag"] = True
                        elif key in ("e", "E"):
                            mode = "events" if mode == "main" else "main"
                            watcher.changed = True
                        elif key in ("r", "R"):
                            watcher.next_db_at = 0.0  # re-read events and the last pause now
                            watcher.next_status_at = 0.0
                        elif key == "\x1b" and mode == "events":
                            mode = "main"
                            watcher.changed = True
                now = watcher.clock()
                if watcher.changed or now - last_frame >= FRAME_EVERY_S:
                    live.update(render(watcher.view(mode=mode, width=console.width)), refresh=True)
                    watcher.changed = False
                    last_frame = now
    except KeyboardInterrupt:
        pass
    finally:
        watcher.close()
        signal.signal(signal.SIGTERM, old_term)
    return 0
