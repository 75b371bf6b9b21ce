"""One runner interface for every backend (Polygraphy-style lifecycle).

A runner is cheap to construct; ``activate()`` (or ``with runner:``) builds the session or engine,
``infer(x)`` runs a batch, ``deactivate()`` frees it. Timing therefore excludes set-up, and a runner
object can exist on a machine without a GPU. Inputs are checked against the model's
:class:`InputSpec` with a message that says what was received and what was expected.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass

import numpy as np

from ecgedge.config import Backend, Precision  # closed choices live in config; runtime modules import them from here
from ecgedge.errors import BackendUnavailable, ShapeMismatch


@dataclass(frozen=True)
class InputSpec:
    """What the model takes: ``(batch, len(leads), window_samples)`` float32 windows at ``fs_hz``,
    z-scored per lead after the manifest's preprocessing."""

    name: str
    leads: tuple[str, ...]
    fs_hz: float
    window_samples: int

    def check(self, x: np.ndarray, *, fs_hz: float | None = None, leads=None) -> np.ndarray:
        """Return ``x`` as contiguous float32 (batch, leads, samples) or raise :class:`ShapeMismatch`."""
        if leads is not None and tuple(leads) != self.leads:
            raise ShapeMismatch(f"leads {', '.join(leads)}; model expects {', '.join(self.leads)} in that order")
        if fs_hz is not None and abs(fs_hz - self.fs_hz) > 1e-6:
            raise ShapeMismatch(f"windows at {fs_hz:g} Hz; model expects {self.fs_hz:g} Hz (preprocess first)")
        x = np.asarray(x)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (len(self.leads), self.window_samples):
            got = f"window {tuple(x.shape[1:]) if x.ndim == 3 else tuple(x.shape)}"
            raise ShapeMismatch(f"{got}; model expects (batch, {len(self.leads)}, {self.window_samples}) at {self.fs_hz:g} Hz")
        if not np.issubdtype(x.dtype, np.floating):
            raise ShapeMismatch(f"dtype {x.dtype}; model expects float32 windows")
        if not np.isfinite(x).all():
            raise ShapeMismatch("window contains NaN or inf samples")
        return np.ascontiguousarray(x, dtype=np.float32)


class Runner:
    """Base runner: subclasses implement ``_activate``, ``_infer`` and ``_deactivate``."""

    # None: not a local deployment backend (the PyTorch reference, a Triton server); such runners pass ``name``.
    backend: Backend | None
    # None: what runs is not known here (a Triton server whose repository does not say).
    precision: Precision | None

    def __init__(self, model_path, spec: InputSpec, precision: Precision, name: str = ""):
        self.model_path = model_path
        self.spec = spec
        self.precision = Precision(precision)
        if not name:
            assert self.backend is not None  # runners without a deployment backend pass their name
            name = f"{self.backend.value}:{self.precision.value}"
        self.name = name
        self.active = False

    def activate(self) -> "Runner":
        if not self.active:
            self._activate()
            self.active = True
        return self

    def deactivate(self) -> None:
        if self.active:
            self._deactivate()
            self.active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def infer(self, x: np.ndarray, *, fs_hz: float | None = None, leads=None) -> np.ndarray:
        """Logits (batch, classes) float32 for windows (batch, leads, samples)."""
        if not self.active:
            raise RuntimeError(f"runner {self.name} is not active: use 'with runner:' or runner.activate()")
        return self._infer(self.spec.check(x, fs_hz=fs_hz, leads=leads))

    def _activate(self) -> None:
        raise NotImplementedError

    def _infer(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError


def available_backends() -> dict[Backend, str | None]:
    """Each backend mapped to ``None`` if usable here, else the reason it is not (and how to fix it)."""
    out: dict[Backend, str | None] = {}
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        providers = []
    out[Backend.ort_cpu] = None if "CPUExecutionProvider" in providers else "onnxruntime is not installed (pip install onnxruntime)"
    out[Backend.ort_cuda] = None if "CUDAExecutionProvider" in providers else (
        "onnxruntime here has no CUDAExecutionProvider: on a machine with an NVIDIA GPU, pip install onnxruntime-gpu")
    out[Backend.ort_trt] = None if "TensorrtExecutionProvider" in providers else (
        "onnxruntime here has no TensorrtExecutionProvider: needs an NVIDIA GPU, onnxruntime-gpu and the TensorRT libraries")
    if importlib.util.find_spec("tensorrt") is None:
        out[Backend.tensorrt] = "TensorRT is not installed: on a machine with an NVIDIA GPU, pip install 'ecgedge[trt]'"
    else:
        from ecgedge.runtime.gpu import cuda_device_or_reason

        out[Backend.tensorrt] = cuda_device_or_reason()
    out[Backend.c_int8] = host_compiler_or_reason()
    return out


def host_compiler() -> str:
    """The C compiler the c-int8 backend builds the export's C library with: ``$CC``, else ``cc``."""
    return os.environ.get("CC") or "cc"


def host_compiler_or_reason() -> str | None:
    """None where :func:`host_compiler` is on PATH, else why c-int8 cannot run here and how to fix it."""
    if shutil.which(host_compiler()) is None:
        return f"no C compiler '{host_compiler()}' on PATH (apt-get install gcc, or set CC) to build the export's C library"
    return None


def require_backend(backend: Backend) -> None:
    reason = available_backends()[backend]
    if reason:
        raise BackendUnavailable(f"backend {backend.value} unavailable: {reason}")
