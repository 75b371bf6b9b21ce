"""Export + accuracy gate on a classifier trained on generated records; broken artefacts are rejected."""

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import PARITY_ATOL, ExportConfig
from ecgedge.errors import ArtefactError, ConfigError, GateFailed
from ecgedge.export.onnx_export import check_onnx
from ecgedge.export.check import check_export
from ecgedge.export.pipeline import main_export
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
    parity = m["artefacts"]["fp32"]["parity"]
    assert parity["max_abs_logit_error"] < 1e-3 and parity["passed"] and parity["tolerance"] == PARITY_ATOL
    # the validation tolerance travels with the export (Optimum-style), for --check to re-apply
    assert m["gate"]["parity_atol"] == PARITY_ATOL and m["export_config"]["parity_atol"] == PARITY_ATOL
    assert m["artefacts"]["fp32"]["gate"]["ort-cpu"]["thresholds"]["max_logit_error"] == PARITY_ATOL
    assert "max_logit_error" not in m["artefacts"]["int8"]["gate"]["ort-cpu"]["thresholds"]  # INT8: decisions are judged


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


def _shift_reference_logits(folder, delta):
    """Move the stored PyTorch reference logits by ``delta`` (decisions kept) and re-hash the folder."""
    path = folder / "check_windows.npz"
    data = dict(np.load(path))
    data["reference_logits"] = data["reference_logits"] + np.float32(delta)
    np.savez(path, **data)
    Manifest(folder, json.loads((folder / "manifest.json").read_text())).save()


def test_check_re_applies_the_parity_tolerance_from_the_manifest(exported, tmp_path):
    """FP32 ONNX vs the stored PyTorch logits, within the manifest's gate.parity_atol (2e-3 off: fails
    at the default 1e-3, passes at 1e-2 read from the manifest; INT8 and FP16 are judged on decisions)."""
    folder = _copy(exported, tmp_path)
    _shift_reference_logits(folder, 2e-3)
    with pytest.raises(GateFailed, match=r"fp32@ort-cpu: max \|logit error\| vs the FP32 reference .* exceeds the tolerance 0.001") as exc:
        check_export(folder, log=lambda *_: None)
    assert "int8@" not in str(exc.value) and "fp16@" not in str(exc.value)
    m = json.loads((folder / "manifest.json").read_text())
    m["gate"]["parity_atol"] = 1e-2
    (folder / "manifest.json").write_text(json.dumps(m))
    assert check_export(folder, log=lambda *_: None).passed


def test_check_of_an_export_without_a_recorded_tolerance_uses_the_default(exported, tmp_path):
    """A manifest written before gate.parity_atol existed loads, and is checked at 1e-3."""
    folder = _copy(exported, tmp_path)
    m = json.loads((folder / "manifest.json").read_text())
    del m["gate"]["parity_atol"], m["artefacts"]["fp32"]["parity"]["tolerance"], m["export_config"]["parity_atol"]
    (folder / "manifest.json").write_text(json.dumps(m))
    assert load_manifest(folder).parity_atol == PARITY_ATOL
    assert check_export(folder, log=lambda *_: None).passed


def test_check_runs_without_the_train_extra(exported):
    """``ecgedge export --check`` is meant for the device: it needs neither torch nor onnx (nor the rest
    of ``pip install 'ecgedge[train]'``); they are blocked here as where they are not installed."""
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        TRAIN = {{"torch", "onnx", "onnxscript", "wfdb", "openpyxl", "h5py", "matplotlib"}}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in TRAIN:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Block())
        from ecgedge.export.check import check_export
        res = check_export({str(exported.folder)!r}, log=lambda *_: None)
        assert res.passed and not TRAIN & set(sys.modules), sorted(TRAIN & set(sys.modules))
        print("ok", len(res.reports))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "ok 3" in res.stdout


def test_parity_tolerance_must_be_positive():
    with pytest.raises(ConfigError, match="parity_atol must be > 0"):
        ExportConfig(parity_atol=0.0)


def test_every_export_option_defaults_to_the_configs():
    """The CLI repeats no default: each option named after an ExportConfig field has the field's default
    (source, out and target default to None: they are filled in from the run and the config)."""
    import dataclasses

    import typer

    command = typer.main.get_command(app).commands["export"]
    options = {p.name: p.default for p in command.params}
    fields = {f.name: f.default for f in dataclasses.fields(ExportConfig) if f.name in options}
    assert {"parity_atol", "allow_incomplete", "min_f1", "min_gate_windows", "int8", "opset"} <= set(fields)
    for name, want in fields.items():
        if name in ("source", "out", "target", "min_class_f1"):
            continue
        assert options[name] in (want, getattr(want, "value", want)), name


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
