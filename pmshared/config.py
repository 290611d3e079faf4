"""Configuration: TOML at the XDG config path, decoded strictly into msgspec Structs.

Defaults equal the seed's (pause-monitor phase 7) except where the new design says otherwise, noted
beside the field. An unknown key, a wrong type or an out-of-range value is a ``ConfigError`` whose
message names the file, the key path and what was expected; nothing silently falls back to a default.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from pmshared import paths

Count = Annotated[int, Meta(ge=0)]
Positive = Annotated[float, Meta(gt=0)]
Weight = Annotated[int, Meta(ge=0, le=100)]
ScoreThreshold = Annotated[int, Meta(ge=0, le=100)]


class ConfigError(Exception):
    """A config file that cannot be used. ``str()`` is one line, fit for a user."""


class _Section(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class SamplingConfig(_Section):
    # The seed's daemon sampled at a fixed 1 Hz (SAMPLE_INTERVAL_MS=1000); its normal/elevated
    # intervals were vestigial and are not carried over.
    interval_s: Annotated[float, Meta(ge=0.1, le=60)] = 1.0
    # The seed's score gauge colours: green below 30, yellow below 60, red above.
    elevation_threshold: ScoreThreshold = 30
    critical_threshold: ScoreThreshold = 60


class RetentionConfig(_Section):
    samples_days: Annotated[int, Meta(ge=1)] = 30  # pauses and their bundles
    events_days: Annotated[int, Meta(ge=1)] = 90  # reviewed/dismissed events (pinned never)


class AlertsConfig(_Section):
    enabled: bool = True
    pause_detected: bool = True
    pause_min_duration: Annotated[float, Meta(ge=0)] = 2.0  # seconds
    critical_stress: bool = True
    critical_threshold: ScoreThreshold = 60
    critical_duration: Annotated[int, Meta(ge=0)] = 30  # seconds of sustained critical score
    elevated_entered: bool = False
    forensics_completed: bool = True
    sound: bool = True  # macOS only
    rate_limit_s: Annotated[float, Meta(ge=0)] = 60.0  # new: one notification per kind per window


class SuspectsConfig(_Section):
    patterns: list[str] = msgspec.field(
        default_factory=lambda: [
            "codemeter",
            "bitdefender",
            "biomesyncd",
            "motu",
            "coreaudiod",
            "kernel_task",
            "WindowServer",
        ]
    )


class SentinelConfig(_Section):
    # New design: a fast heartbeat with an absolute lateness threshold replaces the seed's
    # fast_interval_ms=100 and pause_threshold_ratio=2.0 on the 1 s loop. A stall begins anywhere
    # inside a tick, so a pause's duration is known to within tick/2: 20 ms ticks give ±10 ms
    # (50 ms ticks cost ~0.25 % of a core less on a VM and give ±25 ms).
    tick_ms: Annotated[float, Meta(ge=5, le=1000)] = 20.0
    pause_threshold_ms: Annotated[float, Meta(ge=20)] = 200.0
    percentile_window_s: Annotated[float, Meta(ge=1)] = 60.0
    ring_buffer_seconds: Annotated[int, Meta(ge=1, le=3600)] = 30
    peak_tracking_seconds: Annotated[int, Meta(ge=1)] = 30


class TiersConfig(_Section):
    elevated_threshold: ScoreThreshold = 35
    critical_threshold: ScoreThreshold = 65
    deescalation_delay_s: Annotated[float, Meta(ge=0)] = 5.0

    def __post_init__(self) -> None:
        if self.critical_threshold < self.elevated_threshold:
            raise ValueError("critical_threshold must be >= elevated_threshold")


class ScoringWeights(_Section):
    cpu: Weight = 25
    state: Weight = 20
    pageins: Weight = 15
    mem: Weight = 15
    cmprs: Weight = 10
    csw: Weight = 10
    sysbsd: Weight = 5
    threads: Weight = 0


# The pressure model's anchors (scorer/stress.py). Each signal X of a resource has X_elevated and
# X_critical: the values at which the signal alone puts the resource at the tiers' elevated and
# critical thresholds (35 and 65 by default); stress rises linearly from 0 (or from X_start) to
# the first, on to the second, and on beyond it at the same slope up to 100. An anchor above
# what the signal can reach (busy_pct_critical = 110) means the signal alone never goes critical.
Pct = Annotated[float, Meta(gt=0, le=1000)]  # percent of the interval (or of a core), anchors
PerCore = Annotated[float, Meta(gt=0, le=1000)]  # tasks per core
PerSecond = Annotated[float, Meta(gt=0, le=1e9)]  # events per second (per core where named)
Millis = Annotated[float, Meta(gt=0, le=600_000)]


class _Anchors(_Section):
    """A resource's signals: for every ``X_elevated`` there is an ``X_critical`` above it, and an
    ``X_start``, where present, below it."""

    def __post_init__(self) -> None:
        for f in msgspec.structs.fields(self):
            if not f.name.endswith("_elevated"):
                continue
            signal = f.name[: -len("_elevated")]
            elevated = getattr(self, f.name)
            if getattr(self, f"{signal}_critical") <= elevated:
                raise ValueError(f"{signal}_critical must be above {signal}_elevated")
            start = getattr(self, f"{signal}_start", None)
            if start is not None and start >= elevated:
                raise ValueError(f"{signal}_start must be below {signal}_elevated")


class CpuSignals(_Anchors):
    busy_pct_elevated: Pct = 95.0  # all cores busy (user+system+irq), % of the interval
    busy_pct_critical: Pct = 110.0  # unreachable: busy cores alone are elevated, never critical
    psi_some_elevated: Pct = 20.0  # PSI cpu some: % of the interval some task waited for a CPU
    psi_some_critical: Pct = 60.0
    # procs_running (minus our own) per core: an instantaneous count, so a high bar (a desktop's
    # short bursts reach 2-3 per core); PSI says more where the kernel has it.
    runnable_per_core_elevated: PerCore = 3.0
    runnable_per_core_critical: PerCore = 6.0
    steal_pct_elevated: Pct = 10.0  # time the hypervisor gave our vCPUs to someone else
    steal_pct_critical: Pct = 30.0
    run_delay_pct_elevated: Pct = 50.0  # all tasks' run delay (schedstat), % of the interval per core
    run_delay_pct_critical: Pct = 150.0
    # Tasks of our own in procs_running when /proc/stat is read: the collector's sampling thread.
    own_running_tasks: Annotated[int, Meta(ge=0, le=16)] = 1


class MemorySignals(_Anchors):
    psi_some_elevated: Pct = 10.0  # PSI memory some: % of the interval some task stalled on memory
    psi_some_critical: Pct = 40.0
    psi_full_elevated: Pct = 5.0  # PSI memory full: every non-idle task stalled at once
    psi_full_critical: Pct = 20.0
    paging_per_s_elevated: PerSecond = 300.0  # major faults + swap-ins + swap-outs per second
    paging_per_s_critical: PerSecond = 1500.0
    used_pct_start: Annotated[float, Meta(ge=0, le=100)] = 80.0  # 100 - MemAvailable %
    used_pct_elevated: Annotated[float, Meta(gt=0, le=100)] = 95.0
    used_pct_critical: Annotated[float, Meta(gt=0, le=1000)] = 99.0
    # macOS memory pressure level (no PSI there): the stress "warn" and "critical" stand for.
    level_warn: ScoreThreshold = 40
    level_critical: ScoreThreshold = 70


class IoSignals(_Anchors):
    psi_some_elevated: Pct = 20.0  # PSI io some: % of the interval some task waited for io
    psi_some_critical: Pct = 50.0
    psi_full_elevated: Pct = 10.0
    psi_full_critical: Pct = 30.0
    blocked_per_core_elevated: PerCore = 1.5  # procs_blocked (D state) per core
    blocked_per_core_critical: PerCore = 4.0
    iowait_pct_elevated: Pct = 25.0  # where PSI is missing, iowait is the next best sign
    iowait_pct_critical: Pct = 60.0


class StallSignals(_Anchors):
    # The sentinel's p99 lateness over its window (sentinel.percentile_window_s): at 20 ms ticks
    # and 60 s, p99 needs ~30 late ticks, so one blip does not hold the stress up for a minute.
    p99_ms_elevated: Millis = 50.0
    p99_ms_critical: Millis = 200.0


class ForkSignals(_Anchors):
    forks_per_core_elevated: PerSecond = 500.0  # processes created per second per core
    forks_per_core_critical: PerSecond = 2000.0


class CswSignals(_Anchors):
    per_core_elevated: PerSecond = 25_000.0  # context switches per second per core
    per_core_critical: PerSecond = 100_000.0


class PressureModelConfig(_Section):
    """The pressure model's constants (scorer/stress.py and scorer/pressure.py use them)."""

    rogue_count: Annotated[int, Meta(ge=1, le=200)] = 10  # processes with a score > 0, top first
    # A rogue is listed under every resource that charges it at least this part of its top charge,
    # or of which it holds at least this part (its top charge's resource always).
    category_ratio: Annotated[float, Meta(gt=0, le=1)] = 0.5
    cpu: CpuSignals = msgspec.field(default_factory=CpuSignals)
    memory: MemorySignals = msgspec.field(default_factory=MemorySignals)
    io: IoSignals = msgspec.field(default_factory=IoSignals)
    stall: StallSignals = msgspec.field(default_factory=StallSignals)
    fork: ForkSignals = msgspec.field(default_factory=ForkSignals)
    csw: CswSignals = msgspec.field(default_factory=CswSignals)


