"""macOS backend, tested without a Mac: the top parser on real and realistic captures, and the
long-lived stream (start, restart, close) against a fake ``top`` executable on PATH.

Nothing here proves the backend on Mac hardware; it proves the parser against the format Apple's
top prints (real captures in /work/shared/reference/macos-top-sample.txt, layouts from top's
sources) and the process handling against a real child process.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from collector.macos import TOP_ARGS, MacBackend
from collector.macos_pressure import PressureReader, level_name, sysctl_reader
from collector.macos_top import (
    TOP_STATS,
    RateTracker,
    TopFormatError,
    TopSplitter,
    parse_cpu,
    parse_pid,
    parse_row,
    parse_sample,
    parse_size,
    parse_state,
    parse_threads,
    column_layout,
)
from tests.procutil import wait_for

REFERENCE = Path("/work/shared/reference/macos-top-sample.txt")
K, M, G = 1024, 1024**2, 1024**3

# --------------------------------------------------------------------------- fixtures
# Three samples in the exact layout of `top -l 0 -s 1 -stats <TOP_STATS>`: header block from the
# real captures, columns left-aligned and padded to the widest cell plus one space (as top's
# generic columns are), trailing blanks kept. Processes and values are taken from the captures;
# the awkward cases are marked.

HEADER = """\
Processes: {total} total, 2 running, 1 stuck, {sleeping} sleeping, 2823 threads 
2026/05/27 01:30:{sec:02d}
Load Avg: 3.50, 3.20, 3.11 
CPU usage: 13.33% user, 10.37% sys, 76.29% idle 
SharedLibs: 909M resident, 142M data, 133M linkedit.
MemRegions: 164288 total, 5306M resident, 508M private, 1491M shared.
PhysMem: 31G used (2105M wired, 1578M compressor), 382M unused.
VM: 254T vsize, 5703M framework vsize, {swapins}({dsi}) swapins, {swapouts}({dso}) swapouts.
Networks: packets: 76403200/89G in, 64798847/62G out.
Disks: 87963085/1401G read, 54725667/2521G written.
"""
COLUMNS = ["PID", "COMMAND", "%CPU", "STATE", "MEM", "CMPRS", "#TH", "CSW", "SYSBSD", "PAGEINS", "PPID", "UID"]
# PPID and UID of the fixture's processes (the last two columns); others: launchd's child, uid 501
PARENT_UID = {"0": ("0", "0"), "1": ("0", "0"), "157": ("1", "88"), "777": ("700", "501")}

SAMPLE1 = [  # the first sample: no +/- marks yet; %CPU meaningless
    ("0", "kernel_task", "12.3", "running", "1578M", "0B", "512/8", "98000000", "0", "0"),
    ("1", "launchd", "0.0", "sleeping", "34M", "12M", "4", "120000", "900000", "3000"),
    ("157", "WindowServer", "8.1", "running", "846M", "210M", "22/1", "4485231", "20005770", "73303"),
    ("25379", "Lark Helper (Ren", "0.0", "sleeping", "332M", "40M", "27", "1000", "5000", "10"),
    ("95991", "sirittsd", "0.0", "sleeping", "34M", "32M", "2", "2712", "9304", "2961"),
    ("4242*", "Rosetta App", "1.0", "stuck", "2G", "1024K", "3", "500", "700", "20"),
    ("99060", "ContainerMetadat", "0.0", "sleeping", "4208K", "3760K", "2", "1223", "6878", "4"),
    ("31337", "defunct", "0.0", "zombie", "0B", "0B", "1", "10", "20", "0"),
]
SAMPLE2 = [  # one second later: +/- marks; sirittsd is gone; a new Chrome helper appeared
    ("0", "kernel_task", "15.0", "running", "1578M", "0B", "512/9", "98001000+", "0", "0"),
    ("1", "launchd", "0.1", "sleeping", "34M", "12M", "4", "120010+", "900100+", "3000"),
    ("157", "WindowServer", "22.4", "running", "850M+", "210M", "23/2", "4485331+", "20006770+", "73313+"),
    ("25379", "Lark Helper (Ren", "0.0", "sleeping", "300M-", "40M", "27", "1000", "5000", "10"),
    ("4242*", "Rosetta App", "1.0", "stuck", "2G", "1024K", "3", "505+", "700", "20"),
    ("777", "Google Chrome He", "55.5", "running", "512M+", "0B", "19/3", "40000+", "80000+", "100+"),
    ("99060", "ContainerMetadat", "0.0", "sleeping", "4208K", "3760K", "2", "1223", "6878", "4"),
    ("31337", "defunct", "0.0", "zombie", "0B", "0B", "1", "10", "20", "0"),
]
SAMPLE3 = [  # pid 99060 now belongs to another program; the zombie was reaped
    ("0", "kernel_task", "14.0", "running", "1578M", "0B", "512/8", "98002000+", "0", "0"),
    ("1", "launchd", "0.0", "sleeping", "34M", "12M", "4", "120020+", "900200+", "3000"),
    ("157", "WindowServer", "20.0", "running", "850M", "210M", "23/1", "4485431+", "20007770+", "73323+"),
    ("25379", "Lark Helper (Ren", "0.0", "sleeping", "300M", "40M", "27", "1000", "5000", "10"),
    ("4242*", "Rosetta App", "1.0", "stuck", "2G", "1024K", "3", "510+", "700", "20"),
    ("777", "Google Chrome He", "60.0", "running", "600M+", "0B", "19/3", "41000+", "81000+", "100"),
    # (its counters happen to be higher than the old program's: only the name tells them apart)
    ("99060", "mdworker_shared", "0.0", "sleeping", "12M", "0B", "3", "5000", "9000", "9"),
]


def render(rows: list[tuple[str, ...]], sec: int, swapins: int, swapouts: int, dsi: int = 0, dso: int = 0) -> str:
    header = HEADER.format(total=len(rows), sleeping=len(rows) - 3, sec=sec,
                           swapins=swapins, swapouts=swapouts, dsi=dsi, dso=dso)
    # top prints a pid with a one-character suffix: "*" foreign arch, "-" 32-bit, else a blank
    rows = [(r[0] if r[0][-1] in "*-" else r[0] + " ", *r[1:], *PARENT_UID.get(r[0], ("1", "501")))
            for r in rows]  # fmt: skip
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) + 1 for i in range(len(COLUMNS))]
    widths[1] = 17  # COMMAND: 16 characters and a space
    line = lambda cells: "".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return header + "\n" + line(COLUMNS) + "\n" + "".join(line(r) + "\n" for r in rows)


STREAM = (
    render(SAMPLE1, 10, 470000, 929000)
    + "\n"  # top prints a blank line between samples
    + render(SAMPLE2, 11, 470789, 929703, 789, 703)
    + "\n"
    + render(SAMPLE3, 12, 470800, 929800, 11, 97)
)


def samples_of(text: str) -> list[list[str]]:
    splitter = TopSplitter()
    out: list[list[str]] = []
    for line in text.splitlines():
        if (lines := splitter.feed(line)) is not None:
            out.append(lines)
    splitter.end()
    return out


def reference_capture() -> list[str]:
    """The first real capture in the reference file (all of top's default columns)."""
    lines = REFERENCE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Processes:"))
    end = next(i for i in range(start + 12, len(lines)) if not lines[i].strip())
    return lines[start:end]


# --------------------------------------------------------------------------- values


def test_value_formats() -> None:
    assert [parse_size(t) for t in ("0B", "4208K", "34M+", "2G-", "1T", "512", "1.5G")] == [
        0, 4208 * K, 34 * M, 2 * G, 1024 * G, 512, int(1.5 * G)]
    for bad in ("", "12Q", "K", "N/A"):
        with pytest.raises(TopFormatError):
            parse_size(bad)
    assert [parse_pid(t) for t in ("123", "123*", "4242-")] == [123, 123, 4242]
    assert [parse_threads(t) for t in ("7", "22/1", "512/8")] == [7, 22, 512]
    assert parse_cpu("102.3") == 102.3 and parse_cpu("0.0+") == 0.0
    assert [parse_state(s) for s in ("running", "sleeping", "stuck", "zombie", "stopped", "halted", "idle")] == [
        "running", "sleeping", "stuck", "zombie", "stopped", "halted", "idle"]
    assert parse_state("weird") == "unknown"


def test_row_with_spaces_in_the_command() -> None:
    keys, at = column_layout("PID    COMMAND          %CPU STATE    MEM   CMPRS #TH  CSW SYSBSD PAGEINS")
    row = parse_row("25379  Lark Helper (Ren 0.0  sleeping 332M  40M   27   1000 5000   10     ", keys, at)
    assert (row.pid, row.command, row.mem, row.cmprs, row.threads) == (25379, "Lark Helper (Ren", 332 * M, 40 * M, 27)
    row = parse_row("8      a  b   c         1.5  running  1K    0B    1    5   6      7", keys, at)
    assert row.command == "a  b   c" and row.csw == 5 and row.pageins == 7
    with pytest.raises(TopFormatError):
        parse_row("8      short 1.5 running", keys, at)


def test_real_capture_parses() -> None:
    # The real `top -l 1` output (all default columns: our columns are among them, and the
    # others contain no spaces either), parsed as it is.
    sample = parse_sample(reference_capture(), received_at=1.0)
    assert sample.bad_rows == 0 and len(sample.rows) == 4
    mobile = next(r for r in sample.rows if r.pid == 95945)
    assert mobile.command == "com.apple.Mobile"
    assert (mobile.mem, mobile.cmprs, mobile.threads, mobile.state) == (56 * M, 49 * M, 4, "sleeping")
    assert (mobile.csw, mobile.sysbsd, mobile.pageins) == (4485231, 20005770, 73303)
    assert (mobile.ppid, mobile.uid) == (1, 0)
    safari = next(r for r in sample.rows if r.pid == 98518)
    assert (safari.mem, safari.cmprs) == (6561 * K, 3760 * K)
    h = sample.header
    assert (h.total, h.running, h.stuck) == (624, 3, None)
    assert h.load == (3.50, 3.20, 3.11)
    assert h.cpu_busy_pct == pytest.approx(23.71)
    assert (h.mem_used, h.mem_unused) == (31 * G, 382 * M)
    assert (h.swapins, h.swapouts) == (0, 0)


def test_capture_without_our_columns_is_rejected() -> None:
    # The second real capture asked for fewer columns: not what our -stats produces.
    lines = REFERENCE.read_text().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("Processes:"))
    with pytest.raises(TopFormatError, match="CSW|csw"):
        parse_sample(lines[start:])


