"""Helpers for the pmctl-for-people tests: databases built with storage's own writes, hostile
process names, a control-byte check, and a fake tiering peer on real sockets."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from pmshared import messages as m
from pmshared import storage
from pmshared.codec import Stamper
from pmshared.endpoints import ENDPOINTS, Sockets
from tests.procutil import wait_for  # noqa: F401 - re-exported to the tests

# Names a process can give itself (comm, argv, executable name) to attack a terminal or Rich.
HOSTILE = {
    "title": "\x1b]0;pwn\x07evil",
    "csi": "\x1b[31m[b]evil",
    "osc52": "\x1b]52;c;ZXZpbA==\x07clip",
    "bidi": "\u202eevil.exe",
    "markup": "[red]x[/red]",
    "link": "[link=file:///etc/passwd]x[/link]",
}
# What each must still look like after being made inert (recognisable, harmless).
RECOGNISABLE = {
    "title": "evil",
    "csi": "[b]evil",
    "osc52": "ZXZpbA==",
    "bidi": "evil.exe",
    "markup": "[red]x[/red]",
    "link": "[link=file:///etc/passwd]x[/link]",
}

# C0 controls except newline, DEL, C1 controls, and bidi embedding/override/isolate characters.
_FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def control_bytes(text: str) -> list[str]:
    """Every forbidden character in ``text`` (empty list = safe to show on a terminal)."""
    return [repr(c) for c in _FORBIDDEN.findall(text)]


def rogue(pid: int, command: str, score: int, **kw) -> m.ProcessScore:
    fields = dict(cpu=50.0, state="running", mem=64 * 1024 * 1024, cmprs=None, pageins=2.0, csw=100.0,
                  sysbsd=None, threads=4, categories=["cpu"])
    fields.update(kw)
    return m.ProcessScore(pid=pid, command=command, score=score, **fields)


def samples(ts: float, rogues: list[m.ProcessScore], process_count: int = 321, seq: int = 1,
            sentinel: m.SentinelStats | None = None) -> m.ProcessSamples:
    return m.ProcessSamples(
        sender="scorer", incarnation="scorer-1", seq=seq, sent_at=ts, timestamp=ts, elapsed_ms=1000.0,
        process_count=process_count, max_score=max((r.score for r in rogues), default=0), rogues=rogues,
        sentinel=sentinel,
    )


@dataclass
class DbBuilder:
    """Writes records through ``storage.apply`` — the recorder's own path into the database."""

    path: Path
    conn: object = None
    tiering: Stamper = field(default_factory=lambda: Stamper("tiering", "tiering-1"))
    collector: Stamper = field(default_factory=lambda: Stamper("collector", "collector-1"))
    forensics: Stamper = field(default_factory=lambda: Stamper("forensics", "forensics-1"))
    events: int = 0
    pauses: int = 0

    def __post_init__(self) -> None:
        self.conn = storage.connect(self.path, mode="create")
        with self.conn:
            storage.apply(self.conn, self.tiering(m.TieringStarted))

    def event(self, start: float, scores: list[int], culprit: str = "busy", end: float | None = None,
              tier3_from: int | None = None) -> str:
        """An event with one sample per second; samples from index ``tier3_from`` on are tier 3."""
        self.events += 1
        key = f"tiering-1:{self.events}"
        with self.conn:
            storage.apply(self.conn, self.tiering(m.EventOpened, event_key=key, start=start, tier=2,
                                                  score=scores[0]))
            for i, score in enumerate(scores):
                ts = start + i
                tier = 3 if tier3_from is not None and i >= tier3_from else 2
                rogues = [rogue(4242, culprit, score, categories=["cpu", "pageins"]),
                          rogue(17, "bystander", max(score - 20, 0), categories=["mem"])]
                storage.apply(self.conn, self.tiering(
                    m.EventSample, event_key=key, event_start=start, tier=tier,
                    action="tier2_peak" if tier == 2 else None, samples=samples(ts, rogues, seq=i + 1)))
            if end is not None:
                storage.apply(self.conn, self.tiering(
                    m.EventClosed, event_key=key, start=start, end=end, peak_score=max(scores),
                    peak_tier=3 if tier3_from is not None else 2))
        return key

    def charge_nobody(self, key: str, start: float) -> None:
        """Event ``key``'s tally as tiering sends it when no process accounted for its stress."""
        with self.conn:
            storage.apply(self.conn, self.tiering(m.EventCulprits, event_key=key, event_start=start, culprits=[]))

    def pause(self, start: float, duration_ms: float = 1500.0, suspended_ms: float = 0.0) -> str:
        self.pauses += 1
        pause_id = f"collector-1:{self.pauses}"
        with self.conn:
            storage.apply(self.conn, self.collector(
                m.Pause, pause_id=pause_id, start=start, end=start + duration_ms / 1000,
                duration_ms=duration_ms, expected_ms=50.0, suspended_ms=suspended_ms))
        return pause_id

    def bundle(self, pause_ids: list[str], bundle_path: Path, culprit: str = "busy", cause: str = "cpu") -> None:
        with self.conn:
            storage.apply(self.conn, self.forensics(
                m.ForensicsDone, pause_ids=pause_ids, bundle_path=str(bundle_path),
                artifacts=[m.Artifact(name="ps", ok=True, path="ps.txt", duration_ms=12.0, bytes=3),
                           m.Artifact(name="dmesg", ok=False, exit_code=1, error="permission denied")],
                culprits=[m.Culprit(pid=4242, command=culprit, score=80, categories=["cpu"], suspect=True)],
                cause=cause, evidence=m.Evidence(psi_cpu_some=42.5, cpu_busy_pct=59.40594059405941,
                                                   last_resume_ago_s=None, rule=culprit)))

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------- fake tiering


