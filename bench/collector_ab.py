"""Linux collector backend against an earlier revision of itself, interleaved in one process.

Run: ``.venv/bin/python bench/collector_ab.py --rev <git revision>`` (Linux, ~1 minute).

The whole-run benchmark (bench_collector.py) measures one backend at a time; on a shared machine
the load of the moment moves its figures by more than a change costs. Here both backends sample
the same processes, alternately (which goes first alternates too), and the figure is the median
paired difference of CPU time per snapshot. Two copies of the old code first: their difference is
the harness's own noise, against which the old/new difference is read.

``--idle``: only the spawned sleepers, through a /proc of links to them (this machine's, so the
backend's live shortcuts apply), and nothing runs: the cost of the idle path alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._spawn import Sleepers  # noqa: E402


def load_revision(rev: str, into: Path):
    """The ``collector`` package of ``rev``, importable as ``collector_base``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "collector"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "collector").rename(into / "collector_base")
    sys.path.insert(0, str(into))
    import collector_base.linux

    return collector_base.linux.LinuxBackend


def idle_tree(into: Path, pids: list[int]) -> str:
    """A /proc of links to ``pids`` only, whose fork count never moves (no listing, no probe)."""
    root = into / "proc"
    root.mkdir()
    for pid in pids:
        (root / str(pid)).symlink_to(f"/proc/{pid}")
    lines = [ln for ln in Path("/proc/stat").read_text().splitlines() if not ln.startswith("processes ")]
    (root / "stat").write_text("\n".join([*lines, "processes 1"]) + "\n")
    (root / "vmstat").write_text("pgmajfault 1\npswpin 0\npswpout 0\npgsteal_kswapd 0\n")
    return str(root)


def paired(a_cls, b_cls, pairs: int, gap_s: float, kw: dict) -> tuple[float, float, float]:
    """(A ms, B ms per snapshot, median of B - A in ms) over ``pairs`` alternating samples."""
    a, b = a_cls(**kw), b_cls(**kw)
    try:
        a.sample()
        b.sample()
        ta, tb, diffs = [], [], []
        for i in range(pairs):
            time.sleep(gap_s)
            order = [(a, ta), (b, tb)] if i % 2 else [(b, tb), (a, ta)]
            for backend, times in order:
                t = time.process_time()
                backend.sample()
                times.append((time.process_time() - t) * 1e3)
            diffs.append(tb[-1] - ta[-1])
        return statistics.mean(ta), statistics.mean(tb), statistics.median(diffs)
    finally:
        a.close()
        b.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rev", required=True, help="git revision to compare with (e.g. main, HEAD~3)")
    ap.add_argument("--count", type=int, default=500, help="processes on the machine (sleepers added)")
    ap.add_argument("--pairs", type=int, default=30, help="alternating sample pairs per comparison")
    ap.add_argument("--gap", type=float, default=0.3, help="seconds between pairs")
    ap.add_argument("--idle", action="store_true", help="only the sleepers, none of which runs")
    args = ap.parse_args()
    from collector.linux import LinuxBackend

    with tempfile.TemporaryDirectory(prefix="pm-ab-") as tmp, Sleepers() as sleepers:
        base = load_revision(args.rev, Path(tmp))
        sleepers.grow_to(args.count)
        kw = {"proc_root": idle_tree(Path(tmp), sleepers.pids), "live": True} if args.idle else {}
        if args.idle:
            print(f"{len(sleepers.pids)} sleepers, nothing else")
        for label, b_cls in ((f"{args.rev} vs {args.rev}", base), (f"{args.rev} vs this tree", LinuxBackend)):
            a_ms, b_ms, diff = paired(base, b_cls, args.pairs, args.gap, kw)
            print(f"{label}: {a_ms:.2f} ms vs {b_ms:.2f} ms per snapshot, median paired difference {diff:+.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