# --------------------------------------------------------------------------- stream and rates


def test_stream_splits_into_samples_and_drops_a_truncated_tail() -> None:
    cut = render(SAMPLE1, 13, 470900, 929900)
    cut = cut[: cut.index("Lark Helper")]  # top died mid-table
    splitter = TopSplitter()
    done: list[list[str]] = []
    for line in (STREAM + "\n" + cut).splitlines():
        if (lines := splitter.feed(line)) is not None:
            done.append(lines)
    # each sample completes as soon as its declared number of rows has arrived
    assert len(done) == 3
    # 3 of 8 rows: a quiet stream now means top stalled mid-table, not a finished sample
    assert splitter.flush() is None
    splitter2 = TopSplitter()
    for line in (STREAM + "\n" + cut).splitlines():
        splitter2.feed(line)
    splitter2.end()
    assert splitter2.truncated == 1
    assert [len(parse_sample(s).rows) for s in done] == [8, 8, 7]


def test_misdeclared_counts_still_split_correctly() -> None:
    # fewer rows than declared (processes exited between counting and printing): the sample is
    # complete when the next one starts, or when the stream goes quiet after top's flush
    short = STREAM.replace("Processes: 8 total", "Processes: 9 total")
    samples = samples_of(short)
    assert [len(parse_sample(s).rows) for s in samples] == [8, 8, 7]
    splitter = TopSplitter()
    for line in render(SAMPLE1, 10, 1, 1).replace("8 total", "10 total").splitlines():
        assert splitter.feed(line) is None
    assert len(parse_sample(splitter.flush()).rows) == 8
    assert splitter.flush() is None  # handed out once
    # more rows than declared: complete at the count; the extra row is not glued to anything
    samples = samples_of(STREAM.replace("Processes: 8 total", "Processes: 7 total", 1))
    assert [len(parse_sample(s).rows) for s in samples] == [7, 8, 7]


