"""The transfer experiment's grid, run and resumed: cells, bootstrap samples, the output folder, one cell's training.

A cell is one (arm, fraction, repeat). :func:`run_experiment` claims the output folder (a rerun
with a different config or other inputs is refused), gets the CAE (pretrained into ``OUT/cae`` or
loaded), cuts the labelled windows, fixes one split and one bootstrap sample per (fraction,
repeat), then trains every cell not yet on disk (:func:`run_cell`, each result written
atomically, so Ctrl-C loses at most the cell in progress) and hands the finished cells to
:mod:`ecgedge.experiment.report`. A cell trains with the classifier's own recipe and loop
(:func:`ecgedge.train.classifier_recipe`, :func:`ecgedge.fit_loop.train_epochs`) for a fixed number
of epochs, with no validation: the bootstrap leaves no part to select on.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ecgedge.config import ClassifyConfig, PretrainConfig, WindowConfig, config_to_dict
from ecgedge.errors import ConfigError, DataNotFound
from ecgedge.experiment.config import FORMAT, Arm, ExperimentConfig
from ecgedge.experiment.report import plot_f1_vs_records, report_markdown, summarise, table_markdown
from ecgedge.fsio import FolderKind, atomic_write_text, claim_in_place, clean_stale_temps, own_files

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
    return [Cell(arm, f, r) for f in cfg.fractions for r in range(cfg.resolved.repeats) for arm in cfg.arms]


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
# The grid's extent: a cell's sample and seed depend on its own (arm, fraction, repeat) values only, so a rerun
# may add (or drop) arms, fractions and repeats and every finished cell stays valid.
_EXTENT = {"arms", "fractions", "repeats"}


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
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in _NOT_IDENTITY | _EXTENT and a.get(k) != b.get(k)]


def write_json_atomic(path: Path, value: Any) -> Path:
    """Write JSON so that a reader (or a rerun after Ctrl-C) sees the old file or the whole new one
    (:func:`ecgedge.fsio.atomic_write_text`; a rerun removes what a killed write left)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(value, indent=2))


_EXPERIMENT_FILES = ("experiment.json", "inputs.json", "split.json", "plan.json", "results.json", "table.md",
                     "f1_vs_records.png", "report.md", "invocations.jsonl")


def experiment_inputs(cfg: ExperimentConfig) -> list[str]:
    """What the experiment reads (labelled and pretraining records, ``--cae``, the recipe file, the 2d
    arm's weights): its folder may not hold any of them."""
    named = (*cfg.data.paths, *cfg.pretrain_data.paths, cfg.cae, cfg.recipe, cfg.image_weights)
    return [p for p in named if p and Path(p).exists()]


def claim_experiment(out: Path, cfg: ExperimentConfig) -> None:
    """Claim ``out`` for the experiment (house style 20, :func:`ecgedge.fsio.claim_in_place`): new,
    empty, or an experiment folder of ecgedge's (resumed: nothing of it is removed, the config is
    checked by :func:`_claim_folder`). Refused (:class:`ConfigError`, nothing written): a user's folder,
    an ecgedge folder of another kind, a folder holding an input. A killed run's temporary files go."""
    claim_in_place(out, FolderKind.experiment, replace=True, inputs=experiment_inputs(cfg), legacy=_legacy_experiment)
    clean_stale_temps(out)


