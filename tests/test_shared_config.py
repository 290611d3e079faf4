"""Config: strict decoding, one-line errors naming file and key, defaults equal to the seed's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pmshared import config as cfg

REPO = Path(__file__).resolve().parent.parent


def test_defaults_equal_the_seed():
    c = cfg.Config()
    assert (c.tiers.elevated_threshold, c.tiers.critical_threshold) == (35, 65)
    assert c.tiers.deescalation_delay_s == 5.0
    w = c.scoring.weights
    assert (w.cpu, w.state, w.pageins, w.mem, w.cmprs, w.csw, w.sysbsd, w.threads) == (25, 20, 15, 15, 10, 10, 5, 0)
    assert (c.retention.samples_days, c.retention.events_days) == (30, 90)
    a = c.alerts
    assert (a.enabled, a.pause_detected, a.pause_min_duration, a.critical_stress) == (True, True, 2.0, True)
    assert (a.critical_threshold, a.critical_duration, a.elevated_entered, a.forensics_completed, a.sound) == (
        60, 30, False, True, True,
    )
    assert c.suspects.patterns == [
        "codemeter", "bitdefender", "biomesyncd", "motu", "coreaudiod", "kernel_task", "WindowServer",
    ]
    assert c.sentinel.ring_buffer_seconds == 30 and c.sentinel.peak_tracking_seconds == 30
    for name in ("cpu", "mem", "cmprs", "threads", "csw", "sysbsd", "pageins"):
        sel = getattr(c.rogue_selection, name)
        assert (sel.enabled, sel.count, sel.threshold) == (True, 3, 0.0)
    assert (c.rogue_selection.state.enabled, c.rogue_selection.state.count) == (True, 0)
    assert c.rogue_selection.state.states == ["zombie"]
    assert (c.sampling.elevation_threshold, c.sampling.critical_threshold) == (30, 60)
    # The new design's sentinel: 20 ms ticks (durations to ±10 ms), 200 ms threshold.
    assert (c.sentinel.tick_ms, c.sentinel.pause_threshold_ms) == (20.0, 200.0)


def test_rendered_defaults_parse_back_identically():
    assert cfg.parse(cfg.to_toml(cfg.Config())) == cfg.Config()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[tiers\n", "f.toml: invalid TOML"),
        ("[tiers]\nelevated_treshold = 30\n", "f.toml: tiers.elevated_treshold: unknown key"),
        ("[scoring.weights]\ncpu = -1\n", "f.toml: scoring.weights.cpu: expected `int` >= 0"),
        ("[scoring.weights]\ncpu = 'high'\n", "f.toml: scoring.weights.cpu: expected `int`, got `str`"),
        ("[tiers]\nelevated_threshold = 80\n", "f.toml: tiers: critical_threshold must be >= elevated_threshold"),
        ("[sentinel]\ntick_ms = 0\n", "f.toml: sentinel.tick_ms: expected `float` >= 5"),
        ("[rogue_selection.state]\nstates = ['sleepy']\n", "f.toml: rogue_selection.state.states[0]"),
        ("colour = 1\n", "f.toml: colour: unknown key"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(text, expected):
    with pytest.raises(cfg.ConfigError) as info:
        cfg.parse(text, "f.toml")
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_validate_all_reports_every_section():
    errors = cfg.validate_all("bogus = 1\n[tiers]\nelevated_threshold = -3\n[alerts]\nsound = 'yes'\n", "c.toml")
    assert len(errors) == 3
    assert any(e.startswith("c.toml: tiers.elevated_threshold") for e in errors)
    assert any(e.startswith("c.toml: alerts.sound") for e in errors)
    assert any(e.startswith("c.toml: bogus: unknown key") for e in errors)


def test_missing_file_means_defaults_but_unreadable_is_an_error(tmp_path):
    assert cfg.load(tmp_path / "absent.toml") == cfg.Config()
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(cfg.ConfigError, match="cannot read"):
        cfg.load(bad)


def test_config_path_follows_environment(tmp_path, monkeypatch):
    from pmshared import paths

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert paths.config_path() == tmp_path / "cfg" / "pause-monitor" / "config.toml"
    monkeypatch.setenv("PAUSE_MONITOR_CONFIG", str(tmp_path / "x.toml"))
    assert paths.config_path() == tmp_path / "x.toml"


def test_worker_with_bad_config_exits_with_one_line(tmp_path):
    """The shared runtime turns a config error into one line on stderr, no traceback."""
    bad = tmp_path / "config.toml"
    bad.write_text("[scoring.weights]\ncpu = -5\n")
    code = "from pmshared.runtime import Worker; Worker('probe', sockets=False)"
    env = {"PAUSE_MONITOR_CONFIG": str(bad), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {bad}: scoring.weights.cpu: expected `int` >= 0"]


# ------------------------------------------------------------------------ reading the file
def test_a_symlink_to_a_regular_file_is_followed_and_a_dangling_one_is_named(tmp_path):
    real = tmp_path / "real.toml"
    real.write_text("[sampling]\ninterval_s = 2.0\n")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    assert cfg.load(link).sampling.interval_s == 2.0
    dangling = tmp_path / "dangling.toml"
    dangling.symlink_to(tmp_path / "gone.toml")
    with pytest.raises(cfg.ConfigError, match=r"dangling.toml: cannot read: a symlink to .*gone.toml, which does not exist"):
        cfg.load(dangling)


def test_the_read_stops_one_byte_past_the_limit_whatever_the_file_claims(monkeypatch):
    """/proc files are regular and report size 0: only the bounded read catches a long one."""
    monkeypatch.setattr(cfg, "MAX_CONFIG_BYTES", 100)
    status = Path("/proc/self/status")
    assert status.stat().st_size == 0 and len(status.read_bytes()) > 100
    with pytest.raises(cfg.ConfigError, match="more than a config file's 100 bytes"):
        cfg.read_text(status)


def test_toml_nested_too_deep_is_one_line():
    text = "x = " + "[" * 2000 + "]" * 2000 + "\n"
    with pytest.raises(cfg.ConfigError) as info:
        cfg.parse(text, "f.toml")
    assert str(info.value) == "f.toml: invalid TOML: arrays or tables nested too deeply"
    assert cfg.validate_all(text, "f.toml") == [str(info.value)]
    inline = "x = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n"
    assert cfg.validate_all(inline, "f.toml") == [str(info.value)]


def test_long_keys_and_values_are_cut_in_errors():
    key = "k" * 100_000
    cut = "k" * (cfg.MAX_KEY_CHARS - 1) + "…"
    text = f"[tiers]\n{key} = 1\n"
    with pytest.raises(cfg.ConfigError) as info:
        cfg.parse(text, "f.toml")
    assert str(info.value) == f"f.toml: tiers.{cut}: unknown key"
    assert cfg.validate_all(text, "f.toml") == [f"f.toml: tiers.{cut}: unknown key"]
    assert cfg.validate_all(f'"{key}" = 1\n', "f.toml") == [f"f.toml: {cut}: unknown key"]
    # msgspec quotes a bad choice in full: cut too.
    with pytest.raises(cfg.ConfigError) as info:
        cfg.parse(f'[scoring]\nmodel = "{"x" * 100_000}"\n', "f.toml")
    assert len(str(info.value)) < 300 and str(info.value).startswith("f.toml: scoring.model: invalid enum value")


def test_cross_field_rules_reach_validate_all():
    errors = cfg.validate_all("[supervisor]\nheartbeat_interval_s = 0.05\nmissed_heartbeats = 3\n", "f.toml")
    assert len(errors) == 1 and "missed_heartbeats x heartbeat_interval_s must be at least 0.5 s" in errors[0]
    assert cfg.parse("[supervisor]\nheartbeat_interval_s = 0.05\nmissed_heartbeats = 10\n")


def test_the_sentinel_runs_where_asked_and_a_bad_choice_is_one_line_naming_the_choices():
    assert cfg.Config().sentinel.where == "auto"
    for where in ("auto", "process", "thread"):
        assert cfg.parse(f'[sentinel]\nwhere = "{where}"\n').sentinel.where == where
    text = '[sentinel]\nwhere = "fork"\n'
    expected = 'f.toml: sentinel.where: invalid enum value \'fork\' (expected "auto", "process" or "thread")'
    with pytest.raises(cfg.ConfigError) as info:
        cfg.parse(text, "f.toml")
    assert str(info.value) == expected
    assert cfg.validate_all(text, "f.toml") == [expected]
    assert cfg.validate_all('[sentinel]\nwhere = 3\n', "f.toml") == ["f.toml: sentinel.where: expected `str`, got `int`"]
