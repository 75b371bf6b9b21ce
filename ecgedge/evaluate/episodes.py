"""AF episode and duration statistics of a rhythm monitor, as ANSI/AAMI EC57 scores them (WFDB ``epicmp``).

Pure numpy on sample intervals; no model, no stream. :mod:`ecgedge.evaluate.stream` feeds it
the reference AF episodes of a record (from its ``.atr`` rhythm annotations) and the monitor's AF
episodes (from its ``rhythm_change`` events), and it returns what a monitor is judged by.

Conventions (``epicmp``'s, as documented in its manual page and EC57):

- An **episode** is a half-open sample interval ``[start, end)``. Reference episodes are the runs
  of AF (``(AFIB``) in the annotations; test episodes are the runs the monitor called AF.
- **Any overlap** makes a match: a reference episode is *detected* when at least one test episode
  overlaps it (episode sensitivity, Se); a test episode is *true* when it overlaps at least one
  reference episode (episode positive predictivity, +P).
- **Duration** statistics count samples: duration Se = overlap / reference AF time, duration +P =
  overlap / test AF time.
- **Atrial flutter is excluded**: time the reference annotates as ``(AFL`` is removed from both
  sides before anything is counted (a monitor calling flutter AF is neither right nor wrong there);
  a test episode lying wholly inside flutter is dropped.
- **Gross** statistics pool the counts of all records; **average** statistics are the mean of the
  per-record values over the records where they are defined (a record with no reference AF has no
  Se). Both are reported, as EC57 tables do.

Added for bedside use (IEC 60601-2-27 asks monitors to disclose alarm delays):

- **alarm delay** of a detected reference episode: seconds from its onset to the onset of the
  first test episode that overlaps it, 0 when AF was already being reported at its onset;
- **false AF alarms per hour**: test episodes that overlap no reference AF, per hour of scored time
  (record length minus excluded flutter);
- **coverage**: share of the scored time that the monitor classified reliably (its ``ok``
  windows' new samples), given by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

Interval = tuple[int, int]
"""A half-open sample interval ``[start, end)`` at the record's sampling rate."""


def merge(intervals: Iterable[Sequence[int]]) -> list[Interval]:
    """Sorted, non-empty, non-overlapping intervals covering the same samples (touching ones joined)."""
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def total(intervals: Iterable[Interval]) -> int:
    """Samples covered by merged ``intervals``."""
    return sum(b - a for a, b in merge(intervals))


def intersect(x: Sequence[Interval], y: Sequence[Interval]) -> list[Interval]:
    """The samples in both interval sets, as merged intervals."""
    x, y = merge(x), merge(y)
    out, i, j = [], 0, 0
    while i < len(x) and j < len(y):
        a, b = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if a < b:
            out.append((a, b))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(x: Sequence[Interval], y: Sequence[Interval]) -> list[Interval]:
    """The samples of ``x`` not in ``y``, as merged intervals."""
    out = []
    y = merge(y)
    for a, b in merge(x):
        for c, d in y:
            if d <= a or c >= b:
                continue
            if c > a:
                out.append((a, c))
            a = max(a, d)
            if a >= b:
                break
        if a < b:
            out.append((a, b))
    return out


def _overlaps(episode: Interval, others: Sequence[Interval]) -> bool:
    return any(a < episode[1] and episode[0] < b for a, b in others)


@dataclass
class EpisodeScore:
    """One record's AF scoring. Counts are episodes; ``*_s`` are seconds at ``fs_hz``.

    ``delays_s``: alarm delay of each detected reference episode, in onset order.
    """

    record: str
    fs_hz: float
    scored_s: float
    ref_episodes: int
    ref_detected: int
    test_episodes: int
    test_true: int
    ref_s: float
    test_s: float
    overlap_s: float
    delays_s: list[float] = field(default_factory=list)
    covered_s: float | None = None

    @property
    def missed(self) -> int:
        return self.ref_episodes - self.ref_detected

    @property
    def false_alarms(self) -> int:
        return self.test_episodes - self.test_true

    @property
    def episode_se(self) -> float | None:
        return self.ref_detected / self.ref_episodes if self.ref_episodes else None

    @property
    def episode_ppv(self) -> float | None:
        return self.test_true / self.test_episodes if self.test_episodes else None

    @property
    def duration_se(self) -> float | None:
        return self.overlap_s / self.ref_s if self.ref_s > 0 else None

    @property
    def duration_ppv(self) -> float | None:
        return self.overlap_s / self.test_s if self.test_s > 0 else None

    @property
    def false_alarms_per_hour(self) -> float | None:
        return self.false_alarms / (self.scored_s / 3600.0) if self.scored_s > 0 else None

    @property
    def coverage(self) -> float | None:
        return self.covered_s / self.scored_s if self.covered_s is not None and self.scored_s > 0 else None

    def to_json(self) -> dict:
        out = {"record": self.record, "fs_hz": self.fs_hz, "scored_s": round(self.scored_s, 3),
               "ref_episodes": self.ref_episodes, "ref_detected": self.ref_detected, "missed": self.missed,
               "test_episodes": self.test_episodes, "test_true": self.test_true, "false_alarms": self.false_alarms,
               "ref_s": round(self.ref_s, 3), "test_s": round(self.test_s, 3), "overlap_s": round(self.overlap_s, 3),
               "delays_s": [round(d, 3) for d in self.delays_s]}
        for key in STATISTICS:
            value = getattr(self, key)
            out[key] = None if value is None else round(value, 4)
        return out


STATISTICS = ("episode_se", "episode_ppv", "duration_se", "duration_ppv", "false_alarms_per_hour", "coverage")
"""The per-record ratios, in table order."""


