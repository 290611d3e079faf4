"""supervisor.stop_order: the ordered stop on scripted histories (pure: times passed in, who is
alive said by the test)."""

from __future__ import annotations

import pytest

from supervisor.stop_order import Kill, KillAll, StopOrder, Term


class World:
    """Who is alive; a worker dies when the test says so."""

    def __init__(self, *names: str) -> None:
        self.alive = set(names)

    def __call__(self, name: str) -> bool:
        return name in self.alive

    def exit(self, name: str) -> None:
        self.alive.discard(name)


def test_one_worker_at_a_time_in_order_each_after_the_one_before_exited():
    w = World("collector", "scorer", "tiering")
    stop = StopOrder(["collector", "scorer", "tiering"], now=0.0, grace_s=6.0)
    assert stop.step(0.0, w) == [Term("collector", kill_at=2.0, share_s=2.0)]
    assert stop.step(1.0, w) == [], "the next one waits for the first to exit"
    w.exit("collector")
    # scorer gets half of the 5 s left; tiering what is left after it.
    assert stop.step(1.0, w) == [Term("scorer", kill_at=3.5, share_s=2.5)]
    w.exit("scorer")
    assert stop.step(1.5, w) == [Term("tiering", kill_at=6.0, share_s=4.5)]
    w.exit("tiering")
    assert stop.step(2.0, w) == []
    assert stop.kill_all_at == 6.0


def test_a_worker_whose_share_runs_out_is_killed_and_the_next_one_signalled_at_once():
    w = World("a", "b", "c")
    stop = StopOrder(["a", "b", "c"], now=0.0, grace_s=3.0)
    assert stop.step(0.0, w) == [Term("a", 1.0, 1.0)]
    assert stop.step(0.99, w) == []
    assert stop.step(1.0, w) == [Kill("a", 1.0), Term("b", 2.0, 1.0)]
    # a is stuck in the kernel (not reaped): it is not waited for again, the grace period covers it.
    w.exit("b")
    assert stop.step(1.5, w) == [Term("c", 3.0, 1.5)]
    assert stop.step(3.0, w) == [KillAll(("a", "c"), unsignalled=())]
    assert stop.kill_all_at is None and stop.step(4.0, w) == []


def test_workers_not_alive_at_their_turn_are_skipped_and_do_not_take_a_share():
    w = World("a", "b", "c", "d")
    stop = StopOrder(["a", "b", "c", "d"], now=0.0, grace_s=4.0)
    w.exit("b")  # died before the stop reached it
    assert stop.step(0.0, w) == [Term("a", pytest.approx(4.0 / 3), pytest.approx(4.0 / 3))]
    w.exit("c")
    w.exit("a")
    assert stop.step(1.0, w) == [Term("d", 4.0, 3.0)]


def test_hurry_kills_everything_left_at_once_naming_those_never_signalled():
    w = World("a", "b", "c")
    stop = StopOrder(["a", "b", "c"], now=0.0, grace_s=30.0)
    assert stop.step(0.0, w) == [Term("a", 10.0, 10.0)]
    w.exit("c")
    stop.hurry(0.5)
    assert stop.step(0.5, w) == [KillAll(("a", "b"), unsignalled=("b",))]
    stop.hurry(0.6)  # a third signal: nothing more to hurry
    assert stop.kill_all_at is None and stop.step(0.7, w) == []


def test_nothing_alive_to_stop():
    stop = StopOrder([], now=0.0, grace_s=5.0)
    assert stop.step(0.0, World()) == []
    assert stop.step(5.0, World()) == [KillAll((), ())]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_the_last_share_ends_exactly_with_the_grace_period_when_every_worker_uses_its_share(n):
    names = [f"w{i}" for i in range(n)]
    w = World(*names)
    stop = StopOrder(names, now=10.0, grace_s=7.0)
    terms = stop.step(10.0, w)
    while True:
        term = terms[-1]
        assert isinstance(term, Term)
        terms = stop.step(term.kill_at, w)  # each ignores SIGTERM until its share runs out
        if term.name == names[-1]:
            assert term.kill_at == 17.0
            assert terms == [KillAll(tuple(names), ())]
            break
        assert terms[0] == Kill(term.name, pytest.approx(7.0 / n))