def test_rates_from_successive_samples() -> None:
    tracker = RateTracker(cpu_count=8)
    parsed = [parse_sample(s, received_at=100.0 + 0.5 * i) for i, s in enumerate(samples_of(STREAM))]
    assert tracker.update(parsed[0]) is None  # baseline only: its %CPU means nothing

    processes, system = tracker.update(parsed[1])  # dt = 0.5 s
    by_pid = {p.pid: p for p in processes}
    assert 95991 not in by_pid  # vanished between samples
    ws = by_pid[157]
    assert (ws.cpu, ws.mem, ws.threads, ws.state) == (22.4, 850 * M, 23, "running")
    assert (ws.csw, ws.sysbsd, ws.pageins) == (200.0, 2000.0, 20.0)  # per second
    chrome = by_pid[777]
    assert chrome.command == "Google Chrome He" and chrome.csw is None and chrome.pageins is None
    assert by_pid[4242].state == "stuck" and by_pid[4242].csw == 10.0
    assert by_pid[25379].mem == 300 * M and by_pid[25379].csw == 0.0
    assert by_pid[31337].state == "zombie" and by_pid[0].threads == 512
    assert system.cpu_count == 8
    assert (system.load1, system.load5, system.load15) == (3.5, 3.2, 3.11)
    assert system.cpu_busy_pct == pytest.approx(23.71)
    assert (system.procs_running, system.procs_blocked) == (2, 1)
    assert system.mem_total == 31 * G + 382 * M and system.mem_available == 382 * M
    assert (system.swapins, system.swapouts) == (1578.0, 1406.0)
    assert (ws.ppid, ws.uid, by_pid[777].ppid, by_pid[1].ppid) == (1, 88, 700, 0)
    # MEM + CMPRS: WindowServer grew 4 MiB in 0.5 s, Lark Helper shrank 32 MiB; a newcomer has none
    assert ws.mem_growth == 8 * M and by_pid[25379].mem_growth == -64 * M and chrome.mem_growth is None
    # what top cannot tell: None, and said so for run delay
    assert (ws.cpu_children, ws.run_delay, ws.read_bps, ws.write_bps, ws.cgroup) == (None,) * 5
    assert system.run_delay_known is False and system.memory_pressure is None

    processes, system = tracker.update(parsed[2])
    by_pid = {p.pid: p for p in processes}
    reused = by_pid[99060]  # pid reused by another program: no rates from the old one's counters
    assert reused.command == "mdworker_shared" and (reused.csw, reused.sysbsd, reused.pageins) == (None, None, None)
    assert 31337 not in by_pid
    assert by_pid[777].csw == 2000.0 and by_pid[777].pageins == 0.0
    assert (system.swapins, system.swapouts) == (22.0, 194.0)

    tracker.reset()  # a restarted top: baseline again
    assert tracker.update(parsed[0]) is None


