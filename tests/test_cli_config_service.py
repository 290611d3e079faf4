"""pmctl config show|path|edit|reset|validate and pmctl install/uninstall, in a temp home."""

from __future__ import annotations

import os
import plistlib
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from pmshared import config as config_mod
from pmshared import paths
from tests.test_cli_triage import ok, one_line_error


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _write_config(text: str) -> Path:
    path = paths.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _editor(tmp_path: Path, body: str) -> str:
    """An $EDITOR that is a script (with a space in its path, to prove shlex splitting)."""
    script = tmp_path / "my editor" / "edit.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return f"'{script}' --wait"


# --------------------------------------------------------------------------- config


def test_config_path_and_show_defaults(runner, isolated_home):
    assert ok(runner.invoke(app, ["config", "path"])).stdout.strip() == str(paths.config_path())
    out = ok(runner.invoke(app, ["config", "show"])).stdout
    assert "does not exist: all defaults" in out
    assert config_mod.parse(out) == config_mod.Config()  # the output is the config, as TOML


def test_config_show_reflects_the_file_and_refuses_a_broken_one(runner, isolated_home):
    _write_config("[sampling]\nelevation_threshold = 25\n")
    assert "elevation_threshold = 25" in ok(runner.invoke(app, ["config", "show"])).stdout
    _write_config("[sampling]\nelevation_threshold = 250\n")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == config_mod.CONFIG_ERROR_EXIT and "sampling.elevation_threshold" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_validate_reports_every_error_with_its_key(runner, isolated_home):
    assert "all defaults apply" in ok(runner.invoke(app, ["config", "validate"])).stdout
    path = _write_config("[sampling]\ninterval_s = 0\n[tiers]\nelevated_threshold = 'x'\n[nonsense]\na = 1\n")
    result = runner.invoke(app, ["config", "validate"])
    assert result.exit_code == config_mod.CONFIG_ERROR_EXIT
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    assert any("sampling.interval_s" in e for e in errors) and any("tiers.elevated_threshold" in e for e in errors)
    assert any("nonsense: unknown key" in e for e in errors)
    _write_config("[tiers]\nelevated_threshold = 70\ncritical_threshold = 60\n")  # cross-field rule
    assert "critical_threshold" in runner.invoke(app, ["config", "validate"]).stderr
    path.write_text("[sampling]\ninterval_s = 2.0\n")
    assert f"{path}: ok" in ok(runner.invoke(app, ["config", "validate"])).stdout


def test_config_validate_shows_the_first_fifty_of_many_errors(runner, isolated_home):
    from cli.config_cmd import MAX_ERRORS_SHOWN

    _write_config("".join(f"bogus{i} = 1\n" for i in range(10_000)))
    result = runner.invoke(app, ["config", "validate"])
    assert result.exit_code == config_mod.CONFIG_ERROR_EXIT
    lines = result.stderr.strip().splitlines()
    assert len(lines) == MAX_ERRORS_SHOWN + 1 and lines[0].endswith("bogus0: unknown key")
    assert lines[-1] == f"error: … and {10_000 - MAX_ERRORS_SHOWN} more"


def test_config_reset_writes_a_commented_default_and_asks_first(runner, isolated_home):
    path = _write_config("[sampling]\ninterval_s = 5.0\n")
    one_line_error(runner.invoke(app, ["config", "reset"]), "refusing", "--yes", code=2)
    assert path.read_text() == "[sampling]\ninterval_s = 5.0\n"
    result = runner.invoke(app, ["config", "reset"], input="n\n")
    assert result.exit_code == 1 and path.read_text() == "[sampling]\ninterval_s = 5.0\n"
    out = ok(runner.invoke(app, ["config", "reset"], input="y\n")).stdout
    assert "kept as" in out
    text = path.read_text()
    assert text.startswith("# pause-monitor configuration.") and "# Score thresholds" in text
    assert config_mod.parse(text) == config_mod.Config()
    assert Path(str(path) + ".bak").read_text() == "[sampling]\ninterval_s = 5.0\n"
    ok(runner.invoke(app, ["config", "reset", "--yes"]))


def test_config_edit_saves_a_valid_edit(runner, isolated_home, tmp_path, monkeypatch):
    monkeypatch.delenv("VISUAL", raising=False)
    # The editor gets the file as its last argument; sed stands in for a person.
    monkeypatch.setenv("EDITOR", _editor(tmp_path, 'f="$(eval echo \\${$#})"; sed -i "s/^interval_s = 1.0/interval_s = 2.5/" "$f"'))
    out = ok(runner.invoke(app, ["config", "edit"])).stdout
    assert "saved (valid)" in out
    assert config_mod.load().sampling.interval_s == 2.5
    assert "# pause-monitor configuration." in paths.config_path().read_text()  # started from the commented default