class FakeTiering:
    """Binds "live" and "snapshot" like tiering does and answers snapshot requests with ``reply``.

    A test double of the peer over real sockets, run in a thread of the test process.
    """

    def __init__(self, ring: list[m.RingEntry], state: m.TierState, live_seq: int = 0) -> None:
        self.sockets = Sockets()
        self.stamp = Stamper("tiering", "fake-tiering")
        self.ring = ring
        self.state = state
        self.live_seq = live_seq
        self.served = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeTiering:
        self._thread.start()
        assert self._ready.wait(5), "fake tiering did not bind"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        codec = ENDPOINTS["snapshot"].codec()
        # Sockets are created, used and closed in this thread (a socket never leaves its thread).
        self.live = self.sockets.bind("live")
        router = self.sockets.bind("snapshot")
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not router.poll(50, zmq.POLLIN):
                    continue
                frames = router.recv_multipart()
                request = codec.decode(frames[-1])
                assert isinstance(request, m.SnapshotRequest)
                reply = self.stamp(m.SnapshotReply, ring=self.ring, state=self.state,
                                   last_live_seq=self.live_seq, live_incarnation="fake-tiering")
                router.send_multipart([*frames[:-1], codec.encode(reply)])
                self.served += 1
        finally:
            self.sockets.close()


# --------------------------------------------------------------------------- real tiering


class RealTiering:
    """`python -m tiering` as a child process, fed by a fake scorer bound in the test process.

    The scorer's PUB is bound here (as the scorer would) and publishes scored samples whose rogue
    is given; the real tiering worker turns them into its ring buffer, snapshots and live feed.
    """

    def __init__(self, rogues: list[m.ProcessScore]) -> None:
        import os
        import subprocess
        import sys

        self.rogues = rogues
        self.sockets = Sockets()
        self.scored = self.sockets.bind("scored")
        self.codec = ENDPOINTS["scored"].codec()
        self.stamp = Stamper("scorer", "fake-scorer")
        self.proc = subprocess.Popen([sys.executable, "-m", "tiering"], cwd=Path(__file__).resolve().parent.parent,
                                     env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def publish(self) -> None:
        now = time.time()
        msg = self.stamp(m.ProcessSamples, timestamp=now, elapsed_ms=1000.0, process_count=321,
                         max_score=max(r.score for r in self.rogues), rogues=self.rogues,
                         sentinel=m.SentinelStats(tick_ms=50.0, window_s=60.0, ticks=1200, p50_ms=0.3,
                                                  p99_ms=4.5, max_ms=17.0, pauses=1))
        self.scored.send(self.codec.encode(msg))

    def wait_ready(self, samples: int = 3, timeout: float = 20.0) -> m.SnapshotReply:
        """Publish until tiering's snapshot holds ``samples`` of ours (no sleeping to synchronise)."""
        from cli import clients

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode(errors="replace")
            self.publish()
            reply = clients.snapshot(timeout_s=0.2)
            if reply is not None and len(reply.ring) >= samples:
                return reply
        raise AssertionError("tiering never showed our samples in its snapshot")

    def close(self) -> None:
        import subprocess

        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            self.proc.stderr.close()
            self.sockets.close()
