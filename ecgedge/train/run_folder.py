"""What every training run starts from: its folder (``config.json``/``config.toml``), the device, the
seeds, and the window store its ``--data`` may name. The files a run writes are listed in :mod:`ecgedge.train`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgedge.config import DataConfig, Device, config_to_dict
from ecgedge.data.store import WindowStore, is_store
from ecgedge.errors import BackendUnavailable, ConfigError


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    metrics: dict[str, Any]
    interrupted: bool = False


def checked_device(device: Device) -> torch.device:
    """The torch device ``--device`` names; :class:`BackendUnavailable` for CUDA where torch sees no GPU."""
    if device == Device.cuda and not torch.cuda.is_available():
        raise BackendUnavailable("--device cuda asked for, but this torch build sees no CUDA GPU (use --device cpu)")
    return torch.device(device.value)


def seed_everything(seed: int) -> None:
    """Seed torch and numpy's global generator (a run's draws use their own seeded generators too)."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def prepare_run_dir(run_dir: str, cfg) -> Path:
    """Create ``run_dir`` (and ``plots/``) and write the run's full config as ``config.json`` and ``config.toml``."""
    path = Path(run_dir)
    (path / "plots").mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=2))
    (path / "config.toml").write_text(to_toml(config_to_dict(cfg)))
    return path


def to_toml(d: dict, prefix: str = "") -> str:
    """A config dict as TOML (``--config`` reads it back); ``None`` values are left out."""
    scalars, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append(to_toml(v, f"{prefix}{k}."))
        elif v is not None:
            scalars.append(f"{k} = {json.dumps(v)}")
    head = f"[{prefix[:-1]}]\n" if prefix and scalars else ""
    return head + "\n".join(scalars) + ("\n\n" if scalars else "") + "".join(tables)


def window_store(data: DataConfig) -> WindowStore | None:
    """The window store ``data.paths`` names, or ``None`` when they are records."""
    stores = [p for p in data.paths if is_store(p)]
    if not stores:
        return None
    if len(data.paths) > 1:
        raise ConfigError(f"a window store ({stores[0]}) must be the only --data path; got {len(data.paths)} paths")
    return WindowStore.open(stores[0])
