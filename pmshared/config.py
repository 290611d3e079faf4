"""Configuration: TOML at the XDG config path, decoded strictly into msgspec Structs.

Defaults equal the seed's (pause-monitor phase 7) except where the new design says otherwise, noted
beside the field. An unknown key, a wrong type or an out-of-range value is a ``ConfigError`` whose
message names the file, the key path and what was expected; nothing silently falls back to a default.

Every number has a lower and an upper bound that the workers can actually run with (a queue size
zmq accepts, a timer that neither spins nor overflows, a ring that fits in memory); floats outside
them, nan and inf included, are rejected. tests/test_config_ranges.py walks these structs and holds
every numeric key, present and future, to that.

The file is read by ``read_text`` only: a regular file of at most ``MAX_CONFIG_BYTES``, so a config
path that is a FIFO, a device (/dev/zero), a directory or a huge file is one line, never a hang
or an exhausted memory.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin

import msgspec
from msgspec import Meta, Struct

from pmshared import paths

# A config file is a few KB; anything over this is not one (and is not read into memory).
MAX_CONFIG_BYTES = 1024 * 1024
# Every command and worker that stops because of the config file exits with this code (the same
# as a usage error: the input is wrong, running again unchanged cannot help). README: Exit codes.
CONFIG_ERROR_EXIT = 2
# A key echoed in an error is cut to this many characters (an unknown key may be 1 MB long).
MAX_KEY_CHARS = 60

Count = Annotated[int, Meta(ge=0, le=100_000)]
# Kept for keys still being written elsewhere: a key typed Positive needs an upper bound of its
# own (tests/test_config_ranges.py fails on a numeric key without one).
Positive = Annotated[float, Meta(gt=0)]
Weight = Annotated[int, Meta(ge=0, le=100)]
ScoreThreshold = Annotated[int, Meta(ge=0, le=100)]
Days = Annotated[int, Meta(ge=1, le=36_500)]  # a century: the cutoff (now - days) stays a float
Timeout = Annotated[float, Meta(gt=0, le=3600)]  # one forensics capture


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
    # The collector, scorer and tiering ask for SCHED_RR at this priority (0: the normal class):
    # a context-switch storm starves other sessions' tasks for seconds (pmshared/schedclass.py).
    # At most 49: the kernel's threaded interrupt handlers run at 50, and a monitor must not
    # outrank them.
    realtime_priority: Annotated[int, Meta(ge=0, le=49)] = 1


class RetentionConfig(_Section):
    samples_days: Days = 30  # pauses and their bundles
    events_days: Days = 90  # reviewed/dismissed events (pinned never)
    # The flight record (every sample, issue 19): the oldest minutes go beyond either limit, except
    # those of pinned events. Size in MB (10**6 bytes) of stored samples; the file keeps its pages.
    flight_days: Days = 7
    flight_max_mb: Annotated[int, Meta(ge=1, le=1_000_000)] = 500


class AlertsConfig(_Section):
    enabled: bool = True
    pause_detected: bool = True
    pause_min_duration: Annotated[float, Meta(ge=0, le=3600)] = 2.0  # seconds
    critical_stress: bool = True
    critical_threshold: ScoreThreshold = 60
    critical_duration: Annotated[int, Meta(ge=0, le=86_400)] = 30  # seconds of sustained critical score
    elevated_entered: bool = False
    forensics_completed: bool = True
    sound: bool = True  # macOS only
    rate_limit_s: Annotated[float, Meta(ge=0, le=86_400)] = 60.0  # new: one notification per kind per window


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
    pause_threshold_ms: Annotated[float, Meta(ge=20, le=600_000)] = 200.0
    # The lateness ring holds window/tick floats and is sorted every few seconds: 10 min of 5 ms
    # ticks is 120,000 of them.
    percentile_window_s: Annotated[float, Meta(ge=1, le=600)] = 60.0
    ring_buffer_seconds: Annotated[int, Meta(ge=1, le=3600)] = 30
    peak_tracking_seconds: Annotated[int, Meta(ge=1, le=3600)] = 30
    # Where the tick loop runs: "process", a small child forked from the collector (its wake-ups
    # cost less there than inside the collector's busy process); "thread", a thread of the
    # collector; "auto", a process on Linux and a thread elsewhere (macOS: fork without exec in a
    # process that has threads and may have loaded system frameworks is unsafe there).
    where: Literal["auto", "process", "thread"] = "auto"


class TiersConfig(_Section):
    elevated_threshold: ScoreThreshold = 35
    critical_threshold: ScoreThreshold = 65
    deescalation_delay_s: Annotated[float, Meta(ge=0, le=3600)] = 5.0

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
    # The share of the last interval the sentinel's ticks were late (their lateness summed over
    # the interval, in %): a one-off 30 ms blip is 3 %, a 100 ms stall 10 %, a 400 ms one 40 %.
    # Per interval, not the window's p99: a stall must not hold the stress up for a minute after.
    late_pct_elevated: Pct = 10.0
    late_pct_critical: Pct = 40.0


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
    # Memory is charged by bytes demanded (growth + bytes brought in from storage); where a
    # process has major faults but no byte figure (macOS), one fault stands for this many bytes.
    page_in_bytes: Annotated[int, Meta(ge=512, le=1 << 20)] = 4096
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
    # Compared with the category's figure (percent, bytes, rates): any finite figure fits.
    threshold: Annotated[float, Meta(ge=0, le=1e18)] = 0.0


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


Percent = Annotated[float, Meta(ge=0, le=100)]


class CauseConfig(_Section):
    """[forensics.cause]: the thresholds a pause's cause is decided by (forensics/cause.py says
    why each). PSI, busy, iowait and steal are percent of the time the stall covered."""

    suspend_recent_s: Annotated[float, Meta(ge=0, le=3600)] = 30.0
    mem_psi_some_pct: Percent = 10.0  # with paging
    mem_psi_full_pct: Percent = 10.0  # alone: every task waited on reclaim
    mem_pageins_per_s: Annotated[float, Meta(ge=0, le=1e9)] = 100.0  # major faults/s, whole machine
    mem_swap_pages_per_s: Annotated[float, Meta(ge=0, le=1e9)] = 100.0
    io_psi_some_pct: Percent = 20.0  # with a stuck task
    io_psi_full_pct: Percent = 10.0  # with a stuck task
    io_stuck: Annotated[int, Meta(ge=1, le=100_000)] = 1  # tasks in D state (procs_blocked or stuck threads)
    io_iowait_pct: Percent = 30.0  # with a stuck task
    cpu_busy_pct: Percent = 90.0
    cpu_psi_some_pct: Percent = 50.0
    cpu_steal_pct: Percent = 20.0
    cpu_runq_per_core: Annotated[float, Meta(gt=0, le=1000)] = 2.0  # procs_running / cores
    cpu_runq_min_busy_pct: Percent = 50.0  # a run queue counts only on cores this busy
    # A figure over a sample longer than the stall is also estimated over the stall alone (the
    # rest of the interval at the previous sample's rate) when the stall fills at least this
    # share of the interval; below it the estimate mostly amplifies noise.
    stall_share_min: Annotated[float, Meta(gt=0, le=1)] = 0.4


class ForensicsConfig(_Section):
    enabled: bool = True
    spindump_timeout: Timeout = 30  # seed
    tailspin_timeout: Timeout = 10  # seed
    logs_timeout: Timeout = 10  # seed: `log show`; here also journalctl/dmesg
    proc_timeout: Timeout = 5  # Linux /proc captures (stuck threads, pressure, meminfo)
    max_output_bytes: Annotated[int, Meta(ge=1024, le=256 << 20)] = 16 * 1024 * 1024  # per capture, held in memory
    log_window_s: Annotated[float, Meta(gt=0, le=86_400)] = 60  # how far before the pause the logs start
    culprit_count: Annotated[int, Meta(ge=1, le=1000)] = 5
    cause: CauseConfig = msgspec.field(default_factory=CauseConfig)


# Copies of pmshared.runtime's HEARTBEAT_SLACK and POLL_MS (runtime imports this module, and
# loading the config must not import zmq); tests/test_config_ranges.py pins them equal.
_HEARTBEAT_SLACK = 0.25
_POLL_S = 0.2
_MIN_WATCHDOG_S = 0.5  # the shortest silence that may count as a hang, whatever the interval


class SupervisorConfig(_Section):
    grace_period_s: Annotated[float, Meta(ge=0.1, le=600)] = 5.0
    backoff_initial_s: Annotated[float, Meta(ge=0.001, le=3600)] = 0.5
    backoff_max_s: Annotated[float, Meta(ge=0.001, le=86_400)] = 30.0
    stable_after_s: Annotated[float, Meta(ge=0.1, le=86_400)] = 10.0  # a run this long resets the back-off
    max_restarts: Annotated[int, Meta(ge=1, le=1_000_000)] = 5  # within restart_window_s -> FAILED
    restart_window_s: Annotated[float, Meta(ge=1, le=86_400)] = 60.0
    # A FAILED worker is started again this long after it failed (one run on probation), so a
    # cause that went away (a database moved aside, a disk with room again) does not leave it down.
    failed_retry_s: Annotated[float, Meta(ge=1, le=86400)] = 300.0
    # The supervisor wakes once per interval and every worker sends a heartbeat per interval:
    # below 50 ms that is a busy loop; above a minute a hung worker goes unnoticed for too long.
    heartbeat_interval_s: Annotated[float, Meta(ge=0.05, le=60)] = 1.0
    missed_heartbeats: Annotated[int, Meta(ge=2, le=1000)] = 3
    # Linux: start `python -m` workers by fork from the supervisor's preloaded interpreter, so
    # they share its imported code (~25 MB less in all); false execs every command.
    fork_workers: bool = True

    def __post_init__(self) -> None:
        # A healthy worker can be silent for (1 + slack) intervals plus one poll (pmshared.runtime
        # HEARTBEAT_SLACK and POLL_MS; a test pins these copies), and a busy machine delays it by
        # a fraction of a second more: an allowance shorter than that has the watchdog kill
        # healthy workers as hung.
        silence = (1 + _HEARTBEAT_SLACK) * self.heartbeat_interval_s + _POLL_S
        least = max(silence, _MIN_WATCHDOG_S)
        if self.missed_heartbeats * self.heartbeat_interval_s < least:
            raise ValueError(
                f"missed_heartbeats x heartbeat_interval_s must be at least {least:.3g} s "
                "(a healthy worker can be silent that long)"
            )


class TransportConfig(_Section):
    kind: Literal["ipc", "tcp"] = "ipc"
    tcp_host: Annotated[str, Meta(min_length=1, max_length=253)] = "127.0.0.1"
    tcp_port_base: Annotated[int, Meta(ge=1024, le=65000)] = 47200
    # Records queued per sender before loss (a zmq high-water mark, and the recorder's batch
    # bound): a million records is already hundreds of MB.
    record_queue: Annotated[int, Meta(ge=10, le=1_000_000)] = 10000
    # zmq's ZMQ_MAXMSGSIZE (int64) and the JSON-lines reader's line bound: 1 GiB at most. At
    # least 1 MiB: a snapshot is ~100 bytes a process, and a binder drops a larger frame, so a
    # smaller limit silently loses every snapshot of a machine with a few hundred processes.
    max_message_bytes: Annotated[int, Meta(ge=1 << 20, le=1 << 30)] = 64 * 1024 * 1024


# Remote watch publishes this many endpoints on consecutive tcp ports from port_base
# (pmshared.remote.REMOTE_PORTS: live, snapshot, control, lifecycle).
REMOTE_PORT_COUNT = 4
_TRANSPORT_PORT_COUNT = 9  # pmshared.endpoints' table (a test pins the two equal)


class RemoteConfig(_Section):
    """[remote]: publish the live feed, snapshot, control and lifecycle endpoints on tcp too, with
    CURVE authentication (keys: `pmctl keys`). Off unless enabled; ipc stays as it is."""

    enabled: bool = False
    # An address of this machine's interfaces (or 0.0.0.0 for all); loopback until you choose.
    listen_host: Annotated[str, Meta(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:\[\]*-]+$")] = "127.0.0.1"
    port_base: Annotated[int, Meta(ge=1024, le=65535 - REMOTE_PORT_COUNT + 1)] = 47300


class EventLogConfig(_Section):
    """[event_log]: every pause, event open/close and forensics bundle as one JSON line in
    <data>/logs/events.jsonl (recorder/event_log.py), and as a journald entry where journald runs."""

    enabled: bool = True
    # The file is rotated before a line would take it past this size; `keep` rotated files
    # (events.jsonl.1 ... .keep) are kept, so the log takes at most (keep + 1) x max_bytes. A line
    # is a few hundred bytes (culprit lists are capped), so 4 KiB still holds several.
    max_bytes: Annotated[int, Meta(ge=4096, le=1 << 30)] = 10 * 1024 * 1024
    keep: Annotated[int, Meta(ge=1, le=100)] = 5
    journald: bool = True  # also send each line to journald's native socket, when there is one


class ExporterConfig(_Section):
    """The Prometheus exporter worker (issue 20). Off by default: it opens a TCP port."""

    enabled: bool = False
    # An IP literal (no host name: resolving one at start would make the worker wait on DNS).
    # Loopback by default; "0.0.0.0" or "::" to let a Prometheus on another machine scrape it.
    listen_address: Annotated[str, Meta(min_length=1, max_length=45)] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 9847

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.listen_address)
        except ValueError:
            raise ValueError(f"listen_address must be an IP address, got {self.listen_address[:45]!r}") from None


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
    remote: RemoteConfig = msgspec.field(default_factory=RemoteConfig)
    event_log: EventLogConfig = msgspec.field(default_factory=EventLogConfig)
    exporter: ExporterConfig = msgspec.field(default_factory=ExporterConfig)

    def __post_init__(self) -> None:
        # With the tcp transport every endpoint has a port from transport.tcp_port_base on (the
        # endpoint table's 9 indices); remote's own ports must not land on one of them.
        t, r = self.transport, self.remote
        if r.enabled and t.kind == "tcp":
            ours = range(r.port_base, r.port_base + REMOTE_PORT_COUNT)
            theirs = range(t.tcp_port_base, t.tcp_port_base + _TRANSPORT_PORT_COUNT)
            if ours.start < theirs.stop and theirs.start < ours.stop:
                raise ValueError(
                    f"remote.port_base: ports {ours.start}-{ours.stop - 1} overlap the tcp transport's "
                    f"{theirs.start}-{theirs.stop - 1}"
                )


_PATH_RE = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN_RE = re.compile(r"Object contains unknown field `(?P<key>.*)`", re.DOTALL)
MAX_REASON_CHARS = 200  # msgspec quotes a bad enum value in full


def _cut(text: str, limit: int = MAX_KEY_CHARS) -> str:
    """``text`` shortened to ``limit`` characters with an ellipsis: keys and values come from the
    file, and an error line must stay one readable line."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _explain_parts(err: msgspec.ValidationError, typ: object = None) -> tuple[str, str]:
    """'Expected `int` >= 0 - at `$.tiers.x`' -> ('tiers.x', 'expected `int` >= 0'). ``typ``: what
    was decoded, to name the choices of a key that takes one of a few words."""
    text = str(err)
    match = _PATH_RE.search(text)
    key = ""
    if match:
        key = match.group("path").lstrip(".")
        text = text[: match.start()]
    unknown = _UNKNOWN_RE.fullmatch(text)
    if unknown:
        name = _cut(unknown.group("key"))
        key = f"{key}.{name}" if key else name
        text = "unknown key"
    text = _cut(text[:1].lower() + text[1:], MAX_REASON_CHARS)
    if text.startswith("invalid enum value") and (choices := _choices(typ, key)):
        text += f" (expected {', '.join(choices[:-1])} or {choices[-1]})" if len(choices) > 1 else f" (expected {choices[0]})"
    return key, text


