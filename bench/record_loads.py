"""Record the collector's figures during real loads, for the pressure model's calibration and tests.

Run (root, Linux, stress-ng installed; one load at a time, each ≤ 15 s):
``.venv/bin/python bench/record_loads.py [--out tests/data/loads] [--samples 6] [NAME ...]``

For each load: start ``python -m collector --jsonl --interval 1``, drop its first snapshot (no
process has a CPU figure yet), keep one snapshot from before the load, start the load, keep
``--samples`` snapshots taken while it runs, stop both. Each kept snapshot is trimmed to the
system figures plus the ~15 processes worth looking at (top CPU, top page-ins, top context
switches, anything stuck in D state), so the files stay small. ``<name>.jsonl`` holds the
snapshots; ``index.json`` says, per load, the command and the pids of the load's process tree
(the culprits the model must name), so tests need not guess from command names (another
engineer's stress-ng may share the machine).

The collector of this branch does not read the pressure model's new per-process and system
figures yet (cpu_children, run_delay, read/write bytes, mem_growth, cgroup; forks/s, csw/s).
This script measures them itself from /proc at each snapshot's arrival (rates over the wall time
between two arrivals) and writes them into the kept rows, so the recordings carry real values
for them; ``--collector-only`` leaves them as the collector sent them (None).

The machine may be shared: a load is recorded again (``--attempts``, ``--pause``) while others'
work blurs it (NOISE_LIMITS), and the least blurred try is kept; ``index.json`` says how blurred.

The memory row runs stress-ng inside a cgroup v1 memory controller limited below what it asks
for, so the kernel has to reclaim (there is no swap here): the cgroup is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CGROUP = Path("/sys/fs/cgroup/memory/pm_model_calibration")
TAR_OUT = "/tmp/pm_model_tar.tgz"  # the light-tar load's output, removed afterwards
# Light everyday work: a Python loop busy 20 % of every 100 ms, a small tree tarred, git status.
PY_20 = "import time\nwhile True:\n    t = time.monotonic()\n    while time.monotonic() - t < 0.02: pass\n    time.sleep(0.08)\n"
LOADS: dict[str, dict] = {
    "idle": {"argv": ["sleep", "30"]},
    "light-python": {"argv": [sys.executable, "-c", PY_20]},
    "light-tar": {"argv": ["sh", "-c", f"while :; do tar czf {TAR_OUT} -C {REPO} scorer tiering pmshared cli; sleep 0.5; done"],
                  "leaves": [TAR_OUT]},
    "light-git": {"argv": ["sh", "-c", f"while :; do git -C {REPO} status >/dev/null; sleep 0.2; done"]},
    "cpu2": {"argv": ["stress-ng", "--cpu", "2", "--timeout", "12"]},
    "cpu8": {"argv": ["stress-ng", "--cpu", "8", "--timeout", "12"]},
    "vm2": {"argv": ["stress-ng", "--vm", "2", "--vm-bytes", "2G", "--timeout", "12"]},
    "vm-cgroup": {"argv": ["stress-ng", "--vm", "2", "--vm-bytes", "1G", "--timeout", "12"], "memory_limit": 600 << 20},
    "mmap-cgroup": {"argv": ["stress-ng", "--mmap", "2", "--mmap-bytes", "512M", "--mmap-file", "--timeout", "12"],
                    "memory_limit": 300 << 20, "cwd": "/tmp"},
    "hdd2": {"argv": ["stress-ng", "--hdd", "2", "--timeout", "12"], "cwd": "/tmp"},
    "fork4": {"argv": ["stress-ng", "--fork", "4", "--timeout", "12"]},
    "switch4": {"argv": ["stress-ng", "--switch", "4", "--timeout", "12"]},
}
KEEP_TOP = {"cpu": 12, "pageins": 4, "csw": 4}


def tree(processes: list[list], root: int) -> set[int]:
    """Pids of ``root`` and its descendants in one snapshot's process list (pid, ppid first)."""
    children: dict[int, list[int]] = {}
    for row in processes:
        children.setdefault(row[1], []).append(row[0])
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def trim(snapshot: dict, load_pids: set[int]) -> dict:
    """The snapshot with only the processes worth keeping (array rows: see ProcessInfo)."""
    rows = snapshot["processes"]
    index = {"cpu": 4, "pageins": 10, "csw": 8}
    keep: dict[int, list] = {}
    for name, count in KEEP_TOP.items():
        ranked = sorted(rows, key=lambda r: r[index[name]] or 0.0, reverse=True)
        keep.update((r[0], r) for r in ranked[:count] if (r[index[name]] or 0.0) > 0)
    keep.update((r[0], r) for r in rows if r[3] in ("stuck", "zombie"))
    # The load's own rows always (a fork storm's parent may use little CPU itself).
    keep.update((r[0], r) for r in rows if r[0] in load_pids)
    return {**snapshot, "processes": sorted(keep.values(), key=lambda r: r[0])}


