"""Self-describing checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain values only (no pickled objects of ours):

- ``format``: ``"ecgedge.checkpoint/1"``; ``kind``: ``"cae"`` or ``"classifier"``
- ``model_config``, ``preprocess`` (with the filter coefficients), ``window``: plain dicts
- ``leads``, ``labels`` (class names in logit order; empty for the CAE)
- ``state_dict``: the weights; ``epoch``; ``metrics``; ``train_config``; ``complete``
  (``False`` for a checkpoint written on Ctrl-C or mid-run)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ecgedge.config import ModelConfig, PreprocessConfig, WindowConfig, config_from_dict, config_to_dict
from ecgedge.data.preprocess import preprocess_params
from ecgedge.errors import ArtefactError, EcgEdgeError, storage_error
from ecgedge.fsio import atomic_file
from ecgedge.models.autoencoder import ConvAutoencoder
from ecgedge.models.classifier import RhythmClassifier

FORMAT = "ecgedge.checkpoint/1"


@dataclass
class Checkpoint:
    kind: str
    model_config: ModelConfig
    preprocess: PreprocessConfig
    window: WindowConfig
    state_dict: dict[str, torch.Tensor]
    leads: tuple[str, ...] = ("II",)
    labels: tuple[str, ...] = ()
    epoch: int = 0
    complete: bool = True
    metrics: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    def build_model(self) -> torch.nn.Module:
        """The model with these weights, in eval mode."""
        model = model_from_checkpoint_fields(self.kind, self.model_config, len(self.leads), len(self.labels))
        model.load_state_dict(self.state_dict)
        return model.eval()


def model_from_checkpoint_fields(kind: str, cfg: ModelConfig, n_leads: int, n_classes: int) -> torch.nn.Module:
    if kind == "cae":
        return ConvAutoencoder(cfg)
    if kind == "classifier":
        return RhythmClassifier(cfg, n_leads, n_classes)
    raise ArtefactError(f"unknown checkpoint kind {kind!r}")


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write atomically (a Ctrl-C during the write never leaves a half file behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "kind": ckpt.kind,
        "model_config": config_to_dict(ckpt.model_config),
        "preprocess": config_to_dict(ckpt.preprocess),
        "preprocess_params": preprocess_params(ckpt.preprocess),
        "window": config_to_dict(ckpt.window),
        "leads": list(ckpt.leads),
        "labels": list(ckpt.labels),
        "state_dict": {k: v.detach().cpu() for k, v in ckpt.state_dict.items()},
        "epoch": ckpt.epoch,
        "complete": ckpt.complete,
        "metrics": ckpt.metrics,
        "train_config": ckpt.train_config,
    }
    return save_torch_file(path, payload, "checkpoint")


def save_torch_file(path: str | Path, payload: dict, what: str) -> Path:
    """``torch.save`` beside ``path``, then rename: a failed or interrupted write leaves the previous
    file. A full disk or a permission problem raises :class:`~ecgedge.errors.StorageError` naming
    ``what`` and ``path`` (the half-written file is removed)."""
    path = Path(path)
    try:
        # A file object, not a path: torch's own writer reports a full disk as a bare RuntimeError
        # ("unexpected pos"), Python's file as the OSError it is.
        with atomic_file(path, "wb") as f:
            torch.save(payload, f)
    except OSError as exc:
        raise storage_error(exc, f"write {what} {path}") from None
    return path


def unfinished_reason(ckpt: Checkpoint) -> str:
    """Why ``ckpt`` is not the result of a finished training run; ``""`` when it is.

    Either it is marked incomplete itself (``last.pt`` written on Ctrl-C or after an epoch that was
    not the last), or the ``last.pt`` beside it is: then the run never finished, and a ``best.pt``
    (always marked complete) is only the best of the epochs that ran. Export and ``--init`` refuse
    such a checkpoint unless told otherwise.
    """
    total = ckpt.train_config.get("epochs", "?")
    if not ckpt.complete:
        return f"{ckpt.path} is from an unfinished run (marked incomplete after epoch {ckpt.epoch} of {total})"
    last = Path(ckpt.path).with_name("last.pt")
    if ckpt.path and last.is_file() and last != Path(ckpt.path):
        try:
            raw = torch.load(last, map_location="cpu", weights_only=True)
        except Exception:  # torch raises many types for corrupt files; an unreadable last.pt tells nothing
            raw = None
        if isinstance(raw, dict) and raw.get("complete") is False:
            return (f"{ckpt.path} is from an unfinished run ({last} is marked incomplete after epoch "
                    f"{raw.get('epoch')} of {total})")
    return ""


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate; a missing or foreign file raises :class:`ArtefactError`."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                path = path / name
                break
    if not path.is_file():
        raise ArtefactError(f"checkpoint not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/foreign files
        raise ArtefactError(f"{path} is not a loadable checkpoint: {_unloadable(exc, path)}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ArtefactError(f"{path} is not an ecgedge checkpoint (format {raw.get('format') if isinstance(raw, dict) else type(raw)})")
    try:
        return Checkpoint(
            kind=raw["kind"],
            model_config=config_from_dict(ModelConfig, raw["model_config"]),
            preprocess=config_from_dict(PreprocessConfig, raw["preprocess"]),
            window=config_from_dict(WindowConfig, raw["window"]),
            state_dict=raw["state_dict"],
            leads=tuple(raw["leads"]),
            labels=tuple(raw["labels"]),
            epoch=raw["epoch"],
            complete=raw["complete"],
            metrics=raw["metrics"],
            train_config=raw["train_config"],
            path=str(path),
        )
    except (KeyError, TypeError, ValueError, AttributeError, EcgEdgeError) as exc:
        what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else _first_line(exc)
        raise ArtefactError(f"{path} is a damaged ecgedge checkpoint ({what}); re-train or copy it again") from None


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:200]


def _unloadable(exc: BaseException, path: Path) -> str:
    """Why torch could not load ``path``, in one line: never torch's advice to load it with
    ``weights_only=False`` (that would run whatever code the file holds)."""
    if path.stat().st_size == 0:
        return "the file is empty"
    if "Weights only load failed" in str(exc):
        return ("it is not a PyTorch file of tensors and plain data (damaged, or holding Python objects); "
                "ecgedge loads checkpoints as data only and never runs code from one")
    return f"damaged or truncated ({_first_line(exc)})"
