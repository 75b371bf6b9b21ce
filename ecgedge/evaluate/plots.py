"""PNG plots for run folders (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display): every plot of ecgedge draws with it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(confusion: np.ndarray, class_names, path: str | Path, title: str = "") -> Path:
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
    cmap = plt.get_cmap("tab10")
    return {c: cmap(i % 10) for i, c in enumerate(labels)}


def plot_stream_timeline(ref, windows: list[dict], events: list[dict], class_map: dict, labels, path: str | Path) -> Path:
    """One record of ``ecgedge evaluate stream``: reference class, stream label per window, window quality
    and the stream's rhythm changes against time (h). ``ref`` is a
    :class:`~ecgedge.data.annotations.RhythmReference`; windows and events are the stream's JSON records."""
    plt = pyplot()
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
    plt = pyplot()
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


def error_panels(error_s: np.ndarray, duration_s: float, panels: int, panel_s: float) -> list[float]:
    """Start times (s) of at most ``panels`` windows of ``panel_s`` seconds that hold the most errors
    (misses and false detections at ``error_s``), each window's errors counted once, in time order."""
    t = np.sort(np.asarray(error_s, dtype=np.float64))
    free = np.ones(len(t), dtype=bool)
    starts: list[float] = []
    while len(starts) < panels and free.any():
        cand = np.clip(t[free] - panel_s / 2, 0.0, max(0.0, duration_s - panel_s))
        counts = [int((free & (t >= c) & (t < c + panel_s)).sum()) for c in cand]
        best = float(cand[int(np.argmax(counts))])
        starts.append(best)
        free &= ~((t >= best) & (t < best + panel_s))
    return sorted(starts)


def plot_beat_record(signal: np.ndarray, score, path: str | Path, title: str = "", *, panels: int = 6, panel_s: float = 4.0) -> Path:
    """One record's beat scoring (``score``: :class:`ecgedge.evaluate.beats.BeatScore`) over its lead ``signal`` (mV).

    A record of a minute or less is drawn whole. A longer one gets a timeline of where the misses
    (FN) and false detections (FP) fall, then up to ``panels`` zoomed windows of ``panel_s`` seconds
    around the densest groups of errors (the start of the scored span when there is none).
    Reference beats: green triangles; detections: blue crosses; misses: red circles; false
    detections: orange squares; grey: not scored.
    """
    plt = pyplot()
    x = np.asarray(signal, dtype=np.float64)
    fs = score.fs_hz
    n = len(x)
    duration = n / fs
    fn_s, fp_s = score.misses / fs, score.false_detections / fs
    a, b = score.span[0] / fs, score.span[1] / fs

    def strip(ax, t0: float, t1: float) -> None:
        i0, i1 = max(0, int(t0 * fs)), min(n, int(np.ceil(t1 * fs)))
        t = np.arange(i0, i1) / fs
        ax.plot(t, x[i0:i1], lw=0.7, color="0.25")
        lo, hi = (np.nanmin(x[i0:i1]), np.nanmax(x[i0:i1])) if i1 > i0 else (-1.0, 1.0)
        pad = 0.15 * (hi - lo if hi > lo else 1.0)
        top = hi + pad

        def marks(samples: np.ndarray, y, style: dict, label: str) -> None:
            s = samples[(samples >= i0) & (samples < i1)]
            ax.plot(s / fs, np.broadcast_to(y(s), s.shape), linestyle="none", label=label, **style)

        marks(score.reference, lambda s: top, dict(marker="v", color="tab:green", ms=5), "reference")
        marks(score.detections, lambda s: x[s], dict(marker="x", color="tab:blue", ms=5), "detection")
        marks(score.misses, lambda s: top, dict(marker="o", mfc="none", color="tab:red", ms=10, mew=1.5), "miss (FN)")
        marks(score.false_detections, lambda s: x[s], dict(marker="s", mfc="none", color="tab:orange", ms=10, mew=1.5),
              "false detection (FP)")
        for u0, u1 in [(0.0, a), (b, duration)] + [(p / fs, q / fs) for p, q in score.unscored]:
            if u1 > max(u0, t0) and u0 < t1:
                ax.axvspan(max(u0, t0), min(u1, t1), color="0.85", zorder=0)
        ax.set_xlim(t0, t1)
        ax.set_ylim(lo - pad, top + pad)
        ax.set_ylabel("mV", fontsize=7)
        ax.tick_params(labelsize=7)

    if duration <= 60:
        fig, ax = plt.subplots(figsize=(max(8.0, duration * 0.9), 2.8), dpi=110)
        strip(ax, 0.0, duration)
        ax.set_xlabel("s", fontsize=7)
        ax.legend(fontsize=7, loc="lower right", ncol=4)
        ax.set_title(title, fontsize=9)
    else:
        starts = error_panels(np.concatenate([fn_s, fp_s]), duration, panels, panel_s) or [min(a, max(0.0, duration - panel_s))]
        fig, axes = plt.subplots(1 + len(starts), 1, figsize=(11, 1.3 + 1.8 * len(starts)), dpi=110,
                                 gridspec_kw={"height_ratios": [0.8] + [1.6] * len(starts)})
        tl = axes[0]
        tl.eventplot([fn_s / 60, fp_s / 60], lineoffsets=[1, 0], linelengths=0.8, colors=["tab:red", "tab:orange"], linewidths=0.8)
        tl.axvspan(0, a / 60, color="0.85", zorder=0)
        tl.axvspan(b / 60, duration / 60, color="0.85", zorder=0)
        for s0 in starts:
            tl.axvspan(s0 / 60, (s0 + panel_s) / 60, color="tab:blue", alpha=0.15)
        tl.set_yticks([0, 1], [f"FP ({len(fp_s)})", f"FN ({len(fn_s)})"], fontsize=7)
        tl.set_xlim(0, duration / 60)
        tl.set_xlabel("min (grey: not scored; blue: the panels below)", fontsize=7)
        tl.tick_params(labelsize=7)
        tl.set_title(title, fontsize=9)
        for ax, s0 in zip(axes[1:], starts):
            strip(ax, s0, s0 + panel_s)
            ax.set_xlabel("s", fontsize=7, labelpad=0)
        axes[1].legend(fontsize=7, loc="lower right", ncol=4)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return Path(path)
