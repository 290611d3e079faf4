"""Every message that crosses a process boundary, as msgspec Structs in one tagged union.

Units are part of the contract (see ARCHITECTURE.md):
- CPU is percent of one core over the sampling interval (above 100 for multi-threaded processes);
- memory is bytes; context switches, syscalls and page-ins are per-second rates;
- a figure the OS does not let us read is ``None``, never 0;
- timestamps called ``*_at``/``timestamp``/``start``/``end`` are wall-clock epoch seconds (for
  humans and storage); durations are milliseconds measured on a monotonic clock.

Every message carries ``sender`` (worker name), ``incarnation`` (unique per process start),
``seq`` (per-sender, per-incarnation sequence number starting at 1) and ``sent_at``. New fields
must get defaults; never retype an existing field.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

NonNeg = Annotated[float, Meta(ge=0)]
NonNegInt = Annotated[int, Meta(ge=0)]
Score = Annotated[int, Meta(ge=0, le=100)]
TierNo = Annotated[int, Meta(ge=1, le=3)]

# Process states, in the seed's (macOS top) vocabulary. Linux maps onto it:
# R->running, S->sleeping, D->stuck, Z->zombie, T/t->stopped, I->idle, X/x->halted.
ProcessState = Literal["running", "sleeping", "stuck", "zombie", "stopped", "idle", "halted", "unknown"]

# Rogue-selection categories (seed names). "state" marks processes picked for their state.
# The pressure model adds the resources it charges: "io" (storage bytes), "fork" (CPU of reaped
# children: a fork storm is charged to the parent that keeps forking).
Category = Literal[
    "cpu", "mem", "cmprs", "threads", "csw", "sysbsd", "pageins", "state", "stuck", "io", "fork"
]


class Envelope(Struct, frozen=True, kw_only=True, tag=True, tag_field="type"):
    """Fields every message carries. Subclasses are the concrete messages."""

    sender: str
    incarnation: str
    seq: NonNegInt
    sent_at: float


# --------------------------------------------------------------------------- collector -> scorer


class ProcessInfo(Struct, frozen=True, kw_only=True, array_like=True):
    """One process as the collector saw it over the last interval.

    array_like: a snapshot carries hundreds of these every second, so they are encoded as arrays
    (no repeated field names on the wire).
    """

    pid: int
    ppid: int = 0
    command: str
    state: ProcessState
    cpu: float | None = None  # % of one core; None on a process's first sample
    mem: int = 0  # resident bytes
    cmprs: int | None = None  # bytes swapped (Linux VmSwap) or compressed (macOS)
    threads: int = 1
    csw: float | None = None  # context switches/s (voluntary + involuntary)
    sysbsd: float | None = None  # syscalls/s; None where /proc/PID/io is not readable
    pageins: float | None = None  # major faults (page-ins)/s
    uid: int | None = None
    # What the pressure model charges (new fields: defaults, appended at the end of the array).
    cpu_children: float | None = None  # % of one core used by children reaped in the interval
    run_delay: float | None = None  # ms per second spent runnable, waiting for a CPU (schedstat)
    read_bps: float | None = None  # bytes/s read from storage (/proc/PID/io read_bytes)
    write_bps: float | None = None  # bytes/s written to storage (write_bytes)
    mem_growth: float | None = None  # bytes/s change of resident + swapped memory
    cgroup: str | None = None  # systemd unit, container or cgroup leaf the process runs in


class PressureStall(Struct, frozen=True, kw_only=True):
    """Linux PSI of one resource over the last interval, in percent of wall time stalled."""

    some: float | None = None
    full: float | None = None


class SystemStats(Struct, frozen=True, kw_only=True):
    """Whole-machine figures over the last interval. ``None`` where the platform does not tell."""

    cpu_count: int = 1
    load1: float | None = None
    load5: float | None = None
    load15: float | None = None
    procs_running: int | None = None
    procs_blocked: int | None = None  # tasks in D state right now (Linux /proc/stat)
    cpu_busy_pct: float | None = None  # all cores, 0..100
    cpu_iowait_pct: float | None = None
    cpu_steal_pct: float | None = None
    mem_total: int | None = None  # bytes
    mem_available: int | None = None
    swap_used: int | None = None
    pageins: float | None = None  # major faults/s, whole machine
    swapins: float | None = None  # pages/s
    swapouts: float | None = None  # pages/s
    psi_cpu: PressureStall | None = None
    psi_memory: PressureStall | None = None
    psi_io: PressureStall | None = None
    forks: float | None = None  # processes created/s (Linux /proc/stat "processes")
    csw: float | None = None  # context switches/s, whole machine (/proc/stat "ctxt")
    # False where the kernel does not account per-task run delay (schedstat reads "0 0 n").
    run_delay_known: bool | None = None
    memory_pressure: Literal["normal", "warn", "critical"] | None = None  # macOS pressure level
    # Bytes/s read + written by the storage devices (Linux /proc/diskstats, each byte once), the
    # kernel's writeback and journal included: what processes' io shares are measured against.
    disk_bps: float | None = None


class SentinelStats(Struct, frozen=True, kw_only=True):
    """Wake-up lateness of the pause sentinel over its current window, in milliseconds."""

    tick_ms: float
    window_s: float
    ticks: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    pauses: int = 0  # pauses detected since the collector started
    # Since the previous snapshot: the share of the time the sentinel's ticks were late, in %
    # (the sum of their lateness over the interval), and the worst single lateness.
    interval_late_pct: float | None = None
    interval_max_ms: float | None = None


class Snapshot(Envelope, frozen=True, kw_only=True, tag="snapshot"):
    """Every process with per-interval rates and the system's pressure (collector -> scorer)."""

    timestamp: float
    elapsed_ms: float  # actual time since the previous snapshot (monotonic)
    interval_ms: float  # what it should have been
    platform: str
    process_count: int
    processes: list[ProcessInfo]
    system: SystemStats
    sentinel: SentinelStats | None = None


