"""``ecgedge evaluate`` on the generated set's classifier (checkpoint and FP32 export), on resampled,
single-lead and copied records, and (where ../shared/data exists) on the real CinC-2017 validation set."""

from __future__ import annotations

import itertools

import csv
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import DataConfig, ExportConfig, LabelScheme
from ecgedge.data.provenance import record_content_sha256
from ecgedge.data.records import find_records, read_record
from ecgedge.evaluate.metrics import classification_report
from ecgedge.evaluate.scoring import EvaluateConfig, evaluate_source

# FP32 ONNX vs PyTorch on the same windows: the export's parity check allows 1e-3 on logits; the
# probabilities in predictions.csv (6 decimals) differed by 1e-6 (rounding) on x86-64. Bound: 1e-4.
PROB_TOL_EXPORT = 1e-4


@pytest.fixture(scope="module")
def exported(clf_run, tmp_path_factory):
    """The FP32 export of the session's classifier (the gate runs; INT8 is left out to save time)."""
    from ecgedge.export.pipeline import main_export

    out = tmp_path_factory.mktemp("eval-export") / "clf"
    # min_gate_windows: the generated set holds out a few dozen windows, fewer than the default 100
    return main_export(ExportConfig(source=str(clf_run.run_dir), out=str(out), int8=False, min_gate_windows=10), progress=False,
                       log=lambda *_: None).folder


@pytest.fixture(scope="module")
def split(clf_run) -> dict:
    return json.loads((clf_run.run_dir / "split.json").read_text())


@pytest.fixture(scope="module")
def headers(synth) -> dict[str, str]:
    """Record id -> .hea path of the generated set."""
    return {r.record_id: r.path for r in find_records(synth / "data")}


def _evaluate(source, paths, out, synth, **kw):
    cfg = EvaluateConfig(source=str(source), data=DataConfig(paths=tuple(map(str, paths)), cache_dir=str(synth / "cache")),
                         labels=LabelScheme.chapman4, out=str(out), bootstrap_repeats=200, **kw)
    return evaluate_source(cfg, progress=False)


def _predictions(folder: Path) -> list[dict]:
    with open(folder / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def _probs(rows: list[dict]) -> np.ndarray:
    return np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in rows])


def _invoke(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, ["evaluate", *args, "-q"])


def test_checkpoint_and_fp32_export_agree_on_held_out_records(clf_run, exported, split, headers, synth, tmp_path):
    held_out = [headers[r] for r in split["test"]]
    ckpt = _evaluate(clf_run.run_dir, held_out, tmp_path / "ckpt", synth)
    res = _invoke(str(exported), *[a for p in held_out for a in ("--data", p)], "--labels", "chapman4",
                  "--precision", "fp32", "--out", str(tmp_path / "export"), "--cache-dir", str(synth / "cache"))
    assert res.exit_code == 0, res.output
    assert "macro F1" in res.stdout and "evaluation folder:" in res.stdout
    assert "WARNING" not in res.output  # held-out records: disjoint from the training set

    a, b = _predictions(tmp_path / "ckpt"), _predictions(tmp_path / "export")
    assert [r["record_id"] for r in a] == [r["record_id"] for r in b] == sorted(split["test"])
    assert [r["predicted"] for r in a] == [r["predicted"] for r in b]
    assert np.abs(_probs(a) - _probs(b)).max() < PROB_TOL_EXPORT

    report = json.loads((tmp_path / "export" / "report.json").read_text())
    assert report["source"]["kind"] == "export" and report["source"]["precision"] == "fp32" and report["source"]["backend"] == "ort-cpu"
    assert ckpt.report["source"]["kind"] == "checkpoint" and ckpt.report["source"]["backend"] == "torch"
    for r in (ckpt.report, report):
        assert r["leakage"]["checked"] and r["leakage"]["hashes_known"] and r["leakage"]["records"] == 0
        assert r["counts"]["records_scored"] == len(held_out) and r["counts"]["records_skipped"] == 0
    # One 8.192 s window per 10 s record, as in training: the same record-level score as the run's own test metrics.
    metrics = json.loads((clf_run.run_dir / "metrics.json").read_text())
    assert ckpt.records["macro_f1"] == pytest.approx(metrics["test"]["records"]["macro_f1"], abs=1e-12)