class ScoringConfig(_Section):
    # "pressure" (default): machine stress from what the kernel measures (PSI deltas, run queue,
    # paging, sentinel lateness), charged to the processes holding the contended resource.
    # "seed": the seed's per-process formula, bit for bit (weights below).
    model: Literal["pressure", "seed"] = "pressure"
    weights: ScoringWeights = msgspec.field(default_factory=ScoringWeights)
    pressure: PressureModelConfig = msgspec.field(default_factory=PressureModelConfig)


class CategorySelection(_Section):
    enabled: bool = True
    count: Count = 3
    threshold: Annotated[float, Meta(ge=0)] = 0.0


StateName = Literal["running", "sleeping", "stuck", "zombie", "stopped", "idle", "halted"]


class StateSelection(_Section):
    enabled: bool = True
    count: Count = 0  # 0 = unlimited
    states: list[StateName] = msgspec.field(default_factory=lambda: ["zombie"])


class RogueSelectionConfig(_Section):
    cpu: CategorySelection = msgspec.field(default_factory=CategorySelection)
    mem: CategorySelection = msgspec.field(default_factory=CategorySelection)
    cmprs: CategorySelection = msgspec.field(default_factory=CategorySelection)
    threads: CategorySelection = msgspec.field(default_factory=CategorySelection)
    csw: CategorySelection = msgspec.field(default_factory=CategorySelection)
    sysbsd: CategorySelection = msgspec.field(default_factory=CategorySelection)
    pageins: CategorySelection = msgspec.field(default_factory=CategorySelection)
    state: StateSelection = msgspec.field(default_factory=StateSelection)