# --------------------------------------------------------------------------- scorer -> tiering


class ProcessScore(Struct, frozen=True, kw_only=True):
    """A rogue process with its score (seed: ProcessScore)."""

    pid: int
    command: str
    cpu: float | None
    state: ProcessState
    mem: int
    cmprs: int | None
    pageins: float | None
    csw: float | None
    sysbsd: float | None
    threads: int
    score: Score
    categories: list[Category]  # sorted, unique
    ppid: int = 0
    cpu_children: float | None = None
    run_delay: float | None = None
    io_bps: float | None = None  # read + write bytes/s
    mem_growth: float | None = None
    cgroup: str | None = None


class ProcessSamples(Envelope, frozen=True, kw_only=True, tag="process_samples"):
    """The rogues of one snapshot, scored (scorer -> tiering). Seed: ProcessSamples.

    ``max_score`` is the score the tiers follow: under the seed model the highest rogue score;
    under the pressure model the machine's stress, whose parts (per resource) are in ``stress``.
    """

    timestamp: float
    elapsed_ms: float
    process_count: int
    max_score: Score
    rogues: list[ProcessScore]
    snapshot_seq: int = 0  # seq of the Snapshot this was scored from
    system: SystemStats | None = None
    sentinel: SentinelStats | None = None
    model: Literal["seed", "pressure"] = "seed"
    stress: dict[str, Score] = {}  # pressure model: machine stress per resource (cpu, memory, ...)
    # For the flight recorder (issue 19): the few busiest processes by cpu, memory, io and page-ins
    # that are not rogues (so "who was running" has an answer when nothing is scored), and, about
    # once a minute, the whole process table (None otherwise).
    top: list[ProcessInfo] = []
    table: list[ProcessInfo] | None = None


# --------------------------------------------------------------------------- tiering -> viewers


class RingEntry(Struct, frozen=True, kw_only=True):
    samples: ProcessSamples
    tier: TierNo


class TierState(Struct, frozen=True, kw_only=True):
    tier: TierNo = 1
    tier_since: float | None = None  # wall time the current tier was entered
    peak_score: int = 0  # peak since leaving tier 1 (0 in tier 1)
    event_key: str | None = None  # the open event, if any


class LiveSample(Envelope, frozen=True, kw_only=True, tag="live_sample"):
    """Every sample with its tier, for live viewers and forensics (tiering "live" PUB)."""

    samples: ProcessSamples
    state: TierState
    buffer_len: int = 0


