"""An export folder of an *untrained* classifier, to measure speed where no trained run exists.

Latency, memory and cold start do not depend on the weights' values, so the benchmark suites and
the tests use :func:`untrained_export` instead of minutes of training. It makes the artefacts with
the export code itself (FP32 ONNX from a checkpoint, INT8 QDQ with the x86-64 preset, FP16 if
asked) and writes a manifest that says ``"untrained": true``. Needs torch and onnx.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ecgedge.errors import ConfigError
from ecgedge.hashing import file_sha256
from ecgedge.config import LabelScheme
from ecgedge.manifest import ArtefactStatus, Manifest, ModelFigures, manifest_data


def untrained_export(folder: str | Path, *, model=None, leads: tuple[str, ...] | None = None, window_samples: int = 2048,
                     labels: tuple[str, ...] = ("SB", "AFIB", "GSVT", "SR"), int8: bool = True, fp16: bool = False,
                     seed: int = 0, checkpoint: str | Path | None = None,
                     label_scheme: LabelScheme | str | None = LabelScheme.chapman4) -> Path:
    """An export folder of an *untrained* classifier, to measure speed where no trained run exists.

    Latency, memory and cold start do not depend on the weights' values, so benchmark suites and
    tests use this instead of minutes of training. The architecture is the real one (``model``: a
    :class:`~ecgedge.config.ModelConfig`, default the paper's; ``leads``, default the 12 standard
    leads; ``window_samples`` at 250 Hz) and the artefacts are made by the export code: FP32 ONNX
    from the checkpoint, INT8 QDQ with the x86-64 preset (calibrated on seeded noise), FP16 if
    asked. The manifest says ``"untrained": true`` and every artefact is ``not gated``: the
    classifications mean nothing. The checkpoint (the PyTorch baseline's source) goes beside the
    folder (default ``FOLDER.pt``), where a training run would keep it. ``label_scheme`` is the
    scheme ``labels`` come from (the default labels are chapman4's; None: not stated). The manifest is
    built by :func:`~ecgedge.manifest.manifest_data`, as every export's. Needs torch.
    """
    import torch

    from ecgedge.config import STANDARD_12_LEADS, ModelConfig, PreprocessConfig, Target, WindowConfig, config_to_dict
    from ecgedge.data.preprocess import preprocess_params
    from ecgedge.export.onnx_export import INPUT_NAME, OUTPUT_NAME, onnx_from_checkpoint
    from ecgedge.export.quantize import fp16_onnx_from_onnx, int8_onnx_from_onnx
    from ecgedge.export.targets import PRESETS
    from ecgedge.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from ecgedge.models.classifier import RhythmClassifier
    from ecgedge.models.flops import count_macs, count_params

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} is not empty; untrained_export writes a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    model_cfg, leads = model or ModelConfig(), tuple(leads or STANDARD_12_LEADS)
    pre, window = PreprocessConfig(), WindowConfig(samples=window_samples)
    torch.manual_seed(seed)
    net = RhythmClassifier(model_cfg, len(leads), len(labels)).eval()
    ckpt_path = save_checkpoint(Path(checkpoint) if checkpoint else folder.parent / f"{folder.name}.pt",
                                Checkpoint("classifier", model_cfg, pre, window, net.state_dict(), leads=leads, labels=tuple(labels),
                                           train_config={"untrained": True}))
    ckpt = load_checkpoint(ckpt_path)
    fp32 = onnx_from_checkpoint(ckpt, folder / "model.fp32.onnx")
    ungated = ArtefactStatus.not_gated.value  # an untrained model: there is nothing to gate against
    artefacts: dict[str, dict[str, Any]] = {"fp32": {"file": fp32.name, "precision": "fp32", "runtime": "onnx", "status": ungated}}
    if int8:
        calib = np.random.default_rng(seed).standard_normal((16, len(leads), window_samples), dtype=np.float32)
        q = int8_onnx_from_onnx(fp32, folder / "model.int8.onnx", calib, input_name=INPUT_NAME, preset=PRESETS[Target.cpu])
        artefacts["int8"] = {"file": "model.int8.onnx", "precision": "int8", "runtime": "onnx", "status": ungated, "quantization": q}
    if fp16:
        artefacts["fp16"] = {"file": "model.fp16.onnx", "precision": "fp16", "runtime": "onnx", "status": ungated,
                             **fp16_onnx_from_onnx(fp32, folder / "model.fp16.onnx")}
    macs = count_macs(net, (len(leads), window_samples))
    manifest = Manifest(folder, manifest_data(
        name=folder.name, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        input_name=INPUT_NAME, output_name=OUTPUT_NAME, leads=leads, labels=labels,
        label_scheme=None if label_scheme is None else LabelScheme(label_scheme).value,
        fs_hz=pre.fs_hz, window_samples=window_samples,
        model=ModelFigures("shared per-lead CAE encoder + conv fusion head (untrained)", count_params(net), macs),
        preprocess=preprocess_params(pre), window=config_to_dict(window),
        source={"checkpoint": str(ckpt_path), "checkpoint_sha256": file_sha256(ckpt_path)},
        artefacts=artefacts, untrained=True))
    manifest.save()
    return folder
