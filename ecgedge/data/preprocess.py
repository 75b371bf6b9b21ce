"""The one preprocessing implementation, shared by training, export, the gate and streaming.

numpy/scipy only (no torch), so the bedside runtime imports exactly this code and the model sees
the same signal in training and in a live stream (no train/serve skew).

The chain, for a multi-lead signal in mV at any sampling rate ``fs`` (Hz):

1. **Causal polyphase resampling** to ``PreprocessConfig.fs_hz`` (250 Hz by default): zero-stuff by
   ``L``, low-pass FIR (Kaiser window, the same design as ``scipy.signal.resample_poly``), keep every
   ``M``-th sample. Causal means output sample ``n`` depends only on inputs up to time ``n``, so a
   stream can run it chunk by chunk; the price is a constant group delay of
   ``(taps - 1) / (2 L)`` input samples (20 samples = 40 ms for 500 -> 250 Hz).
2. **Causal Butterworth band-pass** (0.5-40 Hz, second-order sections), its state initialised to
   the steady state of the first sample so a DC offset does not ring through the first second.
3. **Per-window normalisation** (z-score per lead, with a floor on the standard deviation in mV).

Offline processing *is* the streaming processor fed one chunk (:func:`preprocess_signal`), and a
test proves that feeding any chunking gives the same samples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
from scipy import signal as sps

from ecgedge.config import PreprocessConfig
from ecgedge.errors import ShapeMismatch


def resampling_ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """(up, down) integers with ``fs_in * up / down == fs_out`` (to 1e-6 relative)."""
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    if abs(float(ratio) * fs_in - fs_out) > 1e-6 * fs_out:
        raise ShapeMismatch(f"cannot resample {fs_in} Hz to {fs_out} Hz with a rational ratio")
    return ratio.numerator, ratio.denominator


def resampling_filter(up: int, down: int) -> np.ndarray:
    """Anti-aliasing FIR of the polyphase resampler (gain ``up``), as ``scipy.signal.resample_poly`` designs it."""
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = sps.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    return h * up


class StreamingResampler:
    """Causal polyphase resampler with state: ``push`` chunks of (leads, n) samples, get the new outputs.

    Output ``n`` is ``sum_k h[k] u[n*down - k]`` where ``u`` is the input zero-stuffed by ``up``
    (inputs before the first equal the first). Results do not depend on how the input is chunked.
    """

    def __init__(self, fs_in: float, fs_out: float, n_leads: int):
        self.fs_in, self.fs_out, self.n_leads = float(fs_in), float(fs_out), n_leads
        self.up, self.down = resampling_ratio(fs_in, fs_out)
        self.identity = self.up == self.down
        self.h = resampling_filter(self.up, self.down) if not self.identity else np.ones(1)
        self._hist_len = math.ceil(len(self.h) / self.up) + 1
        self._hist = np.zeros((n_leads, 0))
        self.n_in = 0
        self.n_out = 0

    @property
    def delay_s(self) -> float:
        """Group delay of the resampler in seconds."""
        return 0.0 if self.identity else (len(self.h) - 1) / 2 / (self.up * self.fs_in)

    def outputs_after(self, n_in: int) -> int:
        """How many output samples exist once ``n_in`` input samples have been pushed."""
        if self.identity:
            return n_in
        return ((n_in - 1) * self.up) // self.down + 1 if n_in > 0 else 0

    def push(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, dtype=np.float64)
        if self.identity:
            self.n_in += x.shape[-1]
            self.n_out += x.shape[-1]
            return x
        plan = self._plan(x)
        return self._commit(plan, sps.upfirdn(self.h, plan.xs, self.up, self.down, axis=-1) if plan.count else None)

    def _plan(self, x: np.ndarray) -> "_ResamplePlan":
        """What one push computes: the buffer to filter and which of its outputs are new (no state changes)."""
        hist = np.repeat(x[:, :1], self._hist_len, axis=-1) if self.n_in == 0 and x.shape[-1] else self._hist
        # As the band-pass does: before the signal started it held its first value, so a DC offset
        # does not enter as a step.
        s0 = self.n_in - hist.shape[-1]
        # Output n is sample n * down - s0 * up of the buffer's full-rate convolution. upfirdn with
        # ``down`` computes only every down-th of those (the same sums, term for term, as computing all
        # and picking: a test checks it bit for bit), starting at 0: ``z`` leading zeros put the first
        # output wanted on that grid. The outputs wanted lie past the filter's reach into those zeros.
        first = self.n_out * self.down - s0 * self.up
        z = (-first * pow(self.up, -1, self.down)) % self.down
        xs = np.concatenate([np.zeros((self.n_leads, z)), hist, x] if z else [hist, x], axis=-1)
        n_in = self.n_in + x.shape[-1]
        return _ResamplePlan(xs, (first + z * self.up) // self.down, max(0, self.outputs_after(n_in) - self.n_out), n_in)

    def _commit(self, plan: "_ResamplePlan", filtered: np.ndarray | None) -> np.ndarray:
        """Take ``plan``'s new outputs from ``filtered`` (upfirdn of ``plan.xs``) and move the state on."""
        self.n_in = plan.n_in
        self._hist = plan.xs[:, -self._hist_len:]
        if filtered is None or not plan.count:
            return np.zeros((self.n_leads, 0))
        self.n_out += plan.count
        return filtered[:, plan.first:plan.first + plan.count]

    @staticmethod
    def push_many(resamplers: "list[StreamingResampler]", chunks: list[np.ndarray]) -> list[np.ndarray]:
        """``[r.push(x) for r, x in zip(resamplers, chunks)]``, bit for bit, with one ``upfirdn`` call for
        each set of streams whose buffers line up (same rate, same length, same phase): the usual case
        for beds at one rate fed the same hop. upfirdn filters every row alone, so stacking the rows of
        many streams changes no sum."""
        out: list[np.ndarray | None] = [None] * len(resamplers)
        groups: dict[tuple, list[tuple[int, _ResamplePlan]]] = {}
        for i, (r, chunk) in enumerate(zip(resamplers, chunks)):
            x = np.asarray(chunk, dtype=np.float64)
            if r.identity or not x.shape[-1]:
                out[i] = r.push(x)
                continue
            plan = r._plan(x)
            groups.setdefault((r.up, r.down, plan.xs.shape[-1], plan.first, plan.count), []).append((i, plan))
        for (up, down, *_), members in groups.items():
            h = resamplers[members[0][0]].h
            rows = [resamplers[i].n_leads for i, _ in members]
            stacked = np.concatenate([p.xs for _, p in members]) if len(members) > 1 else members[0][1].xs
            filtered = sps.upfirdn(h, stacked, up, down, axis=-1) if members[0][1].count else None
            for (i, plan), a, b in zip(members, np.cumsum([0] + rows[:-1]), np.cumsum(rows)):
                out[i] = resamplers[i]._commit(plan, None if filtered is None else filtered[a:b])
        return out  # type: ignore[return-value]  # every slot is filled above