class SnapshotRequest(Envelope, frozen=True, kw_only=True, tag="snapshot_request"):
    """A viewer asks tiering for its ring buffer (Clone pattern: snapshot, then updates)."""


class SnapshotReply(Envelope, frozen=True, kw_only=True, tag="snapshot_reply"):
    ring: list[RingEntry]
    state: TierState
    last_live_seq: int  # seq of the last LiveSample published; drop updates <= this
    live_incarnation: str


# --------------------------------------------------------------------------- records -> recorder

TierAction = Literal["tier2_entry", "tier2_exit", "tier2_peak", "tier3_entry", "tier3_exit"]


class TieringStarted(Envelope, frozen=True, kw_only=True, tag="tiering_started"):
    """A new tiering incarnation: events left open by earlier incarnations are interrupted."""


class EventOpened(Envelope, frozen=True, kw_only=True, tag="event_opened"):
    event_key: str  # "<incarnation>:<n>", stable across resends
    start: float
    tier: TierNo
    score: Score


class EventSample(Envelope, frozen=True, kw_only=True, tag="event_sample"):
    """A sample saved into an event: tier 2 = a new peak, tier 3 = continuous."""

    event_key: str
    event_start: float  # lets the recorder create the event if EventOpened was lost
    tier: Annotated[int, Meta(ge=2, le=3)]
    action: TierAction | None = None
    samples: ProcessSamples


class EventClosed(Envelope, frozen=True, kw_only=True, tag="event_closed"):
    event_key: str
    start: float  # lets the recorder create the event if EventOpened was lost
    end: float  # a wall-clock label: a clock change during the event moves it
    peak_score: Score
    peak_tier: TierNo
    # The event's length on tiering's monotonic clock (what pmctl shows); None from older senders.
    duration_ms: NonNeg | None = None


class EventCulprit(Struct, frozen=True, kw_only=True):
    """One process's part of an event as a whole: its scores summed over the event's samples."""

    pid: int
    command: str
    score_sum: NonNegInt  # its score added up over the event's samples (point-seconds at 1 Hz)
    peak: Score  # its highest score in the event
    samples: NonNegInt  # samples of the event it was a rogue in
    # Its categories by points summed the same way, leading first; those under the category ratio
    # of the leading one are left out (a 1 s start-up spike does not name a 10 s io load cpu).
    categories: list[Category]


class EventCulprits(Envelope, frozen=True, kw_only=True, tag="event_culprits"):
    """Who the event is about so far (tiering -> recorder): the processes with the largest summed
    scores over all of its samples, sent when the leader or its categories change, every so often
    while the event lasts, and just before it closes. An event's top culprit is the first."""

    event_key: str
    event_start: float  # lets the recorder create the event if EventOpened was lost
    culprits: list[EventCulprit]


class Pause(Envelope, frozen=True, kw_only=True, tag="pause"):
    """The whole machine stalled while awake (collector sentinel)."""

    pause_id: str  # "<incarnation>:<n>", stable across resends
    start: float  # wall time the stall began (last on-time tick)
    end: float  # wall time it was noticed
    duration_ms: NonNeg  # stall, suspended time excluded
    expected_ms: NonNeg  # the tick interval that was expected
    suspended_ms: NonNeg = 0.0  # time the machine was asleep inside the gap (excluded)
    # Sent to forensics with the first full process list taken after the pause; None on "record".
    processes: list[ProcessInfo] | None = None
    system: SystemStats | None = None


class Artifact(Struct, frozen=True, kw_only=True):
    """One capture of a forensics bundle."""

    name: str
    ok: bool
    path: str | None = None  # file inside the bundle
    ran: bool = True
    skipped_reason: str | None = None
    exit_code: int | None = None
    duration_ms: float | None = None
    bytes: int = 0
    truncated: bool = False
    error: str | None = None


class Culprit(Struct, frozen=True, kw_only=True):
    pid: int
    command: str
    score: int
    categories: list[Category]
    suspect: bool = False
    cgroup: str | None = None
    ppid: int = 0


PauseCause = Literal["cpu", "memory", "io", "suspend-adjacent", "unknown"]

