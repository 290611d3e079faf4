"""The exporter worker: the pipeline's figures at ``/metrics`` in the Prometheus text format.

In the pipeline it connects SUB "live" (tier, stress, the sentinel's lateness, culprits; and the
hint that the database has news), SUB "lifecycle" (workers spawned, exited, restarted) and a
DEALER to "control" (a ``status`` request every ``STATUS_EVERY_S``: which workers run, their pids
for the CPU figures, their drop counters), and reads the database read-only for the counters that
live there (exporter.dbtotals). The HTTP side is exporter.httpd on threads of its own, so a slow
or hostile client never holds up this loop or its heartbeat.

Its CPU is mostly waking up (issue 20: <= 0.05 % of a core at a 15 s scrape): the loop wakes every
``HEARTBEAT_S`` (its heartbeat's own interval, which the supervisor's watchdog honours), when a
scrape asks it to catch up (exporter.catchup: the figures are as of the scrape), and when a read
that matters soon is due (after a hint, while a worker starts). Messages wait in ZeroMQ's queues
in between, every one taken in later, so no counter misses one.

``[exporter] enabled = false`` (the default): the supervisor does not start it (config
``disabled_workers``); run by hand, it says so and exits 0.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import generate_latest

from exporter.catchup import CatchUp
from exporter.dbtotals import DbTotals, open_database
from exporter.families import registry_for
from exporter.httpd import MetricsServer
from exporter.live import LiveView, live_codec
from exporter.state import ExporterState
from pmshared import messages as m
from pmshared import paths, storage
from pmshared.codec import Stamper
from pmshared.endpoints import ENDPOINTS, send_nowait
from pmshared.runtime import Worker, fail
from pmshared.workerio import FrameInput, jsonl_parser, one_frame, open_endpoints, running, serve_frames

NAME = "exporter"
STATUS_EVERY_S = 15.0  # pids and drop counters (exits and restarts come at once, as lifecycle events)
STATUS_SOON_S = 1.0  # while a worker is starting, backing off or stopping, and after a lifecycle event
DB_EVERY_S = 60.0  # a read even without a hint from the live feed (a pause while tiering was down)
DB_WAITING_EVERY_S = 2.0  # while a pause waits for its cause, and for HINT_S after a hint
# The live feed can tell of a pause (or an event's end) before the recorder has committed its row:
# the hint came the fast way (collector -> scorer -> tiering), the row the batched way. So after a
# hint the database is read every DB_WAITING_EVERY_S for this long, not once.
HINT_S = 20.0
DB_RETRY_S = 5.0  # after the database could not be opened or read
# The main loop's rhythm when nothing asks for it sooner: a heartbeat every 5 s instead of every
# second (the watchdog then allows 3 x 5 s: a hung exporter is restarted within ~15 s).
HEARTBEAT_S = 5.0
# A routine read (the status every 15 s, the database every minute or after an error) waits for a
# wake-up that comes anyway, at most this late: later than the heartbeat's latest moment
# (HEARTBEAT_S plus its slack), so it always rides on one.
RIDE_S = 1.5 * HEARTBEAT_S
# Samples queued between two wake-ups: HEARTBEAT_S plus slack at the collector's fastest rate
# (interval_s 0.1 s) is ~63, the endpoint's default mark (64); room for four times that.
LIVE_QUEUE = 256
# How long a scrape waits for the main loop to catch up: under Prometheus' shortest timeouts
# (the tests scrape every 100 ms with a 100 ms timeout); catching up takes ~1 ms.
CATCH_UP_WAIT_S = 0.05


class Schedule:
    """When the database and the supervisor are next asked (monotonic seconds).

    A routine read is done on the first wake-up at or after its time and wakes the loop only
    RIDE_S late (a heartbeat's wake-up comes sooner); one that matters soon (the first, after a
    hint, while a worker starts or stops) wakes it on time."""

    def __init__(self, now: float) -> None:
        self.db_at, self.db_routine = now, False
        self.status_at, self.status_routine = now, False
        self.hint_until = now

    def hint(self, now: float) -> None:
        """The live feed says the database has news: read now, and often for a while."""
        self.db_at, self.db_routine, self.hint_until = now, False, now + HINT_S

    def db_read(self, now: float, next_in_s: float) -> None:
        self.db_at, self.db_routine = now + next_in_s, next_in_s > DB_WAITING_EVERY_S

    def status_sent(self, now: float) -> None:
        self.status_at, self.status_routine = now + STATUS_EVERY_S, True

    def status_soon(self, now: float) -> None:
        self.status_at, self.status_routine = min(self.status_at, now + STATUS_SOON_S), False

    def next_in_ms(self, now: float) -> int:
        db = self.db_at + (RIDE_S if self.db_routine else 0.0)
        status = self.status_at + (RIDE_S if self.status_routine else 0.0)
        return max(0, int((min(db, status) - now) * 1000) + 1)


class DatabaseReader:
    """The read-only connection, opened when the database exists and reopened after trouble.

    A database moved aside as corrupt is followed by a fresh file at the same path, whose row ids
    start again at 1: the reader notices the new file (another inode), reopens, and counts the
    new file's rows on top of what it had counted (counters only grow)."""

    def __init__(self, worker: Worker, totals: DbTotals, path: Path) -> None:
        self.worker, self.totals, self.path = worker, totals, path
        self.conn = None
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file

    def read(self, eager: bool = False) -> float:
        """Count what is new; returns seconds until the next read is due (soon while ``eager``)."""
        try:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self.close()
                return DB_RETRY_S  # the recorder has not created it yet (or is replacing it)
            if self.conn is not None and self._file != (st.st_dev, st.st_ino):
                self.close()
                self.totals.new_file()
            if self.conn is None:
                self.conn = open_database(self.path)
                self._file = (st.st_dev, st.st_ino)
            self.totals.read(self.conn, time.time())
            self.worker.counters["db_reads"] += 1
        except storage.StorageError as exc:
            self.worker.warn_counted("db_errors", "cannot read the database: %s", exc)
            self.close()
            return DB_RETRY_S
        return DB_WAITING_EVERY_S if self.totals.waiting or eager else DB_EVERY_S

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def main(argv: list[str] | None = None) -> int:
    parser = jsonl_parser(NAME, __doc__, "not supported: the exporter has no JSON-lines mode")
    args = parser.parse_args(argv)
    if args.jsonl:
        fail("the exporter serves HTTP; it has no --jsonl mode (try `pmctl export --textfile DIR`)")
    with running(NAME, jsonl=False) as worker:
        settings = worker.config.exporter
        if not settings.enabled:
            worker.log.info("off ([exporter] enabled = false); exiting")
            return 0
        worker.heartbeat_every(HEARTBEAT_S)
        state = ExporterState()
        registry = registry_for(state)
        catch_up = CatchUp(worker.wake, CATCH_UP_WAIT_S)

        def render() -> bytes:
            catch_up.ask()  # the figures as of now (or, if the loop is late, as of its last wake-up)
            return generate_latest(registry)

        server = MetricsServer(settings.listen_address, settings.port, render)
        try:
            server.start()
        except OSError as exc:
            fail(f"exporter cannot listen on {settings.listen_address}:{settings.port}: {exc.strerror or exc}", 1)
        worker.log.info("serving /metrics on %s:%d", settings.listen_address, server.port)
        try:
            run_pipeline(worker, state, server, catch_up)
        finally:
            catch_up.close()
            server.close()
    return 0