def test_config_edit_writes_through_a_symlink(runner, isolated_home, tmp_path, monkeypatch):
    real = tmp_path / "dotfiles" / "pm.toml"
    real.parent.mkdir()
    real.write_text("[sampling]\ninterval_s = 1.0\n")
    path = paths.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(real)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", _editor(tmp_path, 'f="$(eval echo \\${$#})"; sed -i "s/^interval_s = 1.0/interval_s = 2.5/" "$f"'))
    assert "saved (valid)" in ok(runner.invoke(app, ["config", "edit"])).stdout
    assert path.is_symlink() and real.read_text() == "[sampling]\ninterval_s = 2.5\n"
    assert config_mod.load().sampling.interval_s == 2.5


def test_config_edit_keeps_an_invalid_edit_aside(runner, isolated_home, tmp_path, monkeypatch):
    path = _write_config("[sampling]\ninterval_s = 3.0\n")
    monkeypatch.setenv("VISUAL", _editor(tmp_path, 'f="$(eval echo \\${$#})"; echo "[tiers]\nbogus = 1" >> "$f"'))
    result = runner.invoke(app, ["config", "edit"])
    assert result.exit_code == config_mod.CONFIG_ERROR_EXIT
    assert "tiers.bogus: unknown key" in result.stderr and "unchanged" in result.stderr
    assert path.read_text() == "[sampling]\ninterval_s = 3.0\n"
    assert "bogus = 1" in Path(str(path) + ".rejected").read_text()
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".config-edit")] == []


def test_config_edit_with_a_failing_or_missing_editor(runner, isolated_home, tmp_path, monkeypatch):
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", _editor(tmp_path, "exit 3"))
    one_line_error(runner.invoke(app, ["config", "edit"]), "exited with code 3", "unchanged")
    monkeypatch.setenv("EDITOR", str(tmp_path / "no-such-editor"))
    one_line_error(runner.invoke(app, ["config", "edit"]), "cannot run editor")
    assert not paths.config_path().exists()


# --------------------------------------------------------------------------- install


def _unit_path() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "pause-monitor.service"


def test_install_writes_a_systemd_user_unit_and_never_overwrites(runner, isolated_home):
    out = ok(runner.invoke(app, ["install", "--platform", "linux"])).stdout
    unit = _unit_path()
    assert f"wrote {unit}" in out and "systemctl --user enable --now pause-monitor.service" in out
    text = unit.read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    # Under pytest there is no pmctl script in argv[0]: the interpreter runs the cli package.
    assert exec_start == f"ExecStart={sys.executable} -m cli up"
    assert "Restart=on-failure" in text and "WantedBy=default.target" in text
    assert f"RestartPreventExitStatus={config_mod.CONFIG_ERROR_EXIT}" in text  # a config error is not retried
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    unit.write_text(text + "# local change\n")
    one_line_error(runner.invoke(app, ["install", "--platform", "linux"]), "already exists", "--force")
    assert unit.read_text().endswith("# local change\n")
    ok(runner.invoke(app, ["install", "--platform", "linux", "--force"]))
    assert unit.read_text() == text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_installed_unit_passes_systemd_analyze_verify(runner, isolated_home):
    ok(runner.invoke(app, ["install", "--platform", "linux"]))
    proc = subprocess.run(["systemd-analyze", "verify", "--user", str(_unit_path())],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # verify exits 0 even for settings it ignores; those are reported with the file's name.
    assert "pause-monitor.service" not in proc.stderr, proc.stderr


def test_unit_quotes_paths_systemd_would_split_or_expand():
    from cli.service_files import systemd_unit

    unit = systemd_unit(["/opt/my apps/pmctl", "up", "100%$HOME"], Path("/x")).content.decode()
    assert 'ExecStart="/opt/my apps/pmctl" up "100%%$$HOME"' in unit


def test_install_writes_a_launchd_agent_on_macos(runner, isolated_home):
    out = ok(runner.invoke(app, ["install", "--platform", "macos"])).stdout
    plist_path = isolated_home / "Library" / "LaunchAgents" / "org.pause-monitor.up.plist"
    assert f"wrote {plist_path}" in out and "launchctl bootstrap" in out
    agent = plistlib.loads(plist_path.read_bytes())
    assert agent["Label"] == "org.pause-monitor.up"
    assert agent["ProgramArguments"] == [sys.executable, "-m", "cli", "up"]
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}
    assert Path(agent["StandardErrorPath"]).parent == paths.logs_dir() and paths.logs_dir().is_dir()
    one_line_error(runner.invoke(app, ["install", "--platform", "macos"]), "already exists")


def test_install_uses_this_pmctl_when_run_as_pmctl(isolated_home, tmp_path, monkeypatch):
    from cli.service_files import up_command

    script = tmp_path / "bin" / "pmctl"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script), "install"])
    assert up_command() == [str(script), "up"]


def test_uninstall_removes_the_unit_and_its_wants_link(runner, isolated_home):
    one_line_error(runner.invoke(app, ["uninstall", "--platform", "linux"]), "nothing to remove")
    ok(runner.invoke(app, ["install", "--platform", "linux"]))
    unit = _unit_path()
    wants = unit.parent / "default.target.wants" / unit.name
    wants.parent.mkdir()
    wants.symlink_to(unit)
    out = ok(runner.invoke(app, ["uninstall", "--platform", "linux"])).stdout
    assert "systemctl --user disable --now" in out
    assert not unit.exists() and not wants.is_symlink()
    ok(runner.invoke(app, ["install", "--platform", "macos"]))
    ok(runner.invoke(app, ["uninstall", "--platform", "macos"]))
    assert not list((isolated_home / "Library" / "LaunchAgents").iterdir())


def test_unknown_platform_is_a_usage_error(runner, isolated_home):
    one_line_error(runner.invoke(app, ["install", "--platform", "windows"]), "unknown platform", code=2)
