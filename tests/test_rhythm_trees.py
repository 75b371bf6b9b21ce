"""Rhythm trees: record features (synthetic and real CinC-2017 records), a tiny training run end to end
(features -> CV -> trees -> ONNX export -> ONNX Runtime decisions identical to scikit-learn ->
``ecgedge evaluate``), the manifest's hashes checked at load, the CLI."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from ecgedge.beats import detect_beats
from ecgedge.beats.features import RhythmFeatures
from ecgedge.beats.record_features import (FEATURE_VERSION, TEMPLATE_NAMES, beats_in_segment, feature_names,
                                           record_features)
from ecgedge.data.synthetic import synthesize_ecg

pytest.importorskip("sklearn", reason="scikit-learn (the 'train' extra) fits the rhythm trees")
pytest.importorskip("skl2onnx", reason="skl2onnx (the 'train' extra) converts the rhythm trees")

FS = 300.0


def _lead(rhythm: str, seed: int, *, fs: float = FS, duration_s: float = 30.0, noise_mv: float = 0.02) -> np.ndarray:
    sig, _ = synthesize_ecg(rhythm, seed=seed, duration_s=duration_s, fs=fs, leads=["II"], noise_mv=noise_mv)
    return sig[0]


def _value(features, name: str) -> float:
    return float(features.values[feature_names().index(name)])


# ------------------------------------------------------------------------------------- features


def test_feature_names_match_values_and_rhythm_features_come_first():
    f = record_features(_lead("SR", 1), FS)
    names = feature_names()
    assert f.values.shape == (len(names),) and f.values.dtype == np.float32
    assert names[: len(RhythmFeatures.names())] == RhythmFeatures.names()
    assert len(set(names)) == len(names)
    assert set(f.to_json()) == set(names)


def test_a_flat_line_has_no_beats_and_says_so():
    f = record_features(np.zeros(int(20 * FS)), FS)
    assert f.n_beats == 0
    assert math.isnan(_value(f, "hr_bpm")) and math.isnan(_value(f, "r_amp_mv"))
    assert _value(f, "flat_share") == 1.0
    assert _value(f, "duration_s") == pytest.approx(20.0)


def test_beats_given_or_found_give_the_same_features():
    x = _lead("SR", 2)
    a = record_features(x, FS).values
    b = record_features(x, FS, beats=detect_beats(x, FS)).values
    np.testing.assert_array_equal(a, b)


def test_a_stream_segment_uses_the_same_function():
    """The stream's last N seconds: its beats cut out of the running detector's and shifted."""
    x = _lead("SR", 3, duration_s=60.0)
    beats = detect_beats(x, FS)
    start, end = int(40 * FS), x.size
    seg = beats_in_segment(beats, start, end)
    assert seg.samples.min() >= 0 and seg.samples.max() < end - start
    f = record_features(x[start:end], FS, beats=seg)
    whole = record_features(x, FS)
    assert _value(f, "duration_s") == pytest.approx(20.0)
    assert _value(f, "hr_bpm") == pytest.approx(_value(whole, "hr_bpm"), rel=0.1)


def test_features_do_not_depend_on_the_sampling_rate():
    a = record_features(_lead("SR", 4, fs=300.0), 300.0)
    b = record_features(_lead("SR", 4, fs=500.0), 500.0)
    for name in ("hr_bpm", "rr_mean_s", "r_amp_mv", "qrs_width_ms"):
        assert _value(a, name) == pytest.approx(_value(b, name), rel=0.15), name
    ta = a.values[[feature_names().index(n) for n in TEMPLATE_NAMES]]
    tb = b.values[[feature_names().index(n) for n in TEMPLATE_NAMES]]
    assert np.corrcoef(ta, tb)[0, 1] > 0.95


def test_af_is_irregular_and_sinus_is_not():
    for seed in range(3):
        sr, af = record_features(_lead("SR", seed), FS), record_features(_lead("AFIB", seed), FS)
        for name in ("irregularity", "rr_hist_entropy", "rr_mad_rel"):
            assert _value(af, name) > _value(sr, name), (seed, name)


def test_real_records_give_finite_features_and_af_is_more_irregular(shared_data):
    from ecgedge.data.records import find_records, read_record

    refs = find_records(shared_data / "cinc2017" / "training2017")[:40]
    irregular = {"N": [], "A": []}
    finite = []
    for ref in refs:
        rec = read_record(ref)
        f = record_features(rec.signal[0], rec.fs)
        finite.append(np.isfinite(f.values).mean())
        if rec.labels[0] in irregular:
            irregular[rec.labels[0]].append(_value(f, "irregularity"))
    assert np.median(finite) > 0.95
    assert irregular["A"] and np.nanmedian(irregular["A"]) > 2 * np.nanmedian(irregular["N"])


# ------------------------------------------------------------------------------------- end to end


CLASS_RHYTHMS = {"N": ("SR", 0.02), "A": ("AFIB", 0.02), "O": ("SB", 0.02), "~": ("SR", 0.6)}


@pytest.fixture(scope="module")
def cinc_like(tmp_path_factory, wfdb):
    """A CinC-2017-layout folder of synthetic single-lead records (12 per class, 20 s at 300 Hz)."""
    root = tmp_path_factory.mktemp("cinc_like")
    rows = []
    for k, (label, (rhythm, noise)) in enumerate(CLASS_RHYTHMS.items()):
        for i in range(12):
            rid = f"S{k}{i:03d}"
            x = _lead(rhythm, 100 + i, duration_s=20.0, noise_mv=noise)
            wfdb.wrsamp(rid, fs=FS, units=["mV"], sig_name=["ECG"], p_signal=x[:, None].astype(np.float64), fmt=["16"],
                        adc_gain=[1000.0], baseline=[0], write_dir=str(root))
            rows.append(f"{rid},{label}")
    (root / "REFERENCE.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def trained(cinc_like, tmp_path_factory):
    import os

    from ecgedge.export.trees import export_rhythm_trees
    from ecgedge.train.rhythm_trees import RhythmTreesConfig, TreesConfig, train_rhythm_trees

    work = tmp_path_factory.mktemp("trees")
    old = os.environ.get("ECGEDGE_CACHE")
    os.environ["ECGEDGE_CACHE"] = str(work / "cache")
    try:
        cfg = RhythmTreesConfig(data=(str(cinc_like),), run_dir=str(work / "run"), folds=3, seed=0,
                                trees=TreesConfig(max_iter=20, min_samples_leaf=3))
        res = train_rhythm_trees(cfg, log=lambda m: None)
        export_rhythm_trees(res.run_dir, work / "export", log=lambda m: None)
    finally:
        if old is None:
            os.environ.pop("ECGEDGE_CACHE", None)
        else:
            os.environ["ECGEDGE_CACHE"] = old
    return res, work


def test_training_writes_cv_and_a_test_score_once(trained):
    res, work = trained
    cv = json.loads((work / "run" / "cv.json").read_text())
    assert cv["folds"] == 3 and len(cv["per_fold"]) == 3
    s = cv["summary"]["challenge_score"]
    assert s["mean"] == pytest.approx(np.mean(s["folds"]))
    split = json.loads((work / "run" / "split.json").read_text())
    assert not set(split["test"]) & set(split["development"])
    assert len(split["test"]) + len(split["development"]) == 48
    assert res.test["records"] == len(split["test"])
    assert "challenge_score" in res.test["intervals_95"]
    # Synthetic classes are easy: the trees learn them (a floor, not a speed or quality claim).
    assert res.test["challenge_score"] > 0.6


def test_features_are_cached_by_content(trained, cinc_like, tmp_path, monkeypatch):
    from ecgedge.train import rhythm_trees

    _, work = trained
    monkeypatch.setenv("ECGEDGE_CACHE", str(work / "cache"))
    copy = tmp_path / "copy"
    shutil.copytree(cinc_like, copy)
    logs = []
    table = rhythm_trees.feature_table([copy], log=logs.append)
    assert "extracting 0" in logs[0]  # a copy elsewhere hits the cache: the key is the records' bytes
    assert len(table.record_ids) == 48


def test_export_runs_in_onnxruntime_with_scikit_learns_decisions(trained):
    from ecgedge.manifest import load_manifest
    from ecgedge.runtime.trees_runner import TreesRunner, is_trees_export
    from ecgedge.train.rhythm_trees import load_trees_run

    res, work = trained
    export = work / "export"
    assert is_trees_export(export)
    m = load_manifest(export)
    assert m.data["features"]["names"] == list(feature_names()) and m.data["features"]["version"] == FEATURE_VERSION
    assert m.data["features"]["qrs"]["band_low_hz"] == 5.0
    assert m.labels == ("N", "A", "O", "~")
    assert set(m.data["files"]) == {"model.trees.onnx", "check_features.npz"}
    assert m.data["artefacts"]["fp32"]["parity"]["passed"]
    model, *_ = load_trees_run(work / "run")
    split = json.loads((work / "run" / "split.json").read_text())
    with np.load(export / "check_features.npz") as z:
        X, ids = z["X"], z["record_ids"]
    assert set(ids.tolist()) <= set(split["test"])  # the check records are held out
    runner = TreesRunner(export)
    runner.check_features(feature_names(), FEATURE_VERSION)
    with runner:
        label, prob = runner.decide(X)
        np.testing.assert_array_equal(label, model.predict(X))
        np.testing.assert_allclose(prob, model.predict_proba(X), atol=1e-5)
        np.testing.assert_allclose(prob.sum(1), 1.0, atol=1e-5)
        with pytest.raises(Exception, match="model expects"):
            runner.infer(X[:, :10])


def test_a_tampered_export_is_refused_at_load(trained, tmp_path):
    from ecgedge.errors import ArtefactError
    from ecgedge.runtime.trees_runner import TreesRunner

    _, work = trained
    copy = tmp_path / "export"
    shutil.copytree(work / "export", copy)
    onnx_file = copy / "model.trees.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[-20] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match="sha256"):
        TreesRunner(copy)
    runner = TreesRunner(work / "export")
    with pytest.raises(ArtefactError, match="version"):
        runner.check_features(feature_names(), FEATURE_VERSION + 1)


def test_evaluate_scores_the_export_with_intervals_and_flags_leakage(trained, cinc_like, tmp_path):
    from ecgedge.config import DataConfig, LabelScheme
    from ecgedge.evaluate.scoring import EvaluateConfig
    from ecgedge.evaluate.trees import evaluate_trees

    _, work = trained
    cfg = EvaluateConfig(source=str(work / "export"), data=DataConfig(paths=(str(cinc_like),)), labels=LabelScheme.cinc2017,
                         out=str(tmp_path / "eval"), bootstrap_repeats=50)
    res = evaluate_trees(cfg, progress=False)
    r = res.report["records"]
    assert res.report["counts"]["records_scored"] == 48
    assert "challenge_score" in r and "challenge_score" in r["intervals"]
    assert res.leakage  # the development records were trained on: said so
    assert {p.name for p in (tmp_path / "eval").iterdir()} >= {"report.json", "predictions.csv", "confusion.png"}


def test_cli_trains_exports_and_evaluates(cinc_like, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ecgedge.cli.main import app

    monkeypatch.setenv("ECGEDGE_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    assert "rhythm-trees" in runner.invoke(app, ["train", "--help"]).output
    r = runner.invoke(app, ["train", "rhythm-trees", "--data", str(cinc_like), "--run-dir", str(tmp_path / "run"), "--export",
                            str(tmp_path / "export"), "--folds", "2", "--max-iter", "10", "--jobs", "1"])
    assert r.exit_code == 0, r.output
    assert "CV challenge score" in r.output and (tmp_path / "export" / "manifest.json").is_file()
    r = runner.invoke(app, ["evaluate", str(tmp_path / "export"), "--data", str(cinc_like), "--labels", "cinc2017", "--out",
                            str(tmp_path / "eval"), "--bootstrap", "20", "-q"])
    assert r.exit_code == 0, r.output
    assert "challenge score" in r.output
    r = runner.invoke(app, ["train", "rhythm-trees", "--data", str(cinc_like), "--folds", "1"])
    assert r.exit_code != 0


def test_real_records_train_export_and_agree(shared_data, tmp_path, monkeypatch):
    """80 real CinC-2017 records: a tiny run end to end; ONNX Runtime decides as scikit-learn does on held-out records."""
    from ecgedge.export.trees import export_rhythm_trees, ort_decisions
    from ecgedge.train.rhythm_trees import RhythmTreesConfig, TreesConfig, load_trees_run, train_rhythm_trees

    monkeypatch.setenv("ECGEDGE_CACHE", str(tmp_path / "cache"))
    cfg = RhythmTreesConfig(data=(str(shared_data / "cinc2017" / "training2017"),), run_dir=str(tmp_path / "run"), folds=2,
                            max_records=80, trees=TreesConfig(max_iter=30, min_samples_leaf=5))
    train_rhythm_trees(cfg, log=lambda m: None)
    export_rhythm_trees(tmp_path / "run", tmp_path / "export", log=lambda m: None)
    model, _, split, _ = load_trees_run(tmp_path / "run")
    with np.load(tmp_path / "export" / "check_features.npz") as z:
        X = z["X"]
    label, _ = ort_decisions((tmp_path / "export" / "model.trees.onnx").read_bytes(), X)
    np.testing.assert_array_equal(label, model.predict(X))
    assert len(split["test"]) == len(X)


def test_the_window_runtime_refuses_a_trees_export_in_one_line(trained):
    from ecgedge.errors import ConfigError
    from ecgedge.runtime.loader import runner_from_export

    _, work = trained
    with pytest.raises(ConfigError, match="rhythm trees"):
        runner_from_export(work / "export")
