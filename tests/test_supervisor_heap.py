"""The pre-fork heap filler: free small-object blocks taken (in a child interpreter: the filler
keeps its objects for the life of the process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from supervisor.heap import free_blocks

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import sys
from supervisor import heap
import collector.main, scorer.main  # a heap with some history, as after the preload
free = lambda: sum(n * s for s, n in heap.free_blocks(heap.allocator_report()).items() if s >= heap.SMALLEST_FILLED)
before = free()
taken = heap.fill_free_blocks()
print(before, taken, free())
"""


def test_free_blocks_from_the_allocator_report() -> None:
    report = """
class   size   num pools   blocks in use  avail blocks
-----   ----   ---------   -------------  ------------
    0     16           1             159           862
    2     48          32            8352          2528
# arenas allocated total           =                    7
"""
    assert free_blocks(report) == {16: 862, 48: 2528}
    assert free_blocks("") == {}


def test_fill_takes_the_free_blocks() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, taken, after = map(int, out.stdout.split())
    assert taken > 100 and before > 10_000
    # what is free afterwards is what the report's own text and the probe allocated since
    assert after < before / 4, (before, after)
