"""Linux captures: stuck threads, /proc state across the pause, and the kernel log.

- ``stuck_threads``: every thread in uninterruptible sleep (state D, "stuck" in the seed's words)
  with its wait channel and, where the kernel lets us, its kernel stack. /proc/PID/task/TID/stack
  needs root (CAP_SYS_ADMIN) and a kernel built with stack traces; when either is missing the
  reason is recorded once per bundle. The scan is repeated a few times (D states are often short)
  and the union is kept.
- ``proc_state``: /proc/pressure/*, meminfo, vmstat, loadavg and stat read now ("after"), next to
  the worker's last periodic reading from before the pause ("before"), with their deltas.
- ``kernel_log``: ``journalctl -k`` since shortly before the pause; when there is no journal (or
  journalctl is missing or fails) ``dmesg``; the bundle records which ran and why the other did not.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import msgspec

from pmshared import messages as m
from pmshared.config import ForensicsConfig

from forensics import proc_files
from forensics.runner import (
    Capture,
    CaptureContext,
    CaptureResult,
    CommandCapture,
    FunctionCapture,
    json_artifact,
    ms_since,
    run_command,
)
from forensics.stall_window import Interval

PROC = Path("/proc")
STUCK_ROUNDS = 5
STUCK_ROUND_GAP_S = 0.1
NO_JOURNAL_MARKERS = ("No journal files were found", "No journal files were opened")


# --------------------------------------------------------------------------- stuck threads


def _stat_fields(text: str) -> tuple[str, list[str]]:
    """(comm, fields after comm) of a /proc stat line; comm may contain spaces and ')'."""
    open_at, close_at = text.find("("), text.rfind(")")
    return text[open_at + 1 : close_at], text[close_at + 2 :].split()


def _read_text(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _stack_skip_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "kernel stacks need root (CAP_SYS_ADMIN): /proc/PID/task/TID/stack not readable"
    if isinstance(exc, FileNotFoundError):
        return "this kernel has no /proc/PID/task/TID/stack (built without CONFIG_STACKTRACE)"
    return f"/proc/PID/task/TID/stack: {exc.strerror or exc}"


def scan_stuck(root: Path = PROC) -> tuple[list[dict[str, object]], str | None]:
    """One pass over every thread: the D-state ones with wchan and stack; (threads, stack reason)."""
    stuck: list[dict[str, object]] = []
    stack_reason: str | None = None
    try:
        pids = [e for e in os.listdir(root) if e.isdigit()]
    except OSError:
        return [], None
    for pid in pids:
        task_dir = root / pid / "task"
        try:
            tids = os.listdir(task_dir)
        except OSError:
            continue  # the process exited meanwhile
        for tid in tids:
            tdir = task_dir / tid
            try:
                comm, rest = _stat_fields(_read_text(tdir / "stat"))
            except (OSError, IndexError):
                continue
            if not rest or rest[0] != "D":
                continue
            entry: dict[str, object] = {"pid": int(pid), "tid": int(tid), "comm": comm}
            try:
                entry["process"] = _read_text(root / pid / "comm").strip()
            except OSError:
                entry["process"] = None
            try:
                entry["wchan"] = _read_text(tdir / "wchan").strip() or None
            except OSError as exc:
                entry["wchan"] = None
                entry["wchan_error"] = exc.strerror or str(exc)
            try:
                entry["stack"] = _read_text(tdir / "stack").splitlines()
            except OSError as exc:
                entry["stack"] = None
                stack_reason = stack_reason or _stack_skip_reason(exc)
            stuck.append(entry)
    return stuck, stack_reason


def stuck_threads_capture(timeout_s: float, root: Path = PROC) -> FunctionCapture:
    def run(ctx: CaptureContext) -> CaptureResult:
        started = time.monotonic()
        seen: dict[tuple[int, int], dict[str, object]] = {}
        stack_reason: str | None = None
        rounds = 0
        deadline = started + timeout_s
        while rounds < STUCK_ROUNDS and time.monotonic() < deadline and not ctx.stop.is_set():
            threads, reason = scan_stuck(root)
            stack_reason = stack_reason or reason
            for t in threads:
                key = (int(t["pid"]), int(t["tid"]))  # type: ignore[arg-type]
                if key in seen:
                    seen[key]["rounds_seen"] = int(seen[key]["rounds_seen"]) + 1  # type: ignore[arg-type]
                else:
                    seen[key] = {**t, "rounds_seen": 1}
            rounds += 1
            if rounds < STUCK_ROUNDS:
                ctx.stop.wait(STUCK_ROUND_GAP_S)
        body = {
            "rounds": rounds,
            "round_gap_s": STUCK_ROUND_GAP_S,
            "stuck": list(seen.values()),
            "stacks_skipped_reason": stack_reason,
        }
        timed_out = rounds < STUCK_ROUNDS and not ctx.stop.is_set()
        artifact = json_artifact(ctx, "stuck_threads", body, started,
                                 f"only {rounds} of {STUCK_ROUNDS} scans within {timeout_s:g}s" if timed_out else None)
        return CaptureResult(
            artifact, {"rounds": rounds, "stacks_skipped_reason": stack_reason}, stuck_threads=len(seen)
        )

    return FunctionCapture("stuck_threads", run, timeout_s)


# --------------------------------------------------------------------------- /proc state


def proc_state_capture(
    before: proc_files.ProcReading | None, pause_start: float, timeout_s: float, root: Path = PROC
) -> FunctionCapture:
    def run(ctx: CaptureContext) -> CaptureResult:
        started = time.monotonic()
        after = proc_files.read_all(root)
        body: dict[str, object] = {"after": after.to_json()}
        if before is not None:
            body["before"] = before.to_json()
            body["before_age_at_pause_s"] = round(pause_start - before.taken_at, 3)
            body["delta"] = proc_files.delta(before, after)
        else:
            body["before"] = None
            body["delta_skipped_reason"] = "no reading from before the pause (worker just started)"
        missing = sorted(after.errors)
        artifact = json_artifact(ctx, "proc_state", body, started,
                                 f"unreadable: {', '.join(missing)}" if missing else None)
        details: dict[str, object] = {"unreadable": after.errors, "has_before": before is not None}
        across = None
        if before is not None:
            # The figures across the pause also feed the cause classification (session.py).
            across = Interval(
                before.taken_at,
                after.taken_at,
                proc_files.delta_as_system(body["delta"], after, os.cpu_count() or 1),  # type: ignore[arg-type]
                "proc",
            )
        return CaptureResult(artifact, details, across_pause=across)

    return FunctionCapture("proc_state", run, timeout_s)


# --------------------------------------------------------------------------- kernel log


def journalctl_argv(since: float) -> list[str]:
    return ["journalctl", "-k", "--since", f"@{int(since)}", "-o", "short-precise", "--no-pager"]


def dmesg_argv(since: float) -> list[str]:
    # dmesg's --since takes a local date; timestamps are printed as ISO for the same reason.
    local = datetime.fromtimestamp(int(since)).strftime("%Y-%m-%d %H:%M:%S")
    return ["dmesg", "--time-format", "iso", "--since", local]


def _journal_unusable(result: CaptureResult) -> str | None:
    art = result.artifact
    stderr = result.stderr or ""
    if not art.ran:
        return art.skipped_reason
    for marker in NO_JOURNAL_MARKERS:
        if marker in stderr:
            return f"journalctl: {marker} (no persistent or volatile journal)"
    if not art.ok:
        return f"journalctl failed: {art.error}"
    return None


def kernel_log_capture(since: float, timeout_s: float) -> FunctionCapture:
    def run(ctx: CaptureContext) -> CaptureResult:
        started = time.monotonic()
        attempts: list[dict[str, object]] = []
        journal = run_command(
            CommandCapture("kernel_log", journalctl_argv(since), timeout_s, "kernel_log.txt"), ctx
        )
        why_not = _journal_unusable(journal)
        attempts.append({"argv": journal.argv, "unusable": why_not, "error": journal.artifact.error})
        if why_not is None or ctx.stop.is_set():
            journal.details.update(source="journalctl", attempts=attempts)
            return journal
        remaining = max(timeout_s - (time.monotonic() - started), 0.5)
        dmesg = run_command(CommandCapture("kernel_log", dmesg_argv(since), remaining, "kernel_log.txt"), ctx)
        attempts.append({"argv": dmesg.argv, "error": dmesg.artifact.error})
        dmesg.details.update(
            source="dmesg" if dmesg.artifact.ran else None,
            journalctl_not_used=why_not,
            attempts=attempts,
        )
        # The capture's duration is both attempts', not only dmesg's.
        dmesg.artifact = msgspec.structs.replace(dmesg.artifact, duration_ms=ms_since(started))
        return dmesg

    return FunctionCapture("kernel_log", run, timeout_s + 1.0)


def plan(
    pause: m.Pause,
    config: ForensicsConfig,
    before: proc_files.ProcReading | None,
) -> list[Capture]:
    return [
        stuck_threads_capture(config.proc_timeout),
        proc_state_capture(before, pause.start, config.proc_timeout),
        kernel_log_capture(pause.start - config.log_window_s, config.logs_timeout),
    ]


def recovery_plan(pause: m.Pause, config: ForensicsConfig) -> list[Capture]:
    """For a pause found without a bundle after a restart: only what still describes its moment.
    Threads and /proc read now would describe now; the kernel log keeps the pause's time."""
    return [kernel_log_capture(pause.start - config.log_window_s, config.logs_timeout)]
