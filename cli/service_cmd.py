"""`pmctl install` / `pmctl uninstall`: run `pmctl up` at login (systemd user unit or launchd agent).

Nothing is started or stopped here — the commands to do that are printed — so installing never
surprises a running pipeline, and tests can generate both kinds of file into a temp home.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import USAGE, fail

PLATFORM_ENV = "PMCTL_SERVICE_PLATFORM"  # test seam: generate the other platform's file


def _platform(override: str | None) -> str:
    choice = override or os.environ.get(PLATFORM_ENV) or ("macos" if sys.platform == "darwin" else "linux")
    if choice not in ("linux", "macos"):
        fail(f"unknown platform {choice!r} (expected linux or macos)", USAGE)
    return choice


def _service_file(platform: str):
    from cli import service_files
    from pmshared import paths

    command = service_files.up_command()
    if platform == "macos":
        return service_files.launchd_plist(command, Path.home(), paths.logs_dir())
    # The unit goes into $XDG_CONFIG_HOME/systemd/user (systemd's own rule), whatever
    # PAUSE_MONITOR_CONFIG says about our config file.
    xdg = os.environ.get("XDG_CONFIG_HOME")
    config_home = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return service_files.systemd_unit(command, config_home)


PlatformOpt = Annotated[
    str | None,
    typer.Option("--platform", hidden=True, help="linux or macos (default: this machine)."),
]


def install(
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing service file.")] = False,
    platform: PlatformOpt = None,
) -> None:
    """Start the monitor at login: write a systemd user unit (Linux) or launchd agent (macOS)."""
    from pmshared import paths

    plat = _platform(platform)
    service = _service_file(plat)
    if service.path.exists() and not force:
        fail(f"{service.path} already exists; pass --force to overwrite it")
    try:
        service.path.parent.mkdir(parents=True, exist_ok=True)
        if plat == "macos":
            paths.logs_dir().mkdir(parents=True, exist_ok=True)  # launchd does not create it
        tmp = service.path.with_name(f".{service.path.name}.tmp")
        tmp.write_bytes(service.content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, service.path)
    except OSError as exc:
        fail(f"cannot write {service.path}: {exc.strerror or exc}")
    print(f"wrote {service.path}")
    print("start it now with:")
    for line in service.start_hint:
        print(f"  {line}")


def uninstall(platform: PlatformOpt = None) -> None:
    """Remove the login service written by `pmctl install`."""
    plat = _platform(platform)
    service = _service_file(plat)
    if not service.path.exists():
        fail(f"nothing to remove: {service.path} does not exist")
    print("if it is running, stop it with:")
    for line in service.stop_hint:
        print(f"  {line}")
    try:
        service.path.unlink()
        if plat == "linux":
            # What `systemctl disable` would remove; a dangling link makes systemd complain.
            wants = service.path.parent / "default.target.wants" / service.path.name
            if wants.is_symlink():
                wants.unlink()
                print(f"removed {wants}")
    except OSError as exc:
        fail(f"cannot remove {service.path}: {exc.strerror or exc}")
    print(f"removed {service.path}")
