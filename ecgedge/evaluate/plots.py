"""PNG plots for run folders (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(confusion: np.ndarray, class_names, path: str | Path, title: str = "") -> Path:
    plt = _plt()
    cm = np.asarray(confusion)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k), dpi=120)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_curves(history: list[dict], keys: list[str], path: str | Path, title: str = "") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    epochs = [h["epoch"] for h in history]
    for k in keys:
        vals = [h.get(k) for h in history]
        if any(v is not None for v in vals):
            ax.plot(epochs, [np.nan if v is None else v for v in vals], marker="o", label=k)
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_reconstruction(x: np.ndarray, y: np.ndarray, fs: float, path: str | Path, title: str = "") -> Path:
    """Overlay of an input window and its CAE reconstruction (normalised units)."""
    plt = _plt()
    t = np.arange(x.shape[-1]) / fs
    fig, ax = plt.subplots(figsize=(8, 2.5), dpi=120)
    ax.plot(t, x, lw=0.8, label="input")
    ax.plot(t, y, lw=0.8, label="reconstruction")
    ax.set_xlabel("s")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _class_colours(labels) -> dict:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return {c: cmap(i % 10) for i, c in enumerate(labels)}


def plot_stream_timeline(ref, windows: list[dict], events: list[dict], class_map: dict, labels, path: str | Path) -> Path:
    """One record of ``ecgedge evaluate stream``: reference class, stream label per window, window quality
    and the stream's rhythm changes against time (h). ``ref`` is a
    :class:`~ecgedge.data.annotations.RhythmReference`; windows and events are the stream's JSON records."""
    plt = _plt()
    colours = _class_colours(labels)
    hours = 3600.0 * ref.fs_hz
    fig, ax = plt.subplots(figsize=(12, 2.6), dpi=110)
    for a, b, code in ref.intervals:
        cls = class_map.get(code)
        ax.broken_barh([(a / hours, (b - a) / hours)], (2.1, 0.8), color=colours.get(cls, "lightgrey"))
    for a, b in ref.noise:
        ax.broken_barh([(a / hours, (b - a) / hours)], (2.1, 0.8), facecolor="none", hatch="////", edgecolor="black", linewidth=0.5)
    for w in windows:
        a, b = w["new"]
        if w["quality"] == "ok":
            ax.broken_barh([(a / hours, (b - a) / hours)], (1.1, 0.8), color=colours.get(w.get("label"), "lightgrey"))
        else:
            ax.broken_barh([(a / hours, (b - a) / hours)], (0.1, 0.8), color="black")
    for e in events:
        if e.get("type") == "rhythm_change":
            ax.axvline(e["sample"] / hours, ymin=0.33, ymax=0.66, color=colours.get(e["to"], "grey"), linewidth=0.8)
    ax.set_yticks([0.5, 1.5, 2.5], ["unreliable", "stream", "reference"], fontsize=8)
    ax.set_xlim(0, ref.n_samples / hours)
    ax.set_xlabel("time (h)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in labels]
    ax.legend(handles, labels, loc="upper right", ncol=len(labels), fontsize=7, bbox_to_anchor=(1.0, 1.25))
    ax.set_title(Path(ref.record).name, fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_stream_sweep(sweep: list[dict], path: str | Path) -> Path:
    """Median alarm delay (s) against false AF alarms per hour, one point per (hop, hysteresis)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=110)
    for hop in sorted({r["hop_s"] for r in sweep}):
        pts = [r for r in sweep if r["hop_s"] == hop and r["alarm_delay"]["median_s"] is not None]
        x = [r["alarm_delay"]["median_s"] for r in pts]
        y = [r["gross"]["false_alarms_per_hour"] or 0.0 for r in pts]
        ax.plot(x, y, marker="o", label=f"hop {hop:g} s")
        for r, xi, yi in zip(pts, x, y):
            ax.annotate(str(r["hysteresis"]), (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xlabel("median AF alarm delay (s)")
    ax.set_ylabel("false AF alarms per hour")
    ax.set_title("hop x hysteresis (labels: hysteresis, windows)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
