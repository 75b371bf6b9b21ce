"""The transfer experiment's statistics and write-up: finished cells in, results.json, table.md,
f1_vs_records.png and report.md out.

:func:`summarise` turns the cells' test scores into per-arm, per-fraction means with a 95 %
Student-t interval over repeats (:func:`t_interval`) and the paired difference of every arm
against ``random`` (same bootstrap sample, same seed); :func:`table_markdown` and
:func:`plot_f1_vs_records` set them beside the paper's figures; :func:`report_markdown` adds the
command, the data, the CAE and the software versions. Knows nothing of how the cells were run.
"""

from __future__ import annotations

import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ecgedge.config import config_to_dict
from ecgedge.experiment.config import FORMAT, Arm, ExperimentConfig

PAPER: dict[str, Any] = {
    "source": "Jang, Kim & Yoon, Healthc Inform Res 2021: Chapman-Shaoxing (10,646 12-lead records, 11 rhythm labels), "
              "macro F1 over its 11 classes; a different data set and label set from CinC-2017",
    "short": "paper (Chapman-Shaoxing, 12-lead, 11 classes, macro F1)",
    "train_records": 8517,  # its 8:2 split of 10,646 records: the x of its points on the records axis
    "f1": {
        "transfer": {1.0: 0.857, 0.5: 0.843, 0.25: 0.835},
        "random": {1.0: 0.843, 0.5: 0.831, 0.25: 0.543},
    },
    "cae_mse_uv2": 626.583,
}

# The figures summarised per cell, in the order tables show them; the challenge score only where the labels have N, A, O.
METRICS = {"challenge_score": "challenge score (mean F1 of N, A, O)", "macro_f1": "macro F1 (all classes)"}

CI_METHOD = ("95 % Student-t interval over repeats: mean ± t(0.975, n-1) · s / √n "
             "(F1 bounds clipped to [0, 1]; none with a single repeat)")



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


