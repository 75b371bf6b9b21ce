"""``ecgedge experiment transfer``: does pretraining on an unlabeled archive pay off on your labels?

The paper's table (Jang, Kim & Yoon, Healthc Inform Res 2021) as a resumable grid, top to bottom:

1. The CAE: pretrained here on ``pretrain_data`` (``OUT/cae/``, reused by a rerun) or loaded from
   ``cae``. It fixes the encoder architecture, the preprocessing and the window length of every arm.
2. Windows of the labelled records through the existing data layer (every format the loaders read,
   12-lead or single-lead); skipped records are listed with their reasons in the report.
3. One stratified, record-level 8:2 train/test split (``split.json``), the same for every cell.
4. For each training fraction f and repeat r, one stratified bootstrap sample: round(f * n_train)
   training records drawn with replacement (``plan.json``). Every arm of a (f, r) pair trains on
   that same sample with the same seed, so the arms differ only in their initialisation (a paired
   design: the per-repeat difference against ``random`` is reported too).
5. Every arm trains for the same epochs, batch size and learning-rate schedule
   (:func:`ecgedge.train.train_epochs`) and the model after the last epoch is evaluated on the
   test records. There is no early stopping: the bootstrap leaves no validation part to select on,
   and selecting on the test part would flatter every arm.
6. Scores are record-level (window probabilities averaged per record): macro F1 (the headline),
   weighted F1 and per-class F1, summarised per arm and fraction as the mean and a 95 % Student-t
   interval over repeats, mean ± t(0.975, n-1) * s / sqrt(n).

Arms: ``transfer`` (CAE encoder, fine-tuned), ``random`` (same architecture, random init),
``frozen`` (CAE encoder frozen, head only) and ``2d`` (ResNet-18 on the ECG drawn as an image,
ImageNet-initialised from a local ``image_weights`` file, else random; see
:mod:`ecgedge.experiment.image2d`).

The output folder::

    OUT/
      experiment.json    the config; a rerun with a different one is refused
      inputs.json        window-cache key of the labelled records and sha256 of the CAE
      split.json         train / test record ids (fixed for every cell)
      plan.json          the bootstrap sample (record ids, repeats kept) of every (fraction, repeat)
      cells/ARM/frac*-rep*.json   one result per cell, written atomically; a rerun skips them
      cae/               the pretraining run, when pretrained here
      results.json       per arm and fraction: macro, weighted and per-class F1 (mean, CI, values)
      table.md  f1_vs_fraction.png  report.md
      invocations.jsonl  one line per run of the command: when, how long, how many cells
"""

from __future__ import annotations

import enum
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ecgedge.config import (
    STANDARD_12_LEADS,
    ClassifyConfig,
    DataConfig,
    Device,
    LabelScheme,
    ModelConfig,
    PreprocessConfig,
    PretrainConfig,
    WindowConfig,
    config_to_dict,
)
from ecgedge.errors import ConfigError, DataNotFound

FORMAT = "ecgedge.experiment.transfer/1"

PAPER = {
    "source": "Jang, Kim & Yoon, Healthc Inform Res 2021 (Chapman-Shaoxing, 4 merged rhythm classes)",
    "f1": {
        "transfer": {1.0: 0.857, 0.5: 0.843, 0.25: 0.835},
        "random": {1.0: 0.843, 0.5: 0.831, 0.25: 0.543},
    },
    "cae_mse_uv2": 626.583,
}

CI_METHOD = ("95 % Student-t interval over repeats: mean ± t(0.975, n-1) · s / √n "
             "(F1 bounds clipped to [0, 1]; none with a single repeat)")


@dataclass(frozen=True)
class ImageConfig:
    """The 2d arm's ECG image in pixels (see :mod:`ecgedge.experiment.image2d`); each lead gets ``height_px // leads`` rows."""

    height_px: int = 96
    width_px: int = 128

    def __post_init__(self):
        if self.height_px < 8 or self.width_px < 8:
            raise ConfigError(f"image must be at least 8 x 8 px, got {self.height_px} x {self.width_px}")


class Arm(str, enum.Enum):
    """How the classifier of a cell starts."""

    transfer = "transfer"  # CAE encoder, fine-tuned with the head
    random = "random"  # the same architecture, random initialisation
    frozen = "frozen"  # CAE encoder fixed (weights and BatchNorm statistics); head only
    image2d = "2d"  # ResNet-18 on the ECG drawn as an image (the paper's 2-D transfer baseline)

    @property
    def needs_cae(self) -> bool:
        return self in (Arm.transfer, Arm.frozen)


class Budget(str, enum.Enum):
    small = "small"
    paper = "paper"


