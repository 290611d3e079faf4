"""One capture session: the bundle of one pause (and of the pauses coalesced into it).

The session runs on its own thread so the worker's loop keeps receiving the live feed and
heartbeating; each capture runs on a thread of its own, concurrently, each bounded by its own
timeout. Files, in the order they are written:

  processes.json     the snapshot the collector took right after the pause
  ring_buffer.json   the live feed of the seconds before it (frozen when the pause arrived),
                     rewritten after the captures with the samples that arrived meanwhile
  history.json       the five minutes before it from the flight record (flight_history.py)
  culprits.json      ranked culprits, how they were ranked, suspects seen (rewritten once the
                     cause is known)
  metadata.json      written first with status "capturing", rewritten at the end
  <captures>         stuck_threads.json, proc_state.json, kernel_log.txt (Linux);
                     spindump.txt, tailspin.tailspin, system_log.ndjson (macOS)
  processes-N.json   the snapshot of each coalesced pause (N = 2, 3, …)

The cause and the culprits are decided after the captures: the samples covering the stall and the
one after it reach the worker through the scorer and tiering, usually after the Pause itself, so
the session reads the worker's ring again then (waiting up to AFTER_SAMPLE_WAIT_S for them).

A full (or read-only, or vanished) disk: the attempt's half-written bundle is removed and the
session tries again with back-off (RETRY_FIRST_S doubling to RETRY_MAX_S), one log line per new
cause; pauses arriving meanwhile are coalesced into it, so the bundle that is finally written holds
them all. Once space is back the bundle is written as usual (metadata.json "retries" says how it
went); after GIVE_UP_AFTER_S the session ends with a failed result (ForensicsDone.error), so the
pause reads "forensics failed: …" rather than pending for ever. A session stopped while waiting
writes nothing: the next start's sweep (engine.py) finds the pause in the database.

Coalescing (decided here, documented in metadata.json): a pause that arrives while a session is
still capturing does not start a second heavy capture. It is attached to the running session:
its timing goes into metadata.json under ``coalesced``, its process list into processes-N.json,
its id into ForensicsDone.pause_ids, and its figures into the cause classification. Once a session
has finished its captures it is sealed, and the next pause starts a new session.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import msgspec

from pmshared import messages as m
from pmshared.config import Config

from forensics import bundle, capture_wait, cause, culprits, flight_history, stall_window
from forensics.runner import Capture, CaptureContext, CaptureResult, failed

log = logging.getLogger("forensics")

RETRY_FIRST_S = 0.5  # first wait after a failed write; doubles up to RETRY_MAX_S
RETRY_MAX_S = 60.0
GIVE_UP_AFTER_S = 3600.0  # a disk full for this long: record the failure instead of waiting on
RECOVERED_NOTE = (
    "written after a restart of forensics (e.g. the disk was full): the process list, the ring "
    "buffer and the live captures of the moment were lost; only what can still be read for the "
    "pause's time (the kernel log) is here"
)
STALL_EDGE_S = 0.1  # a process list whose interval starts this late into the stall still spans it
AFTER_SAMPLE_WAIT_S = 3.0  # at most this long for the ring to receive the sample after the stall
RANKING = {
    "stall": "what each process consumed in the snapshot spanning the stall (culprits.py)",
    "ring": "peak rogue score over the ring buffer (the pause came without processes)",
    "none": "no process list and no rogue in the ring buffer",
}
JOIN_GRACE_S = 2.0  # beyond a capture's own timeout before the session stops waiting for it

PlanFactory = Callable[[Path], list[Capture]]


@dataclass
class SessionResult:
    pause_ids: list[str]
    bundle_path: str
    artifacts: list[m.Artifact]
    culprits: list[m.Culprit]
    cause: m.PauseCause
    evidence: m.Evidence
    top_duration_ms: float = 0.0
    status: str = "complete"  # "complete", "interrupted", or "failed" (no bundle; see error)
    error: str | None = None  # why no bundle could be written
    recovered: bool = False  # written by the start-up sweep, long after the pause


@dataclass
class CaptureSession:
    pause: m.Pause
    ring_entries: list[m.LiveSample]
    config: Config
    plan_factory: PlanFactory
    events_dir: Path
    on_done: Callable[[SessionResult], None]
    resume_ago_s: float | None = None
    incarnation: str = ""
    recovered: bool = False  # a pause found pending after a restart: its timing is all we have
    clock: Callable[[], float] = time.monotonic  # how long the retries have gone on
    counters: Counter[str] = field(default_factory=Counter)
    ring_now: Callable[[], list[m.LiveSample]] | None = None  # the worker's ring, read again later
    db_path: Path | None = None  # the flight record, for history.json (None: no history.json)
    stop: threading.Event = field(default_factory=threading.Event)
    coalesced: list[m.Pause] = field(default_factory=list)
    bundle_dir: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sealed: bool = False
    _thread: threading.Thread | None = None
    _received_at: float = field(default_factory=time.time)
    _attempts: int = 0
    _last_error: str | None = None
    _processes_interval: stall_window.Interval | None = None

    # -- main-loop side --------------------------------------------------------------------------
    def start(self) -> None:
        if self.recovered:
            self._sealed = True  # a live pause deserves its own full capture, not this bundle
        self._thread = threading.Thread(target=self._run_guarded, name="forensics-session", daemon=True)
        self._thread.start()

    def attach(self, pause: m.Pause) -> bool:
        """Coalesce ``pause`` into this session; False once the session is sealed."""
        with self._lock:
            if self._sealed:
                return False
            self.coalesced.append(pause)
            return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- session thread --------------------------------------------------------------------------
    def _run_guarded(self) -> None:
        try:
            self._run_with_retries()
        except Exception:  # never lose the worker to a bundle bug; the log says what happened
            log.exception("forensics session for %s failed", self.pause.pause_id)
            with self._lock:
                self._sealed = True

    def _run_with_retries(self) -> None:
        first_failure: float | None = None
        delay = RETRY_FIRST_S
        while True:
            self._attempts += 1
            try:
                self._run()
                return
            except OSError as exc:  # the disk: full, read-only, gone
                self._discard_attempt()
                error = exc.strerror or str(exc)
                self.counters["bundle_write_failures"] += 1
                first_failure = self.clock() if first_failure is None else first_failure
                if self.clock() - first_failure >= GIVE_UP_AFTER_S:
                    log.warning("bundle for pause %s not written after %d attempts (%s in %s); "
                                "recorded as failed", self.pause.pause_id, self._attempts, error, self.events_dir)
                    self._give_up(error)
                    return
                if error != self._last_error:  # one line per cause, not one per retry
                    log.warning("bundle for pause %s not written (%s in %s); retrying with back-off",
                                self.pause.pause_id, error, self.events_dir)
                self._last_error = error
                if self.stop.wait(delay):
                    log.warning("bundle for pause %s not written (%s); forensics is stopping, its next "
                                "start looks for the pause again", self.pause.pause_id, error)
                    return
                delay = min(delay * 2, RETRY_MAX_S)

    def _discard_attempt(self) -> None:
        if self.bundle_dir is not None:
            bundle.discard_bundle_dir(self.bundle_dir)
            self.bundle_dir = None

    def _give_up(self, error: str) -> None:
        with self._lock:
            self._sealed = True
            pauses = [self.pause, *self.coalesced]
        self.on_done(SessionResult(
            pause_ids=[p.pause_id for p in pauses],
            bundle_path="",
            artifacts=[],
            culprits=self._rank("unknown")[0].culprits,  # known from memory: not lost with the disk
            cause="unknown",
            evidence=m.Evidence(pauses=len(pauses), attempts=self._attempts),
            top_duration_ms=max(p.duration_ms for p in pauses),
            status="failed",
            error=error,
            recovered=self.recovered,
        ))

    def _write_inputs(self, bundle_dir: Path) -> None:
        """processes.json, ring_buffer.json and culprits.json: what was known when the pause came."""
        if not self.recovered:  # a recovered pause has neither: they died with the old worker
            bundle.write_json(bundle_dir / "processes.json", self.pause.processes or [])
            bundle.write_json(bundle_dir / "ring_buffer.json", bundle.ring_json(self.ring_entries))
        if self.db_path is not None:  # a recovered pause too: the database outlived the worker
            bundle.write_json(bundle_dir / "history.json",
                              flight_history.history_json(self.db_path, self.pause.start, self.pause.end))
        self._culprits(None)

    def _latest_ring(self) -> list[m.LiveSample]:
        """The ring as it is now: the samples covering the stall and the one after it reach the
        worker through the scorer and tiering, usually after the Pause itself. Waits (bounded)
        for a sample ending after the last stall."""
        if self.ring_now is None:
            return self.ring_entries
        last_end = max([self.pause.end, *(p.end for p in self.coalesced)])
        deadline = time.monotonic() + AFTER_SAMPLE_WAIT_S
        entries = self.ring_now()
        while not any(e.samples.timestamp >= last_end for e in entries) and not self.stop.is_set():
            if time.monotonic() >= deadline:
                break
            self.stop.wait(0.05)
            entries = self.ring_now()
        return entries

    def _cause(
        self, pauses: list[m.Pause], results: dict[str, CaptureResult]
    ) -> tuple[m.PauseCause, m.Evidence]:
        cfg = self.config.forensics.cause
        latest = self._latest_ring()
        if latest != self.ring_entries:
            self.ring_entries = latest
            assert self.bundle_dir is not None
            bundle.write_json(self.bundle_dir / "ring_buffer.json", bundle.ring_json(latest))
        live = stall_window.live_intervals(self.ring_entries)
        intervals = list(live)
        for p in pauses:
            own = stall_window.pause_interval(p, live)
            if p is self.pause:
                self._processes_interval = own
            if own is not None and not any(iv.system is own.system or iv == own for iv in intervals):
                intervals.append(own)
        proc_state = results.get("proc_state")
        across = proc_state.across_pause if proc_state else None
        stuck = results.get("stuck_threads")
        stuck_count = stuck.stuck_threads if stuck and stuck.artifact.ok else None
        figures = cause.gather(
            [(p.start, p.end) for p in pauses],
            intervals,
            # forensics' own /proc readings across the pause: only when the collector's are missing
            fallback=[across] if across is not None else [],
            thresholds=cfg,
            suspended_ms=max(p.suspended_ms for p in pauses),
            last_resume_ago_s=self.resume_ago_s,
            stuck_threads=stuck_count,
        )
        label, evidence = cause.classify(figures, cfg)
        stall = "; ".join(f"{p.start - self.pause.start:+.2f}..{p.end - self.pause.start:+.2f} s" for p in pauses)
        return label, msgspec.structs.replace(evidence, pauses=len(pauses), stall=stall)

    def _rank(self, label: str) -> tuple[culprits.CulpritReport, set[int]]:
        """The culprits (named with the cgroup the collector read) and the pipeline's own pids."""
        cfg = self.config
        processes = self.pause.processes
        # The cores of the machine the process list was sampled on.
        cpu_count = self.pause.system.cpu_count if self.pause.system else os.cpu_count() or 1
        busy = self.pause.system.cpu_busy_pct if self.pause.system else None
        pipeline = culprits.pipeline_pids(processes or [], os.getpid(), _supervisor_pid())
        report = culprits.identify(
            self.ring_entries, processes, cfg.suspects.patterns, cfg.forensics.culprit_count,
            cause=label, cpu_count=cpu_count, busy_pct=busy, pipeline=pipeline,
        )
        return report, pipeline

    def _culprits(self, label: m.PauseCause | None) -> culprits.CulpritReport:
        """Rank and write culprits.json. ``None``: before the captures, the cause not known yet
        (ranked as for an unknown cause); rewritten once it is, so a worker killed meanwhile
        still leaves a bundle with its culprits."""
        cfg = self.config
        report, pipeline = self._rank(label or "unknown")
        span = self._processes_span()
        assert self.bundle_dir is not None
        bundle.write_json(
            self.bundle_dir / "culprits.json",
            bundle.CulpritsFile(
                source=report.source,
                cause=label,
                preliminary=msgspec.UNSET if label else "written before the captures; the cause was not known yet",
                ranking=RANKING[report.source],
                processes_interval=span.interval if span else msgspec.UNSET,
                processes_span_the_stall=span.spans if span else msgspec.UNSET,
                culprits=report.entries(),
                pipeline_pids=sorted(pipeline),
                suspect_patterns=cfg.suspects.patterns,
                suspects_present=report.suspects_present,
            ),
        )
        return report

    def _culprits_from(self, source: str) -> str:
        """One line of evidence: what the culprits were ranked from."""
        if source != "stall":
            return RANKING[source]
        span = self._processes_span()
        interval = span.interval if span else "an unknown interval"
        measured = any(p.cpu_children is not None for p in self.pause.processes or [])
        children = ("exited children's CPU charged to their parent" if measured
                    else "exited children's CPU not measured by this collector")
        return f"what each process consumed over {interval}; {children}"

    def _processes_span(self) -> _Span | None:
        """Which interval the process list's rates cover, and whether it spans the stall (rates
        over a short sample taken after the stall would miss what ran inside it)."""
        iv = self._processes_interval
        if iv is None or not self.pause.processes:
            return None
        origin = self.pause.start
        start = "?" if iv.start is None else f"{iv.start - origin:+.2f}"
        spans = iv.start is not None and iv.start <= self.pause.start + STALL_EDGE_S and iv.end >= self.pause.end
        return _Span(f"{start}..{iv.end - origin:+.2f} s from the pause start", spans)

    def _run(self) -> None:
        started_mono = time.monotonic()
        self.bundle_dir = bundle_dir = bundle.create_bundle_dir(self.events_dir, self.pause.start)
        self._write_inputs(bundle_dir)
        meta = self._metadata(status="capturing", captures={}, cause_label=None, evidence=m.Evidence())
        bundle.write_json(bundle_dir / "metadata.json", meta)

        captures_started = time.time()
        results = self._run_captures(self.plan_factory(bundle_dir), bundle_dir)

        with self._lock:
            self._sealed = True  # from here on, new pauses start a new session
            coalesced = list(self.coalesced)
        for n, extra in enumerate(coalesced, start=2):
            bundle.write_json(bundle_dir / f"processes-{n}.json", extra.processes or [])

        pauses = [self.pause, *coalesced]
        label, evidence = self._cause(pauses, results)
        report = self._culprits(label)
        evidence = msgspec.structs.replace(evidence, culprits_from=self._culprits_from(report.source))
        status = "interrupted" if self.stop.is_set() else "complete"
        meta = self._metadata(
            status=status,
            captures={name: bundle.capture_record(r.artifact, r.metadata_details()) for name, r in results.items()},
            cause_label=label,
            evidence=evidence,
            coalesced=coalesced,
            timing=bundle.Timing(
                received_at=self._received_at,
                captures_started_at=captures_started,
                finished_at=time.time(),
                session_ms=round((time.monotonic() - started_mono) * 1000, 1),
            ),
            culprit_list=report.culprits,
        )
        bundle.write_json(bundle_dir / "metadata.json", meta)
        self.on_done(
            SessionResult(
                pause_ids=[p.pause_id for p in pauses],
                bundle_path=str(bundle_dir),
                artifacts=[r.artifact for r in results.values()],
                culprits=report.culprits,
                cause=label,
                evidence=evidence,
                top_duration_ms=max(p.duration_ms for p in pauses),
                status=status,
                recovered=self.recovered,
            )
        )

    def _run_captures(self, plan: list[Capture], bundle_dir: Path) -> dict[str, CaptureResult]:
        ctx = CaptureContext(bundle_dir=bundle_dir, max_bytes=self.config.forensics.max_output_bytes, stop=self.stop)
        results: dict[str, CaptureResult] = {}
        jobs: list[tuple[threading.Thread, float]] = []
        started = time.monotonic()

        for capture in plan:
            def run(capture: Capture = capture) -> None:
                results[capture.name] = capture.run(ctx)

            t = threading.Thread(target=run, name=f"capture-{capture.name}", daemon=True)
            t.start()
            jobs.append((t, capture.timeout_s + JOIN_GRACE_S))
        # Limits in time this process ran (capture_wait): a machine stall is not a capture's overrun.
        capture_wait.join_all(jobs)
        for capture in plan:
            if capture.name not in results:
                # Only an in-process capture can overrun (commands are killed at their timeout);
                # its thread is a daemon and is abandoned, the bundle goes on without it.
                results[capture.name] = failed(
                    capture.name, f"did not finish within {capture.timeout_s:g}s", started
                )
        return {c.name: results[c.name] for c in plan}

    def _metadata(
        self,
        *,
        status: str,
        captures: dict[str, bundle.CaptureRecord],
        cause_label: m.PauseCause | None,
        evidence: m.Evidence,
        coalesced: list[m.Pause] | None = None,
        timing: bundle.Timing | None = None,
        culprit_list: list[m.Culprit] | None = None,
    ) -> bundle.BundleMetadata:
        coalesced = coalesced or []
        return bundle.BundleMetadata(
            status=status,
            bundle=self.bundle_dir.name if self.bundle_dir else None,
            pause=bundle.pause_record(self.pause),
            pause_ids=[self.pause.pause_id, *(p.pause_id for p in coalesced)],
            coalesced=[bundle.pause_record(p) for p in coalesced],
            host=bundle.host_info(),
            versions=bundle.versions(),
            cause=cause_label,
            evidence=evidence,
            top_culprits=list(culprit_list or []),
            captures=captures,
            ring_buffer=bundle.RingInfo(
                entries=len(self.ring_entries), seconds=self.config.sentinel.ring_buffer_seconds
            ),
            timing=timing or bundle.Timing(received_at=self._received_at),
            forensics=bundle.ForensicsInfo(incarnation=self.incarnation),
            recovered=RECOVERED_NOTE if self.recovered else msgspec.UNSET,
            retries=(bundle.Retries(attempts=self._attempts, last_error=self._last_error)
                     if self._attempts > 1 else msgspec.UNSET),
        )


@dataclass(frozen=True)
class _Span:
    interval: str  # the process list's interval, relative to the pause start (text)
    spans: bool  # whether it covers the whole stall


def _supervisor_pid() -> int | None:
    """The parent, when it is the supervisor (`pmctl up` names itself pmctl)."""
    parent = os.getppid()
    try:
        with open(f"/proc/{parent}/comm", encoding="utf-8", errors="replace") as fh:
            return parent if fh.read().strip() == "pmctl" else None
    except OSError:
        return None


