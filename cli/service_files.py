"""The text of the login service that runs `pmctl up`: a systemd user unit or a launchd agent.

Pure functions of (command, paths) so both are tested on any machine; which one is installed is
decided by the platform in `service_cmd`.
"""

from __future__ import annotations

import os
import plistlib
import sys
from dataclasses import dataclass
from pathlib import Path

UNIT_NAME = "pause-monitor.service"
AGENT_LABEL = "org.pause-monitor.up"


@dataclass(frozen=True)
class ServiceFile:
    path: Path
    content: bytes
    start_hint: list[str]  # commands that start it now
    stop_hint: list[str]  # commands that stop it (before uninstalling)


def up_command() -> list[str]:
    """argv that starts the supervisor: this very pmctl if we were started as one, else python -m cli.

    An absolute path, because services run with a minimal PATH and no virtualenv activated.
    """
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "pmctl":
        exe = Path(argv0)
        if not exe.is_absolute():
            found = _which(argv0)
            exe = Path(found) if found else exe.resolve()
        if exe.is_file() and os.access(exe, os.X_OK):
            return [str(exe.absolute()), "up"]
    return [str(Path(sys.executable).absolute()), "-m", "cli", "up"]


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name) if os.sep not in name else str(Path(name).resolve())


# --------------------------------------------------------------------------- systemd (Linux)


def _systemd_quote(arg: str) -> str:
    """One ExecStart word: quoted when needed; % and $ escaped (systemd would expand them)."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    if any(c.isspace() for c in arg) or escaped != arg or not arg:
        return f'"{escaped}"'
    return escaped


def systemd_unit(command: list[str], config_home: Path) -> ServiceFile:
    exec_start = " ".join(_systemd_quote(a) for a in command)
    text = f"""\
# Written by `pmctl install`; remove with `pmctl uninstall`.
[Unit]
Description=pause-monitor: find out why the machine froze, and who did it
# Process scoring, tiers, pause detection and forensics; `pmctl status` shows the workers.

[Service]
Type=simple
ExecStart={exec_start}
Restart=on-failure
RestartSec=5
# Exit 2 is a config or Procfile error: restarting cannot fix it (fix it, then restart the unit).
RestartPreventExitStatus=2
# The supervisor stops its workers itself on SIGTERM; only stragglers get SIGKILL.
KillMode=mixed
TimeoutStopSec=20
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=default.target
"""
    path = config_home / "systemd" / "user" / UNIT_NAME
    return ServiceFile(
        path=path,
        content=text.encode(),
        start_hint=["systemctl --user daemon-reload", f"systemctl --user enable --now {UNIT_NAME}"],
        stop_hint=[f"systemctl --user disable --now {UNIT_NAME}", "systemctl --user daemon-reload"],
    )


# --------------------------------------------------------------------------- launchd (macOS)


def launchd_plist(command: list[str], home: Path, logs_dir: Path) -> ServiceFile:
    agent = {
        "Label": AGENT_LABEL,
        "ProgramArguments": command,
        "RunAtLoad": True,
        # Restart when it dies or fails, not after a clean `pmctl down` (launchd's on-failure).
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ProcessType": "Background",
        "StandardOutPath": str(logs_dir / "pmctl-up.log"),
        "StandardErrorPath": str(logs_dir / "pmctl-up.log"),
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
    }
    path = home / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist"
    return ServiceFile(
        path=path,
        content=plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=False),
        start_hint=[f'launchctl bootstrap gui/$(id -u) "{path}"'],
        stop_hint=[f"launchctl bootout gui/$(id -u)/{AGENT_LABEL}"],
    )
