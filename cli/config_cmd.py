"""`pmctl config show | path | edit | reset | validate`.

The config file is optional (no file = every default). ``edit`` works on a copy and only puts it
in place when it validates, like ``crontab -e``: a typo never reaches the running workers. A
rejected edit is kept next to the file so nothing typed is lost.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cli.errors import USAGE, confirm, fail
from pmshared.safetext import inert

app = typer.Typer(help="Show, edit, reset or validate the configuration file.", no_args_is_help=True)

# One line per section for the commented default file written by `reset`.
SECTION_NOTES = {
    "sampling": "How often the collector samples, and the score gauge's yellow/red marks.",
    "retention": "How long reviewed/dismissed events and pauses are kept (pinned events: forever).",
    "alerts": "Desktop notifications.",
    "suspects": "Process names that are known troublemakers; matching culprits are flagged.",
    "sentinel": "The pause detector: tick, lateness threshold, ring buffer length.",
    "tiers": "Score thresholds for tier 2 (elevated) and tier 3 (critical).",
    "scoring": 'The scoring model: "pressure" (machine stress charged to processes) or "seed".',
    "scoring.weights": "The seed model: how much each factor contributes to a process's 0-100 score.",
    "scoring.pressure": "The pressure model: per signal, the values where a resource turns elevated/critical.",
    "rogue_selection": "Which processes are kept as rogues in each sample, per category.",
    "forensics": "What is captured when a pause is detected, and the time limit of each capture.",
    "supervisor": "How `pmctl up` restarts workers (back-off, restart limit, heartbeats).",
    "transport": "How workers talk to each other (ipc sockets by default).",
}


def _path() -> Path:
    from pmshared import paths

    return paths.config_path()


def commented_default() -> str:
    """The default config as TOML with a header and a comment above each section."""
    from pmshared import config as config_mod

    body = config_mod.to_toml(config_mod.Config())
    out = [
        "# pause-monitor configuration.",
        "# Every value below is the default; delete a line to keep following future defaults.",
        "# Check your edits with `pmctl config validate`; workers refuse a file with errors.",
        "",
    ]
    noted: set[str] = set()
    for line in body.splitlines():
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1]
            # A note goes above the first table of its section ([rogue_selection.cpu] has no parent).
            key = name if name in SECTION_NOTES else name.split(".")[0]
            if key in SECTION_NOTES and key not in noted:
                noted.add(key)
                out.append(f"# {SECTION_NOTES[key]}")
        out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


def _read(path: Path) -> str | None:
    """The file's text (None: no file), read as the workers read it: a FIFO, a device or a huge
    file is one line, never a hang."""
    from pmshared import config as config_mod

    try:
        return config_mod.read_text(path)
    except config_mod.ConfigError as exc:
        fail(str(exc), config_mod.CONFIG_ERROR_EXIT)


MAX_ERRORS_SHOWN = 50  # a 1 MiB file can hold 100,000 unknown keys: nobody reads past the first screens


def _report(errors: list[str], conclusion: str | None = None) -> NoReturn:
    """Print the errors (one line each, the first MAX_ERRORS_SHOWN) and exit with the
    config-error code."""
    from pmshared import config as config_mod

    for line in errors[:MAX_ERRORS_SHOWN]:
        print(f"error: {inert(line)}", file=sys.stderr)
    if len(errors) > MAX_ERRORS_SHOWN:
        print(f"error: … and {len(errors) - MAX_ERRORS_SHOWN} more", file=sys.stderr)
    if conclusion is not None:
        fail(conclusion, config_mod.CONFIG_ERROR_EXIT)
    raise typer.Exit(config_mod.CONFIG_ERROR_EXIT)


@app.command()
def path() -> None:
    """Print where the configuration file is (it need not exist)."""
    print(_path())


@app.command()
def show() -> None:
    """Print the configuration in effect, as TOML (defaults filled in)."""
    from pmshared import config as config_mod

    path = _path()
    text = _read(path)
    if text is None:
        print(f"# {path} does not exist: all defaults")
        config = config_mod.Config()
    else:
        errors = config_mod.validate_all(text, str(path))
        if len(errors) == 1:
            fail(f"{errors[0]}; fix it with `pmctl config edit`", config_mod.CONFIG_ERROR_EXIT)
        if errors:
            _report(errors, f"{path} has {len(errors)} errors; fix them with `pmctl config edit`")
        config = config_mod.parse(text, str(path))
        print(f"# {path}")
    print(config_mod.to_toml(config), end="")


@app.command()
def validate(
    file: Annotated[Path | None, typer.Argument(help="File to check (default: the config file).")] = None,
) -> None:
    """Check the configuration file; report every error with its key."""
    from pmshared import config as config_mod

    path = file or _path()
    text = _read(path)
    if text is None:
        if file is not None:
            fail(f"{path}: no such file", config_mod.CONFIG_ERROR_EXIT)
        print(f"{path} does not exist: all defaults apply")
        return
    errors = config_mod.validate_all(text, str(path))
    if errors:
        _report(errors)
    print(f"{path}: ok")


def _editor() -> list[str]:
    import shlex

    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            try:
                argv = shlex.split(value)
            except ValueError as exc:
                fail(f"${var} cannot be split into a command ({exc})", USAGE)
            if argv:
                return argv
    return ["vi"]


@app.command()
def edit() -> None:
    """Open the configuration in $VISUAL/$EDITOR; it is saved only if it validates."""
    import subprocess
    import tempfile

    from pmshared import config as config_mod

    path = _path()
    text = _read(path)
    if text is None:
        text = commented_default()
    # A symlink (dotfile managers) is written through: the link stays, its target gets the edit.
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".config-edit-", suffix=".toml", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        argv = _editor() + [str(tmp)]
        try:
            code = subprocess.call(argv)
        except OSError as exc:
            fail(f"cannot run editor {argv[0]!r}: {exc.strerror or exc}")
        if code != 0:
            fail(f"editor {argv[0]!r} exited with code {code}; {path} unchanged")
        try:
            new_text = config_mod.read_text(tmp)  # the editor may have put anything there
        except config_mod.ConfigError as exc:
            fail(f"{exc}; {path} unchanged", config_mod.CONFIG_ERROR_EXIT)
        if new_text is None:
            fail(f"the editor removed {tmp}; {path} unchanged")
        if new_text == text and path.exists():
            print(f"{path}: unchanged")
            return
        errors = config_mod.validate_all(new_text, str(path))
        if errors:
            rejected = target.with_name(target.name + ".rejected")
            os.replace(tmp, rejected)
            _report(errors, f"{path} unchanged; your edit is kept in {rejected}")
        os.replace(tmp, target)
        print(f"{path}: saved (valid)")
    finally:
        tmp.unlink(missing_ok=True)


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Write a commented default configuration file (the old one is kept as .bak)."""
    path = _path()
    exists = path.exists()
    if not yes:
        question = f"Replace {path} with the defaults?" if exists else f"Write the default config to {path}?"
        if not confirm(question, "--yes"):
            print("nothing changed")
            raise typer.Exit(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if exists:
        backup = path.with_name(path.name + ".bak")
        os.replace(path, backup)
        print(f"previous file kept as {backup}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(commented_default(), encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote defaults to {path}")

