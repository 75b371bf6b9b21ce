"""The CUDA GPU and TensorRT at hand: what they are, or why there are none.

Shared by the backend capability check (:func:`ecgedge.runtime.base.available_backends`) and the
TensorRT runner, below both: it imports neither (cuda-python and TensorRT only when called).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecgedge.errors import BackendUnavailable


def import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise BackendUnavailable("cuda-python is not installed: pip install 'ecgedge[trt]' on a machine with an NVIDIA GPU") from None
    return cudart


def cuda_ok(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendUnavailable(f"CUDA call failed with error {err}")
    return rest[0] if len(rest) == 1 else rest


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable("TensorRT is not installed: on a machine with an NVIDIA GPU, pip install 'ecgedge[trt]'") from None
    return trt


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