@dataclass(frozen=True)
class _ResamplePlan:
    """One push of a :class:`StreamingResampler`: buffer ``xs`` (leads, samples) to filter, the first
    new output's index in its upfirdn result, how many outputs are new, and the input count after it."""

    xs: np.ndarray
    first: int
    count: int
    n_in: int


class StreamingBandpass:
    """Causal Butterworth band-pass in second-order sections, with per-lead state."""

    def __init__(self, cfg: PreprocessConfig, n_leads: int):
        self.sos = bandpass_sos(cfg)
        self.n_leads = n_leads
        self._zi: np.ndarray | None = None

    def push(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, dtype=np.float64)
        if x.shape[-1] == 0:
            return x
        y, self._zi = sps.sosfilt(self.sos, x, axis=-1, zi=self._state(x))
        return y

    def _state(self, x: np.ndarray) -> np.ndarray:
        """The filter state (sections, leads, 2) before ``x``; at the start, the steady state for a
        constant input equal to the first sample, so there is no DC step transient."""
        if self._zi is None:
            zi0 = sps.sosfilt_zi(self.sos)  # (sections, 2)
            self._zi = zi0[:, None, :] * x[None, :, 0, None]
        return self._zi

    @staticmethod
    def push_many(filters: "list[StreamingBandpass]", chunks: list[np.ndarray]) -> list[np.ndarray]:
        """``[f.push(x) for f, x in zip(filters, chunks)]``, bit for bit, with one ``sosfilt`` call for
        each set of streams with the same sections and chunk length: sosfilt runs every row alone with
        its own state, so stacking the rows (and their states) of many streams changes no sum."""
        out: list[np.ndarray | None] = [None] * len(filters)
        groups: dict[tuple, list[int]] = {}
        for i, (f, chunk) in enumerate(zip(filters, chunks)):
            x = np.asarray(chunk, dtype=np.float64)
            if x.shape[-1] == 0:
                out[i] = x
                continue
            groups.setdefault((f.sos.tobytes(), x.shape[-1]), []).append(i)
        for members in groups.values():
            if len(members) == 1:
                out[members[0]] = filters[members[0]].push(chunks[members[0]])
                continue
            xs = [np.asarray(chunks[i], dtype=np.float64) for i in members]
            zi = np.concatenate([filters[i]._state(x) for i, x in zip(members, xs)], axis=1)
            y, zf = sps.sosfilt(filters[members[0]].sos, np.concatenate(xs), axis=-1, zi=zi)
            a = 0
            for i, x in zip(members, xs):
                b = a + x.shape[0]
                out[i], filters[i]._zi = y[a:b], zf[:, a:b]
                a = b
        return out  # type: ignore[return-value]  # every slot is filled above