@dataclass(frozen=True)
class BudgetPreset:
    """Training sizes one ``--budget`` stands for; an explicit flag overrides any of them."""

    repeats: int
    epochs: int
    pretrain_epochs: int
    batch_size: int
    lr: float
    pretrain_hop: int
    pretrain_max_windows: int
    image: ImageConfig


BUDGETS: dict[Budget, BudgetPreset] = {
    # A few hundred 10-s records on 2 CPU cores in under 20 minutes, all four arms.
    Budget.small: BudgetPreset(
        repeats=3,  # the fewest repeats that give a t-interval worth printing
        epochs=10,
        pretrain_epochs=10,
        batch_size=32,
        lr=3e-3,  # few epochs: a high one-cycle peak gets the head somewhere
        pretrain_hop=256,
        pretrain_max_windows=4000,
        image=ImageConfig(height_px=96, width_px=128),  # 8 rows per lead; ResNet-18 costs 4x less than at 224 x 224
    ),
    # Paper scale: its 10 bootstrap repeats, training to convergence, ImageNet-sized images (a GPU).
    Budget.paper: BudgetPreset(
        repeats=10,
        epochs=50,
        pretrain_epochs=30,
        batch_size=64,
        lr=1e-3,
        pretrain_hop=1024,
        pretrain_max_windows=0,
        image=ImageConfig(height_px=224, width_px=224),
    ),
}


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole grid. Fields left ``None`` take their value from the ``budget`` preset.

    ``fractions`` are shares of the training records (0, 1]; ``test_fraction`` of the records is
    held out once (0.2 = the paper's 8:2). ``lead`` is the lead the CAE is pretrained on; ``leads``
    those the classifiers read (one lead for single-lead data). Give ``pretrain_data`` (pretrain a
    CAE here) or ``cae`` (reuse one) when an arm needs a CAE. ``threads`` caps torch's CPU threads
    (0 = torch's default, one per core); on a machine shared with other jobs 1 can be many times
    faster than 2, because OpenMP threads wait for each other at every barrier.
    """

    data: DataConfig = field(default_factory=DataConfig)
    labels: LabelScheme = LabelScheme.chapman4
    pretrain_data: DataConfig = field(default_factory=DataConfig)
    cae: str | None = None
    leads: tuple[str, ...] = STANDARD_12_LEADS
    lead: str = "II"
    fractions: tuple[float, ...] = (1.0, 0.5, 0.25)
    arms: tuple[Arm, ...] = tuple(Arm)
    budget: Budget = Budget.small
    repeats: int | None = None
    epochs: int | None = None
    pretrain_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    pretrain_hop: int | None = None
    pretrain_max_windows: int | None = None
    image: ImageConfig | None = None
    image_weights: str | None = None
    test_fraction: float = 0.2
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    window: WindowConfig = field(default_factory=lambda: ClassifyConfig().window)
    seed: int = 0
    device: Device = Device.cpu
    threads: int = 0
    out: str = "runs/experiment"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("budget", Budget(self.budget))
        set_("labels", LabelScheme(self.labels))
        set_("device", Device(self.device))
        set_("leads", tuple(self.leads))
        set_("fractions", tuple(float(f) for f in self.fractions))
        set_("arms", tuple(Arm(a) for a in self.arms))
        preset = BUDGETS[self.budget]
        for name in ("repeats", "epochs", "pretrain_epochs", "batch_size", "lr", "pretrain_hop", "pretrain_max_windows", "image"):
            if getattr(self, name) is None:
                set_(name, getattr(preset, name))
        if not self.data.paths:
            raise ConfigError("no labelled data: give --data PATH")
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError(f"training fractions must lie in (0, 1], got {list(self.fractions)}")
        if len(set(self.fractions)) != len(self.fractions) or len(set(self.arms)) != len(self.arms):
            raise ConfigError("fractions and arms must not repeat")
        if not self.arms:
            raise ConfigError("no arms to run")
        if self.repeats < 1 or self.epochs < 1 or self.pretrain_epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("repeats, epochs, pretrain_epochs and batch_size must be >= 1 and lr > 0")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0 = torch's default), got {self.threads}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.cae and self.pretrain_data.paths:
            raise ConfigError("give --pretrain-data (pretrain a CAE here) or --cae (reuse one), not both")
        if self.needs_cae and not (self.cae or self.pretrain_data.paths):
            needing = ", ".join(a.value for a in self.arms if a.needs_cae)
            raise ConfigError(f"arm(s) {needing} need a CAE: give --pretrain-data PATH to pretrain one, or --cae CKPT")

    @property
    def needs_cae(self) -> bool:
        return any(a.needs_cae for a in self.arms)


# --------------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class Cell:
    arm: Arm
    fraction: float
    repeat: int

    @property
    def sample_key(self) -> str:
        """The (fraction, repeat) pair: all arms of it share one bootstrap sample and one seed."""
        return f"frac{self.fraction:g}-rep{self.repeat:02d}"

    def path(self, out: Path) -> Path:
        return out / "cells" / self.arm.value / f"{self.sample_key}.json"


def grid_cells(cfg: ExperimentConfig) -> list[Cell]:
    """Every (arm, fraction, repeat), ordered so an interrupted grid has whole (fraction, repeat) pairs."""
    return [Cell(arm, f, r) for f in cfg.fractions for r in range(cfg.repeats) for arm in cfg.arms]


def cell_seed(base_seed: int, fraction: float, repeat: int) -> int:
    """Seed of a (fraction, repeat) pair, from the values (not positions), so adding a fraction changes no other pair."""
    return int(np.random.SeedSequence([base_seed, round(fraction * 1_000_000), repeat]).generate_state(1)[0])


def bootstrap_records(train: np.ndarray, record_labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified bootstrap sample of round(``fraction`` * len(``train``)) records, drawn with replacement.

    Each class gets its share of the draws (largest remainder, so the total is exact) and at least
    one draw while the total allows, so no class vanishes from a small sample. Returns record
    indices, sorted, repeats kept.
    """
    train = np.asarray(train)
    labels = np.asarray(record_labels)[train]
    total = max(int(round(fraction * len(train))), 1)
    classes, counts = np.unique(labels, return_counts=True)
    quota = fraction * counts
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[: total - take.sum()]] += 1
    for i in np.flatnonzero(take == 0):
        donor = int(np.argmax(take))
        if take[donor] > 1:
            take[donor] -= 1
            take[i] += 1
    rng = np.random.default_rng(seed)
    draws = [rng.choice(train[labels == c], size=k, replace=True) for c, k in zip(classes, take) if k]
    return np.sort(np.concatenate(draws)).astype(np.int64)


def grid_plan(cfg: ExperimentConfig, train: np.ndarray, record_labels: np.ndarray) -> dict[str, np.ndarray]:
    """The bootstrap sample of every (fraction, repeat), keyed by :attr:`Cell.sample_key`."""
    plan = {}
    for cell in grid_cells(replace(cfg, arms=(cfg.arms[0],))):
        plan[cell.sample_key] = bootstrap_records(train, record_labels, cell.fraction, cell_seed(cfg.seed, cell.fraction, cell.repeat))
    return plan


# --------------------------------------------------------------------------------- the folder


# Keys that say where or how fast, not what: a rerun may change them.
_NOT_IDENTITY = {"out", "device", "threads", "data.cache_dir", "data.workers", "pretrain_data.cache_dir", "pretrain_data.workers"}


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(stored: dict, current: dict) -> list[str]:
    """``"key: stored -> current"`` for every result-affecting setting that differs."""
    a, b = _flat(stored), _flat(current)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if k not in _NOT_IDENTITY and a.get(k) != b.get(k)]


