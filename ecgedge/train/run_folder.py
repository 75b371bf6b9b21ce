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
from ecgedge.fsio import FolderKind, atomic_write_text, claim_folder, own_files, read_marker, remove_owned, write_marker


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


# The files a pretraining or classifier run writes (see ecgedge.train), and its plots: what a run
# folder's marker lists, so --overwrite replaces these and nothing else.
RUN_FILES = ("config.json", "config.toml", "split.json", "data_summary.json", "history.csv", "metrics.json",
             "best.pt", "last.pt", "train_state.pt")
PLOTS = "plots"


def _run_files(path: Path) -> list[str]:
    return [*RUN_FILES, *(p.relative_to(path).as_posix() for p in sorted((path / PLOTS).glob("*.png")))]


def _legacy_run(path: Path) -> list[str] | None:
    """The files of a run written before folder markers (one with a checkpoint or its config.json)."""
    if not any((path / n).is_file() for n in ("best.pt", "last.pt", "train_state.pt", "config.json")):
        return None
    return _run_files(path)


def _task_of(path: Path) -> str | None:
    """``pretrain`` or ``classify``: the job of the run in ``path``, from its marker or its config."""
    marker = read_marker(path)
    if marker is not None and marker.get("task"):
        return str(marker["task"])
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return ("classify" if "labels" in cfg else "pretrain") if isinstance(cfg, dict) else None


def prepare_run_dir(run_dir: str, cfg, *, task: str, resume: bool = False, overwrite: bool = False) -> Path:
    """Claim ``run_dir`` for a ``task`` run (``"pretrain"`` or ``"classify"``), create it (and
    ``plots/``) and write the run's full config as ``config.json`` and ``config.toml``.

    A run folder is an owned folder (:mod:`ecgedge.fsio`): new, empty, or a run of the same task,
    and then only with ``resume`` (continue it) or ``overwrite`` (the previous run's files, those its
    marker lists, are deleted first; a user's files stay). Refused in one line, nothing touched: a
    folder of the user's files, of another kind (an export, a store) or of the other task (a CAE over
    a classifier), and a folder holding the run's data or ``--init`` checkpoint.
    """
    path = Path(run_dir)
    init = getattr(cfg, "init", "random")
    inputs = [*cfg.data.paths, *([init] if init and init != "random" else [])]
    owned = claim_folder(path, FolderKind.run, replace=True, inputs=inputs, legacy=_legacy_run)
    if owned:
        previous = _task_of(path)
        if previous != task:
            raise ConfigError(f"{path} holds a {previous or 'different'} run, not a {task} run; its checkpoints are not "
                              f"this command's to replace: choose another --run-dir")
        if not (resume or overwrite):
            raise ConfigError(f"{path} already holds a {task} run; pass --overwrite to start it again (only its own files "
                              "are replaced) or --resume to continue it")
        if overwrite and not resume:
            for name in owned:
                remove_owned(path, name)
    (path / PLOTS).mkdir(parents=True, exist_ok=True)
    write_marker(path, FolderKind.run, set(owned) | set(_run_files(path)), task=task)
    atomic_write_text(path / "config.json", json.dumps(config_to_dict(cfg), indent=2))
    atomic_write_text(path / "config.toml", to_toml(config_to_dict(cfg)))
    return path


def own_run_files(run_dir: str | Path) -> None:
    """List the plots a run wrote in its folder's marker (the other files are listed from the start)."""
    path = Path(run_dir)
    own_files(path, *_run_files(path))


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