def test_report_metrics_are_those_of_predictions_csv(clf_run, split, headers, synth, tmp_path):
    res = _evaluate(clf_run.run_dir, [headers[r] for r in split["test"]], tmp_path / "ev", synth)
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    rows = _predictions(tmp_path / "ev")
    classes = report["records"]["class_names"]
    recomputed = classification_report([classes.index(r["truth"]) for r in rows], [classes.index(r["predicted"]) for r in rows], classes)
    rec = report["records"]
    for key in ("macro_f1", "weighted_f1", "accuracy"):
        assert rec[key] == pytest.approx(getattr(recomputed, key), abs=1e-12)
    assert rec["per_class_f1"] == pytest.approx(dict(zip(classes, recomputed.per_class_f1)), abs=1e-12)
    assert rec["support"] == dict(zip(classes, recomputed.support.tolist()))
    assert json.loads((tmp_path / "ev" / "confusion.json").read_text())["records"] == recomputed.confusion.tolist()
    assert sum(int(r["windows"]) for r in rows) == report["counts"]["windows"]
    assert np.allclose(_probs(rows).sum(1), 1.0, atol=1e-5)
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 1000
    assert "mean of the softmax probabilities" in report["aggregation"]
    # Every interval holds its point estimate.
    intervals = rec["intervals"]
    assert {"macro_f1", "weighted_f1", "accuracy"} <= set(intervals)
    for key, (lo, hi) in intervals.items():
        point = rec["per_class_f1"][key[3:]] if key.startswith("f1_") else rec[key]
        assert lo <= point + 1e-12 and point <= hi + 1e-12, (key, lo, point, hi)
    assert "macro_f1" in report["windows"] and res.out == tmp_path / "ev"


def _renamed_copy(hea: str, new_id: str, folder: Path) -> None:
    """The record under another name: the same data file bytes, a header naming the new files."""
    src = Path(hea)
    text = src.read_text().replace(src.stem, new_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{new_id}.hea").write_text(text)
    shutil.copyfile(src.with_suffix(".mat"), folder / f"{new_id}.mat")


def test_leak_warning_by_id_and_by_content_hash(clf_run, exported, split, headers, synth, tmp_path):
    trained = split["train_used"]
    assert set(split["train_sha256"]) == set(trained)
    data = tmp_path / "hospital"
    data.mkdir()
    for rid in trained[:3]:   # training records under their own ids
        for suffix in (".hea", ".mat"):
            shutil.copyfile(Path(headers[rid]).with_suffix(suffix), data / f"{rid}{suffix}")
    _renamed_copy(headers[trained[3]], "HOSP0001", data)
    for rid in split["test"][:2]:   # and two records the model never saw
        for suffix in (".hea", ".mat"):
            shutil.copyfile(Path(headers[rid]).with_suffix(suffix), data / f"{rid}{suffix}")
    mat = Path(headers[trained[3]]).with_suffix(".mat")
    assert record_content_sha256(data / "HOSP0001.hea") == hashlib.sha256(mat.read_bytes()).hexdigest() == split["train_sha256"][trained[3]]

    for source in (clf_run.run_dir, exported):
        out = tmp_path / f"ev-{Path(source).name}"
        res = _invoke(str(source), "--data", str(data), "--labels", "chapman4", "--out", str(out), "--cache-dir", str(synth / "cache"))
        assert res.exit_code == 0, res.output
        assert ("WARNING: data leakage: 4 of 6 evaluated records match the model's training records "
                "(3 by record id; 4 by content hash; 1 renamed copy)") in res.stderr
        leak = json.loads((out / "report.json").read_text())["leakage"]
        assert leak["by_id_count"] == 3 and leak["by_hash_count"] == 4 and leak["records"] == 4
        assert leak["renamed_copies"] == ["HOSP0001"] and leak["by_hash"]["HOSP0001"] == trained[3]


def _write_wfdb(folder: Path, rid: str, signal_mv: np.ndarray, fs: float, leads, dx: tuple[str, ...]) -> None:
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(rid, fs=fs, units=["mV"] * len(leads), sig_name=list(leads), p_signal=signal_mv.T.astype(np.float64),
                fmt=["16"] * len(leads), adc_gain=[1000.0] * len(leads), baseline=[0] * len(leads),
                comments=[f"Dx: {','.join(dx)}"], write_dir=str(folder))


def test_records_at_another_rate_are_resampled(clf_run, split, headers, synth, tmp_path):
    """The held-out records resampled 500 -> 360 Hz (polyphase, 18/25) score as the originals do."""
    from scipy.signal import resample_poly

    ids = split["test"]
    for rid in ids:
        rec = read_record(headers[rid])
        _write_wfdb(tmp_path / "360hz", rid, resample_poly(rec.signal.astype(np.float64), 18, 25, axis=1), 360.0, rec.lead_names, rec.labels)
    assert read_record(tmp_path / "360hz" / f"{ids[0]}.hea").fs == 360.0
    _evaluate(clf_run.run_dir, [headers[r] for r in ids], tmp_path / "500", synth)
    resampled = _evaluate(clf_run.run_dir, [tmp_path / "360hz"], tmp_path / "360", synth)
    assert resampled.report["counts"]["records_scored"] == len(ids)
    a, b = _predictions(tmp_path / "500"), _predictions(tmp_path / "360")
    # Two resampling paths (500 -> 250 vs 500 -> 360 -> 250 Hz) and 1 µV quantisation differ slightly below 40 Hz
    # (6e-4 at most, seen on x86-64): every decision must agree and class probabilities stay within 0.01.
    assert [r["predicted"] for r in a] == [r["predicted"] for r in b]
    assert np.abs(_probs(a) - _probs(b)).max() < 0.01


def test_twelve_lead_model_on_single_lead_records_is_refused_in_one_line(clf_run, split, headers, synth, tmp_path):
    for rid in split["test"][:3]:
        rec = read_record(headers[rid])
        _write_wfdb(tmp_path / "one-lead", rid, rec.signal[[1]], rec.fs, ["II"], rec.labels)
    res = _invoke(str(clf_run.run_dir), "--data", str(tmp_path / "one-lead"), "--labels", "chapman4", "--out", str(tmp_path / "ev"),
                  "--cache-dir", str(synth / "cache"))
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "needs 12 leads I, II, III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6" in lines[0] and "have II (1 lead)" in lines[0]
    assert not (tmp_path / "ev").exists()


def test_label_scheme_that_is_not_the_models_is_refused_in_one_line(clf_run, synth, tmp_path):
    res = _invoke(str(clf_run.run_dir), "--data", str(synth / "data"), "--labels", "cinc2017", "--out", str(tmp_path / "ev"))
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "classifies SB, AFIB, GSVT, SR (chapman4); --labels cinc2017 gives N, A, O, ~; evaluate it with --labels chapman4" in lines[0]


def test_checkpoint_refuses_export_options(clf_run, synth, tmp_path):
    res = _invoke(str(clf_run.run_dir), "--data", str(synth / "data"), "--labels", "chapman4", "--precision", "int8", "--out", str(tmp_path / "ev"))
    assert res.exit_code == 2 and "apply to export folders" in res.stderr


def test_evaluating_an_export_imports_no_torch(exported, split, headers, synth, tmp_path):
    """The whole command, CLI included, on an export folder with torch made unimportable."""
    args = ["evaluate", str(exported), "--labels", "chapman4", "--out", str(tmp_path / "ev"), "--cache-dir", str(synth / "cache"), "-q"]
    for rid in split["test"]:
        args += ["--data", headers[rid]]
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, Block())
        from ecgedge.cli.main import app
        sys.argv = ["ecgedge", *{args!r}]
        try:
            app()
        except SystemExit as exc:
            assert not exc.code, exc.code
        assert "torch" not in sys.modules
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "ok" in res.stdout
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["counts"]["records_scored"] == len(split["test"])


