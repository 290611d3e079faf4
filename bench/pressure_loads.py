"""The pressure model's verdict on every recorded load (tests/data/loads), as a Markdown table.

Run: ``.venv/bin/python bench/pressure_loads.py [--strip]``

Per load, over the samples taken wholly under it (sample 0 is from before the load, sample 1
straddles its start, 2.. are under it): the machine's stress (min–max), the resource that drove it, the
top culprit of each sample (``=load`` when it is the load's process or its parent) and its
categories. ``--strip`` first removes the fields this branch's collector does not send yet
(cpu_children, run_delay, io bytes, mem_growth, cgroup, forks/s, csw/s).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pmshared import config as config_mod  # noqa: E402
from scorer.pressure import PressureRules, score_pressure  # noqa: E402
from tests.test_scorer_pressure_loads import FIRST_FULL, INDEX, recording  # noqa: E402


def row(name: str, rules: PressureRules, strip: bool) -> str:
    pids = set(INDEX[name]["load_pids"])
    scores, drivers, tops = [], collections.Counter(), collections.Counter()
    for snap in recording(name, strip)[FIRST_FULL:]:
        max_score, stress, rogues = score_pressure(snap, rules)
        scores.append(max_score)
        drivers[max(stress, key=lambda r: stress[r])] += 1
        if rogues:
            top = rogues[0]
            who = f"{top.command}{' =load' if top.pid in pids else ''}"
            tops[f"{who} ({','.join(c for c in top.categories if c not in ('stuck', 'state'))})"] += 1
    n = len(scores)
    top_text = "; ".join(f"{t} {k}/{n}" for t, k in tops.most_common(2))
    driver_text = ", ".join(f"{d} {k}/{n}" for d, k in drivers.most_common(2))
    return f"| {name} | {min(scores)}–{max(scores)} | {driver_text} | {top_text} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strip", action="store_true", help="without the fields the collector lacks today")
    args = ap.parse_args()
    rules = PressureRules.from_config(config_mod.Config())
    print("| load | stress | driven by | top culprit (categories), samples |")
    print("|---|---:|---|---|")
    for name in INDEX:
        print(row(name, rules, args.strip))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
