"""Run one capture: a command (argument list, never a shell) or an in-process function.

A command runs in its own session (so its own process group) with stdin closed. Its stdout is
streamed into a file in the bundle, at most ``max_bytes``; stderr is kept in memory (first 8 KB)
for the error message. The capture ends, and the whole process group is killed with SIGKILL, when
- the timeout passes (``timed out after Ns``),
- stdout (or the file the command writes itself, e.g. tailspin's ``-o``) passes ``max_bytes``
  (``truncated``: the file holds exactly the first ``max_bytes``), or
- the worker is stopping.
After a normal exit the group is killed too, so helpers a capture left behind never outlive it.

Every outcome is a ``CaptureResult``: the wire ``Artifact`` (ran, ok, exit code, duration, bytes,
truncated, error / skipped reason), the typed fields other code reads back (argv, stderr, the
stuck-thread count, the /proc figures across the pause) and a ``details`` dict of notes that only
metadata.json shows (``metadata_details`` merges them).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import msgspec

from pmshared import messages as m
from pmshared import procgroup
from pmshared.safetext import inert

from forensics.stall_window import Interval

STDERR_KEEP = 8192
READ_CHUNK = 65536
SELECT_S = 0.1  # how often a waiting capture looks at its deadline and the stop flag


@dataclass
class CaptureResult:
    artifact: m.Artifact
    details: dict[str, object] = field(default_factory=dict)  # notes for metadata.json only
    argv: list[str] | None = None  # a command capture's resolved argument list
    stderr: str | None = None  # a command's stderr (first STDERR_KEEP bytes, made inert)
    stuck_threads: int | None = None  # the stuck_threads capture's count (feeds the cause)
    # The proc_state capture's figures across the pause: the cause's fallback when the collector's
    # samples do not cover the stall. Not written to metadata.json (proc_state.json has them).
    across_pause: Interval | None = None

    def metadata_details(self) -> dict[str, object]:
        """What metadata.json shows under the capture's ``details``."""
        typed = {"argv": self.argv, "stderr": self.stderr, "stuck_threads": self.stuck_threads}
        return {**{k: v for k, v in typed.items() if v is not None}, **self.details}


@dataclass(frozen=True)
class CaptureContext:
    bundle_dir: Path
    max_bytes: int
    stop: threading.Event


@dataclass(frozen=True)
class CommandCapture:
    name: str
    argv: list[str]  # argv[0]: an absolute path or a name looked up on PATH
    timeout_s: float
    stdout_file: str | None  # inside the bundle; None = stdout is read and discarded
    produces: str | None = None  # a file inside the bundle the command writes itself

    def run(self, ctx: CaptureContext) -> CaptureResult:
        return run_command(self, ctx)


@dataclass(frozen=True)
class FunctionCapture:
    """An in-process capture (reading /proc). ``fn`` must check ``ctx.stop`` if it loops."""

    name: str
    fn: Callable[[CaptureContext], CaptureResult]
    timeout_s: float

    def run(self, ctx: CaptureContext) -> CaptureResult:
        started = time.monotonic()
        try:
            result = self.fn(ctx)
        except Exception as exc:  # a capture bug must not lose the rest of the bundle
            return failed(self.name, f"{type(exc).__name__}: {exc}", started)
        if result.artifact.duration_ms is None:
            result.artifact = _replace(result.artifact, duration_ms=ms_since(started))
        return result


Capture = CommandCapture | FunctionCapture


def ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000.0, 1)


def _replace(artifact: m.Artifact, **changes: object) -> m.Artifact:
    return msgspec.structs.replace(artifact, **changes)


def skipped(name: str, reason: str, argv: list[str] | None = None, **details: object) -> CaptureResult:
    return CaptureResult(
        m.Artifact(name=name, ok=False, ran=False, skipped_reason=reason, duration_ms=0.0),
        dict(details), argv=argv,
    )


def failed(name: str, error: str, started: float, argv: list[str] | None = None, **details: object) -> CaptureResult:
    return CaptureResult(
        m.Artifact(name=name, ok=False, ran=True, error=error, duration_ms=ms_since(started)),
        dict(details), argv=argv,
    )


def json_artifact(ctx: CaptureContext, name: str, body: object, started: float, error: str | None = None) -> m.Artifact:
    """Write ``body`` to the bundle as ``<name>.json``: a function capture's artifact."""
    data = json.dumps(body, indent=2).encode()
    (ctx.bundle_dir / f"{name}.json").write_bytes(data)
    return m.Artifact(name=name, ok=True, path=f"{name}.json", duration_ms=ms_since(started), bytes=len(data),
                      error=error)


def resolve(program: str, search_path: str | None = None) -> str | None:
    """An absolute path that exists and is executable, or a name found on PATH; else None."""
    if os.path.isabs(program):
        return program if os.access(program, os.X_OK) else None
    return shutil.which(program, path=search_path)


