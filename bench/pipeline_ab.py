"""The whole pipeline against an earlier revision of itself, side by side over the same windows.

Run: ``.venv/bin/python bench/pipeline_ab.py --rev <git revision> [--processes 600] [--rounds 3]``
(Linux, procps ``top``; about 1.2 minutes a round).

bench_pipeline.py measures one pipeline at a time; on a shared machine other work moves its CPU
figure by more than a change costs (top itself read 1.1-1.8 % at 600 processes over one day).
Here two ``pmctl up`` run at once, each in its own temporary home: the revision's code (exported
with ``git archive``) and this tree's. Each round measures both, and one ``top -b -d 1``, over
the same window (pipeline_cost.measure_cpu): both see the same machine, each other's six
processes included. A pause that the machine's load causes starts a forensics capture in both,
whose commands count in forensics' CPU: the totals are therefore also given without forensics.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._spawn import Sleepers  # noqa: E402
from bench.pipeline_cost import CpuResult, measure_cpu, sentinel_pct  # noqa: E402
from bench.pipeline_proc import load  # noqa: E402
from bench.pipeline_run import PipelineRun  # noqa: E402


def export_revision(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def side(r: CpuResult, prefix: str) -> str:
    per = {n.split("/", 1)[1]: v for n, v in r.per_process.items() if n.startswith(prefix + "/")}
    total = sum(per.values())
    threads = r.threads[f"{prefix}/collector"]
    return (f"{total:.3f} % ({total / r.top_pct:.2f}× top), without forensics "
            f"{total - per.get('forensics', 0.0):.3f} %; " + ", ".join(f"{n} {v:.3f}" for n, v in per.items())
            + f"; collector main {threads.get('main', 0.0):.3f}, sentinel {sentinel_pct(r, f'{prefix}/collector'):.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rev", required=True, help="git revision to compare with (e.g. main)")
    ap.add_argument("--processes", type=int, default=600, help="processes on the machine (sleepers added)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0, help="CPU window per round")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pm-pab-") as tmp, Sleepers() as sleepers:
        base_repo = export_revision(args.rev, Path(tmp))
        with PipelineRun("", "base", repo=base_repo) as base:
            base.start()
            # Asked now: a PipelineRun answers status through the environment of the last one entered.
            pids = {f"base/{n}": p for n, p in base.pids().items()}
            with PipelineRun("", "this tree") as ours:
                ours.start()
                pids.update({f"ours/{n}": p for n, p in ours.pids().items()})
                sleepers.grow_to(args.processes)
                time.sleep(5.0)  # past the first snapshots and the workers' warm-up
                for i in range(args.rounds):
                    r = measure_cpu(pids, args.seconds, lambda: {n: p for n, p in pids.items() if alive(p)})
                    print(f"round {i + 1}: ~{r.processes:.0f} processes, load {r.load_before} -> {r.load_after}, "
                          f"top {r.top_pct:.3f} %, {r.created} tasks created on the machine"
                          + (f"; GONE meanwhile: {r.restarts}" if r.restarts else ""), flush=True)
                    print(f"  {args.rev}: {side(r, 'base')}", flush=True)
                    print(f"  this tree: {side(r, 'ours')}", flush=True)
    print(f"load now {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
