"""The rhythm classifier: its recipe (loss, optimiser, schedule), the record split, the fit with
best-epoch selection, and the held-out scoring (through :mod:`ecgedge.evaluate`)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ecgedge.config import ClassifyConfig, ClassWeighting, config_to_dict
from ecgedge.data.preprocess import normalise_windows
from ecgedge.data.provenance import data_record_hashes
from ecgedge.data.splits import Split, split_records, subsample
from ecgedge.data.windows import WindowSet, build_windows
from ecgedge.errors import ConfigError, DataNotFound
from ecgedge.evaluate.metrics import scores_from_logits
from ecgedge.evaluate.plots import plot_confusion, plot_curves
from ecgedge.evaluate.reference import predict_logits
from ecgedge.fit_loop import Best, Recipe, Scored, fit
from ecgedge.models.checkpoint import Checkpoint, load_checkpoint, unfinished_reason
from ecgedge.models.flops import count_macs, count_params
from ecgedge.train.run_folder import TrainResult, checked_device, own_run_files, prepare_run_dir, seed_everything
from ecgedge.train.transfer import adopt_cae, classifier_from_init, load_cae


def interrupted_note(metrics: dict) -> str:
    """The line every output mode prints for a run stopped before its last epoch; ``""`` for a finished run."""
    if not metrics.get("interrupted"):
        return ""
    return f"interrupted after epoch {metrics.get('epochs_run', 0)}: these figures are from an incomplete run"


def selection_score(records: dict) -> tuple[str, float]:
    """The figure that picks the best epoch: the challenge score (mean F1 of N, A, O) where the
    label set has those classes (CinC-2017), else macro F1."""
    if "challenge_score" in records:
        return "challenge_score", float(records["challenge_score"])
    return "macro_f1", float(records["macro_f1"])


def holdout_records(split: Split, record_ids: list[str], paths) -> Split:
    """``split`` with every record found under ``paths`` (matched by record id) moved to its test part."""
    from ecgedge.data.records import find_records

    wanted = {r.record_id for r in find_records(list(paths))}
    if not wanted:
        raise DataNotFound(f"--holdout {', '.join(map(str, paths))}: no records found there")
    held = np.array([i for i, rid in enumerate(record_ids) if rid in wanted], dtype=np.int64)
    note = f"{len(held)} records of {', '.join(map(str, paths))} held out in the test split"
    return replace(split, train=np.setdiff1d(split.train, held), val=np.setdiff1d(split.val, held),
                   test=np.union1d(split.test, held), notes=[*split.notes, note])



def classifier_recipe(model: nn.Module, ws: WindowSet, train_idx: np.ndarray, cfg: ClassifyConfig, device) -> Recipe:
    """How the classifier trains on the windows ``train_idx`` (which may repeat windows).

    Loss: cross-entropy with class weights from the training windows' class counts
    (``cfg.class_weighting``: inverse frequency, its square root, or none); AdamW on the trainable
    parameters (``cfg.lr``, ``cfg.weight_decay``) under a one-cycle schedule stepped every batch;
    batches of ``cfg.batch_size`` shuffled by a generator seeded with ``cfg.seed``. The experiment
    grid trains its cells with the same recipe (through :func:`train_epochs`, without validation).
    """
    n_classes = len(ws.class_names)
    counts = np.bincount(ws.labels[train_idx], minlength=n_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    if cfg.class_weighting == ClassWeighting.sqrt:
        weights = np.sqrt(weights)
    elif cfg.class_weighting == ClassWeighting.none:
        weights = (counts > 0).astype(float)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))

    def loss(net: nn.Module, idx: np.ndarray) -> torch.Tensor:
        x, _ = normalise_windows(ws.windows[idx], cfg.preprocess)
        y = torch.from_numpy(ws.labels[idx]).to(device)
        return loss_fn(net(torch.from_numpy(x).to(device)), y)

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(train_idx) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    return Recipe(model, loss, opt, sched, schedule_per_batch=True, train_idx=train_idx, batch_size=cfg.batch_size,
                  epochs=cfg.epochs, rng=np.random.default_rng(cfg.seed), device=torch.device(device))


def fit_classifier(cfg: ClassifyConfig, *, progress: bool = True, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train the rhythm classifier (CAE-initialised or random) and evaluate it on held-out records.

    Records are split by record (stratified, seeded), ``cfg.holdout`` records forced into the test
    part and the training part subsampled to ``cfg.train_fraction``; training follows
    :func:`classifier_recipe`. ``best.pt`` is the epoch of the highest :func:`selection_score` on
    the validation records (the training windows when there are none); the test records are scored
    with ``best.pt``, with bootstrap intervals. ``resume`` continues from ``run_dir/train_state.pt``
    and ends with the weights an uninterrupted run would have had (see :func:`fit`).
    """
    seed_everything(cfg.seed)
    device = checked_device(cfg.device)
    cae = None
    if cfg.init != "random":
        cae = load_cae(cfg.init, allow_unfinished=cfg.allow_incomplete_init, override="--allow-incomplete-init")
        cfg = adopt_cae(cfg, cae)
    elif cfg.freeze_encoder:
        raise ConfigError("--freeze-encoder needs --init CAE_CKPT (a frozen random encoder learns nothing)")
    run = prepare_run_dir(cfg.run_dir, cfg, task="classify", resume=resume, overwrite=overwrite)
    ws = build_windows(cfg.data, cfg.leads, cfg.preprocess, cfg.window, cfg.labels, progress=progress)
    (run / "data_summary.json").write_text(json.dumps(ws.summary.to_dict(), indent=2))
    if progress:
        tqdm.write(ws.summary.describe())
    classes = ws.class_names
    if len(classes) < 2:
        raise DataNotFound(f"need at least two classes to train a classifier; found {list(classes)}")

    rec_labels = ws.record_labels()
    split = split_records(rec_labels, cfg.test_fraction, cfg.val_fraction, cfg.seed)
    if cfg.holdout:
        split = holdout_records(split, ws.record_ids, cfg.holdout)
    train_records = subsample(split.train, rec_labels, cfg.train_fraction, cfg.seed)
    (run / "split.json").write_text(json.dumps(split.to_dict(ws.record_ids) | {
        "train_used": [ws.record_ids[i] for i in train_records], "train_fraction": cfg.train_fraction,
        "seed": cfg.seed, "cache_key": ws.key,
        "train_sha256": data_record_hashes(cfg.data, [ws.record_ids[i] for i in train_records])}, indent=2))
    train_idx = ws.windows_of_records(train_records)
    train_idx = train_idx[ws.labels[train_idx] >= 0]
    val_idx, test_idx = ws.windows_of_records(split.val), ws.windows_of_records(split.test)
    if not len(test_idx):
        raise DataNotFound("no held-out test records: add records (each class needs at least two)")

    model = classifier_from_init(cfg, len(classes), cae).to(device)
    init_name = "random" if cae is None else str(cae.path)
    init_unfinished = unfinished_reason(cae) if cae is not None else ""  # allowed by --allow-incomplete-init; recorded
    sel_idx, part = (val_idx, "val") if len(val_idx) else (train_idx, "train")

    def validate(row: dict) -> Scored:
        sel = evaluate_classifier(model, ws, sel_idx, cfg, device)
        row = row | {f"{part}_macro_f1": sel["records"]["macro_f1"], "val_loss" if part == "val" else "train_eval_loss": sel["loss"]}
        score_name, score = selection_score(sel["records"])
        if score_name != "macro_f1":
            row[f"{part}_{score_name}"] = score
        line = (f"epoch {row['epoch']}/{cfg.epochs}  loss {row['train_loss']:.3f}  {part} macro F1 {sel['records']['macro_f1']:.3f}"
                + (f"  {part} {score_name.replace('_', ' ')} {score:.3f}" if score_name != "macro_f1" else "")
                + f"  ({row['windows_per_s']:.0f} windows/s)")
        return Scored(row, score, row, line)

    def checkpoint(epoch: int, metrics: dict, complete: bool) -> Checkpoint:
        return Checkpoint("classifier", cfg.model, cfg.preprocess, cfg.window, model.state_dict(), leads=cfg.leads,
                          labels=classes, epoch=epoch, complete=complete, metrics=metrics,
                          train_config=config_to_dict(cfg) | {"init_checkpoint": init_name, "run_dir": str(run),
                                                              **({"init_unfinished": init_unfinished} if init_unfinished else {})})

    fitted = fit(classifier_recipe(model, ws, train_idx, cfg, device), run, validate=validate, best=Best.highest,
                 checkpoint=checkpoint, model_config=config_to_dict(cfg.model), resume=resume, progress=progress, desc="classify")

    best_ckpt = load_checkpoint(fitted.checkpoint)
    best_model = best_ckpt.build_model().to(device)
    test = evaluate_classifier(best_model, ws, test_idx, cfg, device, intervals=True)
    metrics = {
        "kind": "classifier",
        "labels": cfg.labels.value,
        "class_names": list(classes),
        "init": init_name,
        **({"init_unfinished": init_unfinished} if init_unfinished else {}),
        "freeze_encoder": cfg.freeze_encoder,
        "train_fraction": cfg.train_fraction,
        "best_epoch": best_ckpt.epoch,
        "epochs_run": len(fitted.history),
        "interrupted": fitted.interrupted,
        "records": {"train": int(len(train_records)), "val": int(len(split.val)), "test": int(len(split.test))},
        "windows": {"train": int(len(train_idx)), "val": int(len(val_idx)), "test": int(len(test_idx))},
        "test": test,
        "split_notes": split.notes,
        "params": count_params(best_model),
        "macs_per_window": count_macs(best_model.cpu(), (len(cfg.leads), cfg.window.samples)),
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if fitted.history:
        keys = [k for k in fitted.history[0] if k != "epoch"]
        plot_curves(fitted.history, keys, run / "plots" / "curves.png", "classifier training")
    plot_confusion(np.array(test["records"]["confusion"]), classes, run / "plots" / "confusion.png",
                   f"held-out records: macro F1 {test['records']['macro_f1']:.3f}")
    own_run_files(run)
    return TrainResult(run, fitted.checkpoint, metrics, fitted.interrupted)


classify = fit_classifier  # the name the CLI command, quickstart, retrain and the tests' fixtures use


def evaluate_classifier(model: nn.Module, ws: WindowSet, idx: np.ndarray, cfg: ClassifyConfig, device, *, intervals: bool = False) -> dict:
    """Window-level and record-level (window probabilities averaged) metrics and mean loss."""
    idx = np.sort(idx)
    idx = idx[ws.labels[idx] >= 0]
    logits = predict_logits(model, ws, idx, cfg.preprocess, device)
    y = ws.labels[idx]
    loss = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()) if len(y) else float("nan")
    return scores_from_logits(logits, y, ws.window_record[idx], ws.class_names, intervals=intervals) | {"loss": loss}
