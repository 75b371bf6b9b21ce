"""The rhythm trees as an export folder: one ONNX-ML ``TreeEnsembleClassifier`` that takes a record's
feature vector (:mod:`ecgedge.beats.record_features`), a manifest, a parity check.

    OUT/
      manifest.json        input (the feature vector: names, version, units, the QRS detector's
                           settings, the single lead and the rates it serves), labels, the trees'
                           size, CV and test figures, training records by content hash, sha256 of
                           every file, and the parity of ONNX Runtime against scikit-learn
      model.trees.onnx     ai.onnx.ml TreeEnsembleClassifier: ``features`` (batch, F) float32 ->
                           ``label`` (batch,) int64, ``probabilities`` (batch, classes) float32
      check_features.npz   held-out test records' features with scikit-learn's decisions and
                           probabilities (``X``, ``y``, ``label``, ``probabilities``, ``record_ids``)

Feature extraction stays in numpy (the runtime and the stream call :func:`record_features`);
skl2onnx converts the trees (the ``train`` extra); onnxruntime's standard CPU build runs them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ecgedge.beats.qrs import MIN_FS_HZ, QrsConfig
from ecgedge.beats.record_features import FEATURE_VERSION, feature_names
from ecgedge.errors import ArtefactError
from ecgedge.fsio import FolderKind, owned_folder
from ecgedge.manifest import Manifest, ModelFigures, manifest_data

MODEL_FILE = "model.trees.onnx"
CHECK_FILE = "check_features.npz"
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
KIND = "rhythm-trees"
FEATURE_UNITS = ("record features of one ECG lead (ecgedge.beats.record_features.record_features: rhythm from beats, "
                 "morphology, signal quality; units in its docstring); NaN = undefined")
ML_OPSET = 3
ONNX_OPSET = 17
PROB_ATOL = 1e-5


def onnx_from_trees(model, n_features: int):
    """The fitted ``HistGradientBoostingClassifier`` as an ONNX model (``features`` -> ``label``, ``probabilities``)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    return to_onnx(model, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                   options={id(model): {"zipmap": False}}, target_opset={"": ONNX_OPSET, "ai.onnx.ml": ML_OPSET})


def tree_figures(model) -> tuple[int, int, int]:
    """(trees, nodes, the largest depth) of a fitted ``HistGradientBoostingClassifier``."""
    trees = [p for per_iter in model._predictors for p in per_iter]
    depth = 0
    for t in trees:
        nodes = t.nodes
        d = np.zeros(len(nodes), np.int64)
        for i, n in enumerate(nodes):
            if not n["is_leaf"]:
                d[n["left"]] = d[i] + 1
                d[n["right"]] = d[i] + 1
        depth = max(depth, int(d.max()))
    return len(trees), int(sum(len(t.nodes) for t in trees)), depth