def test_cpu_is_capped_at_what_the_threads_can_use() -> None:
    # top's %CPU after a stall of top itself can be measured over a short interval: on a 2-core
    # machine a process can use at most min(threads, 2) cores.
    tracker = RateTracker(cpu_count=2)
    parsed = [parse_sample(s, received_at=100.0 + i) for i, s in enumerate(samples_of(STREAM))]
    tracker.update(parsed[0])
    by_pid = {p.pid: p for p in tracker.update(parsed[1])[0]}
    assert by_pid[157].cpu == 22.4  # under the cap: as top printed it
    hot = [("777", "Google Chrome He", "355.5", *r[3:]) if r[0] == "777" else r for r in SAMPLE2]  # 19 threads
    tracker.reset()
    tracker.update(parse_sample(render(SAMPLE1, 10, 1, 1).splitlines(), received_at=1.0))
    by_pid = {p.pid: p for p in tracker.update(parse_sample(render(hot, 11, 1, 1).splitlines(), received_at=2.0))[0]}
    assert by_pid[777].cpu == 200.0


def test_memory_pressure_level() -> None:
    assert [level_name(v) for v in (1, 2, 4, 0, 3, None)] == ["normal", "warn", "critical", None, None, None]
    values = iter([4, None, 1])
    reader = PressureReader(lambda: next(values))
    assert reader.level() == "critical"
    assert reader.level() is None  # the read failed: unknown, and not tried again
    assert reader.level() is None
    assert PressureReader(probe=False).level() is None
    if sys.platform != "darwin":
        assert sysctl_reader() is None  # no sysctlbyname in this libc: None, not an exception
    tracker = RateTracker(cpu_count=8)
    parsed = [parse_sample(s, received_at=100.0 + i) for i, s in enumerate(samples_of(STREAM))]
    tracker.update(parsed[0], "normal")
    assert tracker.update(parsed[1], "warn")[1].memory_pressure == "warn"


# --------------------------------------------------------------------------- a fake top on PATH

FAKE_TOP = '''\
#!{python}
"""Fake macOS top: prints canned samples like `top -l 0 -s 1 -stats ...` does."""
import os, sys, time
expected = {expected!r}
if sys.argv[1:] != expected:
    sys.stderr.write("fake top: unexpected arguments %r\\n" % (sys.argv[1:],))
    sys.exit(64)
with open(os.environ["FAKE_TOP_STARTS"], "a") as f:
    f.write("%d\\n" % os.getpid())
starts = len(open(os.environ["FAKE_TOP_STARTS"]).read().split())
samples = open(os.environ["FAKE_TOP_SAMPLES"]).read().split("%%SAMPLE%%\\n")
interval = float(os.environ.get("FAKE_TOP_INTERVAL", "1"))
die_after = int(os.environ.get("FAKE_TOP_DIE_FIRST_AFTER", "0"))
time.sleep(float(os.environ.get("FAKE_TOP_START_DELAY", "0")))
i = 0
while True:
    if starts == 1 and die_after and i == die_after:
        partial = samples[0]
        sys.stdout.write(partial[: partial.index("Lark Helper")])  # cut off mid-table
        sys.stdout.flush()
        sys.exit(1)
    if i:
        sys.stdout.write("\\n")
    sys.stdout.write(samples[min(i, len(samples) - 1)])
    sys.stdout.flush()  # top flushes once per sample
    i += 1
    time.sleep(interval)
'''


