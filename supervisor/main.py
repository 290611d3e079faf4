"""The `pmctl up` process once its options are parsed: ``python -m supervisor [--procfile P] [--only N]``.

`pmctl up` parses its options with typer, then execs this module (same pid, so service managers,
`pmctl down` and the lock holder see one process throughout): the supervisor runs for days, and
this way it does not keep typer, click and every other command loaded (~2.3 MB). Everything that
must hold until exit (the instance lock) is taken here, after the exec: an exec would drop it.

Exit codes: see cli/up_cmd.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from pmshared import paths
from pmshared.safetext import inert

USAGE = 2  # as cli.errors (not imported: it imports typer)
FAILURE = 1


def fail(message: str, code: int = FAILURE) -> NoReturn:
    print(f"error: {inert(message)}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def run(procfile: Path | None, only: str | None) -> int:
    from pmshared import config as config_mod
    from pmshared.endpoints import remove_stale_sockets
    from pmshared import prctl
    from supervisor import procfile as procfile_mod
    from supervisor.daemon import Supervisor
    from supervisor.lock import AlreadyRunning, InstanceLock
    from supervisor.output import Printer

    # After the exec the kernel names us "python": top, ps and our own rogue list would show that.
    prctl.set_name("pmctl")
    try:
        config = config_mod.load()
    except config_mod.ConfigError as exc:
        fail(str(exc), config_mod.CONFIG_ERROR_EXIT)
    if config.remote.enabled:
        # Tiering and this process serve tcp with the server key: a missing or world-readable
        # one is a clear line now, not a worker failing over and over after the start.
        from pmshared import curve_keys

        try:
            curve_keys.load_pair("server")
        except curve_keys.KeyFileError as exc:
            fail(f"[remote] is enabled but {exc}", USAGE)
    try:
        path = procfile if procfile is not None else procfile_mod.find_default()
        entries = procfile_mod.load(path)
        names = [n.strip() for n in only.split(",") if n.strip()] if only is not None else None
        if names is not None and not names:
            fail("--only needs at least one process name", USAGE)
        entries = procfile_mod.select(entries, names)
        # A worker the config switches off ([exporter] enabled = false) is not started at all:
        # started, it would exit, and an exit means a restart, then FAILED.
        switched_off = [e.name for e in entries if e.name in config_mod.disabled_workers(config)]
        entries = [e for e in entries if e.name not in switched_off]
        if not entries:
            fail(f"nothing to run: {', '.join(switched_off)} switched off in the config", USAGE)
    except procfile_mod.ProcfileError as exc:
        for problem in str(exc).splitlines():
            print(f"error: {inert(problem)}", file=sys.stderr)
        return USAGE
    except ValueError as exc:
        fail(f"--only: {exc}", USAGE)

    lock = InstanceLock()
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        fail(f"{exc}; stop it with `pmctl down` first")
    except PermissionError:  # another user's runtime dir, as after `su`: whose, and what to do
        fail(paths.unusable_runtime_dir(), USAGE)
    except (paths.PathError, OSError) as exc:
        fail(f"cannot take the supervisor lock: {exc}", USAGE)
    try:
        printer = Printer([e.name for e in entries])
        for name in switched_off:
            printer.system(f"{name}: off in the config, not started")
        # A crashed run leaves its socket files; we hold the lock, so they are nobody's now.
        for stale in remove_stale_sockets():
            printer.system(f"removed stale socket {stale}")
        # No worker runs yet: the only moment the database can be checked, and moved aside if
        # corrupt, without pulling it from under the recorder.
        from supervisor import preflight

        for note in preflight.prepare():
            printer.system(note)
        supervisor = Supervisor(entries, config, printer, cwd=str(path.resolve().parent))
        code = supervisor.run()
        # Every worker is gone now; one that was SIGKILLed (watchdog, grace expired, kill -9)
        # could not unlink the sockets it bound. We still hold the lock: they are nobody's.
        remove_stale_sockets()
    except paths.PathError as exc:
        fail(str(exc), USAGE)
    finally:
        lock.release()
    return code


def main(argv: list[str] | None = None) -> int:
    # Only `pmctl up` calls this, with options typer has already checked.
    parser = argparse.ArgumentParser(prog="pmctl up")
    parser.add_argument("--procfile", type=Path)
    parser.add_argument("--only")
    args = parser.parse_args(argv)
    return run(args.procfile, args.only)