TICK = os.sysconf("SC_CLK_TCK")
# ProcessInfo array positions (see pmshared.messages.ProcessInfo): the fields written here.
COL = {"mem": 5, "cmprs": 6, "cpu_children": 12, "run_delay": 13, "read_bps": 14, "write_bps": 15,
       "mem_growth": 16, "cgroup": 17}


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def proc_counters() -> dict[int, tuple]:
    """pid -> (children cpu ticks, run delay ns, read bytes, write bytes) for every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read(f"/proc/{name}/stat")
        if stat is None:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        children = int(fields[13]) + int(fields[14])  # cutime + cstime
        sched = _read(f"/proc/{name}/schedstat")
        delay = int(sched.split()[1]) if sched else None
        io = _read(f"/proc/{name}/io")
        rd = wr = None
        if io:
            kv = dict(line.split(": ") for line in io.splitlines())
            rd, wr = int(kv["read_bytes"]), int(kv["write_bytes"])
        out[int(name)] = (children, delay, rd, wr)
    return out


def system_counters() -> dict[str, int]:
    text = _read("/proc/stat") or ""
    return {k: int(v) for k, v in (line.split()[:2] for line in text.splitlines() if line.startswith(("ctxt", "processes")))}


def cgroup_leaf(pid: int) -> str | None:
    text = _read(f"/proc/{pid}/cgroup")
    if not text:
        return None
    for line in text.splitlines():
        if ":name=systemd:" in line or line.startswith("0::"):
            leaf = line.rsplit("/", 1)[-1]
            return leaf or "/"
    return None


class Augmenter:
    """Fills the new fields of each snapshot from /proc, as rates since the previous call."""

    def __init__(self) -> None:
        self.at = time.monotonic()
        self.procs = proc_counters()
        self.system = system_counters()
        self.memory: dict[int, int] = {}

    def __call__(self, full: dict, kept: dict) -> None:
        """Fill ``kept``'s rows; ``full`` (the untrimmed snapshot) gives every process's memory."""
        now, procs, system = time.monotonic(), proc_counters(), system_counters()
        dt = now - self.at

        def rate(new, old, scale=1.0):
            return None if new is None or old is None else max(0.0, (new - old) / dt * scale)

        memory = {row[0]: row[COL["mem"]] + (row[COL["cmprs"]] or 0) for row in full["processes"]}
        for row in kept["processes"]:
            new, old = procs.get(row[0]), self.procs.get(row[0])
            if new and old:
                row[COL["cpu_children"]] = rate(new[0], old[0], 100.0 / TICK)
                row[COL["run_delay"]] = rate(new[1], old[1], 1e-6)  # ns/s -> ms/s
                row[COL["read_bps"]] = rate(new[2], old[2])
                row[COL["write_bps"]] = rate(new[3], old[3])
            if row[0] in self.memory:
                row[COL["mem_growth"]] = (memory[row[0]] - self.memory[row[0]]) / dt
            row[COL["cgroup"]] = cgroup_leaf(row[0])
        kept["system"]["forks"] = rate(system["processes"], self.system["processes"])
        kept["system"]["csw"] = rate(system["ctxt"], self.system["ctxt"])
        kept["system"]["run_delay_known"] = True
        self.at, self.procs, self.system, self.memory = now, procs, system, memory


# A recording is retried while other work on the machine (not the load, not the collector, not
# this script) is busy enough to blur it: the machine is shared. Per sample: "cpu" is the CPU the
# whole machine was busy with (cpu_busy_pct) minus what the load's processes used, in % of one
# core, so it includes others' short-lived processes that no per-process figure shows (a process
# has no CPU figure on its first sample); io and page-ins are summed over the other processes.
NOISE_LIMITS = {"cpu": 40.0, "io_bps": 20e6, "pageins": 50.0}


def foreign_noise(snapshots: list[dict], load_pids: set[int], own: set[int]) -> dict[str, float]:
    """The worst per-sample figures of everyone else's work (see NOISE_LIMITS)."""
    worst = dict.fromkeys(NOISE_LIMITS, 0.0)
    for snap in snapshots:
        system = snap["system"]
        load_cpu = sum(r[4] or 0.0 for r in snap["processes"] if r[0] in load_pids)
        sums = {"cpu": max(0.0, (system["cpu_busy_pct"] or 0.0) * system["cpu_count"] - load_cpu),
                "io_bps": 0.0, "pageins": 0.0}
        for r in snap["processes"]:
            if r[0] in load_pids or r[0] in own:
                continue
            sums["io_bps"] += (r[COL["read_bps"]] or 0.0) + (r[COL["write_bps"]] or 0.0)
            sums["pageins"] += r[10] or 0.0
        worst = {k: max(worst[k], sums[k]) for k in worst}
    return worst