class ForensicsConfig(_Section):
    enabled: bool = True
    spindump_timeout: Positive = 30  # seed
    tailspin_timeout: Positive = 10  # seed
    logs_timeout: Positive = 10  # seed: `log show`; here also journalctl/dmesg
    proc_timeout: Positive = 5  # Linux /proc captures (stuck threads, pressure, meminfo)
    max_output_bytes: Annotated[int, Meta(ge=1024)] = 16 * 1024 * 1024  # per capture
    log_window_s: Positive = 60  # how far before the pause the logs start
    culprit_count: Annotated[int, Meta(ge=1)] = 5


class SupervisorConfig(_Section):
    grace_period_s: Positive = 5.0
    backoff_initial_s: Positive = 0.5
    backoff_max_s: Positive = 30.0
    stable_after_s: Positive = 10.0  # a run this long resets the back-off
    max_restarts: Annotated[int, Meta(ge=1)] = 5  # within restart_window_s -> FAILED
    restart_window_s: Positive = 60.0
    heartbeat_interval_s: Positive = 1.0
    missed_heartbeats: Annotated[int, Meta(ge=1)] = 3
    # Linux: start `python -m` workers by fork from the supervisor's preloaded interpreter, so
    # they share its imported code (~25 MB less in all); false execs every command.
    fork_workers: bool = True


