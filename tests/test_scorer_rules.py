"""Rogue selection and scoring against hand-computed values of the seed's formula and rules."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmshared import config as config_mod
from pmshared import messages as m
from pmshared.codec import Stamper
from scorer.scoring import ScoringRules, build_samples, score_process, score_snapshot
from scorer.selection import SelectionRules, select_rogues
from tests.tiering_helpers import GIB, SEED_MODEL, proc, snapshot

DEFAULT = config_mod.Config()
WEIGHTS = DEFAULT.scoring.weights
MIB = 1024**2


def rules(toml: str = "") -> ScoringRules:
    """The seed model's rules (these tests are the seed's formula and selection)."""
    return ScoringRules.from_config(config_mod.parse(SEED_MODEL + toml))


def selected(processes: list[m.ProcessInfo], toml: str = "") -> dict[int, list[str]]:
    """pid -> sorted categories, in rogue order."""
    _, rogues = score_snapshot(snapshot(processes), rules(toml))
    return {r.pid: r.categories for r in rogues}


# Only the selection categories named in a test are enabled: the others would pick processes too.
ONLY_STATE = "\n".join(
    f"[rogue_selection.{c}]\nenabled = false"
    for c in ("cpu", "mem", "cmprs", "threads", "csw", "sysbsd", "pageins")
)


def _toml(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def only(category: str, **settings_: object) -> str:
    lines = [
        f"[rogue_selection.{c}]\nenabled = false"
        for c in ("cpu", "mem", "cmprs", "threads", "csw", "sysbsd", "pageins")
        if c != category
    ]
    body = "\n".join(f"{k} = {_toml(v)}" for k, v in settings_.items())
    lines.append(f"[rogue_selection.{category}]\n{body}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- scoring

SCORE_TABLE = [
    # (description, process fields, expected score) — expected = int(sum(min(1, x/norm) * weight))
    ("the brief's example: 0.5*25 + 0.5*15 + 0.5*15 = 27.5", dict(cpu=50.0, mem=4 * GIB, pageins=500.0), 27),
    ("cpu 100 %", dict(cpu=100.0), 25),
    ("cpu on four cores is capped at 1.0", dict(cpu=400.0), 25),
    ("cpu 99.9 % -> 24.975 truncates", dict(cpu=99.9), 24),
    ("stuck", dict(state="stuck"), 20),
    ("zombie 0.8", dict(state="zombie"), 16),
    ("halted 0.6", dict(state="halted"), 12),
    ("stopped 0.4", dict(state="stopped"), 8),
    ("running is 0", dict(state="running"), 0),
    ("idle is 0", dict(state="idle"), 0),
    ("mem 16 GiB capped", dict(mem=16 * GIB), 15),
    ("mem 2 GiB -> 3.75", dict(mem=2 * GIB), 3),
    ("cmprs 512 MiB -> 5", dict(cmprs=512 * MIB), 5),
    ("csw 50k/s -> 5", dict(csw=50_000.0), 5),
    ("sysbsd 50k/s -> 2.5", dict(sysbsd=50_000.0), 2),
    ("pageins 2000/s capped", dict(pageins=2000.0), 15),
    ("threads weigh 0 by default", dict(threads=1000), 0),
    (
        "everything at its cap: 25+20+15+15+10+10+5 = 100",
        dict(state="stuck", cpu=500.0, mem=9 * GIB, cmprs=2 * GIB, pageins=5000.0, csw=1e6, sysbsd=1e6, threads=5000),
        100,
    ),
    ("unknown figures count 0", dict(cpu=None, cmprs=None, pageins=None, csw=None, sysbsd=None), 0),
    ("NaN counts 0, not as a full factor", dict(cpu=math.nan, pageins=500.0), 7),
    ("a negative rate never makes the score negative", dict(csw=-1e9), 0),
]


@pytest.mark.parametrize(("fields", "expected"), [(f, e) for _, f, e in SCORE_TABLE], ids=[d for d, _, _ in SCORE_TABLE])
def test_score_matches_the_seed_formula(fields, expected):
    fields = {"state": "running", **fields}
    assert score_process(proc(**fields), WEIGHTS) == expected


def test_weights_come_from_config_and_the_total_is_capped_at_100():
    heavy = config_mod.parse(
        "[scoring.weights]\ncpu = 100\nstate = 100\npageins = 0\nmem = 0\ncmprs = 0\ncsw = 0\nsysbsd = 0\nthreads = 10"
    ).scoring.weights
    assert score_process(proc(state="running", threads=500), heavy) == 5  # 0.5 * 10
    assert score_process(proc(state="running", cpu=30.0, threads=500), heavy) == 35  # 30 + 5
    assert score_process(proc(state="stuck", cpu=100.0), heavy) == 100  # 200 capped


# --------------------------------------------------------------------------------- selection


def test_stuck_is_always_selected_even_with_every_rule_disabled():
    toml = ONLY_STATE + "\n[rogue_selection.state]\nenabled = false"
    got = selected([proc(1, state="sleeping", cpu=90.0), proc(2, state="stuck"), proc(3, state="zombie")], toml)
    assert got == {2: ["stuck"]}


def test_zombies_are_selected_by_the_default_state_rule_without_limit():
    got = selected([proc(i, state="zombie") for i in range(1, 6)] + [proc(9, state="stopped")], ONLY_STATE)
    assert got == {i: ["state"] for i in range(1, 6)}


def test_state_rule_follows_config_states_and_count_in_listing_order():
    toml = ONLY_STATE + '\n[rogue_selection.state]\nstates = ["stopped", "halted"]\ncount = 2'
    processes = [proc(1, state="zombie"), proc(2, state="halted"), proc(3, state="stopped"), proc(4, state="stopped")]
    assert selected(processes, toml) == {2: ["state"], 3: ["state"]}


def test_stuck_in_the_state_list_is_left_to_the_stuck_rule():
    toml = ONLY_STATE + '\n[rogue_selection.state]\nstates = ["stuck", "zombie"]'
    assert selected([proc(1, state="stuck"), proc(2, state="zombie")], toml) == {1: ["stuck"], 2: ["state"]}


def test_state_rule_disabled_selects_no_zombie():
    toml = ONLY_STATE + "\n[rogue_selection.state]\nenabled = false"
    assert selected([proc(1, state="zombie")], toml) == {}


@pytest.mark.parametrize(
    ("category", "field", "value_below", "value_above", "threshold"),
    [
        ("cpu", "cpu", 50.0, 50.5, 50.0),
        ("mem", "mem", GIB, GIB + 1, float(GIB)),
        ("cmprs", "cmprs", 100, 101, 100.0),
        ("threads", "threads", 64, 65, 64.0),
        ("csw", "csw", 1000.0, 1000.1, 1000.0),
        ("sysbsd", "sysbsd", 10.0, 11.0, 10.0),
        ("pageins", "pageins", 0.0, 0.5, 0.0),
    ],
)
def test_each_category_selects_strictly_above_its_threshold(category, field, value_below, value_above, threshold):
    toml = only(category, count=5, threshold=threshold) + "\n[rogue_selection.state]\nenabled = false"
    processes = [proc(1, **{field: value_below}), proc(2, **{field: value_above})]
    assert selected(processes, toml) == {2: [category]}


def test_top_count_per_category_highest_first():
    toml = only("cpu", count=2)
    processes = [proc(1, cpu=10.0), proc(2, cpu=90.0), proc(3, cpu=50.0), proc(4, cpu=70.0)]
    _, rogues = score_snapshot(snapshot(processes), rules(toml))
    assert [r.pid for r in rogues] == [2, 4]


def test_count_zero_or_disabled_category_selects_nothing():
    assert selected([proc(1, cpu=99.0)], only("cpu", count=0)) == {}
    assert selected([proc(1, cpu=99.0)], only("cpu", enabled=False)) == {}


def test_unknown_figures_never_select_and_zero_is_not_above_the_default_threshold():
    toml = only("cpu", count=10)
    assert selected([proc(1, cpu=None), proc(2, cpu=0.0), proc(3, cpu=None)], toml) == {}
    toml = only("sysbsd", count=10)
    assert selected([proc(1, sysbsd=None), proc(2, sysbsd=3.0)], toml) == {2: ["sysbsd"]}


def test_process_picked_by_several_rules_appears_once_with_sorted_categories():
    hog = proc(5, state="zombie", cpu=90.0, mem=4 * GIB, pageins=300.0, threads=40)
    other = proc(6, cpu=1.0, mem=GIB, threads=2)
    _, rogues = score_snapshot(snapshot([other, hog]), rules())
    assert [r.pid for r in rogues] == [5, 6]
    assert rogues[0].categories == ["cpu", "mem", "pageins", "state", "threads"]
    assert rogues[1].categories == ["cpu", "mem", "threads"]


def test_rogue_order_is_stuck_then_states_then_categories_and_ties_keep_listing_order():
    processes = [proc(1, cpu=5.0), proc(2, cpu=5.0), proc(3, state="zombie"), proc(4, state="stuck"), proc(5, cpu=5.0)]
    toml = only("cpu", count=2)
    _, rogues = score_snapshot(snapshot(processes), rules(toml))
    assert [(r.pid, r.categories) for r in rogues] == [(4, ["stuck"]), (3, ["state"]), (1, ["cpu"]), (2, ["cpu"])]


def test_max_score_is_the_highest_rogue_and_zero_without_rogues():
    max_score, rogues = score_snapshot(snapshot([proc(1, cpu=50.0, mem=4 * GIB, pageins=500.0), proc(2, cpu=100.0)]), rules())
    assert max_score == 27 and sorted(r.score for r in rogues) == [25, 27]
    assert score_snapshot(snapshot([proc(1, cpu=0.0, mem=0, threads=0)]), rules()) == (0, [])


def test_scored_samples_carry_the_snapshot_context():
    sentinel = m.SentinelStats(tick_ms=50.0, window_s=60.0, p99_ms=12.0)
    system = m.SystemStats(cpu_count=8, load1=3.5)
    snap = snapshot([proc(1, cpu=80.0)], timestamp=1234.5, elapsed_ms=1042.0, process_count=321, system=system, sentinel=sentinel)
    out = build_samples(snap, rules(), Stamper("scorer", "inc-s"))
    assert (out.timestamp, out.elapsed_ms, out.process_count, out.snapshot_seq) == (1234.5, 1042.0, 321, snap.seq)
    assert out.system == system and out.sentinel == sentinel
    assert (out.sender, out.incarnation, out.seq, out.max_score) == ("scorer", "inc-s", 1, 20)
    assert (out.model, out.stress) == ("seed", {})
    # What the scorer sends decodes under the wire's own validation (Score 0..100, categories).
    wire = msgspec.msgpack.decode(msgspec.msgpack.encode(out), type=m.ProcessSamples)
    assert wire == out


# ------------------------------------------------------- the seed's algorithm, as a reference

CATS = ("cpu", "mem", "cmprs", "threads", "csw", "sysbsd", "pageins")


def seed_select(processes: list[m.ProcessInfo], cfg: config_mod.RogueSelectionConfig) -> dict[int, set[str]]:
    """The seed's _select_rogues transcribed plainly (None treated as 'not selectable')."""
    picked: dict[int, set[str]] = {}
    for p in processes:
        if p.state == "stuck":
            picked.setdefault(p.pid, set()).add("stuck")
    if cfg.state.enabled:
        matching = [p for p in processes if p.state in cfg.state.states and p.state != "stuck"]
        if cfg.state.count > 0:
            matching = matching[: cfg.state.count]
        for p in matching:
            picked.setdefault(p.pid, set()).add("state")
    for cat in CATS:
        sel = getattr(cfg, cat)
        if not sel.enabled:
            continue
        eligible = [p for p in processes if getattr(p, cat) is not None and getattr(p, cat) > sel.threshold]
        eligible.sort(key=lambda p: getattr(p, cat), reverse=True)
        for p in eligible[: sel.count]:
            picked.setdefault(p.pid, set()).add(cat)
    return picked