def _choices(typ: object, key: str) -> list[str]:
    """The words a Literal key at ``key`` under ``typ`` accepts, quoted; [] for any other key."""
    for name in filter(None, key.split(".")):
        if not (isinstance(typ, type) and issubclass(typ, Struct)):
            return []
        typ = {f.name: f.type for f in msgspec.structs.fields(typ)}.get(name)
    if get_origin(typ) is not Literal:
        return []
    return [f'"{choice}"' for choice in get_args(typ)]


def _explain(err: msgspec.ValidationError, typ: object = None) -> str:
    """'Expected `int` >= 0 - at `$.tiers.x`' -> 'tiers.x: expected `int` >= 0'."""
    key, text = _explain_parts(err, typ)
    return f"{key}: {text}" if key else text


def _loads(text: str, source: str) -> dict:
    """TOML text -> dict; ConfigError (one line) for bad TOML, including nesting so deep that
    the parser's recursion gives out (a 2,000-deep array would otherwise be a 3,000-line trace)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: arrays or tables nested too deeply") from None


def parse(text: str, source: str = "<config>") -> Config:
    """Decode TOML text into a Config; raise ConfigError naming ``source`` and the key."""
    data = _loads(text, source)
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_explain(exc, Config)}") from None


def validate_all(text: str, source: str = "<config>") -> list[str]:
    """Every error in the file, one line each, each naming its key (cross-field rules included)."""
    try:
        data = _loads(text, source)
    except ConfigError as exc:
        return [str(exc)]
    errors = [f"{source}: {error}" for error in _errors("", data, Config)]
    if not errors:
        # _errors checks sections one by one; a rule across sections shows only as a whole.
        try:
            msgspec.convert(data, Config)
        except msgspec.ValidationError as exc:
            errors = [f"{source}: {_explain(exc, Config)}"]
    return errors


def _errors(prefix: str, value: object, typ: object) -> list[str]:
    """Every error in ``value`` read as ``typ``. msgspec stops at the first error, so a table that
    fails is checked again key by key; a check of the table as a whole (a cross-field rule, a
    value that is no table) is reported when no single key explains the failure."""
    try:
        msgspec.convert(value, typ)
        return []
    except msgspec.ValidationError as exc:
        key, reason = _explain_parts(exc, typ)
    if isinstance(value, dict) and isinstance(typ, type) and issubclass(typ, Struct):
        fields = {f.name: f.type for f in msgspec.structs.fields(typ)}
        errors = []
        for name, item in value.items():
            path = f"{prefix}.{_cut(name)}" if prefix else _cut(name)
            if name not in fields:
                errors.append(f"{path}: unknown key")
            else:
                errors.extend(_errors(path, item, fields[name]))
        if errors:
            return errors
    path = ".".join(p for p in (prefix, key) if p)
    return [f"{path}: {reason}" if path else reason]


def read_text(path: Path) -> str | None:
    """The text of the config file at ``path``; None when there is none (all defaults).

    Anything but a readable regular UTF-8 file of at most MAX_CONFIG_BYTES is a ConfigError that
    names the path and why. A symlink is followed (dotfile managers link config files), but the
    open never blocks (O_NONBLOCK: a FIFO is reported, not waited on), the type is checked on the
    open descriptor (no swap between check and read), and at most one byte past the limit is read,
    so /dev/zero or a growing file costs nothing.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ConfigError(f"{path}: cannot read: a symlink to {os.readlink(path)}, which does not exist") from None
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {_why_not_opened(path, exc)}") from None
    try:
        data = _read_regular(fd, path)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read: not UTF-8 text (byte {exc.start})") from None