def _legacy_experiment(folder: Path) -> list[str] | None:
    """The files of an experiment folder written before folder markers (its ``experiment.json`` in
    the experiment's format): the known files, the cells and the CAE run."""
    try:
        doc = json.loads((folder / "experiment.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    listed = [n for n in _EXPERIMENT_FILES if (folder / n).is_file()]
    for sub in ("cells", "cae"):
        listed += [p.relative_to(folder).as_posix() for p in (folder / sub).rglob("*") if p.is_file()]
    return listed


def _own(out: Path, *paths: Path) -> None:
    """List ``paths`` (inside ``out``) in its marker as the experiment's."""
    own_files(out, *(Path(p).relative_to(out).as_posix() for p in paths))


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
        if any(stored["config"].get(k) != current[k] for k in _EXTENT):  # the grid grew or shrank: record its new extent
            write_json_atomic(path, {"format": FORMAT, "config": current})
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
    :class:`ConfigError` (the grid's arms, fractions and repeats may change). Ctrl-C loses at most
    the cell in progress.
    """
    import torch

    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, progress, command)
    finally:
        torch.set_num_threads(threads)


def recent_windows(record_windows: np.ndarray, window_start: np.ndarray, keep: int) -> np.ndarray:
    """The ``keep`` most recent windows of one record (largest start sample; 0 keeps all), sorted by index."""
    if not keep or len(record_windows) <= keep:
        return record_windows
    return np.sort(record_windows[np.argsort(window_start[record_windows], kind="stable")[-keep:]])


def _run(cfg: ExperimentConfig, progress: bool, command: str | None) -> ExperimentResult:
    from tqdm.auto import tqdm

    from ecgedge.data.windows import build_windows
    from ecgedge.train import checked_device, load_cae

    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    reused = load_cae(cfg.cae, "--cae") if cfg.cae else None  # a wrong path fails before anything is written
    out = Path(cfg.out)
    claim_experiment(out, cfg)
    _claim_folder(out, cfg)
    _own(out, out / "experiment.json")
    device = checked_device(cfg.device)
    # A CAE pretrained here takes cfg's preprocessing, window length and encoder, so the classifier's
    # settings (and the windows) are known before it exists: the test split is fixed first and kept out of it.
    clf_cfg = classify_config(cfg, reused)
    ws = build_windows(clf_cfg.data, clf_cfg.leads, clf_cfg.preprocess, clf_cfg.window, clf_cfg.labels, progress=progress)
    if progress:
        tqdm.write(ws.summary.describe())
    if len(ws.class_names) < 2:
        raise DataNotFound(f"need at least two classes to compare classifiers; found {list(ws.class_names)}")
    image_sha256 = _preflight_2d(cfg, len(ws.class_names))  # before the CAE's minutes of pretraining

    rec_labels = ws.record_labels()
    train, test, notes = fixed_split(rec_labels, cfg.test_fraction, cfg.seed)
    if not len(test):
        raise DataNotFound("no held-out test records: add records (each class needs at least two)")
    test_ids = [ws.record_ids[i] for i in test]
    write_json_atomic(out / "split.json", {"train": [ws.record_ids[i] for i in train], "test": test_ids,
                                           "class_names": list(ws.class_names), "seed": cfg.seed, "notes": notes})
    _own(out, out / "split.json")
    cae, cae_info = _cae_for(cfg, out, progress, reused, test_ids)
    if (out / "cae").is_dir():  # pretrained here: its run folder (with its own marker) is the experiment's too
        _own(out, *(p for p in (out / "cae").rglob("*") if p.is_file()))
    if cae is not None and config_to_dict(classify_config(cfg, cae)) != config_to_dict(clf_cfg):
        raise ConfigError(f"the CAE in {out / 'cae'} was pretrained with other settings than this config; use a new --out")
    _check_inputs(out, {"window_cache_key": ws.key, "cae_sha256": cae_info.get("sha256")})
    plan = grid_plan(cfg, train, rec_labels)
    write_json_atomic(out / "plan.json", {k: [ws.record_ids[i] for i in v] for k, v in plan.items()})
    _own(out, out / "inputs.json", out / "plan.json")

    order = np.argsort(ws.window_record, kind="stable")
    bounds = np.searchsorted(ws.window_record[order], np.arange(len(ws.record_ids) + 1))
    record_windows = [order[bounds[r]:bounds[r + 1]] for r in range(len(ws.record_ids))]
    train_windows = [recent_windows(w, ws.window_start, cfg.resolved.train_windows_per_record) for w in record_windows]
    test_windows = np.concatenate([recent_windows(record_windows[r], ws.window_start, cfg.resolved.test_windows_per_record) for r in test])
    ctx = _Context(cfg, clf_cfg, ws, cae, test_windows, plan, train_windows, device, image_sha256)

    cells = grid_cells(cfg)
    todo = [c for c in cells if not c.path(out).is_file()]
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="cells", unit="cell", disable=not progress)
    try:
        for cell in todo:
            bar.set_postfix_str(f"{cell.arm.value} {cell.fraction:.0%} #{cell.repeat + 1}")
            _own(out, write_json_atomic(cell.path(out), run_cell(cell, ctx)))
            bar.update()
    finally:
        bar.close()

    finished = [json.loads(c.path(out).read_text()) for c in cells if c.path(out).is_file()]
    results = summarise(finished, cfg, ws, train, test, cae_info, ctx.image_sha256)
    results["records"]["test_windows"] = int(len(test_windows))
    write_json_atomic(out / "results.json", results)
    table = table_markdown(results)
    atomic_write_text(out / "table.md", table + "\n")
    plot = plot_f1_vs_records(results, out / "f1_vs_records.png")
    wall = time.perf_counter() - t0
    invocation = {"started": started, "command": command, "wall_s": round(wall, 1), "cells_run": len(todo),
                  "cells_done": results["cells"]["done"], "device": cfg.device.value, "threads": cfg.threads}
    with open(out / "invocations.jsonl", "a") as f:
        f.write(json.dumps(invocation) + "\n")
    invocations = [json.loads(line) for line in (out / "invocations.jsonl").read_text().splitlines() if line.strip()]
    report = atomic_write_text(out / "report.md", report_markdown(results, table, ws, invocations))
    _own(out, *(out / n for n in _EXPERIMENT_FILES if (out / n).is_file()))
    return ExperimentResult(out, results, table, len(todo), len(cells) - len(todo), wall, report, plot)


def classify_config(cfg: ExperimentConfig, cae) -> ClassifyConfig:
    """The classifier settings every arm shares (architecture, preprocessing and window from the CAE when there is one)."""
    from ecgedge.train import adopt_cae

    clf = ClassifyConfig(data=cfg.data, labels=cfg.labels, leads=cfg.resolved.leads, test_fraction=cfg.test_fraction, val_fraction=0.0,
                         preprocess=cfg.preprocess, window=cfg.resolved.window, model=cfg.resolved.model, epochs=cfg.resolved.epochs,
                         class_weighting=cfg.resolved.class_weighting, weight_decay=cfg.resolved.weight_decay,
                         batch_size=cfg.resolved.batch_size, lr=cfg.resolved.lr, seed=cfg.seed, device=cfg.device, run_dir=str(Path(cfg.out) / "cells"))
    return adopt_cae(clf, cae) if cae is not None else clf


def fixed_split(record_labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The one stratified record-level train/test split of the labelled records (unlabelled ones take no part)."""
    from ecgedge.data.splits import split_records

    labelled = np.flatnonzero(record_labels >= 0)
    split = split_records(record_labels[labelled], test_fraction=test_fraction, val_fraction=0.0, seed=seed)
    return labelled[split.train], labelled[split.test], split.notes


def _cae_for(cfg: ExperimentConfig, out: Path, progress: bool, reused, test_ids: list[str]):
    """The CAE checkpoint and what the report says about it; pretrains into OUT/cae, without the test records, unless done before."""
    from ecgedge.hashing import file_sha256
    from ecgedge.train import load_cae, pretrain

    if not cfg.needs_cae:
        return None, {"source": "none: no arm uses a CAE"}
    if reused is not None:
        run_dir = Path(reused.train_config.get("run_dir", "")) if reused.train_config.get("run_dir") else None
        return reused, {"source": f"--cae {cfg.cae}", "checkpoint": reused.path, "sha256": file_sha256(reused.path),
                        "held_out": {k: reused.metrics.get(k) for k in ("mse_normalised", "mse_uv2", "rmse_uv", "windows")},
                        "held_out_note": "as recorded in the checkpoint (its best epoch's validation windows)",
                        "pretrain_records": _used_records(run_dir), "pretrain_paths": reused.train_config.get("data", {}).get("paths", [])}
    run = out / "cae"
    metrics_path = run / "metrics.json"
    done = metrics_path.is_file() and (run / "best.pt").is_file() and not json.loads(metrics_path.read_text()).get("interrupted")
    if not done:
        pcfg = PretrainConfig(data=replace(cfg.pretrain_data, paths=cfg.pretrain_paths), lead=cfg.lead, preprocess=cfg.preprocess,
                              window=WindowConfig(samples=cfg.resolved.window.samples, hop=cfg.resolved.pretrain_hop), model=cfg.resolved.model,
                              epochs=cfg.resolved.pretrain_epochs, batch_size=cfg.resolved.batch_size, lr=cfg.resolved.lr,
                              max_windows=cfg.resolved.pretrain_max_windows, seed=cfg.seed, device=cfg.device, run_dir=str(run))
        if pretrain(pcfg, progress=progress, exclude_records=test_ids, overwrite=True).interrupted:  # an unfinished one of ours
            raise KeyboardInterrupt
    metrics = json.loads(metrics_path.read_text())
    split = json.loads((run / "split.json").read_text())
    used = set(split.get("train_records", [])) | set(split["val_records"])
    cae = load_cae(str(run / "best.pt"), "--cae")
    return cae, {"source": f"pretrained here ({run})", "checkpoint": str(run / "best.pt"), "sha256": file_sha256(run / "best.pt"),
                 "held_out": metrics["held_out"], "held_out_note": "held-out pretraining windows (10 % of its records), best epoch",
                 "epochs": metrics["epochs_run"], "train_windows": metrics["train_windows"], "pretrain_records": len(used),
                 "pretrain_paths": list(cfg.pretrain_paths), "pretrain_on_train": cfg.pretrain_on_train,
                 "excluded_test_records": len(split.get("excluded_records", [])),
                 "test_records_seen_in_pretraining": len(used & set(test_ids)) if "train_records" in split else None}


def _used_records(run_dir: Path | None) -> int | None:
    path = run_dir / "data_summary.json" if run_dir else None
    return len(json.loads(path.read_text())["used"]) if path and path.is_file() else None


def _preflight_2d(cfg: ExperimentConfig, n_classes: int) -> str | None:
    """Build the 2d model (and load ``image_weights``) once before any training, so a too-small image
    or a wrong weights file fails in seconds, not after the other arms; returns the file's sha256."""
    if Arm.image2d not in cfg.arms:
        return None
    from ecgedge.experiment.image2d import EcgImageClassifier

    model = EcgImageClassifier(cfg.resolved.image.height_px, cfg.resolved.image.width_px, len(cfg.resolved.leads), n_classes)
    return model.load_imagenet(cfg.image_weights) if cfg.image_weights else None


def run_cell(cell: Cell, ctx: _Context) -> dict:
    """Train one arm on its (fraction, repeat) bootstrap sample and score it on the test records."""
    import torch

    from ecgedge.experiment.image2d import EcgImageClassifier
    from ecgedge.fit_loop import train_epochs
    from ecgedge.train import classifier_from_init, classifier_recipe, evaluate_classifier

    cfg, ws = ctx.cfg, ctx.ws
    seed = cell_seed(cfg.seed, cell.fraction, cell.repeat)
    sample = ctx.plan[cell.sample_key]
    train_idx = np.concatenate([ctx.record_windows[r] for r in sample])
    train_idx = train_idx[ws.labels[train_idx] >= 0]
    epochs = cell_epochs(len(train_idx), cfg.resolved.batch_size, cfg.resolved.epochs, cfg.resolved.min_steps)
    ccfg = replace(ctx.clf_cfg, seed=seed, epochs=epochs, freeze_encoder=cell.arm is Arm.frozen)
    torch.manual_seed(seed)  # same head initialisation for every 1-D arm of the pair
    model: torch.nn.Module
    if cell.arm is Arm.image2d:
        model = EcgImageClassifier(cfg.resolved.image.height_px, cfg.resolved.image.width_px, len(cfg.resolved.leads), len(ws.class_names))
        init = "random"
        if cfg.image_weights:
            model.load_imagenet(cfg.image_weights)
            init = f"imagenet:{cfg.image_weights}"
    else:
        model = classifier_from_init(ccfg, len(ws.class_names), ctx.cae if cell.arm.needs_cae else None)
        init = "cae" if cell.arm.needs_cae else "random"
    model.to(ctx.device)
    t = time.perf_counter()
    history = list(train_epochs(classifier_recipe(model, ws, train_idx, ccfg, ctx.device), progress=False))
    train_s = time.perf_counter() - t
    test = evaluate_classifier(model, ws, ctx.test_windows, ccfg, ctx.device)
    return {
        "arm": cell.arm.value, "fraction": cell.fraction, "repeat": cell.repeat, "seed": seed, "init": init,
        "train_records": int(len(sample)), "unique_train_records": int(len(np.unique(sample))), "train_windows": int(len(train_idx)),
        "epochs": len(history), "final_train_loss": history[-1]["train_loss"], "train_s": round(train_s, 2),
        "trainable_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "test": {"records": test["records"], "windows": {k: test["windows"][k] for k in ("macro_f1", "weighted_f1", "accuracy")}},
    }


def cell_epochs(windows: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """``epochs``, raised until a cell of ``windows`` training windows takes at least ``min_steps`` optimizer steps."""
    steps = max(math.ceil(windows / batch_size), 1)
    return max(epochs, math.ceil(min_steps / steps))