rates = st.one_of(st.none(), st.sampled_from([0.0, 1.0, 5.0, 5.0, 50.0, 1e3, 1e5]))
processes_st = st.lists(
    st.builds(
        lambda state, cpu, mem, cmprs, threads, csw, sysbsd, pageins: (state, cpu, mem, cmprs, threads, csw, sysbsd, pageins),
        st.sampled_from(["running", "sleeping", "stuck", "zombie", "stopped", "halted", "idle"]),
        rates,
        st.sampled_from([0, 1, GIB, GIB, 8 * GIB]),
        st.one_of(st.none(), st.sampled_from([0, 10, 10, GIB])),
        st.sampled_from([1, 4, 4, 100]),
        rates,
        rates,
        rates,
    ),
    max_size=25,
)
selection_cfg = st.builds(
    lambda cats, state: msgspec.convert({**cats, "state": state}, config_mod.RogueSelectionConfig),
    st.fixed_dictionaries(
        {
            c: st.fixed_dictionaries(
                {"enabled": st.booleans(), "count": st.integers(0, 4), "threshold": st.sampled_from([0.0, 1.0, 5.0])}
            )
            for c in CATS
        }
    ),
    st.fixed_dictionaries(
        {
            "enabled": st.booleans(),
            "count": st.integers(0, 3),
            "states": st.lists(st.sampled_from(["zombie", "stopped", "stuck", "running"]), unique=True),
        }
    ),
)


@settings(max_examples=300, deadline=None)
@given(rows=processes_st, cfg=selection_cfg)
def test_selection_equals_the_seed_algorithm(rows, cfg):
    processes = [
        m.ProcessInfo(pid=i + 1, command=f"p{i}", state=s, cpu=c, mem=mem, cmprs=cm, threads=t, csw=w, sysbsd=b, pageins=pg)
        for i, (s, c, mem, cm, t, w, b, pg) in enumerate(rows)
    ]
    got = select_rogues(processes, SelectionRules.from_config(cfg))
    assert {p.pid: cats for p, cats in got} == seed_select(processes, cfg)
    # ...and in the seed's order: dict insertion order of its passes.
    assert [p.pid for p, _ in got] == list(seed_select(processes, cfg))
