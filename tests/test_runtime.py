"""ecgedge.runtime on tiny ONNX graphs built in code (no torch): spec checks, manifest verification,
tampering, and the no-torch guarantee of the deployment runtime."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ecgedge.errors import ArtefactError, BackendUnavailable, ShapeMismatch
from ecgedge.manifest import FORMAT, Manifest, load_manifest
from ecgedge.runtime import Backend, InputSpec, Precision, available_backends, runner_from_export, runner_from_onnx
from ecgedge.runtime.base import require_backend
from helpers import LEADS, SAMPLES, W, tiny_onnx


def make_export(folder):
    folder.mkdir(parents=True, exist_ok=True)
    tiny_onnx(folder / "model.fp32.onnx")
    m = Manifest(folder, {
        "format": FORMAT, "name": "tiny",
        "input": {"name": "ecg", "shape": ["batch", 2, SAMPLES], "leads": list(LEADS), "fs_hz": 250.0, "window_samples": SAMPLES},
        "output": {"name": "logits", "labels": ["A", "B", "C"]},
        "artefacts": {"fp32": {"file": "model.fp32.onnx", "precision": "fp32", "runtime": "onnx", "status": "reference"}},
    })
    m.save()
    return folder


SPEC = InputSpec("ecg", LEADS, 250.0, SAMPLES)


def test_runner_matches_numpy_reference(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 2, SAMPLES)).astype(np.float32)
    with runner_from_onnx(tiny_onnx(tmp_path / "m.onnx"), SPEC) as r:
        out = r.infer(x)
    np.testing.assert_allclose(out, x.mean(-1) @ W, atol=1e-5)


def test_runner_lifecycle_is_lazy(tmp_path):
    r = runner_from_onnx(tiny_onnx(tmp_path / "m.onnx"), SPEC)
    assert not r.active
    with pytest.raises(RuntimeError, match="not active"):
        r.infer(np.zeros((1, 2, SAMPLES), np.float32))


@pytest.mark.parametrize("x, kwargs, message", [
    (np.zeros((1, 2, 100), np.float32), {}, r"window \(2, 100\); model expects \(batch, 2, 64\) at 250 Hz"),
    (np.zeros((1, 3, 64), np.float32), {}, r"window \(3, 64\)"),
    (np.zeros((1, 2, 64), np.int16), {}, "dtype int16"),
    (np.full((1, 2, 64), np.nan, np.float32), {}, "NaN"),
    (np.zeros((1, 2, 64), np.float32), {"fs_hz": 500.0}, "windows at 500 Hz; model expects 250 Hz"),
    (np.zeros((1, 2, 64), np.float32), {"leads": ("II", "I")}, "leads II, I; model expects I, II"),
])
def test_input_checked_against_spec(tmp_path, x, kwargs, message):
    with runner_from_onnx(tiny_onnx(tmp_path / "m.onnx"), SPEC) as r:
        with pytest.raises(ShapeMismatch, match=message):
            r.infer(x, **kwargs)


def test_export_folder_loads_and_runs(tmp_path):
    folder = make_export(tmp_path / "exp")
    with runner_from_export(folder) as r:
        assert r.infer(np.ones((2, 2, SAMPLES), np.float32)).shape == (2, 3)


def test_tampered_file_is_refused(tmp_path):
    folder = make_export(tmp_path / "exp")
    data = bytearray((folder / "model.fp32.onnx").read_bytes())
    data[-5] ^= 0xFF
    (folder / "model.fp32.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match="sha256 differs"):
        runner_from_export(folder)


def test_truncated_file_is_refused(tmp_path):
    folder = make_export(tmp_path / "exp")
    p = folder / "model.fp32.onnx"
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(ArtefactError, match="truncated"):
        load_manifest(folder)


def test_unlisted_or_missing_files_are_refused(tmp_path):
    folder = make_export(tmp_path / "exp")
    (folder / "extra.onnx").write_bytes(b"x")
    with pytest.raises(ArtefactError, match="not listed"):
        load_manifest(folder)
    (folder / "extra.onnx").unlink()
    (folder / "model.fp32.onnx").unlink()
    with pytest.raises(ArtefactError, match="missing"):
        load_manifest(folder)


def test_model_that_disagrees_with_manifest_shape_is_refused(tmp_path):
    folder = make_export(tmp_path / "exp")
    tiny_onnx(folder / "model.fp32.onnx", samples=128)  # swapped for a model of another window
    Manifest(folder, json.loads((folder / "manifest.json").read_text())).save()  # hashes re-signed: shape check must still catch it
    with pytest.raises(ArtefactError, match="input shape"):
        runner_from_export(folder).activate()


def test_rejected_artefact_is_refused(tmp_path):
    folder = make_export(tmp_path / "exp")
    m = load_manifest(folder)
    m.data["artefacts"]["fp32"]["status"] = "rejected"
    m.save()
    with pytest.raises(ArtefactError, match="rejected"):
        runner_from_export(folder, Precision.fp32)
    assert runner_from_export(folder, Precision.fp32, allow_rejected=True)


def test_not_an_export_folder(tmp_path):
    with pytest.raises(ArtefactError, match="no manifest.json"):
        load_manifest(tmp_path)


def test_missing_gpu_backends_say_why():
    avail = available_backends()
    assert avail[Backend.ort_cpu] is None
    for b in (Backend.ort_cuda, Backend.tensorrt):
        if avail[b] is not None:
            with pytest.raises(BackendUnavailable, match="NVIDIA|GPU|CUDA"):
                require_backend(b)


def test_every_backend_has_a_runner_test():
    """Meta-test: each Backend value is exercised somewhere in tests/ (CPU here; GPU ones in test_gpu.py)."""
    from pathlib import Path

    text = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for b in Backend:
        assert f"Backend.{b.name}" in text, f"no test mentions Backend.{b.name}"


def test_runtime_and_manifest_import_without_torch(tmp_path):
    """The deployment runtime runs with torch made unimportable (a bedside device has none)."""
    folder = make_export(tmp_path / "exp")
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, Block())
        import importlib, pkgutil
        import numpy as np
        import ecgedge.manifest, ecgedge.runtime
        from ecgedge.runtime import runner_from_export
        for mod in pkgutil.iter_modules(ecgedge.runtime.__path__, "ecgedge.runtime."):
            importlib.import_module(mod.name)  # every backend module, TensorRT and Triton ones included
        with runner_from_export({str(folder)!r}) as r:
            out = r.infer(np.ones((1, 2, {SAMPLES}), np.float32))
        assert "torch" not in sys.modules
        print("ok", out.shape)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "ok (1, 3)" in res.stdout


def test_tensorrt_provider_cache_stays_out_of_the_export_folder(tmp_path, monkeypatch):
    """The TensorRT EP writes engines to its cache; inside the folder they would fail its verification."""
    monkeypatch.setenv("ECGEDGE_CACHE", str(tmp_path / "cache"))
    folder = make_export(tmp_path / "exp")
    runner = runner_from_export(folder, Precision.fp32, Backend.ort_trt)  # lazy: nothing runs without a GPU
    trt_options = dict(runner.providers()[0][1])
    cache = trt_options["trt_engine_cache_path"]
    assert trt_options["trt_engine_cache_enable"] and trt_options["trt_fp16_enable"] is False
    assert str(tmp_path / "cache") in cache and str(folder) not in cache
    load_manifest(folder)  # still verifies: the cache folder created by providers() is not in it