def ort_decisions(onnx_bytes: bytes, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of ONNX Runtime's CPU provider on features ``X``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    label, prob = sess.run(["label", OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})
    return np.asarray(label, np.int64), np.asarray(prob, np.float32)


def export_rhythm_trees(run_dir: str | Path, out: str | Path, *, overwrite: bool = False, name: str | None = None,
                        log: Callable[[str], None] = print) -> Path:
    """Export a rhythm-trees run (:func:`~ecgedge.train.rhythm_trees.train_rhythm_trees`) to ``out``.

    Refuses (:class:`ArtefactError`) when ONNX Runtime's decision differs from scikit-learn's on any
    of the run's held-out check records, or a probability differs by more than ``PROB_ATOL``.
    """
    from ecgedge.train.rhythm_trees import CLASSES, load_trees_run

    run = Path(run_dir)
    model, metrics, split, config = load_trees_run(run)
    names = feature_names()
    if metrics.get("feature_version") != FEATURE_VERSION or tuple(metrics.get("features", ())) != names:
        raise ArtefactError(f"{run} was trained on features version {metrics.get('feature_version')}; this ecgedge computes "
                            f"version {FEATURE_VERSION}: retrain it")
    onnx_model = onnx_from_trees(model, len(names))
    onnx_bytes = onnx_model.SerializeToString()
    opsets = {o.domain or "": int(o.version) for o in onnx_model.opset_import}  # what the converter wrote
    with np.load(run / "check.npz") as z:
        X, y, ids = z["X"], z["y"], z["record_ids"]
    sk_label = model.predict(X).astype(np.int64)
    sk_prob = model.predict_proba(X).astype(np.float32)
    label, prob = ort_decisions(onnx_bytes, X)
    differ = int(np.sum(label != sk_label))
    max_err = float(np.max(np.abs(prob - sk_prob))) if X.size else 0.0
    parity = {"records": int(len(X)), "decisions_differ": differ, "max_abs_probability_error": max_err,
              "tolerance": PROB_ATOL, "reference": "scikit-learn predict/predict_proba", "passed": differ == 0 and max_err <= PROB_ATOL}
    if not parity["passed"]:
        raise ArtefactError(f"ONNX Runtime differs from scikit-learn on {differ} of {len(X)} check records "
                            f"(largest probability error {max_err:.2e}, tolerance {PROB_ATOL:g}): not exported")
    log(f"parity: ONNX Runtime and scikit-learn agree on {len(X)} held-out records (largest probability error {max_err:.1e})")
    trees, nodes, depth = tree_figures(model)
    test = metrics["test"]
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data = manifest_data(
        name=name or Path(out).name, created=created, input_name=INPUT_NAME, output_name=OUTPUT_NAME, leads=["ECG"],
        labels=list(CLASSES), label_scheme="cinc2017", fs_hz=300.0, window_samples=0,
        model=ModelFigures(f"gradient-boosted trees (scikit-learn HistGradientBoostingClassifier): {trees} trees, "
                           f"{nodes} nodes, depth <= {depth}", params=nodes, macs_per_window=trees * depth),
        preprocess={"kind": "record features", "feature_version": FEATURE_VERSION, "morphology_band_hz": [0.5, 40.0]},
        window={"kind": "record", "samples": 0, "min_s": 9.0,
                "note": "a whole record, or a stream's last N seconds (the same function); trained on 9-61 s records"},
        source={"run_dir": str(run.resolve()), "trees_sha256": _sha(run / "trees.pkl"), "config": config},
        artefacts={"fp32": {"file": MODEL_FILE, "precision": "fp32", "runtime": "onnx", "opset": opsets,
                            "parity": parity, "status": "reference"}},
        kind=KIND,
        features={"names": list(names), "count": len(names), "version": FEATURE_VERSION, "units": FEATURE_UNITS,
                  "extractor": "ecgedge.beats.record_features.record_features", "qrs": QrsConfig().to_json(),
                  "min_fs_hz": MIN_FS_HZ, "lead": "any single ECG lead (CinC-2017: AliveCor, lead I-like)"},
        cv=metrics.get("cv_summary"),
        test={k: test[k] for k in ("records", "challenge_score", "macro_f1", "accuracy", "per_class_f1", "intervals_95") if k in test},
        gate={"records": list(map(str, split["test"])), "level": "record", "passed": True,
              "note": "the fixed test split, scored once by the training run (metrics in 'test')"},
        training_records={"count": len(split["train_used"]), "sha256": split["train_sha256"]},
        check_data={"file": CHECK_FILE, "records": int(len(X))},
        versions=_versions(),
        recommended={"ort-cpu": "fp32"},
    )
    data["input"].update(shape=["batch", len(names)], units=FEATURE_UNITS, window_samples=0, window_s=None,
                         record_fs_hz="any rate >= 100 Hz (features are rate-independent; trained at 300 Hz)")
    data["output"].update(kind="class probabilities (rows sum to 1); output 'label' is their argmax")
    with owned_folder(out, FolderKind.export, replace=overwrite, inputs=[run]) as stage:
        (stage / MODEL_FILE).write_bytes(onnx_bytes)
        np.savez(stage / CHECK_FILE, X=X, y=y, label=sk_label, probabilities=sk_prob, record_ids=ids)
        Manifest(stage, data).save()
    size = sum(p.stat().st_size for p in Path(out).iterdir() if p.is_file())
    log(f"export: {out} ({trees} trees, {nodes} nodes, {size / 1024:.0f} KiB in all; test challenge score "
        f"{test['challenge_score']:.3f})")
    return Path(out)


def _sha(path: Path) -> str:
    from ecgedge.hashing import file_sha256

    return file_sha256(path)


def _versions() -> dict:
    import platform

    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn

    from ecgedge import __version__

    return {"ecgedge": __version__, "scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "python": platform.python_version(), "machine": platform.machine()}
