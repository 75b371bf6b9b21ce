"""A training run reopened for export: its checkpoint, its cached windows and its record split.

Export needs the run folder, not only the checkpoint: ``split.json`` names the held-out records the
gate runs on and the training records calibration draws from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ecgedge.config import DataConfig, LabelScheme, config_from_dict
from ecgedge.data.splits import Split
from ecgedge.data.windows import WindowSet, build_windows
from ecgedge.errors import ArtefactError
from ecgedge.evaluate.reference import usable_checkpoint

if TYPE_CHECKING:
    from ecgedge.models.checkpoint import Checkpoint  # imports torch: only where a run is opened


@dataclass
class RunData:
    """A training run reopened: its checkpoint, cached windows and record split."""

    ckpt: Checkpoint
    run_dir: Path
    windows: WindowSet
    split: Split
    train_used: np.ndarray
    scheme: LabelScheme
    unfinished: str = ""  # why the checkpoint is not from a finished run (exported only when allowed)


def open_run(source: str | Path, *, progress: bool = True, allow_unfinished: bool = False) -> RunData:
    """Checkpoint + the run's windows (from the cache) + split.json; clear errors when pieces are missing.

    Which checkpoint may be exported is :func:`~ecgedge.evaluate.reference.usable_checkpoint`'s rule: a
    classifier, of a finished run unless ``allow_unfinished``.
    """
    ckpt, unfinished = usable_checkpoint(source, "classifier", what="export", allow_unfinished=allow_unfinished,
                                         override="--allow-incomplete")
    run_dir = Path(ckpt.path).parent
    split_file = run_dir / "split.json"
    if not split_file.is_file():
        raise ArtefactError(f"{split_file} not found: export needs the training run folder (its split names the held-out records)")
    tc = ckpt.train_config
    scheme = LabelScheme(tc["labels"])
    data = config_from_dict(DataConfig, tc["data"])
    ws = build_windows(data, ckpt.leads, ckpt.preprocess, ckpt.window, scheme, progress=progress)
    if tuple(ws.class_names) != tuple(ckpt.labels):
        raise ArtefactError(f"the run's data now give classes {ws.class_names}, the checkpoint has {ckpt.labels}: the data changed since training")
    split_json = json.loads(split_file.read_text())
    try:
        split = Split.from_dict(split_json, ws.record_ids)
        train_used = Split.from_dict({"train": split_json["train_used"], "val": [], "test": []}, ws.record_ids).train
    except KeyError as exc:
        raise ArtefactError(f"the run's records are no longer all readable ({exc}); export needs the data the run was trained on") from None
    return RunData(ckpt, run_dir, ws, split, train_used, scheme, unfinished)
