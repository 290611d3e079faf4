"""Who an event is about over its whole length (tiering/culprit_tally.py) and when tiering sends it."""

from __future__ import annotations

from pmshared import config as config_mod
from pmshared import messages as m
from tiering import culprit_tally
from tiering.culprit_tally import CulpritTally
from tiering.engine import CULPRITS_EVERY_S, Tiering
from tests.tiering_helpers import samples


def rogue(pid: int, score: int, *categories: str, command: str | None = None) -> m.ProcessScore:
    return m.ProcessScore(pid=pid, command=command or f"p{pid}", cpu=None, state="running", mem=0, cmprs=None,
                          pageins=None, csw=None, sysbsd=None, threads=1, score=score,
                          categories=sorted(categories))


# `stress-ng --hdd 2` where the disk kept up (recorded in the pipeline): the parent's first second
# scored 41 under cpu, charged for its workers filling the page cache; then nine seconds of io at
# 30 charged to the parent for its group of workers, each worker at 15.
HDD_START = [rogue(100, 41, "cpu", command="stress-ng"), rogue(101, 20, "cpu", command="stress-ng-hdd")]
HDD_IO = [rogue(100, 30, "io", command="stress-ng"), rogue(101, 15, "io", "stuck", command="stress-ng-hdd"),
          rogue(102, 15, "io", command="stress-ng-hdd")]


def test_ten_seconds_of_io_outweigh_a_one_second_cpu_spike_of_the_same_process():
    tally = CulpritTally(category_ratio=0.5)
    tally.add(HDD_START)
    assert tally.leader() == (100, ("cpu",))  # after the first second, that is all there is
    for _ in range(9):
        tally.add(HDD_IO)
    top, *rest = tally.culprits()
    assert (top.pid, top.command, top.score_sum, top.peak, top.samples) == (100, "stress-ng", 41 + 9 * 30, 41, 10)
    # cpu's 41 points are under half of io's 270: the event is io's, though its peak was cpu's
    assert top.categories == ["io"]
    assert [(c.pid, c.score_sum) for c in rest] == [(101, 20 + 9 * 15), (102, 9 * 15)]
    # a category held in most samples stays named beside the leading one
    assert rest[0].categories == ["io", "stuck"]


def test_categories_within_the_ratio_of_the_leading_one_are_all_named_leading_first():
    tally = CulpritTally(category_ratio=0.5)
    for _ in range(3):
        tally.add([rogue(5, 40, "fork", "cpu")])  # a fork storm's parent: both, every second
    tally.add([rogue(5, 30, "cpu")])
    assert tally.culprits()[0].categories == ["cpu", "fork"]  # 150 and 120: both above 75


def test_a_rogue_listed_for_its_state_alone_is_not_tallied_and_a_renamed_worker_keeps_its_sum():
    tally = CulpritTally(category_ratio=0.5)
    tally.add([rogue(9, 0, "stuck"), rogue(7, 10, "cpu", command="stress-ng")])
    tally.add([rogue(7, 10, "cpu", command="stress-ng-cpu")])  # the worker named itself
    assert [(c.pid, c.command, c.score_sum) for c in tally.culprits()] == [(7, "stress-ng-cpu", 20)]


def test_ties_go_to_the_higher_peak_then_the_lower_pid_and_at_most_n_are_given():
    tally = CulpritTally(category_ratio=0.5)
    tally.add([rogue(3, 10, "cpu"), rogue(2, 10, "cpu"), rogue(4, 20, "cpu")])
    tally.add([rogue(3, 10, "cpu"), rogue(2, 10, "cpu")])
    assert [c.pid for c in tally.culprits()] == [4, 2, 3]
    assert [c.pid for c in tally.culprits(2)] == [4, 2]


def test_a_long_event_with_many_processes_stays_bounded_and_keeps_its_largest_and_newest():
    tally = CulpritTally(category_ratio=0.5)
    tally.add([rogue(1, 90, "cpu")])
    for second in range(200):  # ten new processes a second, each seen once
        tally.add([rogue(1000 + 10 * second + i, 1, "io") for i in range(10)])
        assert len(tally._entries) <= culprit_tally.KEEP + 10
    newest = {1000 + 10 * 199 + i for i in range(10)}
    assert 1 in tally._entries and newest <= tally._entries.keys()
    assert tally.culprits()[0].pid == 1


