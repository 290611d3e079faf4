"""Linux /proc system files: read them, parse them, and subtract two readings.

``read_all()`` returns a ``ProcReading``: the raw text of /proc/pressure/{cpu,memory,io},
/proc/meminfo, /proc/vmstat, /proc/loadavg and /proc/stat, with numeric parses. ``delta()`` of two
readings gives what happened between them: vmstat counters (page-ins, swap, reclaim), PSI stall
totals (microseconds stalled, turned into percent of the interval) and CPU jiffies (busy, iowait,
steal percent). The worker keeps a reading refreshed every few seconds so the "before" side of a
pause exists even when the pause froze everything.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from pmshared import messages as m

PROC = Path("/proc")
PSI_RESOURCES = ("cpu", "memory", "io")
# vmstat counters worth a delta across a pause (page-ins, swap, reclaim, OOM).
VMSTAT_KEYS = (
    "pgmajfault", "pgfault", "pswpin", "pswpout", "pgpgin", "pgpgout",
    "pgscan_direct", "pgsteal_direct", "allocstall_normal", "allocstall_movable",
    "compact_stall", "oom_kill", "workingset_refault_file", "workingset_refault_anon",
    "thp_fault_alloc",
)
MEMINFO_KEYS = (
    "MemTotal", "MemFree", "MemAvailable", "Cached", "Dirty", "Writeback", "SwapTotal", "SwapFree",
)
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass
class ProcReading:
    taken_at: float  # wall clock
    monotonic: float
    raw: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "taken_at": self.taken_at,
            "parsed": {
                "psi": parse_psi_all(self.raw),
                "meminfo_kb": {k: v for k, v in parse_keyvals(self.raw.get("meminfo", "")).items() if k in MEMINFO_KEYS},
                "vmstat": {k: v for k, v in parse_keyvals(self.raw.get("vmstat", "")).items() if k in VMSTAT_KEYS},
                "loadavg": self.raw.get("loadavg", "").strip(),
                "stat": parse_stat(self.raw.get("stat", "")),
            },
            "raw": self.raw,
            "errors": self.errors,
        }


def _read(path: Path) -> str:
    with open(path, encoding="ascii", errors="replace") as fh:
        return fh.read()


def read_all(root: Path = PROC) -> ProcReading:
    reading = ProcReading(taken_at=time.time(), monotonic=time.monotonic())
    files = {f"pressure_{r}": root / "pressure" / r for r in PSI_RESOURCES}
    files.update(meminfo=root / "meminfo", vmstat=root / "vmstat", loadavg=root / "loadavg", stat=root / "stat")
    for key, path in files.items():
        try:
            reading.raw[key] = _read(path)
        except OSError as exc:
            # No PSI on kernels < 4.20 or with psi=0: a reason, not a crash.
            reading.errors[key] = f"{path}: {exc.strerror or exc}"
    return reading


def parse_keyvals(text: str) -> dict[str, int]:
    """'Key: 123 kB' (meminfo) and 'key 123' (vmstat) lines -> {key: int}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def parse_psi(text: str) -> dict[str, dict[str, float]]:
    """'some avg10=1.95 avg60=0.95 avg300=0.30 total=2682087' -> {'some': {'avg10': 1.95, ...}}."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        values: dict[str, float] = {}
        for item in parts[1:]:
            key, _, value = item.partition("=")
            try:
                values[key] = float(value)
            except ValueError:
                continue
        out[parts[0]] = values
    return out


def parse_psi_all(raw: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    return {r: parse_psi(raw[f"pressure_{r}"]) for r in PSI_RESOURCES if f"pressure_{r}" in raw}


def parse_stat(text: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "cpu":
            out["cpu"] = {name: int(v) for name, v in zip(CPU_FIELDS, parts[1:])}
        elif parts[0] in ("procs_running", "procs_blocked", "ctxt", "processes"):
            out[parts[0]] = int(parts[1])
    return out


def delta(before: ProcReading, after: ProcReading) -> dict[str, object]:
    """What changed between two readings, as totals and per-second / percent figures."""
    interval = max(after.monotonic - before.monotonic, 1e-6)
    out: dict[str, object] = {"interval_s": round(interval, 3)}

    vb = parse_keyvals(before.raw.get("vmstat", ""))
    va = parse_keyvals(after.raw.get("vmstat", ""))
    out["vmstat"] = {
        k: {"delta": va[k] - vb[k], "per_s": round((va[k] - vb[k]) / interval, 2)}
        for k in VMSTAT_KEYS
        if k in va and k in vb
    }

    psi: dict[str, dict[str, float]] = {}
    pb, pa = parse_psi_all(before.raw), parse_psi_all(after.raw)
    for resource in PSI_RESOURCES:
        for kind in ("some", "full"):
            tb = pb.get(resource, {}).get(kind, {}).get("total")
            ta = pa.get(resource, {}).get(kind, {}).get("total")
            if tb is not None and ta is not None:
                # total is microseconds stalled; as a percent of the interval like SystemStats.
                psi.setdefault(resource, {})[f"{kind}_pct"] = round((ta - tb) / 1e6 / interval * 100, 2)
    out["psi"] = psi

    cb = parse_stat(before.raw.get("stat", "")).get("cpu")
    ca = parse_stat(after.raw.get("stat", "")).get("cpu")
    if isinstance(cb, dict) and isinstance(ca, dict):
        diffs = {k: ca.get(k, 0) - cb.get(k, 0) for k in CPU_FIELDS}
        total = sum(diffs.values()) or 1
        out["cpu_pct"] = {
            # busy = the guest's own work, as top's us+ni+sy+hi+si: not idle, iowait or steal.
            "busy": round((total - diffs["idle"] - diffs["iowait"] - diffs["steal"]) / total * 100, 2),
            "iowait": round(diffs["iowait"] / total * 100, 2),
            "steal": round(diffs["steal"] / total * 100, 2),
        }
    mb = parse_keyvals(before.raw.get("meminfo", ""))
    ma = parse_keyvals(after.raw.get("meminfo", ""))
    out["meminfo_kb"] = {k: ma[k] - mb[k] for k in MEMINFO_KEYS if k in ma and k in mb}
    return out


class ReadingKeeper:
    """The last few readings, refreshed every ``every_s``; picks the newest one before a time."""

    def __init__(self, every_s: float = 2.0, keep: int = 6, root: Path = PROC) -> None:
        self.every_s = every_s
        self.root = root
        self._readings: deque[ProcReading] = deque(maxlen=keep)
        self._next = 0.0

    def maybe_refresh(self, now_mono: float) -> None:
        if now_mono >= self._next:
            self._next = now_mono + self.every_s
            self._readings.append(read_all(self.root))

    def before(self, wall: float) -> ProcReading | None:
        """The newest reading taken at or before ``wall`` (else the oldest we have)."""
        earlier = [r for r in self._readings if r.taken_at <= wall]
        if earlier:
            return earlier[-1]
        return self._readings[0] if self._readings else None


def delta_as_system(d: dict[str, object], after: ProcReading, cpu_count: int) -> m.SystemStats:
    """The delta across the pause as one more SystemStats for the cause classification."""
    vm = d.get("vmstat") or {}
    psi = d.get("psi") or {}
    cpu = d.get("cpu_pct") or {}

    def rate(key: str) -> float | None:
        entry = vm.get(key) if isinstance(vm, dict) else None
        return entry["per_s"] if isinstance(entry, dict) else None

    def stall(resource: str) -> m.PressureStall | None:
        values = psi.get(resource) if isinstance(psi, dict) else None
        if not values:
            return None
        return m.PressureStall(some=values.get("some_pct"), full=values.get("full_pct"))

    blocked = parse_stat(after.raw.get("stat", "")).get("procs_blocked")
    return m.SystemStats(
        cpu_count=cpu_count,
        cpu_busy_pct=cpu.get("busy") if isinstance(cpu, dict) else None,
        cpu_iowait_pct=cpu.get("iowait") if isinstance(cpu, dict) else None,
        cpu_steal_pct=cpu.get("steal") if isinstance(cpu, dict) else None,
        procs_blocked=blocked if isinstance(blocked, int) else None,
        pageins=rate("pgmajfault"),
        swapins=rate("pswpin"),
        swapouts=rate("pswpout"),
        psi_cpu=stall("cpu"),
        psi_memory=stall("memory"),
        psi_io=stall("io"),
    )