def start_load(spec: dict) -> subprocess.Popen:
    argv = spec["argv"]
    if "memory_limit" in spec:
        CGROUP.mkdir(exist_ok=True)
        (CGROUP / "memory.limit_in_bytes").write_text(str(spec["memory_limit"]))
        argv = ["sh", "-c", f'echo $$ > {CGROUP}/cgroup.procs && exec "$@"', "sh", *argv]
    return subprocess.Popen(argv, cwd=spec.get("cwd"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def remove_cgroup() -> None:
    if not CGROUP.exists():
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            CGROUP.rmdir()
            return
        except OSError:  # still populated while the last workers exit
            time.sleep(0.2)
    print(f"warning: could not remove {CGROUP}", file=sys.stderr)


def record(name: str, spec: dict, samples: int, augmenting: bool) -> tuple[list[dict], dict]:
    collector = subprocess.Popen([str(REPO / ".venv/bin/python"), "-m", "collector", "--jsonl", "--interval", "1"],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    load = None
    try:
        lines = iter(collector.stdout)

        def next_snapshot() -> dict:
            for line in lines:
                msg = json.loads(line)
                if msg.get("type") == "snapshot":
                    return msg
            raise RuntimeError("collector stopped")

        next_snapshot()  # the first: no process has a CPU figure yet
        augment = Augmenter() if augmenting else None
        before = next_snapshot()
        kept = [trim(before, set())]
        if augment:
            augment(before, kept[0])
        load = start_load(spec)
        seen: set[int] = set()
        for _ in range(samples):
            snap = next_snapshot()
            seen |= tree(snap["processes"], load.pid)
            kept.append(trim(snap, seen))
            if augment:
                augment(snap, kept[-1])
        noise = foreign_noise(kept, seen, {collector.pid, os.getpid()})
        return kept, {"argv": spec["argv"], "memory_limit": spec.get("memory_limit"),
                      "root_pid": load.pid, "load_pids": sorted(seen), "first_load_sample": 1,
                      "foreign_noise": {k: round(v, 1) for k, v in noise.items()}}
    finally:
        if load is not None:
            stop(load)
        collector.stdout.close()  # it may be blocked writing to us: EPIPE ends it quietly
        collector.terminate()
        try:
            collector.wait(timeout=10)
        except subprocess.TimeoutExpired:
            collector.kill()
            collector.wait()
        if "memory_limit" in spec:
            remove_cgroup()
        for path in spec.get("leaves", []):
            Path(path).unlink(missing_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests/data/loads")
    ap.add_argument("--samples", type=int, default=6, help="snapshots kept while the load runs")
    ap.add_argument("--attempts", type=int, default=4, help="tries per load while others' work blurs it")
    ap.add_argument("--pause", type=float, default=10.0, help="seconds between tries")
    ap.add_argument("--collector-only", action="store_true", help="leave the new fields as the collector sent them")
    ap.add_argument("names", nargs="*", help=f"loads to record (default all: {', '.join(LOADS)})")
    args = ap.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the load, the collector and the cgroup are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    for name in args.names or list(LOADS):
        best = None
        for attempt in range(1, args.attempts + 1):
            kept, meta = record(name, LOADS[name], args.samples, not args.collector_only)
            noisy = {k: v for k, v in meta["foreign_noise"].items() if v > NOISE_LIMITS[k]}
            # Keep the least blurred try (relative to the limits) if none is clean.
            blur = max(meta["foreign_noise"][k] / NOISE_LIMITS[k] for k in NOISE_LIMITS)
            if best is None or blur < best[0]:
                best = (blur, kept, meta)
            if not noisy:
                break
            print(f"{name}: attempt {attempt} blurred by other work {noisy}", flush=True)
            if attempt < args.attempts:
                time.sleep(args.pause)
        _, kept, meta = best
        meta["attempts"] = attempt
        with (args.out / f"{name}.jsonl").open("w") as fh:
            for snap in kept:
                fh.write(json.dumps(snap, separators=(",", ":")) + "\n")
        index[name] = meta
        index_path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
        print(f"{name}: {len(kept)} snapshots, {len(meta['load_pids'])} load pids")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
