"""PyTorch eager runner: the FP32 reference that the deployment backends are measured and checked against.

Reference only, never a deployment backend (it is not one of :class:`~ecgedge.config.Backend`): a
bedside device runs ONNX Runtime or TensorRT. It has the same lifecycle and input check as every
runner (``with runner:`` builds the model, ``infer`` takes numpy windows checked against the
:class:`~ecgedge.runtime.base.InputSpec` and returns numpy logits), so a benchmark or a parity
check pays for the baseline exactly what it pays for the others.

It lives in ``ecgedge.bench``, not in ``ecgedge.runtime``: the deployment runtime never needs torch.
torch is imported inside the methods only. The model comes from a ``load_model(path)`` callable handed
in by the caller (e.g. ``lambda p: load_checkpoint(p).build_model()``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ecgedge.runtime.base import InputSpec, Precision, Runner

if TYPE_CHECKING:
    import torch


class TorchRunner(Runner):
    """FP32 eager ``torch.nn.Module`` under ``torch.inference_mode``.

    Args:
        model_path: the checkpoint (or any file ``load_model`` reads).
        spec: the model's input, checked on every call as on every backend.
        load_model: ``load_model(model_path) -> torch.nn.Module``, called in ``activate`` (so
            its time counts as loading, not as inference); the module is put in FP32 eval mode.
        threads: intra-op threads (``torch.set_num_threads``) and one inter-op thread; ``None``
            leaves torch's defaults (all cores).
    """

    backend = None  # a reference, not a deployment backend: config.Backend names only those

    def __init__(self, model_path: str | Path, spec: InputSpec, load_model: Callable[[Path], Any], threads: int | None = None):
        super().__init__(Path(model_path), spec, Precision.fp32, name="torch:fp32")
        self.load_model = load_model
        self.threads = threads
        self.model: torch.nn.Module | None = None

    def _activate(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:  # only allowed once per process, before any parallel work: already set
                pass
        self.model = self.load_model(self.model_path).float().eval()

    def _infer(self, x: np.ndarray) -> np.ndarray:
        import torch

        assert self.model is not None  # Runner.infer calls this only while active
        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).numpy()

    def _deactivate(self) -> None:
        self.model = None

    @property
    def active_providers(self) -> list[str]:
        """What runs the model, as ONNX Runtime runners name their providers: ``torch VERSION eager, N threads``."""
        if self.model is None:
            return []
        import torch

        return [f"torch {torch.__version__} eager, {torch.get_num_threads()} threads"]
