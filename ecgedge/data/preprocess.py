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
from dataclasses import asdict
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

    def push(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, dtype=np.float64)
        if self.identity:
            self.n_in += x.shape[-1]
            self.n_out += x.shape[-1]
            return x
        if self.n_in == 0 and x.shape[-1]:
            # As the band-pass does: assume the signal held its first value before it started, so a
            # DC offset does not enter as a step.
            self._hist = np.repeat(x[:, :1], self._hist_len, axis=-1)
        s0 = self.n_in - self._hist.shape[-1]
        # Output n is sample n * down - s0 * up of the buffer's full-rate convolution. upfirdn with
        # ``down`` computes only every down-th of those (the same sums, term for term, as computing all
        # and picking: a test checks it bit for bit), starting at 0: ``z`` leading zeros put the first
        # output wanted on that grid. The outputs wanted lie past the filter's reach into those zeros.
        first = self.n_out * self.down - s0 * self.up
        z = (-first * pow(self.up, -1, self.down)) % self.down
        xs = np.concatenate([np.zeros((self.n_leads, z)), self._hist, x] if z else [self._hist, x], axis=-1)
        self.n_in += x.shape[-1]
        n_end = ((self.n_in - 1) * self.up) // self.down + 1 if self.n_in else 0
        if n_end <= self.n_out:
            out = np.zeros((self.n_leads, 0))
        else:
            a = (first + z * self.up) // self.down
            out = sps.upfirdn(self.h, xs, self.up, self.down, axis=-1)[:, a:a + n_end - self.n_out]
            self.n_out = n_end
        self._hist = xs[:, -self._hist_len:]
        return out


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
        if self._zi is None:
            # Steady state for a constant input equal to the first sample: no DC step transient.
            zi0 = sps.sosfilt_zi(self.sos)  # (sections, 2)
            self._zi = zi0[:, None, :] * x[None, :, 0, None]  # (sections, leads, 2)
        y, self._zi = sps.sosfilt(self.sos, x, axis=-1, zi=self._zi)
        return y


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

    @property
    def samples_out(self) -> int:
        return self.resampler.n_out


def preprocess_signal(signal_mv: np.ndarray, fs: float, cfg: PreprocessConfig) -> np.ndarray:
    """Offline preprocessing of a whole record: (leads, n) mV at ``fs`` Hz -> (leads, m) mV at ``cfg.fs_hz``.

    Exactly the streaming processor fed a single chunk.
    """
    sig = np.atleast_2d(np.asarray(signal_mv, dtype=np.float64))
    return StreamingPreprocessor(cfg, fs, sig.shape[0]).push(sig)


def normalise_windows(windows_mv: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """Z-score each lead of each window: ``(..., samples)`` mV -> (normalised float32, std in mV).

    The standard deviation is floored at ``cfg.std_floor_mv`` so a flat lead stays near zero.
    """
    w = np.asarray(windows_mv, dtype=np.float32)
    mean = w.mean(axis=-1, keepdims=True)
    std = np.maximum(w.std(axis=-1, keepdims=True), np.float32(cfg.std_floor_mv))
    return ((w - mean) / std).astype(np.float32, copy=False), std.astype(np.float32, copy=False)


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