def run_command(spec: CommandCapture, ctx: CaptureContext) -> CaptureResult:
    started = time.monotonic()
    exe = resolve(spec.argv[0])
    argv = [exe or spec.argv[0], *spec.argv[1:]]
    details: dict[str, object] = {"timeout_s": spec.timeout_s}
    if exe is None:
        where = "" if os.path.isabs(spec.argv[0]) else " on PATH"
        return skipped(spec.name, f"{spec.argv[0]} not found{where}", argv, **details)
    if ctx.stop.is_set():
        return skipped(spec.name, "worker stopping", argv, **details)

    out_path = ctx.bundle_dir / spec.stdout_file if spec.stdout_file else None
    produced = ctx.bundle_dir / spec.produces if spec.produces else None
    try:
        # Own process group: one kill takes the command's children too.
        proc = procgroup.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        return failed(spec.name, f"cannot start {argv[0]}: {exc.strerror or exc}", started, argv, **details)

    out = open(out_path, "wb") if out_path else None
    try:
        run = _watch(proc, spec, ctx, started + spec.timeout_s, out, produced)
    finally:
        # Kill before reaping (the leader is still unreaped here, see procgroup.exited);
        # after a normal exit this only removes stragglers the command left in its group.
        procgroup.stop(proc)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
        if out is not None:
            out.close()
    result = _result(spec, ctx, run, proc.returncode, started, produced)
    result.argv, result.details = argv, details
    return result


@dataclass
class _Run:
    """What watching a command found: its output's size, whether it was cut, why it was stopped."""

    written: int = 0
    truncated: bool = False
    stop_reason: str | None = None
    stderr: bytearray = field(default_factory=bytearray)


def _watch(
    proc: subprocess.Popen[bytes], spec: CommandCapture, ctx: CaptureContext, deadline: float,
    out: BinaryIO | None, produced: Path | None,
) -> _Run:
    """Stream the command's pipes until both close (or a limit is hit), then wait for it to exit,
    still bounded by the limits. Leaves the leader unreaped."""
    run = _Run()
    sel = selectors.DefaultSelector()
    try:
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
        while sel.get_map() and run.stop_reason is None:
            run.stop_reason = _check_limits(ctx, deadline, spec.timeout_s)
            if run.stop_reason:
                break
            for key, _ in sel.select(min(SELECT_S, max(deadline - time.monotonic(), 0.0))):
                data = os.read(key.fd, READ_CHUNK)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                if key.data == "stderr":
                    run.stderr += data[: max(STDERR_KEEP - len(run.stderr), 0)]
                    continue
                room = ctx.max_bytes - run.written
                if out is not None:
                    out.write(data[:room])
                run.written += min(len(data), room)
                if len(data) > room:
                    run.truncated = True
                    run.stop_reason = f"output exceeded the cap of {ctx.max_bytes} bytes; truncated and killed"
                    break
            if produced is not None and run.stop_reason is None and _size(produced) > ctx.max_bytes:
                run.truncated = True
                run.stop_reason = f"{spec.produces} exceeded the cap of {ctx.max_bytes} bytes; killed"
        while run.stop_reason is None and not procgroup.exited(proc):
            run.stop_reason = _check_limits(ctx, deadline, spec.timeout_s)
            if run.stop_reason is None:
                ctx.stop.wait(0.02)
    finally:
        sel.close()
    return run


def _result(
    spec: CommandCapture, ctx: CaptureContext, run: _Run, code: int | None, started: float,
    produced: Path | None,
) -> CaptureResult:
    if produced is not None and produced.exists():
        if run.truncated:
            _truncate(produced, ctx.max_bytes)
        size = _size(produced)
    else:
        size = run.written
    err_text = inert(run.stderr.decode("utf-8", "replace").strip(), limit=2000)
    error = run.stop_reason
    if error is None and code != 0:
        error = f"exit status {code}" + (f": {err_text[:300]}" if err_text else "")
    if error is None and produced is not None and not produced.exists():
        error = f"{spec.produces} was not created"
    path = spec.produces if produced is not None and produced.exists() else spec.stdout_file
    artifact = m.Artifact(
        name=spec.name,
        ok=error is None,
        path=path,
        ran=True,
        exit_code=code,
        duration_ms=ms_since(started),
        bytes=size,
        truncated=run.truncated,
        error=error,
    )
    return CaptureResult(artifact, stderr=err_text)


def _check_limits(ctx: CaptureContext, deadline: float, timeout_s: float) -> str | None:
    if ctx.stop.is_set():
        return "worker stopping; killed"
    if time.monotonic() >= deadline:
        return f"timed out after {timeout_s:g}s; process group killed"
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _truncate(path: Path, size: int) -> None:
    try:
        os.truncate(path, size)
    except OSError:
        pass
