"""The recorder's added CPU for the flight record (issue 19; target <= 0.05 % of a core at 1 Hz).

    python bench/flight_cpu.py [--seconds 60] [--rate 1] [--procs 600]

Runs the real ``python -m recorder`` in a temporary home and measures its CPU time (utime + stime
from /proc/PID/stat) twice over the same wall time: idle (heartbeats only: what it cost before the
flight record), then while ``--rate`` FlightSample records a second arrive over its ipc "record"
socket, as tiering sends them: in pairs, back to back (tiering/flight_hold.py). The samples are the scored samples of a simulated ``--procs``-process
machine (bench/flight_gen.py: ten rogues, the busiest few, the whole table once a minute), one
second of sample time apart, so a minute block is packed every 60 records as in the pipeline.
Reported: the added CPU per record and, at one record a second, in % of one core. ``--rate`` above
1 measures the same per-record cost in less wall time.

The frame each record carries is made by tiering (``flight_codec.flight_fields``: figures rounded,
encoded), so the flight record's whole cost is the recorder's part plus that one. It is measured
here too, in this process on the same samples, each after ``--encode-gap`` seconds asleep (as in
tiering, a second passes between samples and every one is paid cold): ``tiering_encode_ms``, and
``whole_pct_of_a_core_at_1hz``, both parts together.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._recorder_proc import running_recorder  # noqa: E402
from bench.flight_gen import flight_records, simulate  # noqa: E402
from pmshared import messages as m  # noqa: E402
from pmshared.flight_codec import flight_fields  # noqa: E402
from pmshared.endpoints import ENDPOINTS  # noqa: E402
from tiering.flight_hold import PAIR  # noqa: E402

TICK_S = os.sysconf("SC_CLK_TCK")
PROFILE = tuple(os.environ.get("FLIGHT_CPU_PROFILE", "").split())  # e.g. "-m cProfile -o FILE"


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK_S, int(fields[12]) / TICK_S  # utime, stime


def cpu_seconds(pid: int) -> float:
    """CPU seconds of all of ``pid``'s threads (the main loop and ZeroMQ's I/O thread), in ns
    from each thread's schedstat: /proc/PID/stat counts in 10 ms ticks, which at 60 records is
    +-0.17 ms a record, more than the differences being measured."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # a thread that ended meanwhile
    except OSError:
        return sum(cpu_times(pid))
    return total / 1e9 if total else sum(cpu_times(pid))


def measure(seconds: float, rate: float, procs: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="bench-flight-"))
    count = int(seconds * rate)
    start = time.time() - count
    codec = ENDPOINTS["record"].codec()
    frames = [codec.encode(r) for r in flight_records(simulate(count, procs, start=start))]
    try:
        with running_recorder(workdir, PROFILE) as (proc, sockets, _db):
            time.sleep(2.0)  # its start-up (imports, check, first prune) is not the steady state
            push = sockets.connect("record")
            idle0 = cpu_seconds(proc.pid)
            time.sleep(seconds)
            idle = cpu_seconds(proc.pid) - idle0
            busy0 = cpu_seconds(proc.pid)
            user0, system0 = cpu_times(proc.pid)
            began = time.monotonic()
            for i in range(0, len(frames), PAIR):  # as tiering sends them (tiering/flight_hold.py)
                for frame in frames[i:i + PAIR]:
                    push.send(frame)
                time.sleep(max(0.0, began + (i + PAIR) / rate - time.monotonic()))
            time.sleep(0.5)  # the last one written
            busy = cpu_seconds(proc.pid) - busy0
            user1, system1 = cpu_times(proc.pid)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    wall = time.monotonic() - began
    idle_same = idle * wall / seconds
    per_record = max(0.0, busy - idle_same) / count
    return {"records": count, "wall_s": round(wall, 1), "idle_cpu_s": round(idle_same, 3),
            "busy_cpu_s": round(busy, 3),
            "of_which_user_s": round(user1 - user0, 3), "of_which_system_s": round(system1 - system0, 3),
            "added_ms_per_record": round(per_record * 1000, 3),
            "added_pct_of_a_core_at_1hz": round(per_record * 100, 4)}


def encode_cost(seconds: float, procs: int, gap: float) -> float:
    """Tiering's CPU per sample to make its flight record's frame, in seconds (see the docstring)."""
    samples = list(simulate(int(seconds), procs, start=time.time() - seconds))
    spent = 0.0
    for s in samples:
        state = m.TierState(tier=1, tier_since=s.timestamp)
        time.sleep(gap)
        began = time.process_time()
        flight_fields(s, state)
        spent += time.process_time() - began
    return spent / len(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=1.0, help="records a second")
    parser.add_argument("--procs", type=int, default=600)
    parser.add_argument("--encode-gap", type=float, default=0.5, help="seconds asleep before each frame is made")
    args = parser.parse_args(argv)
    result = measure(args.seconds, args.rate, args.procs)
    encode = encode_cost(args.seconds, args.procs, args.encode_gap)
    result["tiering_encode_ms"] = round(encode * 1000, 3)
    result["whole_pct_of_a_core_at_1hz"] = round(result["added_pct_of_a_core_at_1hz"] + encode * 100, 4)
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