def write_json_atomic(path: Path, value: Any) -> Path:
    """Write JSON so that a reader (or a rerun after Ctrl-C) sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)
    return path


def _claim_folder(out: Path, cfg: ExperimentConfig) -> None:
    """Store the config in a new folder; in a started one, refuse a config that would change results."""
    path = out / "experiment.json"
    current = config_to_dict(cfg)
    if path.is_file():
        stored = json.loads(path.read_text())
        diffs = config_differences(stored.get("config", {}), current)
        if diffs:
            raise ConfigError(f"{out} holds an experiment with a different config ({'; '.join(diffs[:6])}"
                              f"{' ...' if len(diffs) > 6 else ''}): rerun with its settings to resume, or use a new --out")
        return
    write_json_atomic(path, {"format": FORMAT, "config": current})


def _check_inputs(out: Path, inputs: dict) -> None:
    """The labelled records and the CAE must be the ones the finished cells used."""
    path = out / "inputs.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        changed = [k for k in inputs if stored.get(k) != inputs[k]]
        if changed:
            what = {"window_cache_key": "the labelled records (or their labels) changed",
                    "cae_sha256": "the CAE checkpoint changed"}
            raise ConfigError(f"{out} was started with other inputs: {'; '.join(what.get(k, k) for k in changed)}; use a new --out")
        return
    write_json_atomic(path, inputs)


# --------------------------------------------------------------------------------- running


@dataclass
class ExperimentResult:
    out: Path
    results: dict
    table: str
    cells_run: int
    cells_skipped: int
    wall_s: float
    report: Path
    plot: Path


@dataclass
class _Context:
    """What every cell shares: windows, split, plan, the CAE and the classifier config."""

    cfg: ExperimentConfig
    clf_cfg: ClassifyConfig
    ws: Any
    cae: Any
    test_windows: np.ndarray
    plan: dict[str, np.ndarray]
    record_windows: list[np.ndarray]
    device: Any
    image_sha256: str | None


def run_experiment(cfg: ExperimentConfig, *, progress: bool = True, command: str | None = None) -> ExperimentResult:
    """Run (or resume) the grid in ``cfg.out`` and write results.json, table.md, the plot and report.md.

    Finished cells are skipped; a folder started with a different config or other inputs raises
    :class:`ConfigError`. Ctrl-C loses at most the cell in progress.
    """
    import torch

    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, progress, command)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: ExperimentConfig, progress: bool, command: str | None) -> ExperimentResult:
    from tqdm.auto import tqdm

    from ecgedge.data.windows import build_windows
    from ecgedge.train import _device, load_cae

    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if cfg.cae:
        load_cae(cfg.cae, "--cae")  # a wrong path fails before anything is written
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _claim_folder(out, cfg)
    device = _device(cfg.device)
    cae, cae_info = _cae_for(cfg, out, progress)
    clf_cfg = classify_config(cfg, cae)
    ws = build_windows(clf_cfg.data, clf_cfg.leads, clf_cfg.preprocess, clf_cfg.window, clf_cfg.labels, progress=progress)
    if progress:
        tqdm.write(ws.summary.describe())
    if len(ws.class_names) < 2:
        raise DataNotFound(f"need at least two classes to compare classifiers; found {list(ws.class_names)}")
    _check_inputs(out, {"window_cache_key": ws.key, "cae_sha256": cae_info.get("sha256")})

    rec_labels = ws.record_labels()
    train, test, notes = fixed_split(rec_labels, cfg.test_fraction, cfg.seed)
    if not len(test):
        raise DataNotFound("no held-out test records: add records (each class needs at least two)")
    write_json_atomic(out / "split.json", {"train": [ws.record_ids[i] for i in train], "test": [ws.record_ids[i] for i in test],
                                           "class_names": list(ws.class_names), "seed": cfg.seed, "notes": notes})
    plan = grid_plan(cfg, train, rec_labels)
    write_json_atomic(out / "plan.json", {k: [ws.record_ids[i] for i in v] for k, v in plan.items()})

    order = np.argsort(ws.window_record, kind="stable")
    bounds = np.searchsorted(ws.window_record[order], np.arange(len(ws.record_ids) + 1))
    record_windows = [order[bounds[r]:bounds[r + 1]] for r in range(len(ws.record_ids))]
    ctx = _Context(cfg, clf_cfg, ws, cae, np.concatenate([record_windows[r] for r in test]), plan, record_windows, device,
                   _preflight_2d(cfg, len(ws.class_names)))

    cells = grid_cells(cfg)
    todo = [c for c in cells if not c.path(out).is_file()]
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="cells", unit="cell", disable=not progress)
    try:
        for cell in todo:
            bar.set_postfix_str(f"{cell.arm.value} {cell.fraction:.0%} #{cell.repeat + 1}")
            write_json_atomic(cell.path(out), run_cell(cell, ctx))
            bar.update()
    finally:
        bar.close()

    results = summarise(out, cfg, ws, train, test, cae_info, ctx.image_sha256)
    write_json_atomic(out / "results.json", results)
    table = table_markdown(results)
    (out / "table.md").write_text(table + "\n")
    plot = plot_f1_vs_fraction(results, out / "f1_vs_fraction.png")
    wall = time.perf_counter() - t0
    invocation = {"started": started, "command": command, "wall_s": round(wall, 1), "cells_run": len(todo),
                  "cells_done": results["cells"]["done"], "device": cfg.device.value, "threads": cfg.threads}
    with open(out / "invocations.jsonl", "a") as f:
        f.write(json.dumps(invocation) + "\n")
    invocations = [json.loads(line) for line in (out / "invocations.jsonl").read_text().splitlines() if line.strip()]
    report = out / "report.md"
    report.write_text(report_markdown(results, table, ws, invocations))
    return ExperimentResult(out, results, table, len(todo), len(cells) - len(todo), wall, report, plot)


def classify_config(cfg: ExperimentConfig, cae) -> ClassifyConfig:
    """The classifier settings every arm shares (architecture, preprocessing and window from the CAE when there is one)."""
    from ecgedge.train import adopt_cae

    clf = ClassifyConfig(data=cfg.data, labels=cfg.labels, leads=cfg.leads, test_fraction=cfg.test_fraction, val_fraction=0.0,
                         preprocess=cfg.preprocess, window=cfg.window, model=cfg.model, epochs=cfg.epochs,
                         batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, device=cfg.device, run_dir=str(Path(cfg.out) / "cells"))
    return adopt_cae(clf, cae) if cae is not None else clf


def fixed_split(record_labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The one stratified record-level train/test split of the labelled records (unlabelled ones take no part)."""
    from ecgedge.data.splits import split_records

    labelled = np.flatnonzero(record_labels >= 0)
    split = split_records(record_labels[labelled], test_fraction=test_fraction, val_fraction=0.0, seed=seed)
    return labelled[split.train], labelled[split.test], split.notes


