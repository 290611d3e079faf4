"""The bytes the machine's storage devices moved: /proc/diskstats, each byte counted once.

The pressure model charges a process io stress in proportion to its bytes against what the
devices really moved, not against the sum of what processes show: the kernel's writeback of pages
dirtied earlier (by a process long gone, a pip install 30 s ago), the journal and swap move bytes
no process's ``/proc/PID/io`` shows in the interval, and measured against the processes' sum alone
the one process that read a page in that second took all of that stress.

/proc/diskstats lists every block device: whole disks, their partitions, loop devices (a file on
another disk), RAM disks, zram (memory) and device-mapper or md devices stacked on other disks.
A byte is counted where it reaches a device with nothing beneath it: a whole disk (a directory in
/sys/block) with no ``slaves``, other than loop, ram and zram devices (their bytes are a file's,
counted on its disk, or memory's). Which names count is decided from /sys once per name seen.
"""

from __future__ import annotations

import os

SECTOR = 512  # diskstats counts 512-byte sectors whatever the device's own sector size
NOT_STORAGE = (b"loop", b"ram", b"zram")


def counts_on_its_own(name: bytes, sys_block: str) -> bool:
    """Is ``name`` a device whose bytes are counted: a whole disk with no device beneath it?"""
    if name.startswith(NOT_STORAGE):
        return False
    path = os.path.join(sys_block, os.fsdecode(name))
    if not os.path.isdir(path):  # a partition (its bytes are its disk's), or gone
        return False
    try:
        return not os.listdir(os.path.join(path, "slaves"))
    except OSError:  # no slaves directory: nothing beneath it
        return True


def sectors_moved(raw: bytes, counted: dict[bytes, bool], sys_block: str) -> int | None:
    """Sectors read + written by the counted devices since boot; None when none is listed.

    ``counted`` remembers the decision for each name (a name seen for the first time is looked
    up in ``sys_block``), so a sample costs one parse of the file."""
    total = 0
    seen = False
    for line in raw.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        name = fields[2]
        keep = counted.get(name)
        if keep is None:
            keep = counted[name] = counts_on_its_own(name, sys_block)
        if not keep:
            continue
        try:
            total += int(fields[5]) + int(fields[9])  # sectors read, sectors written
        except ValueError:
            continue
        seen = True
    return total if seen else None
