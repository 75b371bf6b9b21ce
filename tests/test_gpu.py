"""GPU backends: ONNX Runtime CUDA / TensorRT providers and native TensorRT.

Marked ``gpu`` / ``trt``; each skips with the reason the backend is missing on this machine
(no NVIDIA GPU, no onnxruntime-gpu, no TensorRT). Run them on a GPU machine with
``pytest -m "gpu or trt" tests/test_gpu.py``.
"""

import numpy as np
import pytest

from ecgedge.errors import ArtefactError
from ecgedge.runtime import Backend, InputSpec, Precision, available_backends, runner_from_onnx
from helpers import LEADS, SAMPLES, W, tiny_onnx

SPEC = InputSpec("ecg", LEADS, 250.0, SAMPLES)


def _need(backend):
    reason = available_backends()[backend]
    if reason:
        pytest.skip(f"{backend.value} unavailable: {reason}")


@pytest.mark.gpu
@pytest.mark.parametrize("backend", [Backend.ort_cuda, Backend.ort_trt])
def test_ort_gpu_providers_match_cpu(tmp_path, backend):
    _need(backend)
    x = np.random.default_rng(0).normal(size=(8, 2, SAMPLES)).astype(np.float32)
    with runner_from_onnx(tiny_onnx(tmp_path / "m.onnx"), SPEC, backend=backend) as r:
        out = r.infer(x)
        assert r.active_providers[0].startswith("Tensorrt" if backend == Backend.ort_trt else "CUDA")
    np.testing.assert_allclose(out, x.mean(-1) @ W, atol=1e-3)


@pytest.mark.trt
def test_native_tensorrt_engine_builds_runs_and_refuses_other_gpus(tmp_path):
    _need(Backend.tensorrt)
    from ecgedge.export.tensorrt_engine import engine_from_onnx
    from ecgedge.runtime.tensorrt_runner import TensorRTRunner

    build = engine_from_onnx(tiny_onnx(tmp_path / "m.onnx"), tmp_path / "m.engine", SPEC, Precision.fp16, batch_profile=(1, 4, 16))
    assert build.engine.stat().st_size > 0 and build.timing_cache.stat().st_size > 0
    x = np.random.default_rng(0).normal(size=(20, 2, SAMPLES)).astype(np.float32)  # > max batch: runner splits
    with TensorRTRunner(build.engine, SPEC, Precision.fp16, build.identity.to_dict(), max_batch=16) as r:
        np.testing.assert_allclose(r.infer(x), x.mean(-1) @ W, atol=2e-2)
    other = build.identity.to_dict() | {"compute_capability": "1.0"}
    with pytest.raises(ArtefactError, match="not portable"):
        TensorRTRunner(build.engine, SPEC, Precision.fp16, other, max_batch=16).activate()