def _cae_for(cfg: ExperimentConfig, out: Path, progress: bool):
    """The CAE checkpoint and what the report says about it; pretrains into OUT/cae unless done before."""
    from ecgedge.hashing import file_sha256
    from ecgedge.train import load_cae, pretrain

    if not cfg.needs_cae:
        return None, {"source": "none: no arm uses a CAE"}
    if cfg.cae:
        cae = load_cae(cfg.cae, "--cae")
        run_dir = Path(cae.train_config.get("run_dir", "")) if cae.train_config.get("run_dir") else None
        return cae, {"source": f"--cae {cfg.cae}", "checkpoint": cae.path, "sha256": file_sha256(cae.path),
                     "held_out": {k: cae.metrics.get(k) for k in ("mse_normalised", "mse_uv2", "rmse_uv", "windows")},
                     "held_out_note": "as recorded in the checkpoint (its best epoch's validation windows)",
                     "pretrain_records": _used_records(run_dir), "pretrain_paths": cae.train_config.get("data", {}).get("paths", [])}
    run = out / "cae"
    metrics_path = run / "metrics.json"
    done = metrics_path.is_file() and (run / "best.pt").is_file() and not json.loads(metrics_path.read_text()).get("interrupted")
    if not done:
        pcfg = PretrainConfig(data=cfg.pretrain_data, lead=cfg.lead, preprocess=cfg.preprocess,
                              window=WindowConfig(samples=cfg.window.samples, hop=cfg.pretrain_hop), model=cfg.model,
                              epochs=cfg.pretrain_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                              max_windows=cfg.pretrain_max_windows, seed=cfg.seed, device=cfg.device, run_dir=str(run))
        if pretrain(pcfg, progress=progress).interrupted:
            raise KeyboardInterrupt
    metrics = json.loads(metrics_path.read_text())
    cae = load_cae(str(run / "best.pt"), "--cae")
    return cae, {"source": f"pretrained here ({run})", "checkpoint": str(run / "best.pt"), "sha256": file_sha256(run / "best.pt"),
                 "held_out": metrics["held_out"], "held_out_note": "held-out pretraining windows, best epoch",
                 "epochs": metrics["epochs_run"], "train_windows": metrics["train_windows"], "pretrain_records": _used_records(run),
                 "pretrain_paths": list(cfg.pretrain_data.paths)}