# An evidence entry is either absent (UNSET: not encoded at all) or present, possibly null (a
# figure this platform does not know). Keeping the two apart keeps the JSON object exactly what it
# was when evidence was a free-form dict: readers of stored rows and bundles see the same keys.
_Fig = float | None | UnsetType
_Count = int | None | UnsetType
_Over = str | UnsetType  # the interval a figure covers, seconds from the pause start (text)
_Threshold = float | UnsetType


class Evidence(Struct, frozen=True, kw_only=True):
    """Why forensics chose a pause's cause (forensics/cause.py): the worst figure of each kind over
    the stall, the interval it covers (``<figure>_over``), the thresholds of [forensics.cause] it
    was held against (``threshold_<name>``, one per CauseConfig field: tests pin the two lists)
    and the rule that fired. Decoding ignores keys it does not know, so a ForensicsDone from an
    older forensics, whose evidence was a free-form dict of the same keys, still decodes."""

    # The figures (forensics/cause.py Figures, field for field)
    suspended_ms: _Fig = UNSET
    last_resume_ago_s: _Fig = UNSET
    cpu_count: _Count = UNSET
    cpu_busy_pct: _Fig = UNSET
    cpu_steal_pct: _Fig = UNSET
    cpu_iowait_pct: _Fig = UNSET
    runq_per_core: _Fig = UNSET
    psi_cpu_some: _Fig = UNSET
    psi_memory_some: _Fig = UNSET
    psi_memory_full: _Fig = UNSET
    psi_io_some: _Fig = UNSET
    psi_io_full: _Fig = UNSET
    procs_blocked: _Count = UNSET
    stuck_threads: _Count = UNSET
    pageins_per_s: _Fig = UNSET
    swapins_per_s: _Fig = UNSET
    swapouts_per_s: _Fig = UNSET
    samples: _Count = UNSET
    # Derived from them
    swap_pages_per_s: _Fig = UNSET
    stuck: _Count = UNSET
    # The interval each figure covers (only for the figures some sample measured)
    cpu_busy_pct_over: _Over = UNSET
    cpu_iowait_pct_over: _Over = UNSET
    cpu_steal_pct_over: _Over = UNSET
    psi_cpu_some_over: _Over = UNSET
    psi_memory_some_over: _Over = UNSET
    psi_memory_full_over: _Over = UNSET
    psi_io_some_over: _Over = UNSET
    psi_io_full_over: _Over = UNSET
    pageins_per_s_over: _Over = UNSET
    swapins_per_s_over: _Over = UNSET
    swapouts_per_s_over: _Over = UNSET
    runq_per_core_over: _Over = UNSET
    procs_blocked_over: _Over = UNSET
    # The thresholds (values and defaults live in pmshared.config.CauseConfig, nowhere else)
    threshold_suspend_recent_s: _Threshold = UNSET
    threshold_mem_psi_some_pct: _Threshold = UNSET
    threshold_mem_psi_full_pct: _Threshold = UNSET
    threshold_mem_pageins_per_s: _Threshold = UNSET
    threshold_mem_swap_pages_per_s: _Threshold = UNSET
    threshold_io_psi_some_pct: _Threshold = UNSET
    threshold_io_psi_full_pct: _Threshold = UNSET
    threshold_io_stuck: int | UnsetType = UNSET
    threshold_io_iowait_pct: _Threshold = UNSET
    threshold_cpu_busy_pct: _Threshold = UNSET
    threshold_cpu_psi_some_pct: _Threshold = UNSET
    threshold_cpu_steal_pct: _Threshold = UNSET
    threshold_cpu_runq_per_core: _Threshold = UNSET
    threshold_cpu_runq_min_busy_pct: _Threshold = UNSET
    threshold_stall_share_min: _Threshold = UNSET
    # The verdict and the session's own notes
    rule: str | UnsetType = UNSET
    pauses: int | UnsetType = UNSET  # how many pauses the bundle holds (coalesced)
    stall: str | UnsetType = UNSET  # each pause's span, relative to the first one's start
    culprits_from: str | UnsetType = UNSET
    attempts: int | UnsetType = UNSET  # a failed bundle: how many writes were tried