@pytest.fixture
def fake_top(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "top"
    script.write_text(FAKE_TOP.format(python=sys.executable, expected=list(TOP_ARGS)))
    script.chmod(0o755)
    samples = tmp_path / "samples.txt"
    samples.write_text("%%SAMPLE%%\n".join(
        render(rows, 10 + i, 470000 + i, 929000 + i) for i, rows in enumerate((SAMPLE1, SAMPLE2, SAMPLE3))))
    starts = tmp_path / "starts"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TOP_SAMPLES", str(samples))
    monkeypatch.setenv("FAKE_TOP_STARTS", str(starts))
    monkeypatch.setenv("FAKE_TOP_INTERVAL", "0.1")
    return starts


@pytest.fixture
def backends() -> Iterator[list[MacBackend]]:
    made: list[MacBackend] = []
    yield made
    for backend in made:
        backend.close()


def pids_in(starts: Path) -> list[int]:
    return [int(x) for x in starts.read_text().split()] if starts.exists() else []


def test_one_long_lived_top_feeds_samples_and_close_reaps_it(fake_top: Path, backends) -> None:
    backend = MacBackend()
    backends.append(backend)
    assert backend.wait_for_samples(4, timeout=10)
    processes, system = backend.sample()
    by_pid = {p.pid: p for p in processes}
    assert by_pid[157].command == "WindowServer" and by_pid[157].threads == 23
    assert by_pid[25379].command == "Lark Helper (Ren"
    assert system.load1 == 3.5 and system.procs_blocked == 1
    assert len(pids_in(fake_top)) == 1 and backend.starts == 1  # one top, not one per sample
    assert backend.samples - backend.published == 1  # the first sample was only a baseline
    top_pid = backend.top_pid
    assert top_pid == pids_in(fake_top)[0]

    started = time.monotonic()
    backend.close()
    assert time.monotonic() - started < 2
    assert not psutil.pid_exists(top_pid)  # terminated and reaped
    assert not backend._thread.is_alive()


def test_top_that_dies_is_restarted_and_its_cut_off_sample_dropped(
    fake_top: Path, backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TOP_DIE_FIRST_AFTER", "2")
    backend = MacBackend(backoff_s=(0.1, 1.0))
    backends.append(backend)
    # first top: 2 samples then a cut-off one; second top: a baseline and then more samples
    assert backend.wait_for_samples(5, timeout=10)
    assert wait_for(lambda: backend.starts == 2, 5)
    first, second = pids_in(fake_top)
    assert first != second and not psutil.pid_exists(first)
    assert backend.top_pid == second
    assert backend.truncated == 1 and backend.bad_samples == 0
    # each top's first sample only set the baseline (its %CPU is meaningless)
    assert wait_for(lambda: backend.samples - backend.published == 2, 1)
    processes, _ = backend.sample()
    assert {p.pid for p in processes} >= {0, 1, 157, 777}


def test_sample_before_top_speaks_returns_empty_without_blocking(
    fake_top: Path, backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TOP_START_DELAY", "30")
    backend = MacBackend(sample_wait_s=0.3)
    backends.append(backend)
    started = time.monotonic()
    processes, system = backend.sample()
    assert processes == [] and system.cpu_count == (os.cpu_count() or 1)
    assert 0.25 <= time.monotonic() - started < 2
    assert wait_for(lambda: backend.top_pid is not None, 5)
    top_pid = backend.top_pid
    backend.close()  # kills the silent top too
    assert not psutil.pid_exists(top_pid)


def test_missing_top_is_retried_not_fatal(tmp_path: Path, backends) -> None:
    backend = MacBackend(top=str(tmp_path / "no-such-top"), sample_wait_s=0.1, backoff_s=(0.05, 0.1))
    backends.append(backend)
    assert backend.sample()[0] == []
    assert wait_for(lambda: backend.starts == 0, 1)  # never started, still trying
    backend.close()
    assert not backend._thread.is_alive()


def test_stats_argument_matches_the_documented_command() -> None:
    assert TOP_ARGS == ("-l", "0", "-s", "1", "-stats", TOP_STATS)
    assert TOP_STATS == "pid,command,cpu,state,mem,cmprs,threads,csw,sysbsd,pageins,ppid,uid"