def score_episodes(reference: Sequence[Interval], test: Sequence[Interval], *, n_samples: int, fs_hz: float,
                   excluded: Sequence[Interval] = (), covered: Sequence[Interval] | None = None,
                   record: str = "") -> EpisodeScore:
    """Score one record's AF episodes (module docstring for the conventions).

    Args:
        reference: reference AF episodes, sample intervals (merged here).
        test: the monitor's AF episodes (merged here: touching episodes are one).
        n_samples: record length in samples; everything is clipped to ``[0, n_samples)``.
        fs_hz: sampling rate in Hz (turns samples into seconds).
        excluded: time not scored (reference atrial flutter).
        covered: time the monitor classified reliably (None: coverage not reported).
        record: the record's name in reports.
    """
    whole = [(0, int(n_samples))]
    keep = subtract(whole, excluded)
    ref = intersect(reference, keep)
    # Each test episode is clipped to the scored time; one wholly inside excluded time is dropped.
    tests = [pieces for a, b in merge(test) if (pieces := intersect([(a, b)], keep))]
    overlap = intersect(ref, [p for pieces in tests for p in pieces])
    detected, delays = 0, []
    for episode in ref:
        hits = [pieces for pieces in tests if any(_overlaps(p, [episode]) for p in pieces)]
        if hits:
            detected += 1
            onset = min(p[0] for pieces in hits for p in pieces if _overlaps(p, [episode]))
            delays.append(max(0, onset - episode[0]) / fs_hz)
    true = sum(1 for pieces in tests if any(_overlaps(p, ref) for p in pieces))
    return EpisodeScore(
        record=record, fs_hz=float(fs_hz), scored_s=total(keep) / fs_hz,
        ref_episodes=len(ref), ref_detected=detected, test_episodes=len(tests), test_true=true,
        ref_s=total(ref) / fs_hz, test_s=sum(total(p) for p in tests) / fs_hz, overlap_s=total(overlap) / fs_hz,
        delays_s=delays, covered_s=None if covered is None else total(intersect(covered, keep)) / fs_hz)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _mean(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def delay_summary(delays_s: Sequence[float], missed: int) -> dict:
    """Median and 90th percentile of alarm delays (s; None without a detection) and the missed count."""
    d = np.asarray(delays_s, dtype=float)
    return {"detected": int(d.size), "missed": int(missed),
            "median_s": round(float(np.median(d)), 3) if d.size else None,
            "p90_s": round(float(np.percentile(d, 90)), 3) if d.size else None,
            "max_s": round(float(d.max()), 3) if d.size else None}


def summarise(scores: Sequence[EpisodeScore]) -> dict:
    """Gross (pooled counts) and average (mean of per-record values) statistics, and the alarm delays."""
    s = list(scores)
    scored = sum(x.scored_s for x in s)
    covered = [(x.covered_s, x.scored_s) for x in s if x.covered_s is not None]
    gross = {
        "episode_se": _ratio(sum(x.ref_detected for x in s), sum(x.ref_episodes for x in s)),
        "episode_ppv": _ratio(sum(x.test_true for x in s), sum(x.test_episodes for x in s)),
        "duration_se": _ratio(sum(x.overlap_s for x in s), sum(x.ref_s for x in s)),
        "duration_ppv": _ratio(sum(x.overlap_s for x in s), sum(x.test_s for x in s)),
        "false_alarms_per_hour": _ratio(sum(x.false_alarms for x in s), scored / 3600.0),
        "coverage": _ratio(sum(c for c, _ in covered), sum(t for _, t in covered)) if covered else None,
    }
    average = {key: _mean(getattr(x, key) for x in s) for key in STATISTICS}
    delays = [d for x in s for d in x.delays_s]
    return {"records": len(s), "hours": round(scored / 3600.0, 3),
            "gross": {k: None if v is None else round(v, 4) for k, v in gross.items()},
            "average": {k: None if v is None else round(v, 4) for k, v in average.items()},
            "alarm_delay": delay_summary(delays, sum(x.missed for x in s)),
            "false_alarms": sum(x.false_alarms for x in s)}


def _cell(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.2f}"


def markdown_table(scores: Sequence[EpisodeScore], summary: dict | None = None) -> str:
    """An EC57-style table: one row per record, then gross and average rows (Se/+P in %)."""
    summary = summary or summarise(scores)
    head = ("| record | hours | ref AF episodes | episode Se | episode +P | duration Se | duration +P | "
            "median alarm delay (s) | false AF alarms / h | coverage |")
    lines = [head, "|" + " --- |" * 10]
    for x in scores:
        d = delay_summary(x.delays_s, x.missed)["median_s"]
        lines.append(f"| {x.record} | {x.scored_s / 3600:.2f} | {x.ref_episodes} | {_cell(x.episode_se)} | {_cell(x.episode_ppv)} | "
                     f"{_cell(x.duration_se)} | {_cell(x.duration_ppv)} | {'-' if d is None else f'{d:.1f}'} | "
                     f"{_cell(x.false_alarms_per_hour, pct=False)} | {_cell(x.coverage)} |")
    d = summary["alarm_delay"]["median_s"]
    for name in ("gross", "average"):
        g = summary[name]
        lines.append(f"| **{name}** | {summary['hours']:.2f} | {sum(x.ref_episodes for x in scores)} | {_cell(g['episode_se'])} | "
                     f"{_cell(g['episode_ppv'])} | {_cell(g['duration_se'])} | {_cell(g['duration_ppv'])} | "
                     f"{'-' if d is None or name == 'average' else f'{d:.1f}'} | {_cell(g['false_alarms_per_hour'], pct=False)} | "
                     f"{_cell(g['coverage'])} |")
    return "\n".join(lines)