def summarise(cells: list[dict], cfg: ExperimentConfig, ws, train: np.ndarray, test: np.ndarray, cae_info: dict,
              image_sha256: str | None) -> dict:
    """results.json: the finished ``cells`` (results of :func:`ecgedge.experiment.run.run_cell`, in grid order)
    summarised per arm and fraction; ``train`` and ``test`` are the split's record indices into ``ws``.

    Every arm is also compared with ``random`` pair by pair (same bootstrap sample, same seed):
    ``paired_vs_random[arm][metric][fraction]`` is the t-interval of the per-repeat differences.
    """
    classes = list(ws.class_names)
    by_cell = {(c["arm"], c["fraction"], c["repeat"]): c for c in cells}
    metrics = [m for m in METRICS if all(m in c["test"]["records"] for c in cells)] or ["macro_f1"]
    f1 = (0.0, 1.0)
    per_arm: dict[str, dict] = {}
    for arm in cfg.arms:
        per_arm[arm.value] = {}
        for f in cfg.fractions:
            runs = [c for c in cells if c["arm"] == arm.value and c["fraction"] == f]
            rec = [r["test"]["records"] for r in runs]
            per_arm[arm.value][_fkey(f)] = {
                **{m: t_interval([r[m] for r in rec], bounds=f1) for m in metrics},
                "weighted_f1": t_interval([r["weighted_f1"] for r in rec], bounds=f1),
                "accuracy": t_interval([r["accuracy"] for r in rec], bounds=f1),
                "per_class_f1": {c: t_interval([r["per_class_f1"][c] for r in rec], bounds=f1) for c in classes},
                "window_macro_f1": t_interval([r["test"]["windows"]["macro_f1"] for r in runs], bounds=f1),
                "train_records": runs[0]["train_records"] if runs else None,
                "epochs": runs[0]["epochs"] if runs else None,
                "train_s_mean": float(np.mean([r["train_s"] for r in runs])) if runs else None,
            }
    paired: dict[str, dict] = {}
    if Arm.random in cfg.arms:
        for arm in (a for a in cfg.arms if a is not Arm.random):
            paired[arm.value] = {}
            for m in metrics:
                paired[arm.value][m] = {}
                for f in cfg.fractions:
                    pairs = [(by_cell.get((arm.value, f, r)), by_cell.get((Arm.random.value, f, r))) for r in range(cfg.resolved.repeats)]
                    diffs = [a["test"]["records"][m] - b["test"]["records"][m] for a, b in pairs if a and b]
                    paired[arm.value][m][_fkey(f)] = t_interval(diffs)
    rec_labels = ws.record_labels()
    per_class = {c: {"train": int((rec_labels[train] == i).sum()), "test": int((rec_labels[test] == i).sum())} for i, c in enumerate(classes)}
    seen = cae_info.get("test_records_seen_in_pretraining")
    if seen is None:
        seen = test_records_in_pretraining(cae_info.get("pretrain_paths"), cfg.data.paths, [ws.record_ids[i] for i in test])
    return {
        "format": FORMAT,
        "metric": "scores on the held-out test records, record level (window probabilities averaged per record)",
        "metrics": metrics,
        "ci": CI_METHOD,
        "class_names": classes,
        "fractions": list(cfg.fractions),
        "arms": [a.value for a in cfg.arms],
        "repeats": cfg.resolved.repeats,
        "cells": {"done": len(cells), "total": len(cfg.arms) * len(cfg.fractions) * cfg.resolved.repeats,
                  "train_s_total": round(sum(r["train_s"] for r in cells), 1)},
        "train_records": {_fkey(f): max(int(round(f * len(train))), 1) for f in cfg.fractions},
        "results": per_arm,
        "paired_vs_random": paired,
        "records": {"train": int(len(train)), "test": int(len(test)), "per_class": per_class,
                    "leads": list(ws.leads), "skipped": ws.summary.skipped, "found": ws.summary.found},
        "cae": cae_info | {"test_records_seen_in_pretraining": seen},
        "image2d_init": (f"ImageNet weights {cfg.image_weights} (sha256 {image_sha256})" if image_sha256
                         else "random initialisation (no --image-weights given)") if Arm.image2d in cfg.arms else None,
        "paper": {"source": PAPER["source"], "short": PAPER["short"], "train_records": PAPER["train_records"],
                  "f1": {a: {_fkey(f): v for f, v in d.items()} for a, d in PAPER["f1"].items()}, "cae_mse_uv2": PAPER["cae_mse_uv2"]},
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


def _fmt(stats: dict, digits: int = 3, sign: bool = False) -> str:
    if not stats["n"]:
        return "—"
    s = f"{stats['mean']:+.{digits}f}" if sign else f"{stats['mean']:.{digits}f}"
    return s + (f" ± {stats['half_width']:.{digits}f}" if stats["half_width"] is not None else "")


def _metrics(results: dict) -> list[str]:
    return results.get("metrics", ["macro_f1"])


def table_markdown(results: dict) -> str:
    """The paper-style table: per metric, the mean ± 95 % half-width per arm (rows) and training fraction
    (columns); under macro F1 the paper's rows, labelled with their own (different) data set."""
    fr = results["fractions"]
    head = "| arm | " + " | ".join(f"{100 * f:g} % ({results['train_records'][_fkey(f)]} rec)" for f in fr) + " |"
    lines: list[str] = []
    for m in _metrics(results):
        lines += [f"**{METRICS[m]}**", "", head, "|---" * (len(fr) + 1) + "|"]
        for arm in results["arms"]:
            lines.append(f"| {_arm_label(arm, results)} | " + " | ".join(_fmt(results["results"][arm][_fkey(f)][m]) for f in fr) + " |")
        if m == "macro_f1":
            for arm, vals in results["paper"]["f1"].items():
                lines.append(f"| *paper: {arm}* | " + " | ".join(f"*{vals[_fkey(f)]:.3f}*" if _fkey(f) in vals else "—" for f in fr) + " |")
        lines.append("")
    n = results["repeats"]
    lines.append(f"Scores on {results['records']['test']} held-out test records, mean ± 95 % t-interval half-width over "
                 f"{n} bootstrap repeat{'s' * (n != 1)} per cell. Column headers: training records drawn per repeat. "
                 f"*paper* rows: {results['paper'].get('short', results['paper']['source'])}, for reference only.")
    return "\n".join(lines)


def paired_markdown(results: dict) -> str:
    """The paired differences against random initialisation, one row per arm and metric ('' without a random arm)."""
    paired = results["paired_vs_random"]
    if not paired:
        return ""
    fr = results["fractions"]
    lines = ["| arm − random | " + " | ".join(f"{100 * f:g} %" for f in fr) + " |", "|---" * (len(fr) + 1) + "|"]
    for arm, by_metric in paired.items():
        if "macro_f1" not in by_metric:  # results.json of the first format: macro F1 only, not keyed by metric
            by_metric = {"macro_f1": by_metric}
        for m, d in by_metric.items():
            lines.append(f"| {arm}, {METRICS[m].split(' (')[0]} | " + " | ".join(_fmt(d[_fkey(f)], sign=True) for f in fr) + " |")
    return "\n".join(lines)


def plot_f1_vs_records(results: dict, path: Path) -> Path:
    """Each metric against the number of labelled training records (log x), one line per arm with its 95 %
    band; the paper's points (its own data set, macro F1) dashed on the macro F1 panel."""
    from ecgedge.evaluate.plots import pyplot

    plt = pyplot()
    metrics = _metrics(results)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.2), dpi=100, squeeze=False)
    fr = results["fractions"]
    x = np.array([results["train_records"][_fkey(f)] for f in fr], dtype=float)
    order = np.argsort(x)
    for ax, m in zip(axes[0], metrics):
        for arm in results["arms"]:
            st = [results["results"][arm][_fkey(f)][m] for f in fr]
            mean = np.array([s["mean"] if s["n"] else np.nan for s in st])
            lo = np.array([s["lo"] if s["lo"] is not None else v for s, v in zip(st, mean)])
            hi = np.array([s["hi"] if s["hi"] is not None else v for s, v in zip(st, mean)])
            line, = ax.plot(x[order], mean[order], marker="o", ms=4, label=_arm_label(arm, results))
            ax.fill_between(x[order], lo[order], hi[order], color=line.get_color(), alpha=0.15, lw=0)
        if m == "macro_f1":
            n = results["paper"].get("train_records", 8517)
            for arm, vals in results["paper"]["f1"].items():
                px = [float(f) * n for f in vals]
                ax.plot(px, list(vals.values()), ls="--", marker="x", color="grey" if arm == "random" else "black", alpha=0.6,
                        label=f"{results['paper'].get('short', 'paper')}: {arm}")
        ax.set_xscale("log")
        ax.set_xlabel("labelled training records (log scale)")
        ax.set_ylabel(METRICS[m] + ", held-out records")
        ax.set_ylim(0, 1.0)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6.5, loc="lower right")
    n = results["repeats"]
    fig.suptitle(f"{results['records']['test']} test records; {n} bootstrap repeat{'s' * (n != 1)} per point, band = 95 % t-interval",
                 fontsize=9)
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
              f"{cfg['repeats']} repeat(s); CAE {cfg['pretrain_epochs']} epoch(s); seed {cfg['seed']}; device {cfg['device']}. "
              f"Classifier recipe: {cfg.get('recipe') or 'ecgedge defaults'} (head {cfg['model']['head_channels']} channels, "
              f"dilations {cfg['model']['head_dilations']}, dropout {cfg['model']['dropout']}, class weighting "
              f"{cfg.get('class_weighting', 'inverse')}, weight decay {cfg.get('weight_decay')}). Windows per record: "
              f"{cfg.get('train_windows_per_record') or 'all'} in training, {cfg.get('test_windows_per_record') or 'all'} in testing "
              f"({rec.get('test_windows', '?')} test windows), the most recent first.", ""]

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
                     f"paper: {results['paper']['cae_mse_uv2']} µV² (its own lead-II data).")
    else:
        lines.append(f"Source: {cae['source']}.")
    seen = cae.get("test_records_seen_in_pretraining")
    if cae.get("pretrain_paths"):
        on_train = (" The labelled training records' windows were part of it with their labels unused, "
                    f"and the {cae.get('excluded_test_records', 0)} test records were excluded by id." if cae.get("pretrain_on_train") else "")
        windows = f", {cae['train_windows']} training windows" if cae.get("train_windows") else ""
        lines.append(f"Pretraining data: {', '.join(cae['pretrain_paths'])} ({cae.get('pretrain_records') or '?'} records used{windows}).{on_train} "
                     + ("Whether test records were among them is unknown (paths not here)." if seen is None else
                        f"{seen} of the {rec['test']} test records were among them"
                        + (" (unlabelled, but the encoder has seen them: pretrain on a separate archive for a clean comparison)." if seen else
                           ": the CAE was pretrained only on windows of records outside the test split.")))
    lines.append("")
    if results.get("image2d_init"):
        lines += [f"2-D arm: {results['image2d_init']}; images {cfg['image']['height_px']} x {cfg['image']['width_px']} px, "
                  "leads stacked as bands, drawn from the z-scored windows.", ""]

    epochs = {f: results["results"][results["arms"][0]][_fkey(f)].get("epochs") for f in results["fractions"]}
    lines += ["## Results", "", table, "", f"Interval: {results['ci']}. Metric: {results['metric']}.",
              "Every arm of a (fraction, repeat) pair trains on the same bootstrap sample with the same seed for the same "
              "epochs; the model after the last epoch is scored (no early stopping). Epochs per cell by fraction "
              f"(raised to at least {cfg.get('min_steps', 0)} optimizer steps): "
              + ", ".join(f"{100 * f:g} %: {e}" for f, e in epochs.items() if e) + ".", ""]
    paired = paired_markdown(results)
    if paired:
        lines += ["Paired difference against random initialisation (same sample, same seed, per repeat), mean ± 95 % t-interval "
                  "half-width; an interval that includes 0 is no evidence either way:", "", paired, ""]
    lines += ["![scores against labelled training records](f1_vs_records.png)", "",
              f"Paper: {results['paper']['source']}. Weighted F1, accuracy and per-class F1 are in `results.json`.", ""]

    lines += ["## Software", "", "| | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _versions().items()]
    return "\n".join(lines) + "\n"



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


