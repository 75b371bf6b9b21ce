"""The PyTorch FP32 reference, in the scoring room: one runner and one checkpoint rule.

Every PyTorch reference path runs through :class:`TorchRunner`: the export's parity check and the
gate's reference logits and training's held-out scoring (:func:`predict_logits`, on the run's
windows), ``ecgedge evaluate`` on a checkpoint (:meth:`TorchRunner.from_checkpoint`), and the
benchmarks' PyTorch FP32 eager baseline. It is a reference only, never a deployment backend (not one
of :class:`~ecgedge.config.Backend`): a bedside device runs ONNX Runtime, TensorRT or the C library.
It has the same lifecycle and input check as every runner (``with runner:`` builds the model,
``infer`` takes numpy windows checked against the :class:`~ecgedge.runtime.base.InputSpec` and
returns numpy logits), so a benchmark or a parity check pays for it what it pays for the others.

:func:`usable_checkpoint` is the one rule for which checkpoint may be used: export, evaluate and
``--init`` (transfer) all ask it, so what one refuses the others refuse.

torch is imported inside the functions only: the scoring room's numpy parts (metrics, the gate,
episodes) stay importable without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ecgedge.data.preprocess import normalise_windows
from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.runtime.base import InputSpec, Precision, Runner

if TYPE_CHECKING:
    import torch

    from ecgedge.data.windows import WindowSet
    from ecgedge.models.checkpoint import Checkpoint

__all__ = ["TorchRunner", "predict_logits", "usable_checkpoint"]

# The command that makes each kind of checkpoint (and finishes an unfinished run with --resume).
_MADE_BY = {"classifier": "ecgedge train classify", "cae": "ecgedge train pretrain"}


def usable_checkpoint(source: str | Path, kind: str, *, what: str, allow_unfinished: bool = False,
                      override: str = "") -> tuple[Checkpoint, str]:
    """The checkpoint at ``source`` (a file or a run folder), if it may be used as a ``kind`` model.

    Args:
        source: a ``.pt`` checkpoint or a run folder (its ``best.pt``).
        kind: ``"classifier"`` or ``"cae"``.
        what: who asks, first word of every message (``"export"``, ``"evaluate"``, ``"--init"``).
        allow_unfinished: accept a checkpoint of a run that did not finish
            (:func:`~ecgedge.models.checkpoint.unfinished_reason`); its reason is returned.
        override: the flag that allows an unfinished run, named in the refusal (none: no way round).

    Returns:
        (the checkpoint, why its run is unfinished or ``""``).

    Raises:
        ConfigError: another kind of checkpoint. ArtefactError: an unfinished run, not allowed.
    """
    from ecgedge.models.checkpoint import load_checkpoint, unfinished_reason

    ckpt = load_checkpoint(source)
    made_by = _MADE_BY[kind]
    if ckpt.kind != kind:
        raise ConfigError(f"{what}: {ckpt.path} is a {ckpt.kind} checkpoint; {what} takes a {kind} checkpoint ({made_by})")
    unfinished = unfinished_reason(ckpt)
    if unfinished and not allow_unfinished:
        raise ArtefactError(f"{what}: {unfinished}: its weights and figures are not final; finish the run ({made_by} --resume "
                            "--run-dir RUN)" + (f", or pass {override} to use it anyway (what it makes records it)" if override else ""))
    return ckpt, unfinished


class TorchRunner(Runner):
    """FP32 ``torch.nn.Module`` in eval mode under ``torch.inference_mode``.

    Args:
        model_path: the checkpoint (or any file ``load_model`` reads); None for a model in memory.
        spec: the model's input, checked on every call as on every backend.
        load_model: ``load_model(model_path) -> torch.nn.Module``, called in ``activate`` (so its
            time counts as loading, not as inference); the module is put in FP32 eval mode.
        threads: intra-op threads (``torch.set_num_threads``) and one inter-op thread; ``None``
            leaves torch's defaults (all cores).
        device: where the model runs (``"cpu"``, ``"cuda"``, a ``torch.device``); windows go there
            and logits come back as float32 numpy.
    """

    backend = None  # a reference, not a deployment backend: config.Backend names only those

    def __init__(self, model_path: str | Path | None, spec: InputSpec, load_model: Callable[[Any], Any], threads: int | None = None,
                 *, device: Any = "cpu"):
        super().__init__(None if model_path is None else Path(model_path), spec, Precision.fp32, name="torch:fp32")
        self.load_model = load_model
        self.threads = threads
        self.device = device
        self.model: torch.nn.Module | None = None

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, threads: int | None = None) -> "TorchRunner":
        """The reference of a loaded checkpoint (its leads, sampling rate and window; CPU)."""
        spec = InputSpec("ecg", tuple(ckpt.leads), ckpt.preprocess.fs_hz, ckpt.window.samples)
        return cls(ckpt.path, spec, lambda _: ckpt.build_model(), threads)

    @classmethod
    def from_module(cls, model: Any, spec: InputSpec, device: Any = "cpu") -> "TorchRunner":
        """The reference of a model in memory (training's: scored between epochs on its own device)."""
        return cls(None, spec, lambda _: model, device=device)

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
            return self.model(torch.from_numpy(x).to(self.device)).float().cpu().numpy()

    def _deactivate(self) -> None:
        self.model = None

    @property
    def active_providers(self) -> list[str]:
        """What runs the model, as ONNX Runtime runners name their providers: ``torch VERSION eager, N threads``."""
        if self.model is None:
            return []
        import torch

        return [f"torch {torch.__version__} eager, {torch.get_num_threads()} threads"]


def predict_logits(model: Any, ws: WindowSet, idx: np.ndarray, preprocess, device: Any = "cpu", batch_size: int = 128) -> np.ndarray:
    """FP32 PyTorch logits of windows ``idx`` of ``ws`` (z-scored by ``preprocess``), in ``idx``'s order
    within each batch of ``batch_size`` sorted (kind to the memory map): the reference the export's
    parity check and accuracy gate compare against, and training's held-out scores. ``model`` (an
    ``nn.Module``) is put in eval mode; (0, 0) float32 for no windows."""
    spec = InputSpec("ecg", tuple(ws.leads), preprocess.fs_hz, int(ws.windows.shape[2]))
    out = []
    with TorchRunner.from_module(model, spec, device) as runner:
        for i in range(0, len(idx), batch_size):
            x, _ = normalise_windows(ws.windows[np.sort(idx[i:i + batch_size])], preprocess)
            out.append(runner.infer(x))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
