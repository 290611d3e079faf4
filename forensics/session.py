"""One capture session: the bundle of one pause (and of the pauses coalesced into it).

The session runs on its own thread so the worker's loop keeps receiving the live feed and
heartbeating; each capture runs on a thread of its own, concurrently, each bounded by its own
timeout. Files, in the order they are written:

  processes.json     the snapshot the collector took right after the pause
  ring_buffer.json   the live feed of the seconds before it (frozen when the pause arrived)
  culprits.json      ranked culprits, their source and suspects seen
  metadata.json      written first with status "capturing", rewritten at the end
  <captures>         stuck_threads.json, proc_state.json, kernel_log.txt (Linux);
                     spindump.txt, tailspin.tailspin, system_log.ndjson (macOS)
  processes-N.json   the snapshot of each coalesced pause (N = 2, 3, …)

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
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pmshared import messages as m
from pmshared.config import Config

from forensics import bundle, cause, culprits
from forensics.ring import window
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
CAUSE_CONTEXT_S = 5.0  # live samples this long before the pause count for the cause
JOIN_GRACE_S = 2.0  # beyond a capture's own timeout before the session stops waiting for it

PlanFactory = Callable[[Path], list[Capture]]


@dataclass
class SessionResult:
    pause_ids: list[str]
    bundle_path: str
    artifacts: list[m.Artifact]
    culprits: list[m.Culprit]
    cause: m.PauseCause
    evidence: dict[str, float | int | str | bool | None]
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
    stop: threading.Event = field(default_factory=threading.Event)
    coalesced: list[m.Pause] = field(default_factory=list)
    bundle_dir: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sealed: bool = False
    _thread: threading.Thread | None = None
    _received_at: float = field(default_factory=time.time)
    _attempts: int = 0
    _last_error: str | None = None

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
            culprits=self._culprit_report()[0].culprits,  # known from memory: not lost with the disk
            cause="unknown",
            evidence={"pauses": len(pauses), "attempts": self._attempts},
            top_duration_ms=max(p.duration_ms for p in pauses),
            status="failed",
            error=error,
            recovered=self.recovered,
        ))

    def _culprit_report(self) -> tuple[culprits.CulpritReport, int]:
        """The ranked culprits and how many live samples around the pause they come from."""
        cfg = self.config
        around = window(
            self.ring_entries,
            self.pause.start - cfg.sentinel.ring_buffer_seconds,
            self.pause.end + CAUSE_CONTEXT_S,
        )
        report = culprits.identify(around, self.pause.processes, cfg.suspects.patterns, cfg.forensics.culprit_count)
        return report, len(around)

    def _write_inputs(self, bundle_dir: Path) -> culprits.CulpritReport:
        """processes.json, ring_buffer.json and culprits.json: what was known when the pause came."""
        cfg = self.config
        if not self.recovered:  # a recovered pause has neither: they died with the old worker
            bundle.write_json(bundle_dir / "processes.json", self.pause.processes or [])
            bundle.write_json(bundle_dir / "ring_buffer.json", bundle.ring_json(self.ring_entries))
        report, samples_in_window = self._culprit_report()
        bundle.write_json(
            bundle_dir / "culprits.json",
            {
                "source": report.source,
                "window": {"start": self.pause.start - cfg.sentinel.ring_buffer_seconds, "end": self.pause.end},
                "samples_in_window": samples_in_window,
                "culprits": [
                    {**_culprit_dict(c), "samples_seen": report.seen.get(c.pid, 0)} for c in report.culprits
                ],
                "suspect_patterns": cfg.suspects.patterns,
                "suspects_present": report.suspects_present,
            },
        )
        return report

    def _classify(self, pauses: list[m.Pause], results: dict[str, CaptureResult]) -> tuple[m.PauseCause, dict]:
        stuck = results.get("stuck_threads")
        stuck_count = stuck.details.get("stuck_threads") if stuck and stuck.artifact.ok else None
        systems = [e.samples.system for e in window(
            self.ring_entries, self.pause.start - CAUSE_CONTEXT_S, self.pause.end + CAUSE_CONTEXT_S
        ) if e.samples.system is not None]
        systems += [p.system for p in pauses if p.system is not None]
        proc_state = results.get("proc_state")
        across = proc_state.details.pop("across_pause", None) if proc_state else None
        if isinstance(across, m.SystemStats):
            systems.append(across)  # /proc deltas from before the pause to after it
        figures = cause.gather(
            systems,
            suspended_ms=max(p.suspended_ms for p in pauses),
            last_resume_ago_s=self.resume_ago_s,
            stuck_threads=stuck_count if isinstance(stuck_count, int) else None,
        )
        label, evidence = cause.classify(figures)
        evidence["pauses"] = len(pauses)
        return label, evidence

    def _run(self) -> None:
        started_mono = time.monotonic()
        self.bundle_dir = bundle_dir = bundle.create_bundle_dir(self.events_dir, self.pause.start)
        report = self._write_inputs(bundle_dir)
        meta = self._metadata(status="capturing", captures={}, cause_label=None, evidence={})
        bundle.write_json(bundle_dir / "metadata.json", meta)

        captures_started = time.time()
        results = self._run_captures(self.plan_factory(bundle_dir), bundle_dir)

        with self._lock:
            self._sealed = True  # from here on, new pauses start a new session
            coalesced = list(self.coalesced)
        for n, extra in enumerate(coalesced, start=2):
            bundle.write_json(bundle_dir / f"processes-{n}.json", extra.processes or [])

        pauses = [self.pause, *coalesced]
        label, evidence = self._classify(pauses, results)
        status = "interrupted" if self.stop.is_set() else "complete"
        meta = self._metadata(
            status=status,
            captures={
                name: {**_artifact_dict(r.artifact), "details": r.details} for name, r in results.items()
            },
            cause_label=label,
            evidence=evidence,
            coalesced=coalesced,
            timing={
                "received_at": self._received_at,
                "captures_started_at": captures_started,
                "finished_at": time.time(),
                "session_ms": round((time.monotonic() - started_mono) * 1000, 1),
            },
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
        threads: list[tuple[Capture, threading.Thread, float]] = []
        started = time.monotonic()

        for capture in plan:
            def run(capture: Capture = capture) -> None:
                results[capture.name] = capture.run(ctx)

            t = threading.Thread(target=run, name=f"capture-{capture.name}", daemon=True)
            t.start()
            threads.append((capture, t, started + capture.timeout_s + JOIN_GRACE_S))
        for capture, t, deadline in threads:
            t.join(max(deadline - time.monotonic(), 0.0))
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
        captures: dict[str, object],
        cause_label: str | None,
        evidence: dict[str, object],
        coalesced: list[m.Pause] | None = None,
        timing: dict[str, object] | None = None,
        culprit_list: list[m.Culprit] | None = None,
    ) -> dict[str, object]:
        coalesced = coalesced or []
        return {
            "schema": 1,
            "status": status,
            "bundle": self.bundle_dir.name if self.bundle_dir else None,
            "pause": bundle.pause_record(self.pause),
            "pause_ids": [self.pause.pause_id, *(p.pause_id for p in coalesced)],
            "coalesced": [bundle.pause_record(p) for p in coalesced],
            "coalescing": (
                "pauses that arrived while this bundle's captures were running were recorded here "
                "instead of starting another capture"
            ),
            "host": bundle.host_info(),
            "versions": bundle.versions(),
            "cause": cause_label,
            "evidence": evidence,
            "top_culprits": [_culprit_dict(c) for c in (culprit_list or [])],
            "captures": captures,
            "ring_buffer": {
                "entries": len(self.ring_entries),
                "seconds": self.config.sentinel.ring_buffer_seconds,
            },
            "timing": timing or {"received_at": self._received_at},
            "forensics": {"incarnation": self.incarnation},
            **({"recovered": RECOVERED_NOTE} if self.recovered else {}),
            **({"retries": {"attempts": self._attempts, "last_error": self._last_error}}
               if self._attempts > 1 else {}),
        }


def _culprit_dict(c: m.Culprit) -> dict[str, object]:
    return {"pid": c.pid, "command": c.command, "score": c.score, "categories": list(c.categories), "suspect": c.suspect}


def _artifact_dict(a: m.Artifact) -> dict[str, object]:
    return {
        "ok": a.ok, "ran": a.ran, "path": a.path, "exit_code": a.exit_code, "duration_ms": a.duration_ms,
        "bytes": a.bytes, "truncated": a.truncated, "error": a.error, "skipped_reason": a.skipped_reason,
    }