def _used_records(run_dir: Path | None) -> int | None:
    path = run_dir / "data_summary.json" if run_dir else None
    return len(json.loads(path.read_text())["used"]) if path and path.is_file() else None


def test_records_in_pretraining(pretrain_paths, labelled_paths, test_ids) -> int | None:
    """How many test records are files the CAE was pretrained on (compared by resolved path, not by id:
    two archives may reuse ids); ``None`` when the pretraining paths are not all here to look at."""
    from ecgedge.data.records import find_records

    if not pretrain_paths or not all(Path(p).exists() for p in pretrain_paths):
        return None
    seen = {Path(r.path).resolve() for r in find_records(pretrain_paths)}
    first: dict[str, str] = {}
    for r in find_records(labelled_paths):  # the data layer keeps the first file of a duplicated id
        first.setdefault(r.record_id, r.path)
    return sum(Path(first[i]).resolve() in seen for i in test_ids if i in first)


def _preflight_2d(cfg: ExperimentConfig, n_classes: int) -> str | None:
    """Build the 2d model (and load ``image_weights``) once before any training, so a too-small image
    or a wrong weights file fails in seconds, not after the other arms; returns the file's sha256."""
    if Arm.image2d not in cfg.arms:
        return None
    from ecgedge.experiment.image2d import EcgImageClassifier

    model = EcgImageClassifier(cfg.image.height_px, cfg.image.width_px, len(cfg.leads), n_classes)
    return model.load_imagenet(cfg.image_weights) if cfg.image_weights else None


