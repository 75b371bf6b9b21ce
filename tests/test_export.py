"""Export + accuracy gate on a classifier trained on generated records; broken artefacts are rejected."""

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import ExportConfig
from ecgedge.errors import ArtefactError, GateFailed
from ecgedge.export.onnx_export import check_onnx
from ecgedge.export.pipeline import check_export, main_export
from ecgedge.manifest import Manifest, load_manifest
from ecgedge.runtime import Precision, runner_from_export


# The generated set holds out a few dozen windows, fewer than the gate's default minimum of 100:
# these tests lower it explicitly (the rule itself: tests/test_weak_runs_and_errors.py).
FEW_WINDOWS = "10"


@pytest.fixture(scope="module")
def exported(clf_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "clf"
    return main_export(ExportConfig(source=str(clf_run.run_dir), out=str(out), int8=True, fp16=True, min_gate_windows=int(FEW_WINDOWS)),
                       progress=False, log=lambda *_: None)


def _copy(exported, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(exported.folder, dst)
    return dst


def test_int8_and_fp16_pass_the_gate(exported):
    assert exported.passed
    m = exported.manifest.data
    assert {"fp32", "int8", "fp16"} <= set(m["artefacts"])
    for key in ("int8", "fp16"):
        art = m["artefacts"][key]
        assert art["status"] == "accepted"
        gate = art["gate"]["ort-cpu"]
        assert gate["passed"] and gate["f1_drop"] <= 0.01 and gate["agreement"] >= 0.99
    assert m["artefacts"]["fp32"]["parity"]["max_abs_logit_error"] < 1e-3


def test_int8_file_is_under_30_percent_of_fp32(exported):
    f = exported.folder
    assert (f / "model.int8.onnx").stat().st_size < 0.30 * (f / "model.fp32.onnx").stat().st_size


def test_manifest_is_self_describing(exported, clf_run):
    m = load_manifest(exported.folder).data
    assert m["input"]["leads"][:3] == ["I", "II", "III"] and m["input"]["fs_hz"] == 250.0 and m["input"]["window_samples"] == 2048
    assert m["output"]["labels"] == ["SB", "AFIB", "GSVT", "SR"]
    assert m["preprocess"]["bandpass_low_hz"] == 0.5 and m["preprocess"]["bandpass_sos"]
    assert m["opset"] >= 17 and m["versions"]["onnxruntime"]
    assert len(m["source"]["checkpoint_sha256"]) == 64
    assert set(m["files"]) >= {"model.fp32.onnx", "model.int8.onnx", "model.fp16.onnx", "check_windows.npz"}
    calib = set(m["artefacts"]["int8"]["quantization"]["calib_records"])
    assert calib and not calib & set(m["gate"]["records"])  # calibration never sees the gate's records
    assert m["model"]["flops_per_window"] > 0


def test_int8_runtime_matches_fp32_decisions(exported):
    data = np.load(exported.folder / "check_windows.npz")
    with runner_from_export(exported.folder, Precision.int8) as r:
        logits = r.infer(data["windows"])
    assert (logits.argmax(1) == data["reference_logits"].argmax(1)).mean() >= 0.99


def test_check_re_verifies(exported):
    res = check_export(exported.folder, log=lambda *_: None)
    assert res.passed and {r.artefact for r in res.reports} == {"fp32", "int8", "fp16"}


def test_tampered_artefact_rejected(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    p = folder / "model.int8.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match="sha256 differs"):
        check_export(folder, log=lambda *_: None)


def test_truncated_artefact_rejected(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    p = folder / "model.fp32.onnx"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(ArtefactError, match="truncated"):
        load_manifest(folder)


def test_wrong_weights_fail_the_gate(exported, tmp_path):
    """A model with scrambled weights, even with its hash re-signed, is caught by the gate."""
    folder = _copy(exported, tmp_path)
    _scramble_weights(folder / "model.fp16.onnx")
    Manifest(folder, json.loads((folder / "manifest.json").read_text())).save()
    with pytest.raises(GateFailed, match="fp16@ort-cpu"):
        check_export(folder, log=lambda *_: None)


def test_wrong_opset_and_shape_rejected(exported, tmp_path):
    model = onnx.load(str(exported.folder / "model.fp32.onnx"))
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 16
    onnx.save(model, str(tmp_path / "old.onnx"))
    with pytest.raises(ArtefactError, match="opset"):
        check_onnx(tmp_path / "old.onnx", expected_shape=(12, 2048), opset=18)
    with pytest.raises(ArtefactError, match="input shape"):
        check_onnx(exported.folder / "model.fp32.onnx", expected_shape=(12, 2500), opset=18)


def test_cli_export_and_check(clf_run, tmp_path):
    r = CliRunner()
    res = r.invoke(app, ["export", str(clf_run.run_dir), "--int8", "--out", str(tmp_path / "e"), "--min-gate-windows", FEW_WINDOWS, "-q"])
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output and "model.int8.onnx" in res.output
    res = r.invoke(app, ["export", "--check", str(tmp_path / "e")])
    assert res.exit_code == 0 and "check passed" in res.output


def _scramble_weights(path, seed=0):
    """Permute every weight tensor of an ONNX file in place: the graph stays valid, the model is wrong."""
    model = onnx.load(str(path))
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim >= 2:
            init.CopyFrom(numpy_helper.from_array(rng.permutation(w.ravel()).reshape(w.shape).astype(w.dtype), init.name))
    onnx.save(model, str(path))


def test_cli_gate_failure_exits_3(clf_run, tmp_path, monkeypatch):
    """An INT8 model that quantized wrongly (weights scrambled after the real quantizer ran) fails the
    gate during export: exit 3, the artefact marked rejected, and the runtime refuses to load it."""
    import ecgedge.export.pipeline as pipeline

    real = pipeline.int8_onnx_from_onnx

    def broken_int8(fp32, out, *args, **kwargs):
        settings = real(fp32, out, *args, **kwargs)
        _scramble_weights(out)
        return settings

    monkeypatch.setattr(pipeline, "int8_onnx_from_onnx", broken_int8)
    res = CliRunner().invoke(app, ["export", str(clf_run.run_dir), "--out", str(tmp_path / "e"), "--min-gate-windows", FEW_WINDOWS, "-q"])
    assert res.exit_code == 3, res.output
    assert "accuracy gate failed" in res.output and "int8@ort-cpu" in res.output
    m = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert m["artefacts"]["int8"]["status"] == "rejected"
    assert m["artefacts"]["fp32"]["status"] != "rejected"
    assert m["recommended"]["ort-cpu"] == "fp32" and "int8 is rejected" in m["recommended_notes"]["ort-cpu"]
    with pytest.raises(ArtefactError, match="rejected"):
        runner_from_export(tmp_path / "e", Precision.int8)