class TransportConfig(_Section):
    kind: Literal["ipc", "tcp"] = "ipc"
    tcp_host: str = "127.0.0.1"
    tcp_port_base: Annotated[int, Meta(ge=1024, le=65000)] = 47200
    record_queue: Annotated[int, Meta(ge=10)] = 10000  # records queued per sender before loss
    max_message_bytes: Annotated[int, Meta(ge=65536)] = 64 * 1024 * 1024


class Config(_Section):
    sampling: SamplingConfig = msgspec.field(default_factory=SamplingConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    suspects: SuspectsConfig = msgspec.field(default_factory=SuspectsConfig)
    sentinel: SentinelConfig = msgspec.field(default_factory=SentinelConfig)
    tiers: TiersConfig = msgspec.field(default_factory=TiersConfig)
    scoring: ScoringConfig = msgspec.field(default_factory=ScoringConfig)
    rogue_selection: RogueSelectionConfig = msgspec.field(default_factory=RogueSelectionConfig)
    forensics: ForensicsConfig = msgspec.field(default_factory=ForensicsConfig)
    supervisor: SupervisorConfig = msgspec.field(default_factory=SupervisorConfig)
    transport: TransportConfig = msgspec.field(default_factory=TransportConfig)


_PATH_RE = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _explain_parts(err: msgspec.ValidationError) -> tuple[str, str]:
    """'Expected `int` >= 0 - at `$.tiers.x`' -> ('tiers.x', 'expected `int` >= 0')."""
    text = str(err)
    match = _PATH_RE.search(text)
    key = ""
    if match:
        key = match.group("path").lstrip(".")
        text = text[: match.start()]
    unknown = re.match(r"Object contains unknown field `([^`]+)`", text)
    if unknown:
        key = f"{key}.{unknown.group(1)}" if key else unknown.group(1)
        text = "unknown key"
    return key, text[:1].lower() + text[1:]


def _explain(err: msgspec.ValidationError) -> str:
    """'Expected `int` >= 0 - at `$.tiers.x`' -> 'tiers.x: expected `int` >= 0'."""
    key, text = _explain_parts(err)
    return f"{key}: {text}" if key else text


def parse(text: str, source: str = "<config>") -> Config:
    """Decode TOML text into a Config; raise ConfigError naming ``source`` and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_explain(exc)}") from None


def validate_all(text: str, source: str = "<config>") -> list[str]:
    """Every error in the file, one line each, each naming its key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [f"{source}: invalid TOML: {exc}"]
    return [f"{source}: {error}" for error in _errors("", data, Config)]


def _errors(prefix: str, value: object, typ: object) -> list[str]:
    """Every error in ``value`` read as ``typ``. msgspec stops at the first error, so a table that
    fails is checked again key by key; a check of the table as a whole (a cross-field rule, a
    value that is no table) is reported when no single key explains the failure."""
    try:
        msgspec.convert(value, typ)
        return []
    except msgspec.ValidationError as exc:
        key, reason = _explain_parts(exc)
    if isinstance(value, dict) and isinstance(typ, type) and issubclass(typ, Struct):
        fields = {f.name: f.type for f in msgspec.structs.fields(typ)}
        errors = []
        for name, item in value.items():
            path = f"{prefix}.{name}" if prefix else name
            if name not in fields:
                errors.append(f"{path}: unknown key")
            else:
                errors.extend(_errors(path, item, fields[name]))
        if errors:
            return errors
    path = ".".join(p for p in (prefix, key) if p)
    return [f"{path}: {reason}" if path else reason]


def load(path: Path | None = None) -> Config:
    """Load the config file; a missing file means all defaults (that is not an error)."""
    path = path or paths.config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse(text, str(path))


def to_toml(config: Config) -> str:
    """Render a config as TOML (used by `pmctl config show/reset`)."""
    lines: list[str] = []

    def emit(prefix: str, obj: Struct) -> None:
        scalars, tables = [], []
        for f in msgspec.structs.fields(obj):
            value = getattr(obj, f.name)
            (tables if isinstance(value, Struct) else scalars).append((f.name, value))
        if scalars:
            lines.append(f"[{prefix}]")
            for name, value in scalars:
                lines.append(f"{name} = {_toml_value(value)}")
            lines.append("")
        for name, value in tables:
            emit(f"{prefix}.{name}" if prefix else name, value)

    emit("", config)
    return "\n".join(lines)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {value!r} as TOML")