def run_cell(cell: Cell, ctx: _Context) -> dict:
    """Train one arm on its (fraction, repeat) bootstrap sample and score it on the test records."""
    import torch

    from ecgedge.experiment.image2d import EcgImageClassifier
    from ecgedge.train import classifier_from_init, evaluate_classifier, train_epochs

    cfg, ws = ctx.cfg, ctx.ws
    seed = cell_seed(cfg.seed, cell.fraction, cell.repeat)
    sample = ctx.plan[cell.sample_key]
    train_idx = np.concatenate([ctx.record_windows[r] for r in sample])
    train_idx = train_idx[ws.labels[train_idx] >= 0]
    ccfg = replace(ctx.clf_cfg, seed=seed, freeze_encoder=cell.arm is Arm.frozen)
    torch.manual_seed(seed)  # same head initialisation for every 1-D arm of the pair
    if cell.arm is Arm.image2d:
        model = EcgImageClassifier(cfg.image.height_px, cfg.image.width_px, len(cfg.leads), len(ws.class_names))
        init = "random"
        if cfg.image_weights:
            model.load_imagenet(cfg.image_weights)
            init = f"imagenet:{cfg.image_weights}"
    else:
        model = classifier_from_init(ccfg, len(ws.class_names), ctx.cae if cell.arm.needs_cae else None)
        init = "cae" if cell.arm.needs_cae else "random"
    model.to(ctx.device)
    t = time.perf_counter()
    history = list(train_epochs(model, ws, train_idx, ccfg, ctx.device, progress=False))
    train_s = time.perf_counter() - t
    test = evaluate_classifier(model, ws, ctx.test_windows, ccfg, ctx.device)
    return {
        "arm": cell.arm.value, "fraction": cell.fraction, "repeat": cell.repeat, "seed": seed, "init": init,
        "train_records": int(len(sample)), "unique_train_records": int(len(np.unique(sample))), "train_windows": int(len(train_idx)),
        "epochs": len(history), "final_train_loss": history[-1]["train_loss"], "train_s": round(train_s, 2),
        "trainable_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "test": {"records": test["records"], "windows": {k: test["windows"][k] for k in ("macro_f1", "weighted_f1", "accuracy")}},
    }


# --------------------------------------------------------------------------------- summary


