"""The one comparator (ecgedge.evaluate.compare) and the lazy-import helper (ecgedge.config.require).

No model files: runners are tiny numpy stand-ins with the Runner lifecycle, logits are made up.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from ecgedge.config import require
from ecgedge.errors import BackendUnavailable, ShapeMismatch, StreamError
from ecgedge.evaluate.compare import compare, compare_logits
from ecgedge.evaluate.gate import gate_logits

CLASSES = ("SB", "AFIB", "GSVT", "SR")


class Affine:
    """A runner stand-in: logits = mean over samples of each lead, times ``scale``, plus ``shift``."""

    def __init__(self, scale=1.0, shift=0.0):
        self.scale, self.shift, self.active, self.calls, self.activations = scale, shift, False, [], 0

    def __enter__(self):
        self.active = True
        self.activations += 1
        return self

    def __exit__(self, *exc):
        self.active = False

    def infer(self, x):
        assert self.active, "compare must activate a runner before inferring"
        self.calls.append(len(x))
        return (x.mean(axis=2) * self.scale + self.shift).astype(np.float32)


def windows(n=150, leads=4, samples=16, seed=0):
    return np.random.default_rng(seed).standard_normal((n, leads, samples)).astype(np.float32)


def test_identical_runners_agree_exactly_and_pass_a_tight_tolerance():
    x = windows()
    res = compare({"reference": Affine(), "copy": Affine()}, x, tolerance=1e-6)
    c = res["copy"]
    assert res and c and c.max_abs_logit_error == 0.0 and c.mean_abs_logit_error == 0.0
    assert c.agreement == 1.0 and c.windows == len(x) and c.reference == "reference"
    assert set(res.outputs) == {"reference", "copy"} and res.outputs["copy"].shape == (len(x), 4)


def test_runners_are_activated_for_the_call_and_run_in_batches():
    x, runner = windows(150), Affine()
    compare({"reference": np.zeros((150, 4), np.float32), "r": runner}, x, batch=64)
    assert runner.activations == 1 and not runner.active and runner.calls == [64, 64, 22]
    active = Affine().__enter__()  # an active runner is used as it is, and left active
    compare({"reference": np.zeros((150, 4), np.float32), "r": active}, x)
    assert active.activations == 1 and active.active


def test_errors_agreement_and_tolerance_per_pair():
    x = windows()
    ref = Affine()
    res = compare({"reference": ref, "shifted": Affine(shift=2e-3), "scaled": Affine(scale=-1.0)}, x, tolerance=1e-3)
    shifted, scaled = res["shifted"], res["scaled"]
    # float32 logits: 2e-3 up to one float32 rounding of values of order 1 (tolerance 1e-6)
    assert shifted.max_abs_logit_error == pytest.approx(2e-3, abs=1e-6) and not shifted
    assert shifted.agreement == 1.0  # a constant shift keeps every decision
    assert scaled.agreement < 0.5 and not scaled and not res
    assert compare({"reference": ref, "shifted": Affine(shift=2e-3)}, x, tolerance=3e-3)
    assert compare({"reference": ref, "scaled": Affine(scale=-1.0)}, x)  # no tolerance: logits are not judged
    d = shifted.to_dict()
    assert d["passed"] is False and d["tolerance"] == 1e-3 and d["candidate"] == "shifted" and "max_abs_logit_error" in d


def test_stored_logits_stand_for_a_runner():
    """The PyTorch reference is stored with the check windows: an array is compared as it is."""
    x = windows()
    stored = Affine().__enter__().infer(x)
    res = compare({"pytorch fp32": stored, "onnx fp32": Affine()}, x, tolerance=1e-6)
    assert res and res["onnx fp32"].max_abs_logit_error == 0.0
    with pytest.raises(ShapeMismatch, match="stored logits for 10 windows; comparing on 150"):
        compare({"pytorch fp32": stored[:10], "onnx fp32": Affine()}, x)


def test_nan_logits_never_pass():
    ref = np.zeros((3, 4), np.float32)
    bad = ref.copy()
    bad[1, 2] = np.nan
    c = compare_logits(ref, bad, 1.0)
    assert math.isnan(c.max_abs_logit_error) and not c


def test_shapes_must_match_and_a_reference_needs_a_candidate():
    with pytest.raises(ShapeMismatch, match=r"candidate logits have shape \(3, 5\); reference's have \(3, 4\)"):
        compare_logits(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least one candidate"):
        compare({"reference": Affine()}, windows())


def test_no_windows_compare_as_nothing_to_judge():
    res = compare({"reference": np.zeros((0, 4), np.float32), "r": Affine()}, windows(0))
    assert res and res["r"].windows == 0 and math.isnan(res["r"].agreement)


def test_the_gate_judges_logits_only_when_given_a_tolerance():
    labels = np.arange(200) % 4
    ref = np.eye(4, dtype=np.float32)[labels] * 5
    cand = ref + 0.01  # same decisions, logits off by 1e-2
    report = gate_logits("fp32", "ort-cpu", cand, ref, labels, CLASSES)
    assert report and report.max_logit_error == pytest.approx(0.01, abs=1e-6) and report.mean_logit_error == pytest.approx(0.01, abs=1e-6)
    report = gate_logits("fp32", "ort-cpu", cand, ref, labels, CLASSES, max_logit_error=1e-3)
    assert not report and report.failures == ["max |logit error| vs the FP32 reference 1.00e-02 exceeds the tolerance 0.001"]
    assert report.to_dict()["thresholds"]["max_logit_error"] == 1e-3


def test_require_returns_the_module_or_names_the_extra(monkeypatch):
    assert require("json", extra="train") is sys.modules["json"]
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as where it is not installed
    with pytest.raises(BackendUnavailable) as exc:
        require("tensorrt", extra="trt", name="TensorRT", hint="on a machine with an NVIDIA GPU")
    assert str(exc.value) == "TensorRT is not installed: pip install 'ecgedge[trt]' on a machine with an NVIDIA GPU"
    with pytest.raises(StreamError, match=r"^ecgedge_no_such_module is not installed: pip install 'ecgedge\[serial\]'$"):
        require("ecgedge_no_such_module", extra="serial", error=StreamError)


def test_require_reports_a_broken_install_with_its_reason(tmp_path, monkeypatch):
    """The package is there, a module it imports is not: say that, not 'not installed'."""
    (tmp_path / "ecgedge_broken_pkg.py").write_text("import ecgedge_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendUnavailable, match=r"^ecgedge_broken_pkg cannot be imported \(No module named 'ecgedge_missing_dependency'\): "
                                                 r"pip install 'ecgedge\[serve\]'$"):
        require("ecgedge_broken_pkg", extra="serve")


def test_the_gpu_build_clash_is_named_with_its_fix(monkeypatch):
    """Both ONNX Runtime builds installed: a CUDA provider that is missing says why and how to fix it."""
    import ecgedge.runtime.gpu as gpu
    import ecgedge.runtime.ort_runner as ort_runner
    from ecgedge.runtime.base import Backend, InputSpec, Precision, available_backends

    if available_backends()[Backend.ort_cuda] is None:
        pytest.skip("the CUDA provider works here: the clash message is for machines where it does not")
    monkeypatch.setattr(gpu, "onnxruntime_builds", lambda: ["onnxruntime", "onnxruntime-gpu"])
    runner = ort_runner.OrtRunner("model.onnx", InputSpec("ecg", ("II",), 250.0, 16), Precision.fp32, backend=Backend.ort_cuda)
    with pytest.raises(BackendUnavailable, match="both onnxruntime .* and onnxruntime-gpu are installed") as exc:
        runner.activate()
    assert gpu.ORT_GPU_INSTALL in str(exc.value)
