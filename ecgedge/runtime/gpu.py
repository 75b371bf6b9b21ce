"""The CUDA GPU and TensorRT at hand: what they are, or why there are none.

Shared by the backend capability check (:func:`ecgedge.runtime.base.available_backends`) and the
TensorRT runner, below both: it imports neither (cuda-python and TensorRT only when called).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ecgedge.config import require
from ecgedge.errors import BackendUnavailable

GPU_HINT = "on a machine with an NVIDIA GPU"


def import_cudart():
    """cuda-python's CUDA runtime bindings: ``cuda.bindings.runtime`` (cuda-python >= 12.6), else the
    older ``cuda.cudart``; :class:`BackendUnavailable` naming the ``trt`` extra where neither imports."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        return require("cuda.cudart", extra="trt", name="cuda-python", hint=GPU_HINT)


def cuda_ok(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendUnavailable(f"CUDA call failed with error {err}")
    return rest[0] if len(rest) == 1 else rest


def import_tensorrt():
    """The ``tensorrt`` module, or :class:`BackendUnavailable` naming the ``trt`` extra."""
    return require("tensorrt", extra="trt", name="TensorRT", hint=GPU_HINT)


@dataclass(frozen=True)
class GpuIdentity:
    name: str
    compute_capability: str
    tensorrt_version: str

    def to_dict(self) -> dict:
        return {"gpu": self.name, "compute_capability": self.compute_capability, "tensorrt_version": self.tensorrt_version}


def gpu_identity() -> GpuIdentity:
    """Name and compute capability of CUDA device 0 and the TensorRT version (raises if none)."""
    trt = import_tensorrt()
    cudart = import_cudart()
    count = cuda_ok(cudart.cudaGetDeviceCount())
    if count < 1:
        raise BackendUnavailable("no CUDA GPU visible (TensorRT needs an NVIDIA GPU)")
    prop = cuda_ok(cudart.cudaGetDeviceProperties(0))
    name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
    return GpuIdentity(name, f"{prop.major}.{prop.minor}", trt.__version__)


def cuda_device_or_reason() -> str | None:
    try:
        gpu_identity()
    except BackendUnavailable as exc:
        return str(exc)
    return None


# The one correct way to get ONNX Runtime's GPU build (pyproject.toml's "gpu" extra says why): the
# CPU build (a base dependency) and onnxruntime-gpu install the same ``onnxruntime`` module, and
# uninstalling either deletes files the other needs, so both go and the GPU build comes back alone.
ORT_GPU_INSTALL = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'onnxruntime-gpu>=1.17'"


def onnxruntime_builds() -> list[str]:
    """The ONNX Runtime distributions installed here, of ``onnxruntime`` (CPU) and ``onnxruntime-gpu``."""
    from importlib import metadata

    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            continue
        found.append(dist)
    return found


def onnxruntime_clash() -> str | None:
    """Why ONNX Runtime's GPU providers may be hidden here (both builds installed, the CPU one
    overwriting the other's module), with the fix; None when only one build is installed."""
    if len(onnxruntime_builds()) < 2:
        return None
    return f"both onnxruntime (CPU build) and onnxruntime-gpu are installed; they share one module, which hides the GPU providers: {ORT_GPU_INSTALL}"