def t_interval(values, level: float = 0.95, bounds: tuple[float, float] | None = None) -> dict:
    """Mean, sample sd and Student-t ``level`` interval of ``values`` (``lo``/``hi`` None for one value)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else float("nan")
    out = {"mean": mean, "n": n, "values": [float(x) for x in v], "sd": None, "half_width": None, "lo": None, "hi": None}
    if n >= 2:
        sd = float(v.std(ddof=1))
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n))
        lo, hi = mean - half, mean + half
        if bounds:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        out |= {"sd": sd, "half_width": half, "lo": lo, "hi": hi}
    return out


def _fkey(f: float) -> str:
    return f"{f:g}"


def summarise(out: Path, cfg: ExperimentConfig, ws, train: np.ndarray, test: np.ndarray, cae_info: dict, image_sha256: str | None) -> dict:
    """results.json: every finished cell of ``out`` summarised per arm and fraction."""
    classes = list(ws.class_names)
    cells = {c: json.loads(c.path(out).read_text()) for c in grid_cells(cfg) if c.path(out).is_file()}
    f1 = (0.0, 1.0)
    per_arm: dict[str, dict] = {}
    for arm in cfg.arms:
        per_arm[arm.value] = {}
        for f in cfg.fractions:
            runs = [cells[c] for c in cells if c.arm is arm and c.fraction == f]
            rec = [r["test"]["records"] for r in runs]
            per_arm[arm.value][_fkey(f)] = {
                "macro_f1": t_interval([r["macro_f1"] for r in rec], bounds=f1),
                "weighted_f1": t_interval([r["weighted_f1"] for r in rec], bounds=f1),
                "accuracy": t_interval([r["accuracy"] for r in rec], bounds=f1),
                "per_class_f1": {c: t_interval([r["per_class_f1"][c] for r in rec], bounds=f1) for c in classes},
                "window_macro_f1": t_interval([r["test"]["windows"]["macro_f1"] for r in runs], bounds=f1),
                "train_records": runs[0]["train_records"] if runs else None,
                "train_s_mean": float(np.mean([r["train_s"] for r in runs])) if runs else None,
            }
    paired: dict[str, dict] = {}
    if Arm.random in cfg.arms:
        for arm in (a for a in cfg.arms if a is not Arm.random):
            paired[arm.value] = {}
            for f in cfg.fractions:
                diffs = [cells[Cell(arm, f, r)]["test"]["records"]["macro_f1"] - cells[Cell(Arm.random, f, r)]["test"]["records"]["macro_f1"]
                         for r in range(cfg.repeats) if Cell(arm, f, r) in cells and Cell(Arm.random, f, r) in cells]
                paired[arm.value][_fkey(f)] = t_interval(diffs)
    rec_labels = ws.record_labels()
    per_class = {c: {"train": int((rec_labels[train] == i).sum()), "test": int((rec_labels[test] == i).sum())} for i, c in enumerate(classes)}
    seen = test_records_in_pretraining(cae_info.get("pretrain_paths"), cfg.data.paths, [ws.record_ids[i] for i in test])
    return {
        "format": FORMAT,
        "metric": "F1 on the held-out test records, record level (window probabilities averaged per record)",
        "ci": CI_METHOD,
        "class_names": classes,
        "fractions": list(cfg.fractions),
        "arms": [a.value for a in cfg.arms],
        "repeats": cfg.repeats,
        "cells": {"done": len(cells), "total": len(grid_cells(cfg)), "train_s_total": round(sum(r["train_s"] for r in cells.values()), 1)},
        "train_records": {_fkey(f): max(int(round(f * len(train))), 1) for f in cfg.fractions},
        "results": per_arm,
        "paired_vs_random": paired,
        "records": {"train": int(len(train)), "test": int(len(test)), "per_class": per_class,
                    "leads": list(ws.leads), "skipped": ws.summary.skipped, "found": ws.summary.found},
        "cae": cae_info | {"test_records_seen_in_pretraining": seen},
        "image2d_init": (f"ImageNet weights {cfg.image_weights} (sha256 {image_sha256})" if image_sha256
                         else "random initialisation (no --image-weights given)") if Arm.image2d in cfg.arms else None,
        "paper": {"source": PAPER["source"], "f1": {a: {_fkey(f): v for f, v in d.items()} for a, d in PAPER["f1"].items()},
                  "cae_mse_uv2": PAPER["cae_mse_uv2"]},
        "config": config_to_dict(cfg),
    }


_ARM_LABEL = {
    "transfer": "transfer (CAE encoder, fine-tuned)",
    "random": "random init (same architecture)",
    "frozen": "frozen CAE encoder (head only)",
    "2d": "2-D ResNet-18 on ECG images",
}


def _arm_label(arm: str, results: dict) -> str:
    if arm == "2d":
        init = "ImageNet init" if (results.get("image2d_init") or "").startswith("ImageNet") else "random init"
        return f"{_ARM_LABEL[arm]}, {init}"
    return _ARM_LABEL[arm]


def _fmt(stats: dict, digits: int = 3) -> str:
    if not stats["n"]:
        return "—"
    s = f"{stats['mean']:.{digits}f}"
    return s + (f" ± {stats['half_width']:.{digits}f}" if stats["half_width"] is not None else "")


def table_markdown(results: dict) -> str:
    """The paper-style table: macro F1 per arm (rows) and training fraction (columns), the paper's rows below."""
    fr = results["fractions"]
    head = "| arm | " + " | ".join(f"{100 * f:g} % ({results['train_records'][_fkey(f)]} rec)" for f in fr) + " |"
    lines = [head, "|---" * (len(fr) + 1) + "|"]
    for arm in results["arms"]:
        lines.append(f"| {_arm_label(arm, results)} | " + " | ".join(_fmt(results["results"][arm][_fkey(f)]["macro_f1"]) for f in fr) + " |")
    for arm, vals in results["paper"]["f1"].items():
        lines.append(f"| *paper: {arm}* | " + " | ".join(f"*{vals[_fkey(f)]:.3f}*" if _fkey(f) in vals else "—" for f in fr) + " |")
    n = results["repeats"]
    lines.append("")
    lines.append(f"Macro F1 on {results['records']['test']} held-out test records, mean ± 95 % t-interval half-width over "
                 f"{n} bootstrap repeat{'s' * (n != 1)} per cell. Column headers: training records drawn per repeat.")
    return "\n".join(lines)