class ForensicsDone(Envelope, frozen=True, kw_only=True, tag="forensics_done"):
    pause_ids: list[str]  # the pause and any coalesced into the same capture
    bundle_path: str
    artifacts: list[Artifact]
    culprits: list[Culprit]
    cause: PauseCause
    evidence: Evidence = Evidence()
    # Set when no bundle could be written (bundle_path is "" then), e.g. "No space left on device".
    error: str | None = None


# --------------------------------------------------------------------------- health and supervisor


class Heartbeat(Envelope, frozen=True, kw_only=True, tag="heartbeat"):
    """Once a heartbeat interval from every worker to the supervisor. Counters are cumulative.

    ``interval_s``: when the next one is due, for a worker that heartbeats less often than the
    configured interval (the exporter: one wake-up every few seconds instead of every second).
    The supervisor's watchdog then allows it missed_heartbeats of its own interval, never fewer
    than of the configured one; the range is the config's."""

    pid: int
    counters: dict[str, int] = {}
    interval_s: Annotated[float, Meta(ge=0.05, le=60)] | None = None


LifecycleKind = Literal["spawn", "exit", "restart", "failed", "watchdog_kill", "stop"]


class Lifecycle(Envelope, frozen=True, kw_only=True, tag="lifecycle"):
    worker: str
    kind: LifecycleKind
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    detail: str = ""


WorkerRunState = Literal["starting", "running", "backoff", "stopping", "stopped", "failed"]


class WorkerStatus(Struct, frozen=True, kw_only=True):
    name: str
    state: WorkerRunState
    pid: int | None = None
    started_at: float | None = None  # wall-clock label
    restarts: int = 0
    last_heartbeat_age_s: float | None = None
    last_exit: str | None = None
    uptime_s: float | None = None  # since started, on the supervisor's monotonic clock
    # Why it is unhealthy: the last error line the worker printed (its ERROR log line or the last
    # line of a traceback), kept across its restarts until a run lasts; None while healthy.
    reason: str | None = None
    retry_in_s: float | None = None  # FAILED: seconds until the supervisor tries it once more
    # The current run's counters from its last heartbeat (cumulative since it started; the
    # exporter publishes the dropped/lost ones).
    counters: dict[str, int] = {}


class ControlRequest(Envelope, frozen=True, kw_only=True, tag="control_request"):
    command: Literal["status", "down"]


class ControlReply(Envelope, frozen=True, kw_only=True, tag="control_reply"):
    ok: bool
    supervisor_pid: int
    started_at: float  # wall-clock label
    workers: list[WorkerStatus] = []
    error: str | None = None
    uptime_s: float | None = None  # the supervisor's, on its monotonic clock


class FlightSample(Envelope, frozen=True, kw_only=True, tag="flight_sample"):
    """Every sample with its tier, for the flight recorder's continuous record (tiering ->
    recorder, once a sample). On PUSH "record" because it must arrive: the PUB feed drops.

    ``frame`` is the sample and the tier state already as the record keeps them
    (``pmshared.flight_codec``: figures rounded, structs as arrays; ``flight_codec.flight_fields``
    makes both fields, ``decode_frame`` reads one back). Tiering has them in hand, warm, once a
    second; in the recorder, decoding the wire's full sample and re-encoding it cold was two
    thirds of what a flight sample cost it. The same second is on the live feed in full."""

    timestamp: float  # the sample's (ProcessSamples.timestamp): the record's key
    frame: bytes


RECORD_TYPES = (TieringStarted, EventOpened, EventSample, EventClosed, EventCulprits, Pause, ForensicsDone,
                FlightSample)
Record = (TieringStarted | EventOpened | EventSample | EventClosed | EventCulprits | Pause | ForensicsDone
          | FlightSample)
# Every message there is: a ``--jsonl`` worker tells another worker's message from garbage with it.
AnyMessage = (Snapshot | ProcessSamples | LiveSample | SnapshotRequest | SnapshotReply | Record | Heartbeat
              | Lifecycle | ControlRequest | ControlReply)


def to_builtins(msg: Struct) -> object:
    """A message as plain JSON-able Python objects (for --jsonl output and JSON files)."""
    return msgspec.to_builtins(msg)
