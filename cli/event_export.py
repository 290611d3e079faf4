"""`pmctl events export`: one event, its samples and its pauses' forensics bundles in a .tar.gz.

The archive goes to someone else, so it must be safe to unpack: every member name is built here
from a fixed prefix and sanitised components (no absolute paths, no '..', no odd characters), only
regular files are added (symlinks would point into the sender's machine), owners are blanked, and
only bundles inside the events directory are read — a path in the database is not trusted to name
what may leave the machine.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli import format as fmt

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_component(name: str) -> str:
    cleaned = _UNSAFE.sub("_", name)[:100]
    return "_" if cleaned in ("", ".", "..") else cleaned


@dataclass
class ExportSummary:
    samples: int = 0
    history: int = 0  # seconds of the flight record in history.json
    pauses: int = 0
    bundles: int = 0
    files: int = 0
    skipped: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)


def _info(name: str, size: int, mtime: float, is_dir: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 0 if is_dir else size
    info.mtime = int(mtime)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, summary: ExportSummary) -> None:
    tar.addfile(_info(name, len(data), time.time()), io.BytesIO(data))
    summary.members.append(name)
    summary.files += 1


def _inside(path: Path, root: Path) -> bool:
    return path != root and root in path.parents


def _add_bundle(tar: tarfile.TarFile, prefix: str, raw_path: str, root: Path, summary: ExportSummary,
                taken: set[str]) -> None:
    try:
        bundle = Path(raw_path).resolve()
    except (OSError, RuntimeError):
        summary.skipped.append(f"bundle {raw_path}: unreadable path")
        return
    if not _inside(bundle, root):
        summary.skipped.append(f"bundle {raw_path}: outside {root}")
        return
    if not bundle.is_dir():
        summary.skipped.append(f"bundle {raw_path}: missing")
        return
    base = safe_component(bundle.name)
    while base in taken:
        base += "_"
    taken.add(base)
    top = f"{prefix}/bundles/{base}"
    tar.addfile(_info(top, 0, bundle.stat().st_mtime, is_dir=True))
    summary.members.append(top)
    for dirpath, dirnames, filenames in os.walk(bundle, followlinks=False):
        rel = Path(dirpath).relative_to(bundle)
        arc_dir = "/".join([top, *(safe_component(p) for p in rel.parts)])
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            try:
                st = full.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                summary.skipped.append(f"{full}: not a regular file")
                continue
            arcname = f"{arc_dir}/{safe_component(name)}"
            try:
                with open(full, "rb") as fh:
                    tar.addfile(_info(arcname, st.st_size, st.st_mtime), fh)
            except OSError as exc:
                summary.skipped.append(f"{full}: {exc.strerror}")
                continue
            summary.members.append(arcname)
            summary.files += 1
    summary.bundles += 1


README = """\
pause-monitor event export

event.json     the event (times are epoch seconds; durations in the field names' units) and the
               pauses that happened during it, with cause, culprits and capture results
samples.json   every sample saved into the event: tier 2 = a new peak, tier 3 = continuous;
               each holds the scored rogue processes of that second
history.json   the machine second by second from HISTORY_BEFORE_S before the event to
               HISTORY_AFTER_S after it (the flight record): system figures, pressure, sentinel
               lateness, tier, scored and busiest processes
bundles/       the forensics bundle of each pause (captures of the machine's state at the time)

Process names are as the processes chose them: treat them as untrusted text.
"""


HISTORY_BEFORE_S = 300.0  # what a pause bundle carries before its pause
HISTORY_AFTER_S = 60.0
README = README.replace("HISTORY_BEFORE_S", f"{HISTORY_BEFORE_S:.0f} s").replace("HISTORY_AFTER_S", f"{HISTORY_AFTER_S:.0f} s")


def history_window(event: Any) -> tuple[float, float]:
    """The flight-record window exported with ``event`` (an open event: up to its last sample)."""
    end = event.end if event.end is not None else (event.last_sample_at or event.start)
    return event.start - HISTORY_BEFORE_S, end + HISTORY_AFTER_S


def history_rows(db: Any, event: Any) -> list[dict]:
    """The flight record's seconds around ``event`` (``history_window``), as `pmctl history` JSON rows."""
    from cli.history_view import json_row
    from pmshared import storage

    since, until = history_window(event)
    return [json_row(f) for f in storage.FlightReader(db).frames(since, until)]


def write_archive(detail: Any, output: Path, bundle_root: Path, history: list[dict] | None = None) -> ExportSummary:
    """Write ``detail`` (a storage.EventDetail) and ``history`` (history_view.json_row of each
    frame in ``history_window``) to ``output``; atomically (temp file + rename)."""
    import msgspec

    event = detail.event
    prefix = f"pause-monitor-event-{int(event.id)}"
    summary = ExportSummary(samples=len(detail.samples), pauses=len(detail.pauses), history=len(history or []))
    root = bundle_root.resolve()
    output = Path(output)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_info(prefix, 0, time.time(), is_dir=True))
            _add_bytes(tar, f"{prefix}/README.txt", README.encode(), summary)
            doc = {"event": msgspec.to_builtins(event), "pauses": msgspec.to_builtins(detail.pauses),
                   "exported_at": time.time()}
            _add_bytes(tar, f"{prefix}/event.json", fmt.to_json(doc).encode(), summary)
            _add_bytes(tar, f"{prefix}/samples.json", fmt.to_json(detail.samples).encode(), summary)
            _add_bytes(tar, f"{prefix}/history.json", fmt.to_json(history or []).encode(), summary)
            taken: set[str] = set()
            for path in sorted({p.bundle_path for p in detail.pauses if p.bundle_path}):
                _add_bundle(tar, prefix, path, root, summary, taken)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return summary
