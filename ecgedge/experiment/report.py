"""The transfer experiment's statistics and write-up: finished cells in, results.json, table.md,
f1_vs_fraction.png and report.md out.

:func:`summarise` turns the cells' test scores into per-arm, per-fraction means with a 95 %
Student-t interval over repeats (:func:`t_interval`) and the paired difference of every arm
against ``random`` (same bootstrap sample, same seed); :func:`table_markdown` and
:func:`plot_f1_vs_fraction` set them beside the paper's figures; :func:`report_markdown` adds the
command, the data, the CAE and the software versions. Knows nothing of how the cells were run.
"""

from __future__ import annotations

import math
import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from ecgedge.config import config_to_dict
from ecgedge.experiment.config import FORMAT, Arm, ExperimentConfig

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
    summarised per arm and fraction; ``train`` and ``test`` are the split's record indices into ``ws``."""
    classes = list(ws.class_names)
    by_cell = {(c["arm"], c["fraction"], c["repeat"]): c for c in cells}
    f1 = (0.0, 1.0)
    per_arm: dict[str, dict] = {}
    for arm in cfg.arms:
        per_arm[arm.value] = {}
        for f in cfg.fractions:
            runs = [c for c in cells if c["arm"] == arm.value and c["fraction"] == f]
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
                pairs = [(by_cell.get((arm.value, f, r)), by_cell.get((Arm.random.value, f, r))) for r in range(cfg.repeats)]
                diffs = [a["test"]["records"]["macro_f1"] - b["test"]["records"]["macro_f1"] for a, b in pairs if a and b]
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
        "cells": {"done": len(cells), "total": len(cfg.arms) * len(cfg.fractions) * cfg.repeats,
                  "train_s_total": round(sum(r["train_s"] for r in cells), 1)},
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