def plot_f1_vs_fraction(results: dict, path: Path) -> Path:
    """Macro F1 against training fraction, one line per arm with its 95 % interval, the paper's points dashed."""
    from ecgedge.evaluate.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    fr = results["fractions"]
    x = [100 * f for f in fr]
    for arm in results["arms"]:
        st = [results["results"][arm][_fkey(f)]["macro_f1"] for f in fr]
        mean = np.array([s["mean"] if s["n"] else np.nan for s in st])
        lo = np.array([s["lo"] if s["lo"] is not None else m for s, m in zip(st, mean)])
        hi = np.array([s["hi"] if s["hi"] is not None else m for s, m in zip(st, mean)])
        ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3, label=_arm_label(arm, results))
    for arm, vals in results["paper"]["f1"].items():
        px = [100 * float(f) for f in vals]
        ax.plot(px, list(vals.values()), ls="--", marker="x", alpha=0.6, label=f"paper: {arm}")
    ax.set_xlabel("training records used (% of the training part)")
    ax.set_ylabel("macro F1 (held-out records)")
    ax.set_xticks(sorted(set(x) | {25.0, 50.0, 100.0}))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"transfer experiment: {results['repeats']} bootstrap repeats per point, 95 % t-interval", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _versions() -> dict[str, str]:
    import torch

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("ecgedge", "torch", "numpy", "scipy", "wfdb"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out["torch threads"] = str(torch.get_num_threads())
    out["cpu count"] = str(os.cpu_count())
    return out


def report_markdown(results: dict, table: str, ws, invocations: list[dict]) -> str:
    """report.md: the command(s), the data, the CAE, the table next to the paper's, versions.

    ``invocations`` are the runs that filled the folder (``invocations.jsonl``), oldest first.
    """
    cfg = results["config"]
    rec = results["records"]
    cae = results["cae"]
    lines = [f"# Transfer experiment: {Path(cfg['out']).name}", ""]
    commands = list(dict.fromkeys(i["command"] or "(run from Python: ecgedge.experiment.transfer.run_experiment)" for i in invocations))
    lines += ["## Command", "", "```", *commands, "```", ""]
    done, total = results["cells"]["done"], results["cells"]["total"]
    runs = "; ".join(f"{i['started']}: {i['cells_run']} cells in {i['wall_s'] / 60:.1f} min (threads {i['threads'] or 'default'})" for i in invocations)
    lines += [f"{done} of {total} cells done, {results['cells']['train_s_total'] / 60:.1f} min of cell training in all. "
              f"Invocations: {runs}.", "",
              f"Budget `{cfg['budget']}`: {cfg['epochs']} epoch(s) per cell, batch {cfg['batch_size']}, peak lr {cfg['lr']}, "
              f"{cfg['repeats']} repeats; CAE {cfg['pretrain_epochs']} epoch(s); seed {cfg['seed']}; device {cfg['device']}.", ""]

    lines += ["## Data", "",
              f"Labelled records: {', '.join(cfg['data']['paths'])} (labels `{cfg['labels']}`, leads {', '.join(rec['leads'])}). "
              f"{rec['found']} records found, {rec['train'] + rec['test']} used, {len(rec['skipped'])} skipped. "
              f"One stratified record-level split: {rec['train']} train / {rec['test']} test records.", "",
              "| class | train records | test records |", "|---|---|---|"]
    lines += [f"| {c} | {n['train']} | {n['test']} |" for c, n in rec["per_class"].items()]
    lines.append("")
    if rec["skipped"]:
        lines += ["Skipped records:", "", "```", ws.summary.describe(max_names=8).split("\n", 1)[-1], "```", ""]

    lines += ["## CAE", ""]
    held = cae.get("held_out") or {}
    if held:
        lines.append(f"Source: {cae['source']}. Reconstruction MSE {held.get('mse_normalised', float('nan')):.4f} (z-scored units), "
                     f"{held.get('mse_uv2', float('nan')):.1f} µV² on {held.get('windows', '?')} windows ({cae.get('held_out_note', '')}); "
                     f"paper: {results['paper']['cae_mse_uv2']} µV².")
    else:
        lines.append(f"Source: {cae['source']}.")
    seen = cae.get("test_records_seen_in_pretraining")
    if cae.get("pretrain_paths"):
        lines.append(f"Pretraining data: {', '.join(cae['pretrain_paths'])} ({cae.get('pretrain_records') or '?'} records used); "
                     + ("whether test records were among them is unknown (paths not here)." if seen is None else
                        f"{seen} of the {rec['test']} test records were among them"
                        + (" (unlabelled, but the encoder has seen them: pretrain on a separate archive for a clean comparison)." if seen else ".")))
    lines.append("")
    if results.get("image2d_init"):
        lines += [f"2-D arm: {results['image2d_init']}; images {cfg['image']['height_px']} x {cfg['image']['width_px']} px, "
                  "leads stacked as bands, drawn from the z-scored windows.", ""]

    lines += ["## Results", "", table, "", f"Interval: {results['ci']}. {results['metric']}.",
              "Every arm of a (fraction, repeat) pair trains on the same bootstrap sample with the same seed for the same "
              "epochs; the model after the last epoch is scored (no early stopping).", ""]
    if results["paired_vs_random"]:
        lines += ["Paired difference in macro F1 against random initialisation (same sample, same seed), mean ± 95 % t-interval:", "",
                  "| arm | " + " | ".join(f"{100 * f:g} %" for f in results["fractions"]) + " |", "|---" * (len(results["fractions"]) + 1) + "|"]
        for arm, d in results["paired_vs_random"].items():
            lines.append(f"| {arm} − random | " + " | ".join(_fmt(d[_fkey(f)]) for f in results["fractions"]) + " |")
        lines.append("")
    lines += ["![macro F1 against training fraction](f1_vs_fraction.png)", "",
              f"Paper: {results['paper']['source']}. Weighted F1, accuracy and per-class F1 are in `results.json`.", ""]

    lines += ["## Software", "", "| | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _versions().items()]
    return "\n".join(lines) + "\n"

