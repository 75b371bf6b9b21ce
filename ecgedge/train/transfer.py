"""Transfer: the pretrained CAE's encoder into the rhythm classifier (which checkpoint may be
transferred, the architecture it fixes, the classifier it initialises)."""

from __future__ import annotations

from dataclasses import replace

from ecgedge.config import ClassifyConfig
from ecgedge.evaluate.reference import usable_checkpoint
from ecgedge.models.checkpoint import Checkpoint
from ecgedge.models.classifier import RhythmClassifier


def load_cae(path: str, flag: str = "--init", *, allow_unfinished: bool = False, override: str = "") -> Checkpoint:
    """The CAE checkpoint at ``path`` (a file or a run folder); another kind raises :class:`ConfigError` naming ``flag``.

    Which checkpoint may be transferred is :func:`~ecgedge.evaluate.reference.usable_checkpoint`'s rule: a
    CAE, of a finished pretraining run unless ``allow_unfinished``; ``override`` names the flag that allows it.
    """
    return usable_checkpoint(path, "cae", what=flag, allow_unfinished=allow_unfinished, override=override)[0]


def adopt_cae(cfg: ClassifyConfig, cae: Checkpoint) -> ClassifyConfig:
    """``cfg`` with the architecture, preprocessing and window length the transferred encoder fixes."""
    return replace(cfg, model=replace(cae.model_config, head_channels=cfg.model.head_channels,
                                      head_dilations=cfg.model.head_dilations, dropout=cfg.model.dropout),
                   preprocess=cae.preprocess, window=replace(cfg.window, samples=cae.window.samples))


def classifier_from_init(cfg: ClassifyConfig, n_classes: int, cae: Checkpoint | None = None) -> RhythmClassifier:
    """The classifier for ``cfg``: encoder weights copied from ``cae`` (or random when ``None``),
    frozen when ``cfg.freeze_encoder``. Seed torch first for a reproducible head."""
    model = RhythmClassifier(cfg.model, len(cfg.leads), n_classes)
    if cae is not None:
        enc = {k.removeprefix("encoder."): v for k, v in cae.state_dict.items() if k.startswith("encoder.")}
        model.encoder.load_state_dict(enc)
    if cfg.freeze_encoder:
        model.set_encoder_trainable(False)
    return model