def culprit_records(engine: Tiering, script: list[tuple[float, int, list[m.ProcessScore]]]):
    """(time, max_score, rogues) -> per sample, the EventCulprits it produced (and whether the
    event closed on it)."""
    out = []
    for t, score, rogues in script:
        records = engine.handle(samples(score, timestamp=t, rogues=rogues), now=t).records
        out.append(([r for r in records if isinstance(r, m.EventCulprits)],
                    any(isinstance(r, m.EventClosed) for r in records)))
    return out


def test_tiering_sends_the_tally_when_young_when_its_leader_changes_when_due_and_before_the_event_closes():
    engine = Tiering(config_mod.Config(), "inc")
    delay = config_mod.Config().tiers.deescalation_delay_s
    script = [(0.0, 41, HDD_START)] + [(float(t), 40, HDD_IO) for t in range(1, 17)]
    end = 17.0 + delay
    script += [(17.0, 10, []), (end, 10, [])]
    out = culprit_records(engine, script)
    sent_at = [script[i][0] for i, (sent, _) in enumerate(out) if sent]
    # each of the first five tallied samples; then due 10 s after the last; and with the close
    assert sent_at == [0.0, 1.0, 2.0, 3.0, 4.0, 4.0 + CULPRITS_EVERY_S, end]
    # the leader's categories meanwhile: cpu (opened), cpu+io (41, 30), io+cpu (60 leads), io (90:
    # cpu's 41 is under half)
    leaders = [(sent[0].culprits[0].pid, sent[0].culprits[0].categories) for sent, _ in out if sent]
    assert leaders[:5] == [(100, ["cpu"]), (100, ["cpu", "io"]), (100, ["io", "cpu"]), (100, ["io"]), (100, ["io"])]
    (final,), closed = out[-1]
    assert closed and final.event_key == "inc:1"
    assert final.culprits[0].categories == ["io"] and final.culprits[0].score_sum == 41 + 16 * 30
    # the tally is sent before the close that ends the event
    records = engine.handle(samples(50, timestamp=100.0), now=100.0).records
    assert [type(r).__name__ for r in records] == ["EventOpened", "EventSample", "EventCulprits"]
    assert records[-1].event_key == "inc:2" and records[-1].culprits[0].score_sum == 50


def test_the_final_tally_precedes_the_close_in_the_records_of_one_sample():
    engine = Tiering(config_mod.Config(), "inc")
    delay = config_mod.Config().tiers.deescalation_delay_s
    engine.handle(samples(50, timestamp=0.0), now=0.0)
    engine.handle(samples(10, timestamp=1.0), now=1.0)
    records = engine.handle(samples(10, timestamp=1.0 + delay), now=1.0 + delay).records
    assert [type(r).__name__ for r in records] == ["EventCulprits", "EventClosed"]


def test_the_calm_tail_of_an_event_is_not_tallied():
    # A 2 s load, then the de-escalation delay: the user's `pmctl` polls (scored 19 while the
    # machine calmed, charged as their reaper's children) must not outweigh the load (pipeline e2e).
    engine = Tiering(config_mod.Config(), "inc")
    delay = config_mod.Config().tiers.deescalation_delay_s
    load = [rogue(50, 60, "cpu", command="load")]
    poller = [rogue(60, 19, "cpu", command="python")]
    script = [(0.0, 60, load), (1.0, 60, load)] + [(2.0 + t, 19, poller) for t in range(2 * int(delay) + 2)]
    (final,) = next(sent for sent, closed in culprit_records(engine, script) if closed)
    assert [(c.pid, c.score_sum) for c in final.culprits] == [(50, 120)]


def test_a_new_leader_after_the_first_seconds_is_sent_on_the_sample_it_takes_the_lead():
    engine = Tiering(config_mod.Config(), "inc")
    a, b = rogue(1, 50, "cpu"), rogue(2, 80, "io")
    script = [(float(t), 50, [a]) for t in range(6)] + [(float(t), 80, [a, b]) for t in range(6, 12)]
    out = culprit_records(engine, script)
    sent_at = [script[i][0] for i, (sent, _) in enumerate(out) if sent]
    # a: 50 a second from t=0; b: 80 from t=6 (at t=11: 600 against 480): a leads throughout
    assert sent_at == [0.0, 1.0, 2.0, 3.0, 4.0]
    script += [(float(t), 80, [b]) for t in range(12, 16)]  # a stops at 600; b passes it at t=13 (640)
    engine = Tiering(config_mod.Config(), "inc")
    out = culprit_records(engine, script)
    sent = [(script[i][0], s[0].culprits[0].pid) for i, (s, _) in enumerate(out) if s]
    assert sent[5:] == [(13.0, 2)]