@pytest.mark.data
def test_cinc2017_validation_with_a_small_single_lead_model(shared_data, tmp_path):
    """A single-lead cinc2017 model trained on 32 training2017 records (two of them also in validation/)
    scored on the 30 records of cinc2017/validation: challenge score with its interval, and the leak of the two."""
    from ecgedge.config import ClassifyConfig, WindowConfig
    from ecgedge.train import classify

    train_dir, val_dir = shared_data / "cinc2017" / "training2017", shared_data / "cinc2017" / "validation"
    if not (val_dir / "REFERENCE.csv").is_file() or not (train_dir / "REFERENCE.csv").is_file():
        pytest.skip(f"CinC-2017 records not found under {shared_data / 'cinc2017'}")
    val_ids = sorted(p.stem for p in val_dir.glob("*.hea"))
    reference = dict(line.split(",") for line in (train_dir / "REFERENCE.csv").read_text().split())
    picked = val_ids[:4]   # the same files as in training2017: a leak by id and by hash
    for cls in ("N", "A", "O", "~"):  # the first 8 of each class in id order: 32 records of training2017 read, no more
        picked += list(itertools.islice((r for r in sorted(reference) if reference[r] == cls and r not in val_ids
                                         and (train_dir / f"{r}.hea").is_file()), 8))
    data = tmp_path / "train"
    data.mkdir()
    for rid in picked:
        for suffix in (".hea", ".mat"):
            (data / f"{rid}{suffix}").symlink_to(train_dir / f"{rid}{suffix}")
    shutil.copyfile(train_dir / "REFERENCE.csv", data / "REFERENCE.csv")
    cache = tmp_path / "cache"
    run = classify(ClassifyConfig(data=DataConfig(paths=(str(data),), cache_dir=str(cache)), labels=LabelScheme.cinc2017, leads=("I",),
                                  window=WindowConfig(hop=2048, max_per_record=4), epochs=3, batch_size=32, seed=0,
                                  run_dir=str(tmp_path / "run")), progress=False)
    res = evaluate_source(EvaluateConfig(source=str(run.run_dir), data=DataConfig(paths=(str(val_dir),), cache_dir=str(cache)),
                                         labels=LabelScheme.cinc2017, out=str(tmp_path / "ev"), bootstrap_repeats=200), progress=False)
    r, counts = res.report["records"], res.report["counts"]
    assert counts["records_found"] == 30 and counts["records_scored"] + counts["records_skipped"] == 30
    lo, hi = r["intervals"]["challenge_score"]
    assert 0 <= lo <= r["challenge_score"] <= hi <= 1
    leak = res.report["leakage"]
    used = set(json.loads((run.run_dir / "split.json").read_text())["train_used"])
    scored = {row["record_id"] for row in _predictions(tmp_path / "ev")}
    expected = sorted(set(picked[:4]) & used & scored)
    assert expected, "the seeded split should train on at least one of the four validation records"
    assert sorted(leak["by_id"]) == sorted(leak["by_hash"]) == expected
