"""Signal checks on a (leads, samples) array in mV: NaN/inf, flat, saturated and implausibly large
leads, and the sampling rate a model's band needs.

numpy only (no wfdb, no torch): the data layer calls :func:`signal_problems` per record; the
streaming monitor takes each sample's statistics once, per hop (:class:`RunningSignalChecks`), and
calls :func:`signal_problems` only on a window those cannot clear (12 x 4096 float64 samples, a
window at 500 Hz, cost about 0.5 ms; the running checks about 0.1 ms per hop).

Where each check is applied, and why:

- **NaN/inf** make the windows that touch them unusable: ``read_record`` keeps them as NaN and
  ``ecgedge.data.windows`` skips those windows, naming the samples with :func:`nonfinite_problems`
  (the same wording as here); the flat/saturated checks then look at the valid samples.
- **Flat and saturated** leads are judged by callers on the leads they use: a pretraining job on
  lead II keeps a record whose V3 is flat, a 12-lead classifier skips it.

A lead is *flat* when its standard deviation is below ``flat_std_mv`` (an unplugged electrode or a
zero-filled channel). It is *saturated* when at least ``saturation_fraction`` of its samples sit
exactly at its own minimum or maximum: an amplifier or ADC at its rail clips many samples to one
value, while a real ECG touches its extremes only at a few samples per beat. It is *implausible*
when it reaches beyond ``max_abs_mv`` (default :data:`MAX_PLAUSIBLE_MV`): a wrong gain, not a heart.

A sampling rate below twice the band-pass upper edge (:func:`rate_problem`) cannot carry the band
the model was trained on: records at such a rate are skipped, stream windows are unreliable.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Surface ECG QRS complexes stay within a few mV (about 5 mV in tall-voltage LVH, MIT-BIH's format 212
# clips at +-5.12 mV); 20 mV leaves room for baseline wander and pacing spikes while a wrong gain
# (1 adu/mV for 1000, a 1000x device gain) lands far beyond it.
MAX_PLAUSIBLE_MV = 20.0
# Defaults of :func:`signal_problems` (see its docstring), shared with :class:`RunningSignalChecks`.
FLAT_STD_MV = 0.005
SATURATION_FRACTION = 0.05
# Relative margin on the flat threshold in :class:`RunningSignalChecks`: its variance is a lower bound
# computed in another order than ``np.std`` (both err by ~1e-13 relative); 1e-6 keeps every lead it calls
# "not flat" far from the threshold, and a real ECG (std ~0.1-1 mV) is 20-200 times above 5 µV anyway.
FLAT_MARGIN = 1e-6


def rate_problem(fs: float, band_high_hz: float) -> str:
    """Why ``fs`` (Hz) cannot carry a band-pass up to ``band_high_hz`` (Hz); "" when it can.

    The band needs a Nyquist frequency at or above its upper edge, so ``fs >= 2 * band_high_hz``
    (80 Hz for the default 40-Hz edge, ``PreprocessConfig.bandpass_high_hz``); e.g.
    ``"sampling rate too low: fs 0.5 Hz is below 80 Hz, twice the 40-Hz band edge"``.
    """
    need = 2.0 * band_high_hz
    if fs >= need:
        return ""
    return f"sampling rate too low: fs {fs:g} Hz is below {need:g} Hz, twice the {band_high_hz:g}-Hz band edge"


def signal_problems(
    signal_mv: np.ndarray,
    fs: float,
    lead_names: Sequence[str],
    *,
    flat_std_mv: float = FLAT_STD_MV,
    saturation_fraction: float = SATURATION_FRACTION,
    max_abs_mv: float = MAX_PLAUSIBLE_MV,
) -> list[str]:
    """Human-readable problems of a multi-lead signal; an empty list when it is fine.

    Args:
        signal_mv: (n_leads, n_samples) signal in mV.
        fs: sampling rate in Hz (used to state where non-finite samples are, in seconds).
        lead_names: one name per row, used in the messages.
        flat_std_mv: a lead whose standard deviation is below this (mV) is flat; default 5 µV.
        saturation_fraction: a lead with at least this fraction of samples at its minimum or
            maximum is saturated; default 0.05 (5 %).
        max_abs_mv: a lead reaching beyond +-this (mV) has an implausible amplitude (a wrong
            gain); default :data:`MAX_PLAUSIBLE_MV`, 20 mV. Checked after flat and saturated.

    Returns:
        One message per problem, in lead order, e.g. ``"NaN in lead V2 at samples 100-180
        (0.200-0.360 s)"``, ``"lead III flat (std 0.0001 mV)"``, ``"lead V1 saturated (12% of
        samples at the rail)"``, ``"implausible amplitude: lead II reaches 1000 mV; check the
        gain"``. A lead with non-finite samples gets only the non-finite message.

    Raises:
        ValueError: ``signal_mv`` is not 2-D or its rows do not match ``lead_names`` (a bug in the caller).
    """
    x = _check_shape(signal_mv, lead_names)
    n = x.shape[1]
    if n == 0:
        return ["no samples"]
    finite_rows = np.isfinite(x).all(axis=1)
    std = np.full(len(lead_names), np.nan)
    at_rail = np.zeros(len(lead_names))
    peak = np.zeros(len(lead_names))
    if finite_rows.any():
        ok = x if finite_rows.all() else x[finite_rows]
        lo = ok.min(axis=1, keepdims=True)
        hi = ok.max(axis=1, keepdims=True)
        std[finite_rows] = ok.std(axis=1)
        peak[finite_rows] = np.where(np.abs(lo) > np.abs(hi), lo, hi)[:, 0]
        at_rail[finite_rows] = np.count_nonzero(ok == lo, axis=1) + np.count_nonzero(ok == hi, axis=1)
    problems = []
    for i, name in enumerate(lead_names):
        if not finite_rows[i]:
            problems.append(_nonfinite_message(x[i], fs, name))
        elif std[i] < flat_std_mv:
            problems.append(f"lead {name} flat (std {std[i]:.2g} mV)")
        elif at_rail[i] / n >= saturation_fraction:
            problems.append(f"lead {name} saturated ({at_rail[i] / n:.0%} of samples at the rail)")
        elif abs(peak[i]) > max_abs_mv:
            problems.append(f"implausible amplitude: lead {name} reaches {peak[i]:.4g} mV; check the gain")
    return problems


class RunningSignalChecks:
    """The checks of :func:`signal_problems` on a stream's windows, from statistics taken once per block.

    A stream adds its samples once, in contiguous blocks (``add``); a window that is a run of whole
    recent blocks is then judged from per-block, per-lead statistics (minimum and maximum, how many
    samples sit at each, the within-block sum of squared deviations) instead of every sample again.
    ``clearly_clean`` answers True only when :func:`signal_problems` would return ``[]`` for that
    window; anything else (a non-finite sample, a lead near or past a threshold, a span that is not a
    run of stored blocks) answers False, and the caller runs :func:`signal_problems` on the window, so
    verdicts and messages are exactly those of the full check:

    - *non-finite*: a NaN propagates into a block's minimum and maximum, an inf is one of them;
    - *saturated* and *implausible*: exact, as a window's minimum is the least block minimum and the
      samples at it are those of the blocks whose minimum it is (integer counts, same division);
    - *flat*: the within-block variance ``sum(M2_b) / n`` is a lower bound of the window's variance;
      a lead is clean only when that bound exceeds ``flat_std_mv**2`` by :data:`FLAT_MARGIN`.

    Args:
        n_leads: rows of every block.
        max_blocks: blocks kept (older ones fall out); a window needing more is checked in full.
        flat_std_mv, saturation_fraction, max_abs_mv: as :func:`signal_problems`.
    """

    def __init__(self, n_leads: int, max_blocks: int, *, flat_std_mv: float = FLAT_STD_MV,
                 saturation_fraction: float = SATURATION_FRACTION, max_abs_mv: float = MAX_PLAUSIBLE_MV):
        self.n_leads, self.capacity = n_leads, max_blocks
        self.flat_var = flat_std_mv * flat_std_mv * (1.0 + FLAT_MARGIN)
        self.saturation_fraction, self.max_abs_mv = saturation_fraction, max_abs_mv
        # Every block is stored twice (at i and i + capacity), so the latest k blocks are one slice.
        size = 2 * max_blocks
        self._lo, self._hi, self._m2 = (np.zeros((size, n_leads)) for _ in range(3))
        self._n_lo, self._n_hi = (np.zeros((size, n_leads), dtype=np.int64) for _ in range(2))
        self._start = np.zeros(size, dtype=np.int64)
        self.blocks = 0  # blocks ever added
        self.end: int | None = None  # sample index just past the newest block

    def add(self, block: np.ndarray, start: int) -> None:
        """Statistics of ``block`` ((leads, n) samples in mV, n >= 1), the samples ``[start, start + n)``.

        Blocks must follow each other (``start`` equals the previous block's end).
        """
        x = np.asarray(block, dtype=np.float64)
        assert x.ndim == 2 and x.shape[0] == self.n_leads and x.shape[1] > 0, x.shape
        self._store(_block_stats(x), start, x.shape[1])

    @staticmethod
    def add_many(checks: "Sequence[RunningSignalChecks]", blocks: Sequence[np.ndarray], starts: Sequence[int]) -> None:
        """``[c.add(b, s) for c, b, s in zip(checks, blocks, starts)]`` with the statistics of all blocks of
        one shape taken in one pass (rows are independent: each row's figures are those ``add`` gives).
        A stream may add several blocks, in order."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, b in enumerate(blocks):
            groups.setdefault(np.shape(b), []).append(i)
        stats: list[tuple | None] = [None] * len(blocks)
        for shape, members in groups.items():
            rows = shape[0]
            parts = [np.asarray(blocks[i], dtype=np.float64) for i in members]
            x = parts[0] if len(parts) == 1 else np.concatenate(parts)
            lo, hi, n_lo, n_hi, m2 = _block_stats(x)
            for j, i in enumerate(members):
                r = slice(j * rows, (j + 1) * rows)
                stats[i] = (lo[r], hi[r], n_lo[r], n_hi[r], m2[r])
        for c, st, start, b in zip(checks, stats, starts, blocks):
            assert st is not None and b.shape[0] == c.n_leads and b.shape[1] > 0, np.shape(b)
            c._store(st, start, b.shape[1])

    def _store(self, stats: tuple, start: int, n: int) -> None:
        assert self.end is None or start == self.end, (start, self.end)
        at = [self.blocks % self.capacity, self.blocks % self.capacity + self.capacity]
        self._lo[at], self._hi[at], self._n_lo[at], self._n_hi[at], self._m2[at] = stats
        self._start[at] = start
        self.blocks += 1
        self.end = start + n

    def clearly_clean(self, start: int, end: int) -> bool:
        """True when samples ``[start, end)`` certainly pass :func:`signal_problems`; False when unsure."""
        if end != self.end or end <= start:
            return False
        kept = min(self.blocks, self.capacity)
        first = self.blocks % self.capacity + self.capacity - kept  # slice [first, first + kept): oldest to newest
        starts = self._start[first:first + kept]
        k = int(np.searchsorted(starts, start))
        if k == kept or starts[k] != start:
            return False
        sl = slice(first + k, first + kept)
        lo_b, hi_b = self._lo[sl], self._hi[sl]
        lo, hi = lo_b.min(axis=0), hi_b.max(axis=0)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            return False
        n = end - start
        if np.any(self._m2[sl].sum(axis=0) / n <= self.flat_var):
            return False
        at_rail = (self._n_lo[sl] * (lo_b == lo)).sum(axis=0) + (self._n_hi[sl] * (hi_b == hi)).sum(axis=0)
        if np.any(at_rail / n >= self.saturation_fraction):
            return False
        return not np.any(np.maximum(np.abs(lo), np.abs(hi)) > self.max_abs_mv)


def _block_stats(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row of ``x`` (mV): minimum, maximum, how many samples sit at each, sum of squared deviations."""
    lo, hi = x.min(axis=1), x.max(axis=1)
    n_lo, n_hi = (x == lo[:, None]).sum(axis=1), (x == hi[:, None]).sum(axis=1)
    with np.errstate(invalid="ignore"):  # inf - inf in a block with both: its minimum already says so
        d = x - x.mean(axis=1, keepdims=True)
        m2 = np.einsum("ij,ij->i", d, d)
    return lo, hi, n_lo, n_hi, m2


def nonfinite_problems(signal_mv: np.ndarray, fs: float, lead_names: Sequence[str]) -> list[str]:
    """Only the NaN/inf part of :func:`signal_problems` (how the windowing names the invalid samples it skips)."""
    x = _check_shape(signal_mv, lead_names)
    bad = ~np.isfinite(x).all(axis=1)
    return [_nonfinite_message(x[i], fs, lead_names[int(i)]) for i in np.flatnonzero(bad)]


def _check_shape(signal_mv, lead_names) -> np.ndarray:
    x = np.asarray(signal_mv)
    if x.ndim != 2 or x.shape[0] != len(lead_names):
        raise ValueError(f"signal of shape {x.shape} does not match {len(lead_names)} lead name(s) {tuple(lead_names)}")
    return x


def _nonfinite_message(lead: np.ndarray, fs: float, name: str) -> str:
    bad = ~np.isfinite(lead)
    idx = np.flatnonzero(bad)
    kinds = np.isnan(lead[idx])
    what = "NaN" if kinds.all() else "inf" if not kinds.any() else "NaN/inf"
    first, last = int(idx[0]), int(idx[-1])
    runs = 1 + int(np.count_nonzero(np.diff(idx) > 1))
    where = f"sample {first}" if first == last else f"samples {first}-{last}"
    seconds = f"{first / fs:.3f} s" if first == last else f"{first / fs:.3f}-{last / fs:.3f} s"
    if runs == 1:
        return f"{what} in lead {name} at {where} ({seconds})"
    return f"{what} in lead {name} at {len(idx)} samples in {runs} runs, {where} ({seconds})"