def bandpass_sos(cfg: PreprocessConfig) -> np.ndarray:
    """Second-order sections of the causal band-pass at ``cfg.fs_hz``."""
    return sps.butter(
        cfg.bandpass_order,
        [cfg.bandpass_low_hz, cfg.bandpass_high_hz],
        btype="bandpass",
        fs=cfg.fs_hz,
        output="sos",
    )


class StreamingPreprocessor:
    """Resample + band-pass, chunk by chunk, for one multi-lead stream.

    ``push(chunk)`` takes (leads, n) samples in mV at ``fs_in`` Hz and returns the new samples at
    ``cfg.fs_hz`` (float64, mV). Memory is bounded: the state is a few hundred samples per lead.
    """

    def __init__(self, cfg: PreprocessConfig, fs_in: float, n_leads: int):
        self.cfg = cfg
        self.n_leads = n_leads
        self.resampler = StreamingResampler(fs_in, cfg.fs_hz, n_leads)
        self.bandpass = StreamingBandpass(cfg, n_leads)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_leads:
            raise ShapeMismatch(f"chunk of shape {x.shape}; expected ({self.n_leads}, n) samples")
        return self.bandpass.push(self.resampler.push(x))

    @staticmethod
    def push_many(preprocessors: "list[StreamingPreprocessor]", chunks: list[np.ndarray]) -> list[np.ndarray]:
        """``[p.push(x) for p, x in zip(preprocessors, chunks)]``, bit for bit, in one vectorised pass:
        the streams (beds) that share a rate and a chunk length go through the resampler and the
        band-pass as the rows of one array, each row with its own filter state. This is how
        :class:`~ecgedge.stream.hub.StreamHub` preprocesses every bed of a ward once per hop; a bed whose
        chunk differs from the others' is simply a group of its own."""
        xs = [np.asarray(x, dtype=np.float64) for x in chunks]
        for p, x in zip(preprocessors, xs):
            if x.ndim != 2 or x.shape[0] != p.n_leads:
                raise ShapeMismatch(f"chunk of shape {x.shape}; expected ({p.n_leads}, n) samples")
        resampled = StreamingResampler.push_many([p.resampler for p in preprocessors], xs)
        return StreamingBandpass.push_many([p.bandpass for p in preprocessors], resampled)

    @property
    def samples_out(self) -> int:
        return self.resampler.n_out


def preprocess_signal(signal_mv: np.ndarray, fs: float, cfg: PreprocessConfig) -> np.ndarray:
    """Offline preprocessing of a whole record: (leads, n) mV at ``fs`` Hz -> (leads, m) mV at ``cfg.fs_hz``.

    Exactly the streaming processor fed a single chunk.
    """
    sig = np.atleast_2d(np.asarray(signal_mv, dtype=np.float64))
    return StreamingPreprocessor(cfg, fs, sig.shape[0]).push(sig)


def normalise_windows(windows_mv: np.ndarray, cfg: PreprocessConfig, *, out: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Z-score each lead of each window: ``(..., samples)`` mV -> (normalised float32, std in mV).

    The standard deviation is floored at ``cfg.std_floor_mv`` so a flat lead stays near zero.
    ``out``: a float32 array of the windows' shape for the result (``out=windows_mv`` z-scores them
    in place; the same bits).
    """
    w = np.asarray(windows_mv, dtype=np.float32)
    mean = w.mean(axis=-1, keepdims=True)
    # ``w.std`` step by step (numpy's _var: the same mean, squares, sum and division by an intp count),
    # so the bits are those of ``(w - mean) / max(w.std(), floor)``, with the deviations computed
    # once and no temporaries beyond them: 5 passes over the windows instead of 7.
    d = np.subtract(w, mean, out=out)
    var = np.add.reduce(np.square(d), axis=-1, keepdims=True)
    var = np.true_divide(var, np.intp(w.shape[-1]), out=var, casting="unsafe")
    std = np.maximum(np.sqrt(var), np.float32(cfg.std_floor_mv))
    return np.divide(d, std, out=d), std


def window_starts(n_samples: int, window: int, hop: int, settle: int, max_windows: int = 0) -> list[int]:
    """Start indices of the windows cut from a preprocessed record of ``n_samples``.

    Windows end at the record's end and step back by ``hop`` while they start at or after the
    ``settle`` samples of filter start-up. Returned in increasing order; empty if the record is
    shorter than ``settle + window``. ``max_windows`` keeps the most recent ones (0 = all).
    """
    starts = []
    s = n_samples - window
    while s >= settle:
        starts.append(s)
        if max_windows and len(starts) >= max_windows:
            break
        s -= hop
    return starts[::-1]


def preprocess_params(cfg: PreprocessConfig) -> dict:
    """Everything a consumer needs to reproduce the chain, for checkpoints and manifests."""
    params = asdict(cfg)
    params["bandpass_sos"] = bandpass_sos(cfg).tolist()
    params["resampler"] = "causal polyphase FIR, Kaiser beta 5, 20*max(up,down)+1 taps (scipy.signal.resample_poly design)"
    params["normalisation"] = "z-score per lead per window, std floored at std_floor_mv"
    return params
