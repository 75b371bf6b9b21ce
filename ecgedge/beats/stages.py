"""The QRS detector's signal stages as plain functions (numpy/scipy): the band-pass kernel, running
maxima, the energy floor, the filters' group delay, the lower quartile. :mod:`ecgedge.beats.qrs` holds
the detector that strings them together and its decisions; ``firmware_bridge/src/ecgb_qrs.c`` ports both.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

try:  # the kernel under scipy.signal.sosfilt: the wrapper's checks and copies cost more than a hop's filtering
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_kernel
except ImportError:  # pragma: no cover - a scipy that moved it: the public function, the same numbers
    _sosfilt_kernel = None


def running_max(a: np.ndarray, size: int) -> np.ndarray:
    """``out[..., j] = max(a[..., j:j + size])`` for ``j`` in ``0 .. n - size`` (windows inside ``a`` only):
    maxima of windows of 2, 4, 8, ... samples, then of two overlapping windows of the largest power of two,
    about log2(size) numpy calls on whole rows (exact: a maximum is one of its values)."""
    m, k = a, 1
    while 2 * k <= size:
        m = np.maximum(m[..., :-k], m[..., k:])  # m[..., j] = max(a[..., j:j + 2k])
        k *= 2
    if k == size:
        return m
    return np.maximum(m[..., :m.shape[-1] - (size - k)], m[..., size - k:])


def band_pass(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.sosfilt(sos, x, axis=-1, zi=zi)`` for float64 rows ``x`` (rows, n) and ``zi``
    (sections, rows, 2): the same kernel on the same arrays (so the same numbers, bit for bit), without
    the wrapper's checks, which cost more than filtering a hop of a few beds."""
    if _sosfilt_kernel is None:  # pragma: no cover
        return sps.sosfilt(sos, x, axis=-1, zi=zi)
    y = np.array(x, np.float64, order="C")  # filtered in place
    z = np.array(zi.transpose(1, 0, 2), np.float64, order="C")  # (rows, sections, 2), in place
    _sosfilt_kernel(sos, y, z)
    return y, z.transpose(1, 0, 2)


def lower_quartile(values: list[float]) -> float:
    """``numpy.percentile(values, 25)`` (linear interpolation) for a short list, without numpy's overhead."""
    v = sorted(values)
    pos = 0.25 * (len(v) - 1)
    i = int(pos)
    return v[i] + (pos - i) * (v[min(i + 1, len(v) - 1)] - v[i])


def energy_floor(sos: np.ndarray, w_int: int, fs: float, qrs_mv: float) -> float:
    """The integrated slope energy of the smallest QRS worth a beat: a triangle ``qrs_mv`` high and
    80 ms wide, through the detector's band-pass, central difference and integration. Below this no
    candidate is a beat, so noise on a flat line (asystole, leads off) is not counted as beats."""
    n = round(2 * fs)
    x = np.zeros(n)
    half = max(1, round(0.04 * fs))
    x[n // 2 - half:n // 2 + half + 1] = qrs_mv * (1 - np.abs(np.arange(-half, half + 1)) / half)
    y = sps.sosfilt(sos, x)
    d = np.zeros(n)
    d[2:] = (y[2:] - y[:-2]) * (fs / 2.0)
    integ = np.convolve(d * d, np.full(w_int, 1.0 / w_int))[:n]
    return float(integ.max())


def group_delay_samples(sos: np.ndarray, fs: float, at_hz: float | None = None) -> int:
    """Group delay (samples, rounded) of a filter at ``at_hz`` (default: the geometric centre of its pass band)."""
    b, a = sps.sos2tf(sos)
    if at_hz is None:
        w, h = sps.freqz(b, a, worN=4096, fs=fs)
        at_hz = float(w[int(np.argmax(np.abs(h)))])
    _, gd = sps.group_delay((b, a), w=[at_hz], fs=fs)
    return int(round(float(gd[0])))