def run_pipeline(worker: Worker, state: ExporterState, server: MetricsServer, catch_up: CatchUp) -> None:
    live, lifecycle, control = open_endpoints(worker, connect=("live", "lifecycle", "control"),
                                              hwm={"live": LIVE_QUEUE})
    control_codec = ENDPOINTS["control"].codec()
    stamp = Stamper(NAME, worker.incarnation)
    db = DatabaseReader(worker, DbTotals(state), paths.db_path())
    schedule = Schedule(time.monotonic())

    def take_live(msg: LiveView) -> None:
        worker.counters["live_received"] += 1
        if state.on_live(msg):  # a pause or an event's end
            schedule.hint(time.monotonic())

    def take_reply(frames: list[bytes]) -> None:
        reply = control_codec.decode(frames[-1])
        if isinstance(reply, m.ControlReply):
            state.on_status(reply)
            status_soon()

    def take_lifecycle(event: m.Lifecycle) -> None:
        state.on_lifecycle(event)
        status_soon()

    def status_soon() -> None:
        if state.unsettled:
            schedule.status_soon(time.monotonic())

    # Not polled: taken in turn once per wake-up (a heartbeat's, a scrape's, a read's). Polling
    # the live socket woke this loop once a second or more for figures Prometheus reads every
    # 15 s; the messages wait in zmq's queue meanwhile (LIVE_QUEUE deep), and every one is taken.
    inputs = [
        # The lean view: the exporter reads a few figures of each sample, not every rogue's record.
        FrameInput(live, one_frame(live_codec()), take_live, "frame on live", budget=LIVE_QUEUE),
        FrameInput(lifecycle, one_frame(ENDPOINTS["lifecycle"].codec()), take_lifecycle, "frame on lifecycle"),
        FrameInput(control, lambda frames: frames, take_reply, "control reply"),
    ]

    def tick() -> None:
        asks = catch_up.begin()
        for source in inputs:
            source.drain(worker)
        catch_up.done(asks)  # before the database read: a scrape waits for the messages only
        now = time.monotonic()
        if now >= schedule.db_at:
            schedule.db_read(now, db.read(eager=now < schedule.hint_until))
        if now >= schedule.status_at:
            schedule.status_sent(now)
            # A DEALER to a supervisor that is not there queues nothing and drops: fine.
            send_nowait(control, control_codec.encode(stamp(m.ControlRequest, command="status")))
        worker.counters["scrapes"] = server.served
        worker.counters["scrapes_refused"] = server.refused + server.failed
        worker.counters["scrapes_not_caught_up"] = catch_up.late

    tick()
    try:
        serve_frames(worker, [], tick, lambda: min(worker.poll_timeout_ms(), schedule.next_in_ms(time.monotonic())))
    finally:
        db.close()
