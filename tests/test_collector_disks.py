"""The bytes the storage devices moved (collector/procfs_disks.py): each byte counted once, on a
fake /proc + /sys tree laid out like a machine with partitions, LVM, loop and zram devices, and on
this machine's own disks with a real write."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from collector.procfs_disks import SECTOR, sectors_moved
from collector.procfs_system import SystemReader


def _line(major: int, minor: int, name: str, read_sectors: int, written_sectors: int) -> str:
    # major minor name reads merged SECTORS-READ ms writes merged SECTORS-WRITTEN ms inflight ...
    return f"{major:4} {minor:7} {name} 10 0 {read_sectors} 5 20 0 {written_sectors} 9 0 14 14 0 0 0 0"


def _machine(root: Path, sectors: dict[str, tuple[int, int]]) -> tuple[str, str]:
    """A /proc/diskstats and /sys/block of a machine: sda (partitions sda1, sda2), an LVM volume
    dm-0 on sda2, an NVMe disk with a partition, a loop device (a file on sda) and zram."""
    block = root / "sys" / "block"
    for disk in ("sda", "nvme0n1", "loop0", "zram0"):
        (block / disk).mkdir(parents=True, exist_ok=True)
    (block / "dm-0" / "slaves").mkdir(parents=True, exist_ok=True)
    (block / "dm-0" / "slaves" / "sda2").touch()
    (block / "sda" / "slaves").mkdir(exist_ok=True)  # an empty slaves directory: nothing beneath
    proc = root / "proc"
    proc.mkdir(exist_ok=True)
    names = ["sda", "sda1", "sda2", "dm-0", "nvme0n1", "nvme0n1p1", "loop0", "zram0"]
    lines = [_line(8, i, n, *sectors.get(n, (0, 0))) for i, n in enumerate(names)]
    (proc / "diskstats").write_text("\n".join(lines) + "\n")
    return str(proc), str(root / "sys")


def test_a_byte_is_counted_once_where_it_reaches_a_disk_with_nothing_beneath_it(tmp_path: Path) -> None:
    # A write through the LVM volume shows on dm-0, on partition sda2 and on disk sda; a file on
    # a loop device shows there and on its own disk; zram is memory.
    proc, sys_root = _machine(tmp_path, {
        "sda": (100, 1000), "sda1": (40, 0), "sda2": (60, 1000), "dm-0": (60, 1000),
        "nvme0n1": (7, 3), "nvme0n1p1": (7, 3), "loop0": (500, 500), "zram0": (900, 900),
    })
    counted: dict[bytes, bool] = {}
    raw = Path(proc, "diskstats").read_bytes()
    assert sectors_moved(raw, counted, f"{sys_root}/block") == 100 + 1000 + 7 + 3
    assert {n for n, keep in counted.items() if keep} == {b"sda", b"nvme0n1"}
    # Decisions are remembered: a second parse does not look at /sys again.
    (tmp_path / "sys" / "block" / "nvme0n1").rmdir()
    assert sectors_moved(raw, counted, f"{sys_root}/block") == 1110


def test_lines_that_are_not_the_kernels_count_nothing_and_no_disk_is_none(tmp_path: Path) -> None:
    proc, sys_root = _machine(tmp_path, {})
    garbage = b"8 0 sda x y z\nshort line\n\n   8 0 sda 1 2 3 4 5 6 7 8 9\n"
    # The last line is well formed: 3 + 7 sectors.
    assert sectors_moved(garbage, {}, f"{sys_root}/block") == 10
    assert sectors_moved(b"7 0 loop0 1 1 1 1 1 1 1 1 1 1\n", {}, f"{sys_root}/block") is None


def test_the_system_reader_gives_bytes_per_second_and_none_without_sys(tmp_path: Path) -> None:
    proc, sys_root = _machine(tmp_path, {"sda": (0, 0)})
    reader = SystemReader(proc, sys_root)
    assert reader.read(100.0).disk_bps is None  # no interval yet
    _machine(tmp_path, {"sda": (2048, 2048), "loop0": (10**6, 0)})
    assert reader.read(102.0).disk_bps == 4096 * SECTOR / 2.0
    assert SystemReader(proc, None).read(100.0).disk_bps is None


@pytest.mark.skipif(sys.platform != "linux" or not os.path.exists("/proc/diskstats"),
                    reason="Linux /proc/diskstats")
def test_a_real_synced_write_shows_in_this_machines_disk_bytes(tmp_path: Path) -> None:
    if os.major(os.stat(tmp_path).st_dev) == 0:  # tmpfs, overlayfs: no block device beneath
        pytest.skip(f"{tmp_path} is on a file system with no block device of its own")
    reader = SystemReader()
    start = time.monotonic()
    reader.read(start)
    size = 32 << 20
    with open(tmp_path / "written", "wb") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())
    end = time.monotonic()
    bps = reader.read(end).disk_bps
    if bps is None:
        pytest.skip("no storage device this machine's /sys lists (a container without /sys/block)")
    assert bps * (end - start) >= size, (bps, end - start)
