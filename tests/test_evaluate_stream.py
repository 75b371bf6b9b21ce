"""``ecgedge evaluate stream``: the paroxysmal generator, the reference reader, the class map, and the
stream played and scored end to end with the shipped CinC-2017 classifier (real ONNX Runtime, the
real monitor; with ``--via-device`` the C simulated device and the wire decoder too).

Reads ``../shared/data/mitdb`` (100.hea/.atr, 208.hea/.atr only) where present. Generated records are
8 min at 300 Hz (lead I, as the shipped model wants), so each end-to-end play takes about a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import wfdb
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.data.annotations import read_rhythm_reference
from ecgedge.data.paroxysmal import ParoxysmalConfig, synthesize_paroxysmal, write_paroxysmal_record, write_paroxysmal_set
from ecgedge.errors import ConfigError
from ecgedge.evaluate.stream import (
    StreamEvalConfig,
    class_map,
    evaluate_stream,
    play_direct,
    replay_events,
    stream_af_episodes,
)
from ecgedge.shipped import resolve_source


# Seed 1 plans SR 0-142 s, AFIB 142-202 s, SR 202-262 s, AFIB 262-411 s, SR 411-480 s.
SHORT = ParoxysmalConfig(duration_s=480, fs_hz=300, leads=("I",), af_burden=0.5, mean_af_s=120, min_episode_s=60,
                         noise_bursts_per_hour=0, electrode_off_per_hour=6, seed=1)


@pytest.fixture(scope="module")
def short_record(tmp_path_factory) -> Path:
    return write_paroxysmal_set(tmp_path_factory.mktemp("paf"), records=1, cfg=SHORT)[0]


@pytest.fixture(scope="module")
def shipped() -> Path:
    return resolve_source("cinc2017-rhythm")


def test_generator_is_deterministic_and_its_annotations_read_back(short_record):
    rec = synthesize_paroxysmal(SHORT)
    again = synthesize_paroxysmal(SHORT)
    assert np.array_equal(rec.signal, again.signal)
    assert [(round(e.start_s), round(e.end_s), e.rhythm) for e in rec.episodes] == \
        [(0, 142, "SR"), (142, 202, "AFIB"), (202, 262, "SR"), (262, 411, "AFIB"), (411, 480, "SR")]
    ref = read_rhythm_reference(short_record)
    fs = SHORT.fs_hz
    assert ref.fs_hz == fs and ref.n_samples == 480 * 300
    assert ref.spans(["AFIB"]) == [(int(round(e.start_s * fs)), int(round(e.end_s * fs))) for e in rec.episodes if e.rhythm == "AFIB"]
    assert ref.codes == ("AFIB", "N")
    spells = sorted([(int(round(a * fs)), int(round(b * fs))) for a, b in rec.noise_bursts + rec.electrode_off])
    assert list(ref.noise) == spells and spells
    # What wfdb reads is the generated signal to the 5-µV step of format 16 at 200 adu/mV.
    x = wfdb.rdrecord(str(short_record.with_suffix(""))).p_signal[:, 0]
    assert np.max(np.abs(x - rec.signal[0])) <= 0.0025 + 1e-9
    for a, b in rec.electrode_off:  # electrode off reads flat 0 mV
        assert np.all(x[int(np.ceil(a * fs)):int(b * fs)] == 0.0)


def test_generator_refuses_bad_settings():
    with pytest.raises(ConfigError):
        ParoxysmalConfig(af_burden=1.0)
    with pytest.raises(ConfigError):
        ParoxysmalConfig(leads=("MLII",))


def test_class_map_is_explicit_and_checked():
    cinc = class_map(["N", "A", "O", "~"], ["N", "AFIB", "T", "AFL"])
    assert cinc == {"AFIB": "A", "AFL": "O", "N": "N", "T": "O"}
    assert class_map(["N", "A", "O", "~"], ["AFL"], {"AFL": "A"})["AFL"] == "A"
    chapman4 = class_map(["SB", "AFIB", "GSVT", "SR"], ["N", "AFL", "SBR", "B"])
    assert chapman4 == {"AFIB": "AFIB", "AFL": "AFIB", "B": None, "N": "SR", "SBR": "SB"}
    with pytest.raises(ConfigError, match="no class 'X'"):
        class_map(["N", "A", "O", "~"], ["N"], {"N": "X"})
    with pytest.raises(ConfigError, match="--map AFIB=CLASS"):
        class_map(["SR", "SB"], ["N"])


def test_af_episodes_from_events():
    events = [{"type": "rhythm_change", "sample": 100, "to": "N"}, {"type": "quality", "sample": 150},
              {"type": "rhythm_change", "sample": 300, "to": "A"}, {"type": "rhythm_change", "sample": 500, "to": "O"},
              {"type": "rhythm_change", "sample": 700, "to": "A"}]
    assert stream_af_episodes(events, "A", 1000) == [(300, 500), (700, 1000)]


def test_real_mitdb_reference(shared_data):
    """One named recording, mitdb/208 (its header and rhythm annotations)."""
    mitdb = shared_data / "mitdb"
    if not (mitdb / "208.atr").is_file():
        pytest.skip(f"{mitdb}/208 not present")
    ref = read_rhythm_reference(mitdb / "208.hea")
    assert ref.fs_hz == 360 and ref.n_samples == 650000
    assert ref.codes == ("N", "T")               # normal sinus and ventricular trigeminy
    assert ref.intervals[0][:2] == (9, 22415) and ref.intervals[1][2] == "T"
    assert ref.noise                             # 208's "~" noise annotations
    assert class_map(["N", "A", "O", "~"], ref.codes) == {"AFIB": "A", "N": "N", "T": "O"}


def test_shipped_model_finds_the_af_of_a_generated_record(short_record, shipped, tmp_path):
    res = evaluate_stream(StreamEvalConfig(export=str(shipped), records=(str(short_record),), out=str(tmp_path / "r"),
                                           hystereses=(3, 1), plots=True), progress=False)
    rec = res.report["records"][0]
    assert rec["ref_episodes"] == 2 and rec["ref_detected"] == 2
    # The electrode-off spells fall inside AF; the windows around them the model calls noisy (its
    # class ~, reported unreliable) and some AF windows O, each run of which ends an AF episode.
    assert rec["duration_se"] > 0.5 and rec["duration_ppv"] > 0.8 and rec["false_alarms"] == 0
    assert all(0 <= d < 40 for d in rec["delays_s"])
    assert 0.8 < rec["coverage"] < 1.0            # the electrode-off spells are not classified
    assert res.report["class_map"] == {"AFIB": "A", "N": "N"}
    assert {p.name for p in res.files} >= {"report.json", "report.md", "timeline-PAF001.png", "events-PAF001.jsonl"}
    assert [s["hysteresis"] for s in res.report["sweep"]] == [3, 1]
    assert "| **gross** |" in (tmp_path / "r" / "report.md").read_text()


def test_replayed_hysteresis_equals_the_streams_own_events(short_record, shipped):
    from ecgedge.manifest import load_manifest
    from ecgedge.runtime.loader import runner_from_export
    from ecgedge.stream.monitor import ModelSpec, StreamSettings

    manifest = load_manifest(shipped)
    spec = ModelSpec.from_manifest(manifest)
    settings = StreamSettings(hop_s=1.0, hysteresis=2)
    with runner_from_export(shipped, manifest=manifest, threads=1) as runner:
        played = play_direct(runner, spec, settings, short_record, chunk_s=7.3)
    def strip(events):  # a replay sees the printed (rounded) probabilities: its confidence may differ in the 4th decimal
        return [{k: v for k, v in e.items() if k != "confidence"} for e in events]

    # The model's noise class (~) is no rhythm: such windows are unreliable, with the reason.
    assert not any(w.get("label") == "~" for w in played.windows)
    assert any(w.get("reason", "").startswith("model: noisy signal (~ ") for w in played.windows)
    assert not any(e["type"] == "rhythm_change" and e["to"] == "~" for e in played.events)
    own = [e for e in played.events if e["type"] in ("rhythm_change", "quality")]
    assert own and strip(replay_events(played.windows, spec, settings)) == strip(own)
    # Every sample of the record is accounted for by exactly one window's new span.
    spans = sorted(tuple(w["new"]) for w in played.windows)
    assert spans[0][0] == 0 and spans[-1][1] == 480 * 300
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler to build ecgsim")
def test_via_device_gives_the_same_windows(tmp_path, shipped):
    subprocess.run(["make", "-C", str(Path(__file__).resolve().parents[1] / "firmware_bridge"), "build/ecgsim"], check=True, capture_output=True)
    cfg = ParoxysmalConfig(**{**SHORT.__dict__, "duration_s": 150.0})
    hea = write_paroxysmal_record(synthesize_paroxysmal(cfg), "DEV1", tmp_path)
    direct = evaluate_stream(StreamEvalConfig(export=str(shipped), records=(str(hea),), out=str(tmp_path / "a"), plots=False), progress=False)
    device = evaluate_stream(StreamEvalConfig(export=str(shipped), records=(str(hea),), out=str(tmp_path / "b"), via_device=True,
                                              plots=False), progress=False)
    assert device.report["path"].startswith("device")
    assert device.report["records"] == direct.report["records"]
    assert device.report["window_agreement"] == direct.report["window_agreement"]
    # A lossy link: 2 % of frames dropped; the gaps are reported and the score still comes out.
    lossy = evaluate_stream(StreamEvalConfig(export=str(shipped), records=(str(hea),), out=str(tmp_path / "c"), via_device=True,
                                             device_args=("--drop-frames", "0.02", "--seed", "3"), plots=False), progress=False)
    events = (tmp_path / "c" / "events-DEV1.jsonl").read_text()
    assert '"type": "gap"' in events
    assert lossy.report["records"][0]["coverage"] <= direct.report["records"][0]["coverage"]


def test_cli(tmp_path, short_record, shipped):
    runner = CliRunner(env={"COLUMNS": "200"})
    out = tmp_path / "cli"
    res = runner.invoke(app, ["evaluate", "stream", "cinc2017-rhythm", "--data", str(short_record.parent), "--out", str(out),
                              "--sweep", "hop=1,2", "--sweep", "hysteresis=1,3", "-q"])
    assert res.exit_code == 0, res.output
    assert "class map: AFIB->A, N->N" in res.output and "| PAF001 |" in res.output
    report = json.loads((out / "report.json").read_text())
    assert [(s["hop_s"], s["hysteresis"]) for s in report["sweep"]] == [(1.0, 3), (1.0, 1), (2.0, 3), (2.0, 1)]
    assert (out / "sweep.png").stat().st_size > 0
    bad = runner.invoke(app, ["evaluate", "stream", "cinc2017-rhythm", "--data", str(short_record), "--map", "AFL"])
    assert bad.exit_code == 2 and "expected CODE=CLASS" in bad.output
    no_atr = tmp_path / "x.hea"
    no_atr.write_text("x 1 300 10\n")
    bad = runner.invoke(app, ["evaluate", "stream", "cinc2017-rhythm", "--data", str(no_atr)])
    assert bad.exit_code == 2 and "no .atr annotation file" in bad.output


def test_generated_set_cli(tmp_path):
    res = CliRunner().invoke(app, ["data", "paroxysmal", str(tmp_path / "set"), "--records", "2", "--hours", "0.02", "--leads", "I,II", "-q"])
    assert res.exit_code == 0, res.output
    heads = sorted((tmp_path / "set").glob("*.hea"))
    assert [h.name for h in heads] == ["PAF001.hea", "PAF002.hea"]
    rec = wfdb.rdrecord(str(heads[0].with_suffix("")))
    assert rec.sig_name == ["I", "II"] and rec.fs == 250 and rec.sig_len == 18000
