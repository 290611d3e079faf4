"""The typed evidence (m.Evidence): its fields match what cause.py produces, its JSON is the object
the free-form dict used to be, and what older versions wrote (wire messages, database rows,
bundles) still reads."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import msgspec
from rich.console import Console

from cli.events_view import pause_detail
from forensics import cause, recovery, stall_window
from forensics.bundle import write_json
from forensics.cause import Figures
from forensics.stall_window import Interval
from pmshared import messages as m
from pmshared import storage
from pmshared.codec import Codec, JsonLines
from pmshared.config import CauseConfig
from tests.forensics_helpers import system
from tests.recorder_helpers import forensics_done, pause

T0 = 1_800_000_000.0


def _classified() -> tuple[m.PauseCause, m.Evidence]:
    iv = Interval(T0 - 0.4, T0 + 1.2, system(cpu_busy_pct=97.0, procs_running=9), "live")
    return cause.classify(cause.gather([(T0, T0 + 1.0)], [iv]))


def test_every_figure_interval_and_threshold_has_its_field() -> None:
    """cause._evidence fills m.Evidence from Figures, the figures stall_window measures and the
    CauseConfig thresholds by name: a new one without its field would fail here, not in a bundle."""
    known = set(m.Evidence.__struct_fields__)
    assert {f.name for f in fields(Figures)} - {"over"} <= known
    assert {f"{name}_over" for name in stall_window.FIGURES} <= known
    assert {f"threshold_{k}" for k in CauseConfig.__struct_fields__} <= known
    # The thresholds' values and defaults live in CauseConfig only: Evidence holds none of its own.
    assert all(getattr(m.Evidence(), f"threshold_{k}") is msgspec.UNSET for k in CauseConfig.__struct_fields__)
    assert cause.DEFAULTS == CauseConfig()


def test_the_json_object_is_the_one_the_dict_was() -> None:
    """Figures this platform lacks are null (shown "-"); intervals only for figures measured;
    nothing the old dict did not have. Types too: an int threshold stays an int."""
    label, evidence = _classified()
    assert label == "cpu"
    obj = json.loads(msgspec.json.encode(evidence))
    figure_keys = {f.name for f in fields(Figures)} - {"over"}
    assert figure_keys | {"swap_pages_per_s", "stuck", "rule"} <= set(obj)
    assert obj["psi_io_full"] is None and obj["swap_pages_per_s"] is None
    assert {k for k in obj if k.endswith("_over")} == {"cpu_busy_pct_over", "runq_per_core_over"}
    assert {k for k in obj if k.startswith("threshold_")} == {
        f"threshold_{k}" for k in CauseConfig.__struct_fields__}
    assert obj["threshold_io_stuck"] == 1 and isinstance(obj["threshold_io_stuck"], int)
    assert not {"pauses", "stall", "culprits_from", "attempts"} & set(obj)  # the session adds them
    assert json.loads(msgspec.json.encode(m.Evidence(pauses=2, attempts=5))) == {"pauses": 2, "attempts": 5}


def test_forensics_done_round_trips_on_both_codecs() -> None:
    label, evidence = _classified()
    evidence = msgspec.structs.replace(evidence, pauses=1, stall="+0.00..+1.00 s", culprits_from="x")
    msg = m.ForensicsDone(sender="forensics", incarnation="f-1", seq=1, sent_at=T0, pause_ids=["c:1"],
                          bundle_path="/b", artifacts=[], culprits=[], cause=label, evidence=evidence)
    for codec in (Codec(m.ForensicsDone), JsonLines(m.ForensicsDone)):
        assert codec.decode(codec.encode(msg)) == msg


def test_an_older_forensics_dict_evidence_still_decodes() -> None:
    """What a forensics from before the Struct sent: a free-form dict, here with a key this version
    no longer knows (load1). The known keys arrive typed; the unknown one is ignored, not an error."""
    old = {"type": "forensics_done", "sender": "forensics", "incarnation": "f-0", "seq": 3, "sent_at": T0,
           "pause_ids": ["c:1"], "bundle_path": "/b", "artifacts": [], "culprits": [], "cause": "cpu",
           "evidence": {"cpu_busy_pct": 99, "load1": 4.04, "rule": "load1/cpu_count=2.02 >= 2",
                        "psi_cpu_some": None, "threshold_io_stuck": 1}}
    for codec, raw in ((Codec(m.ForensicsDone), msgspec.msgpack.encode(old)),
                       (JsonLines(m.ForensicsDone), msgspec.json.encode(old))):
        ev = codec.decode(raw).evidence
        assert (ev.cpu_busy_pct, ev.rule, ev.psi_cpu_some, ev.threshold_io_stuck) == (
            99.0, "load1/cpu_count=2.02 >= 2", None, 1)
        assert ev.samples is msgspec.UNSET


def _render(p: storage.PauseRecord) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(pause_detail(p, SimpleNamespace(style=lambda score: "")))  # type: ignore[arg-type]
    return console.export_text()


def test_an_old_database_row_reads_and_shows_whole(tmp_path: Path) -> None:
    """A bundles row written before the Struct, with keys this version does not know: the reader
    keeps the stored object as it is (history written by several versions), so `pmctl pauses
    show` still lists every key; a row written now decodes back into the Evidence sent."""
    conn = storage.connect(tmp_path / "data.db", mode="create")
    try:
        with conn:
            for record in (pause("c-1:1", T0), forensics_done(["c-1:1"], "/b1"),
                           pause("c-1:2", T0 + 60), forensics_done(["c-1:2"], "/b2", seq=2)):
                storage.apply(conn, record)
            old = {"load1": 4.04, "cpu_busy_pct": 59.40594059405941, "rule": "load1/cpu_count=2.02 >= 2",
                   "psi_cpu_some": None}
            conn.execute("UPDATE bundles SET evidence = ? WHERE bundle_path = '/b1'", (json.dumps(old),))
        first = storage.get_pause(conn, "c-1:1")
        second = storage.get_pause(conn, "c-1:2")
    finally:
        conn.close()
    assert first is not None and second is not None
    assert first.evidence == old
    shown = {line.split()[0]: line.split()[-1] for line in _render(first).splitlines()
             if line.split()[:1] and line.split()[0] in old}
    assert shown == {"load1": "4.04", "cpu_busy_pct": "59.41", "rule": "2", "psi_cpu_some": "-"}
    assert msgspec.convert(second.evidence, m.Evidence) == forensics_done(["c-1:2"], "/b2").evidence


def test_an_old_bundle_is_adopted_with_its_evidence(tmp_path: Path) -> None:
    """A bundle an older forensics left "capturing": its metadata.json evidence (a dict, here with
    an unknown key and a value of the wrong type) is kept as far as this version knows it."""
    bundle = tmp_path / "20270115-080000.000-pause"
    bundle.mkdir()
    write_json(bundle / "metadata.json", {
        "schema": 1, "status": "capturing", "pause_ids": ["c-1:1"], "cause": "io", "captures": {},
        "evidence": {"psi_io_some": 35.0, "load1": 3.0, "stuck": "many", "rule": "io pressure"},
    })
    write_json(bundle / "culprits.json", {"culprits": []})
    result = recovery.adopt(bundle)
    assert result is not None and result.status == "interrupted" and result.cause == "io"
    assert result.evidence == m.Evidence(psi_io_some=35.0, rule="io pressure")
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["status"] == "interrupted" and meta["evidence"]["load1"] == 3.0  # the file keeps it all


def test_metadata_and_culprits_json_are_structs_and_back(tmp_path: Path) -> None:
    """A fresh bundle's metadata.json and culprits.json decode into their Structs and encode back
    to the same objects: every key they have is a typed field (none left over as a hand-made dict)."""
    from forensics.bundle import BundleMetadata, CaptureRecord, CulpritsFile
    from forensics.engine import Engine
    from forensics.notify import Notifier
    from forensics.runner import FunctionCapture, skipped
    from pmshared.config import Config
    from tests.forensics_helpers import live, processes, rogue
    from tests.forensics_helpers import pause as fpause

    config = Config()
    plan = [FunctionCapture("nothing", lambda ctx: skipped("nothing", "not here", ["x"], note="n"), 5.0)]
    engine = Engine(config, events_dir=tmp_path / "events", plan=lambda p, b, d: plan,
                    notifier=Notifier(config.alerts, search_path=str(tmp_path)))
    now = T0
    for i in range(3):
        engine.on_live(live(now - 3 + i, [rogue(4242, "hog", 70 + i, ["cpu"])], system(cpu_busy_pct=99.0)))
    try:
        assert engine.on_pause(fpause("c:1", now - 1.5, processes=processes(), sys_stats=system())) == "started"
        assert engine.wait_idle(30)
        (result,) = engine.take_done()
    finally:
        engine.shutdown()
    ranked = (Path(result.bundle_path) / "culprits.json").read_bytes()
    file = msgspec.json.decode(ranked, type=CulpritsFile)
    assert file.source == "stall" and file.cause == result.cause and file.culprits[0].command == "hog"
    assert file.culprits[0].shares_pct and file.preliminary is msgspec.UNSET
    assert json.loads(msgspec.json.encode(file)) == json.loads(ranked)
    raw = (Path(result.bundle_path) / "metadata.json").read_bytes()
    meta = msgspec.json.decode(raw, type=BundleMetadata)
    assert meta.status == "complete" and meta.evidence == result.evidence
    assert meta.captures["nothing"].details == {"argv": ["x"], "note": "n"}
    assert json.loads(msgspec.json.encode(meta)) == json.loads(raw)
    # A capture's record is its Artifact without the name (recovery.adopt reads it back so).
    assert set(CaptureRecord.__struct_fields__) == set(m.Artifact.__struct_fields__) - {"name"} | {"details"}