def _read_regular(fd: int, path: Path) -> bytes:
    """At most MAX_CONFIG_BYTES from ``fd``, which must be a regular file."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: cannot read: it is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: cannot read: {st.st_size} bytes, more than a config file's {MAX_CONFIG_BYTES}")
        chunks, size = [], 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: cannot read: more than a config file's {MAX_CONFIG_BYTES} bytes")
    return b"".join(chunks)


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), f"a special file (mode {mode:o})")


def _why_not_opened(path: Path, exc: OSError) -> str:
    """open() refused: for a socket (ENXIO) or a device without a driver say what it is."""
    if exc.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):
        try:
            return f"it is {_kind(os.stat(path).st_mode)}, not a regular file"
        except OSError:
            pass
    return exc.strerror or str(exc)


def load(path: Path | None = None) -> Config:
    """Load the config file; a missing file means all defaults (that is not an error). Every
    reader of the config (commands and workers) comes through here or through ``read_text``."""
    path = path or paths.config_path()
    text = read_text(path)
    return Config() if text is None else parse(text, str(path))


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


def disabled_workers(config: Config) -> set[str]:
    """Procfile entries the config switches off: the supervisor does not start them at all (a
    worker that exited because it is off would be restarted, then marked failed)."""
    return set() if config.exporter.enabled else {"exporter"}
