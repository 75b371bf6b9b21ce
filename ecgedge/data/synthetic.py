"""Deterministic synthetic 12-lead ECG per Chapman rhythm (the PhysioNet-layout writer is
:mod:`ecgedge.data.synthetic_records`).

Used by the tests and by ``ecgedge quickstart`` so that every command runs on a machine with no data.

The model, in the order a sample is made:

1. **Activation times.** A rhythm decides when the ventricles depolarise (R times) and what the atria
   do: discrete P waves (sinus, ectopic, retrograde, wandering) or continuous activity (fibrillatory
   f-waves, flutter F waves). RR intervals carry respiratory and low-frequency modulation (sinus),
   are irregularly irregular (AFIB) or follow the flutter conduction ratio (AF).
2. **Cardiac dipole.** Each beat is a sum of Gaussian waves (P as right + left atrial halves; q, R,
   S; an asymmetric T), in the spirit of McSharry's ECGSYN extended to three dimensions (Sameni et
   al. 2007). Every wave is a 3-D vector in Frank coordinates (X left, Y inferior, Z posterior),
   specified by its frontal-plane axis and amplitude (the amplitude a limb lead along that axis
   would see) plus a front/back component. QT follows Fridericia (QT = QTc * RR^(1/3)).
3. **Electrodes.** The dipole is projected with Dower's matrix (Dower, Machado & Osborne 1980) onto
   leads I, II and V1..V6, and from them onto the nine electrode potentials RA, LA, LL, V1..V6 (the
   limb electrodes summing to zero, so Wilson's terminal is 0 for the heart). Noise, mains hum,
   baseline wander and offsets are added per *electrode*, and the 12 leads are formed from the
   electrodes exactly as an ECG machine does. So Einthoven and Goldberger hold with the noise in:
   III = II - I, aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2.

Every record draws its own morphology (QRS axis, amplitudes, widths, PR, QTc), rate inside its
rhythm's range (:data:`HEART_RATE_BPM`), noise level and wander, from a generator seeded by
``(seed, rhythm)``: the same seed gives bitwise the same output, and classes overlap in everything
but their defining rhythm features, as real ones do.

Rhythms (Chapman-Shaoxing acronyms):

- ``SR`` sinus 60-100 bpm, RR varies a few % with respiration. ``SB`` the same below 60 bpm,
  ``ST`` 100-150 bpm with a shorter PR and almost no variability.
- ``SA`` sinus irregularity: respiratory RR modulation of +-6-14 % (peak-to-peak 12-28 %).
- ``AFIB`` no P waves; independent, log-normally spread RR (irregularly irregular); f-waves of
  4.5-8.5 Hz, frequency- and amplitude-modulated, largest in V1 (about 0.05-0.15 mV peak to peak).
- ``AF`` atrial flutter: sawtooth F waves at 250-340/min (4.2-5.7 Hz), negative in II, III and aVF
  and positive in V1; conduction 2:1, 4:1 or variable (2-4:1).
- ``SVT`` 155-235 bpm, regular, narrow QRS; retrograde P (inverted in II, III, aVF) either hidden
  in the QRS or 70-130 ms after it.
- ``AVNRT`` typical slow-fast re-entry: 145-215 bpm, retrograde P within 0-45 ms of the R peak, so
  it hides in the QRS or shows as a pseudo-r' in V1 / pseudo-S in II.
- ``AVRT`` orthodromic re-entry: 150-230 bpm, retrograde P clearly after the QRS (RP 90-150 ms, in
  the ST segment), and QRS electrical alternans in half of the records.
- ``AT`` ectopic atrial tachycardia: 105-220 bpm, regular, an ectopic P before every QRS (low
  atrial focus: inverted in II, III, aVF; or left atrial: negative in I and aVL).
- ``SAAWR`` wandering atrial pacemaker: P axis, amplitude and PR drift beat to beat between a
  sinus and a low atrial/junctional site, with a slightly irregular rate of 52-90 bpm (as in the
  Chapman records, 53-76 bpm). Clinically not a tachycardia; Chapman's 4-class scheme merges it into
  GSVT with the other supraventricular rhythms.

What is *not* modelled: ectopic beats, bundle-branch block or other wide QRS, ST changes, and
lead-specific near-field effects beyond Dower's matrix.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.errors import ConfigError

SNOMED: dict[str, str] = {
    "SB": "426177001", "SR": "426783006", "AFIB": "164889003", "ST": "427084000", "AF": "164890007",
    "SA": "427393009", "SVT": "426761007", "AT": "713422000", "AVNRT": "251166008",
    "AVRT": "233897008", "SAAWR": "17366009",
}
"""SNOMED-CT code of each supported rhythm, as written in the ``#Dx:`` header comment."""

RHYTHMS: tuple[str, ...] = tuple(SNOMED)
"""Every rhythm :func:`synthesize_ecg` can make (Chapman acronyms)."""

HEART_RATE_BPM: dict[str, tuple[float, float]] = {
    "SR": (63.0, 96.0), "SB": (42.0, 56.0), "ST": (104.0, 146.0), "SA": (58.0, 92.0),
    "AFIB": (60.0, 140.0), "AF": (62.5, 170.0), "SVT": (155.0, 235.0), "AT": (105.0, 220.0),
    "AVNRT": (145.0, 215.0), "AVRT": (150.0, 230.0), "SAAWR": (52.0, 90.0),
}
"""Range (bpm) the mean ventricular rate of a record is drawn from. Kept inside the clinical
definition with a margin, so that RR modulation does not carry the measured rate out of it. For
``AF`` it is the atrial rate (250-340/min) divided by the conduction ratio (2-4)."""

DEFAULT_DATASET_RHYTHMS: tuple[str, ...] = ("SR", "SB", "ST", "SA", "AFIB", "AF", "SVT", "AT")


class SyntheticSpecError(ConfigError, ValueError):
    """A bad argument to the synthetic generator (rhythm, leads, duration, sampling rate).

    A :class:`ValueError` for library callers and an ``EcgEdgeError`` for the CLI."""


# Dower's matrix: independent leads I, II, V1..V6 from the Frank dipole (X left, Y inferior,
# Z posterior), mV per mV.
_DOWER = np.array([
    [0.632, -0.235, 0.059],    # I
    [0.235, 1.066, -0.132],    # II
    [-0.515, 0.157, -0.917],   # V1
    [0.044, 0.164, -1.387],    # V2
    [0.882, 0.098, -1.277],    # V3
    [1.213, 0.127, -0.601],    # V4
    [1.125, 0.127, -0.086],    # V5
    [0.831, 0.076, 0.230],     # V6
])
# Electrode potentials RA, LA, LL, V1..V6 (9, 3) from the dipole: limb electrodes chosen to sum to
# zero with LA - RA = I and LL - RA = II; precordial electrodes are their Dower leads.
_I, _II = _DOWER[0], _DOWER[1]
ELECTRODES = np.vstack([-(_I + _II) / 3, (2 * _I - _II) / 3, (2 * _II - _I) / 3, _DOWER[2:]])
# Leads (12, 9) from the electrodes, as the machine forms them: I = LA - RA, II = LL - RA,
# III = LL - LA, aVR = RA - (LA + LL) / 2, ..., Vk = Vk - WCT with Wilson's terminal the limb mean.
LEADS_FROM_ELECTRODES = np.block([
    [np.array([[-1, 1, 0], [-1, 0, 1], [0, -1, 1], [1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1]]),
     np.zeros((6, 6))],
    [np.full((6, 3), -1.0 / 3.0), np.eye(6)],
])
# Frontal plane: [I, aVF] = _FRONTAL @ [X, Y] + _FRONTAL_Z * Z  (aVF = II - I/2).
_FRONTAL = np.array([[_I[0], _I[1]], [_II[0] - _I[0] / 2, _II[1] - _I[1] / 2]])
_FRONTAL_Z = np.array([_I[2], _II[2] - _I[2] / 2])
_FRONTAL_INV = np.linalg.inv(_FRONTAL)

MAINS_HZ = 50.0          # Chapman-Shaoxing was recorded in China
_PRE_S, _POST_S = 2.5, 1.0  # beats rendered before/after the record so its edges are not empty


def _dipole(amplitude_mv, axis_deg, z_mv) -> np.ndarray:
    """Frank vector(s) (..., 3) whose limb-lead projection has ``amplitude_mv`` along ``axis_deg``
    (hexaxial degrees: 0 = lead I, +90 = aVF) and front/back component ``z_mv`` (+ = posterior)."""
    amplitude_mv, axis_deg, z_mv = np.broadcast_arrays(
        np.asarray(amplitude_mv, float), np.asarray(axis_deg, float), np.asarray(z_mv, float))
    a = np.deg2rad(axis_deg)
    # An ideal Einthoven triangle gives I = E cos(a), aVF = (sqrt(3)/2) E sin(a).
    frontal = np.stack([amplitude_mv * np.cos(a), np.sqrt(0.75) * amplitude_mv * np.sin(a)], -1)
    xy = (frontal - z_mv[..., None] * _FRONTAL_Z) @ _FRONTAL_INV.T
    return np.concatenate([xy, z_mv[..., None]], -1)


@dataclass(frozen=True)
class _Morphology:
    """One record's beat shape. Amplitudes in mV, times in s, angles in degrees."""

    r_mv: float
    r_axis: float
    r_z: float
    q_mv: float
    q_axis: float
    q_z: float
    s_mv: float
    s_axis: float
    s_z: float
    qrs_width: float        # scale of q/R/S timing and widths (1 = about 85 ms QRS)
    t_mv: float
    t_axis: float
    t_z: float
    t_sigma: float          # at RR = 0.85 s
    qtc: float              # Fridericia-corrected QT
    p_mv: float
    p_axis: float
    p_z: float              # right-atrial half anterior (-p_z), left-atrial half posterior (+p_z)
    p_sigma: float
    pr: float               # at 70 bpm, P onset to QRS onset
    resp_hz: float
    resp_phase: float
    resp_qrs: float         # respiratory modulation depth of wave amplitudes


def draw_morphology(rng: np.random.Generator) -> _Morphology:
    """One subject's heart: axis, wave amplitudes and widths, breathing, drawn from ``rng`` (also :mod:`ecgedge.data.paroxysmal`'s)."""
    u = rng.uniform
    axis = float(np.clip(rng.normal(50.0, 25.0), -30.0, 100.0))
    return _Morphology(
        r_mv=u(0.9, 1.6), r_axis=axis, r_z=u(-0.4, -0.05),
        # Septal forces point right and anterior: q in I, aVL, V5-V6 and the r of V1.
        q_mv=u(0.04, 0.14), q_axis=axis + 180.0 + u(-40.0, 40.0), q_z=-u(0.1, 0.3),
        # Terminal forces point right, superior and posterior: S in V1-V4.
        s_mv=u(0.15, 0.45), s_axis=u(190.0, 250.0), s_z=u(0.35, 0.8),
        qrs_width=u(0.85, 1.2),
        t_mv=u(0.15, 0.35), t_axis=float(np.clip(0.4 * axis + 30.0 + rng.normal(0.0, 12.0), -15.0, 95.0)),
        t_z=-u(0.05, 0.3), t_sigma=u(0.042, 0.058), qtc=u(0.38, 0.44),
        p_mv=u(0.1, 0.22), p_axis=u(30.0, 75.0), p_z=u(0.03, 0.07), p_sigma=u(0.017, 0.024),
        pr=u(0.13, 0.19),
        resp_hz=u(0.15, 0.33), resp_phase=u(0.0, 2 * np.pi), resp_qrs=u(0.02, 0.08),
    )


@dataclass
class Waves:
    """Gaussian dipole waves: centre (s), width sigma (s), vector (3,) in mV."""

    centers: list[np.ndarray]
    sigmas: list[np.ndarray]
    vectors: list[np.ndarray]

    def add(self, centers, sigmas, vectors) -> None:
        centers = np.atleast_1d(np.asarray(centers, float))
        self.centers.append(centers)
        self.sigmas.append(np.broadcast_to(np.asarray(sigmas, float), centers.shape))
        self.vectors.append(np.broadcast_to(np.asarray(vectors, float), centers.shape + (3,)))

    def render(self, n: int, fs: float) -> np.ndarray:
        """Sum of all waves on the sample grid ``k / fs``, k < n: (3, n) mV."""
        out = np.zeros((3, n))
        if not self.centers:
            return out
        centers = np.concatenate(self.centers)
        sigmas = np.concatenate(self.sigmas)
        vectors = np.concatenate(self.vectors)
        half = int(np.ceil(5.0 * sigmas.max() * fs))   # exp(-12.5) ~ 4e-6 of the peak: negligible
        offsets = np.arange(-half, half + 1)
        for start in range(0, len(centers), 512):      # bounds memory on long records
            c, s, v = centers[start:start + 512], sigmas[start:start + 512], vectors[start:start + 512]
            idx = np.round(c * fs).astype(np.int64)[:, None] + offsets
            g = np.exp(-0.5 * ((idx / fs - c[:, None]) / s[:, None]) ** 2)
            keep = (idx >= 0) & (idx < n)
            for d in range(3):
                out[d] += np.bincount(idx[keep], weights=(g * v[:, d, None])[keep], minlength=n)
        return out


@dataclass
class _Activation:
    """What a rhythm decides: ventricular and atrial timing."""

    r_times: np.ndarray                           # R-wave centres, s
    p_times: np.ndarray                           # P-wave centres, s (empty: no discrete P)
    p_mv: np.ndarray | float = 0.0
    p_axis: np.ndarray | float = 0.0
    p_z: np.ndarray | float = 0.0                 # left-atrial half's Z; the right-atrial half is anterior
    qrs_gain: np.ndarray | float = 1.0            # per-beat QRS scale (alternans)
    atrial: Callable[[np.ndarray], np.ndarray] | None = None   # continuous atrial dipole (3, n)


def _beats(t0: float, t1: float, rr_at: Callable[[float, int], float]) -> np.ndarray:
    """Beat times from t0 while < t1, each next one ``rr_at(t, i)`` seconds later."""
    times, t, i = [], t0, 0
    while t < t1:
        times.append(t)
        t += rr_at(t, i)
        i += 1
    return np.array(times)


def _rate(rng: np.random.Generator, rhythm: str, skew: float = 1.0) -> float:
    """A mean rate (bpm) from ``HEART_RATE_BPM``; ``skew`` > 1 favours the low end, as in real ST/AT."""
    lo, hi = HEART_RATE_BPM[rhythm]
    return lo + (hi - lo) * rng.beta(1.0, skew)


def _modulated_rr(rng, morph: _Morphology, rr0: float, resp_depth: float, lf_depth: float, jitter: float):
    """RR(t): respiratory sinus arrhythmia (in phase with the wander's breathing), a ~0.1 Hz
    (Mayer wave) component and white beat-to-beat jitter, all as fractions of ``rr0``."""
    lf_hz, lf_phase = rng.uniform(0.06, 0.12), rng.uniform(0, 2 * np.pi)
    w = 2 * np.pi

    def rr_at(t: float, i: int) -> float:
        m = (resp_depth * np.sin(w * morph.resp_hz * t + morph.resp_phase)
             + lf_depth * np.sin(w * lf_hz * t + lf_phase) + jitter * rng.standard_normal())
        return rr0 * (1.0 + m)

    return rr_at


def _pr(morph: _Morphology, rate_bpm) -> np.ndarray:
    """PR interval (s), shortening with rate (about 20 ms per 50 bpm)."""
    return np.clip(morph.pr - 0.0004 * (np.asarray(rate_bpm) - 70.0), 0.10, 0.24)


def _p_before(r_times: np.ndarray, pr: np.ndarray | float, sigma: float) -> np.ndarray:
    # P onset is ~2.3 sigma before its centre, QRS onset ~35 ms before the R centre.
    return r_times - 0.035 - pr + 2.3 * sigma


def _sinus(rhythm: str, resp_depth: tuple[float, float], lf_depth: tuple[float, float], jitter: float,
           skew: float = 1.0):
    def build(rng, morph: _Morphology, t0: float, t1: float) -> _Activation:
        rate = _rate(rng, rhythm, skew)
        rr_at = _modulated_rr(rng, morph, 60.0 / rate, rng.uniform(*resp_depth), rng.uniform(*lf_depth), jitter)
        r = _beats(t0, t1, rr_at)
        return _Activation(r, _p_before(r, _pr(morph, rate), morph.p_sigma), morph.p_mv, morph.p_axis, morph.p_z)
    return build


def _atrial_tachycardia(rng, morph: _Morphology, t0: float, t1: float) -> _Activation:
    rate = _rate(rng, "AT", skew=2.0)
    rr0 = 60.0 / rate
    r = _beats(t0, t1, _modulated_rr(rng, morph, rr0, rng.uniform(0.0, 0.01), 0.003, 0.003))
    if rng.random() < 0.65:   # low atrial focus: activation spreads upward
        axis, z = rng.uniform(-100.0, -55.0), rng.uniform(-0.03, 0.03)
    else:                     # left atrial focus: activation spreads rightward
        axis, z = rng.uniform(110.0, 160.0), rng.uniform(0.0, 0.05)
    pr = min(rng.uniform(0.12, 0.2), 0.55 * rr0)
    return _Activation(r, _p_before(r, pr, morph.p_sigma), rng.uniform(0.08, 0.18), axis, z)


def _reentrant(rhythm: str):
    """SVT, AVNRT, AVRT: regular narrow-complex tachycardia with one retrograde P per beat."""
    def build(rng, morph: _Morphology, t0: float, t1: float) -> _Activation:
        rate = _rate(rng, rhythm)
        r = _beats(t0, t1, _modulated_rr(rng, morph, 60.0 / rate, rng.uniform(0.0, 0.006), 0.002, 0.002))
        if rhythm == "AVNRT":
            rp = rng.uniform(0.0, 0.045)
        elif rhythm == "AVRT":
            rp = rng.uniform(0.09, 0.15)
        else:
            rp = rng.uniform(-0.015, 0.02) if rng.random() < 0.5 else rng.uniform(0.07, 0.13)
        gain = 1.0
        if rhythm == "AVRT" and rng.random() < 0.5:
            gain = 1.0 + rng.uniform(0.06, 0.15) * (-1.0) ** np.arange(len(r))
        # Retrograde atrial activation runs upward (inverted in II, III, aVF) and forward (+ in V1).
        return _Activation(r, r + rp, rng.uniform(0.06, 0.15), rng.uniform(-110.0, -70.0),
                           -rng.uniform(0.02, 0.06), qrs_gain=gain)
    return build


def _wandering_pacemaker(rng, morph: _Morphology, t0: float, t1: float) -> _Activation:
    rate = _rate(rng, "SAAWR")
    rr0 = 60.0 / rate
    period, phase = rng.uniform(4.0, 9.0), rng.uniform(0, 2 * np.pi)    # beats per wander cycle

    def site(i):  # 0 = sinus node, 1 = low atrium / AV junction
        return float(np.clip(0.5 + 0.5 * np.sin(2 * np.pi * i / period + phase) + 0.1 * rng.standard_normal(), 0, 1))

    sites: list[float] = []
    resp = _modulated_rr(rng, morph, rr0, rng.uniform(0.01, 0.03), 0.01, 0.005)

    def rr_at(t, i):
        sites.append(site(i))
        return resp(t, i) * (1.0 + 0.12 * (sites[-1] - 0.5))   # lower sites fire more slowly

    r = _beats(t0, t1, rr_at)
    s = np.array(sites[:len(r)])
    pr = _pr(morph, rate) - 0.05 * s
    return _Activation(r, _p_before(r, pr, morph.p_sigma), morph.p_mv * (1 - 0.4 * s),
                       morph.p_axis - (morph.p_axis + 80.0) * s, morph.p_z * (1 - s))


def _f_wave(rng: np.random.Generator, peak_mv: float, hz: float) -> Callable[[np.ndarray], np.ndarray]:
    """One fibrillatory source: a sine plus 30 % second harmonic at ``hz``, frequency-modulated by
    two slow sinusoids (+-0.2-0.6 Hz each) and amplitude-modulated by +-40 %."""
    fm_hz, fm_dev = rng.uniform(0.1, 0.5, (2, 1)), rng.uniform(0.2, 0.6, (2, 1))
    fm_phase, am_hz, am_phase = rng.uniform(0, 2 * np.pi, (2, 1)), rng.uniform(0.1, 0.6), rng.uniform(0, 2 * np.pi)
    harmonic_phase = rng.uniform(0, 2 * np.pi)

    def wave(t: np.ndarray) -> np.ndarray:
        phase = 2 * np.pi * hz * t + np.sum(fm_dev / fm_hz * np.sin(2 * np.pi * fm_hz * t + fm_phase), 0)
        envelope = peak_mv * (1.0 + 0.4 * np.sin(2 * np.pi * am_hz * t + am_phase))
        return envelope * (np.sin(phase) + 0.3 * np.sin(2 * phase + harmonic_phase))

    return wave


def _fibrillation(rng, morph: _Morphology, t0: float, t1: float) -> _Activation:
    mean_rr = 60.0 / _rate(rng, "AFIB", skew=1.3)
    spread = rng.uniform(0.16, 0.3)   # log-normal sigma: RR coefficient of variation about 0.16-0.3

    def rr_at(t: float, i: int) -> float:   # independent draws; AV-node refractoriness bounds the shortest
        return max(0.27, mean_rr * np.exp(spread * rng.standard_normal() - spread ** 2 / 2))

    r = _beats(t0, t1, rr_at)
    f0, peak_mv = rng.uniform(4.5, 8.5), rng.uniform(0.03, 0.08)   # peak in V1; ~2x that peak to peak
    # Two partly independent wavefronts: one anterior-rightward (largest in V1), one inferior.
    sources = [(np.array([-0.3, 0.4, -0.85]), _f_wave(rng, peak_mv, f0)),
               (np.array([0.3, 0.9, -0.2]), _f_wave(rng, 0.6 * peak_mv, f0 + rng.uniform(-0.7, 0.7)))]

    def atrial(t: np.ndarray) -> np.ndarray:
        return sum((u / np.linalg.norm(u))[:, None] * wave(t) for u, wave in sources)

    return _Activation(r, np.empty(0), atrial=atrial)


# One typical-flutter F wave as lead II shows it (cycle fraction, relative mV): a slowly falling
# plateau, a sharp negative deflection, a sharp rise with overshoot.
_FLUTTER_WAVE = ((0.0, 0.25), (0.5, 0.05), (0.68, -0.75), (0.85, 0.35), (1.0, 0.25))


def _periodic(points: Sequence[tuple[float, float]], phase: np.ndarray, smooth: float) -> np.ndarray:
    """The periodic piecewise-linear wave through ``points`` (one cycle, first value = last) at
    ``phase`` (cycles), mean removed, corners rounded by a Gaussian of ``smooth`` cycles. Evaluated as
    a Fourier series, so there are no edge effects and no dependence on the sample grid."""
    x, y = np.array(points).T
    cycle = np.interp(np.arange(512) / 512, x, y)
    k = np.arange(1, 64)
    c = np.fft.rfft(cycle)[1:64] / 512 * np.exp(-0.5 * (2 * np.pi * k * smooth) ** 2)
    return 2.0 * np.real(np.exp(2j * np.pi * np.outer(phase, k)) @ c)


def _flutter(rng, morph: _Morphology, t0: float, t1: float) -> _Activation:
    cycle = 60.0 / rng.uniform(250.0, 340.0)
    mode = rng.choice(["2:1", "4:1", "variable"], p=[0.45, 0.2, 0.35])
    av_delay = rng.uniform(0.16, 0.28)
    start = t0 - rng.uniform(0, cycle)
    k, r = 0, []
    while start + k * cycle + av_delay < t1:
        jitter = 0.01 * rng.standard_normal() if mode == "variable" else 0.0
        r.append(start + k * cycle + av_delay + jitter)
        k += {"2:1": 2, "4:1": 4}.get(mode) or int(rng.choice([2, 3, 4], p=[0.4, 0.2, 0.4]))
    amplitude = rng.uniform(0.12, 0.28)   # about the peak-to-peak F wave in II, mV
    # Counter-clockwise (typical) flutter: the inferior leads see the negative sawtooth of
    # _FLUTTER_WAVE; an inferior-posterior vector makes V1 its mirror image (positive F waves).
    u = _dipole(1.0, rng.uniform(75.0, 105.0), rng.uniform(0.3, 0.6))

    def atrial(t: np.ndarray) -> np.ndarray:
        return amplitude * u[:, None] * _periodic(_FLUTTER_WAVE, (t - start) / cycle, 0.008 / cycle)

    return _Activation(np.array(r), np.empty(0), atrial=atrial)


BUILDERS: dict[str, Callable[..., _Activation]] = {
    "SR": _sinus("SR", (0.01, 0.035), (0.005, 0.02), 0.005),
    "SB": _sinus("SB", (0.015, 0.04), (0.01, 0.025), 0.006),
    "ST": _sinus("ST", (0.003, 0.012), (0.003, 0.01), 0.003, skew=2.0),
    "SA": _sinus("SA", (0.06, 0.14), (0.01, 0.03), 0.01),
    "AFIB": _fibrillation,
    "AF": _flutter,
    "SVT": _reentrant("SVT"),
    "AT": _atrial_tachycardia,
    "AVNRT": _reentrant("AVNRT"),
    "AVRT": _reentrant("AVRT"),
    "SAAWR": _wandering_pacemaker,
}


def heart_waves(morph: _Morphology, act: _Activation) -> Waves:
    """The dipole waves of every beat of ``act`` (a rhythm's activation times) for the heart ``morph``."""
    def breathing(t):   # amplitude modulation as the heart moves against the electrodes
        return 1.0 + morph.resp_qrs * np.sin(2 * np.pi * morph.resp_hz * t + morph.resp_phase)

    waves = Waves([], [], [])
    r = act.r_times
    resp = breathing(r)
    qrs_gain = (resp * np.asarray(act.qrs_gain))[:, None]
    w = morph.qrs_width
    for dt, sigma, mv, axis, z in (
        (-0.026 * w, 0.009 * w, morph.q_mv, morph.q_axis, morph.q_z),
        (0.0, 0.010 * w, morph.r_mv, morph.r_axis, morph.r_z),
        (0.024 * w, 0.011 * w, morph.s_mv, morph.s_axis, morph.s_z),
    ):
        waves.add(r + dt, sigma, qrs_gain * _dipole(mv, axis, z))
    # T follows the preceding RR (Fridericia QT, narrower T at fast rates); a broad early and a
    # narrower late Gaussian make its slow upstroke and quicker downstroke.
    rr = np.diff(r, prepend=2 * r[0] - r[1]) if len(r) > 1 else np.full(len(r), 0.85)
    t_sigma = morph.t_sigma * np.clip((rr / 0.85) ** 0.5, 0.55, 1.2)
    peak = -0.035 + morph.qtc * np.cbrt(rr) - 2.3 * t_sigma
    t_vec = resp[:, None] * _dipole(morph.t_mv, morph.t_axis, morph.t_z)
    waves.add(r + peak - 0.9 * t_sigma, 1.3 * t_sigma, 0.45 * t_vec)
    waves.add(r + peak, 0.85 * t_sigma, 0.7 * t_vec)
    if act.p_times.size:
        p = act.p_times
        # Right atrium first (more anterior), left atrium second (more posterior): biphasic in V1.
        p_mv = 0.6 * np.broadcast_to(act.p_mv, p.shape) * breathing(p)
        p_axis, p_z = np.broadcast_to(act.p_axis, p.shape), np.broadcast_to(act.p_z, p.shape)
        waves.add(p - 0.9 * morph.p_sigma, morph.p_sigma, _dipole(p_mv, p_axis + 10.0, -np.abs(p_z) - 0.02))
        waves.add(p + 0.9 * morph.p_sigma, morph.p_sigma, _dipole(p_mv, p_axis - 10.0, p_z))
    return waves


def _electrode_noise(rng: np.random.Generator, t: np.ndarray, morph: _Morphology, noise_mv: float,
                     wander_mv: float) -> np.ndarray:
    """Per-electrode (9, n) white noise, mains hum, breathing wander, slow drift and offset, mV."""
    n_el = ELECTRODES.shape[0]
    # Lead noise is the difference of two electrodes: sqrt(2) times an electrode's.
    white = rng.uniform(0.5, 1.5) * noise_mv / np.sqrt(2) * rng.standard_normal((n_el, t.size))
    mains_mv = rng.uniform(0.0, 0.4, (n_el, 1)) * noise_mv
    mains: np.ndarray | float = mains_mv * np.sin(2 * np.pi * MAINS_HZ * t + rng.uniform(0, 2 * np.pi))
    breath = (rng.uniform(0.2, 0.7, (n_el, 1)) * wander_mv
              * np.sin(2 * np.pi * morph.resp_hz * t + morph.resp_phase + rng.uniform(-0.5, 0.5, (n_el, 1))))
    drift_hz = rng.uniform(0.02, 0.25, (n_el, 3, 1))
    drift = np.sum(rng.uniform(0.1, 0.5, (n_el, 3, 1)) * wander_mv
                   * np.sin(2 * np.pi * drift_hz * t + rng.uniform(0, 2 * np.pi, (n_el, 3, 1))), 1)
    offset = rng.uniform(-1.5, 1.5, (n_el, 1)) * wander_mv
    if t.size > 1 and 1.0 / (t[1] - t[0]) < 2.5 * MAINS_HZ:
        mains = 0.0   # hum would alias; an ECG front end this slow would have filtered it
    return white + mains + breath + drift + offset


def checked_spec(rhythm: str, leads: Sequence[str], duration_s: float, fs: float, seed: int) -> list[int]:
    """Rows of ``leads`` among the 12 standard leads once the spec is checked; :class:`SyntheticSpecError` says what is wrong."""
    if rhythm not in SNOMED:
        raise SyntheticSpecError(f"unknown rhythm {rhythm!r}; supported: {', '.join(RHYTHMS)}")
    unknown = [lead for lead in leads if lead not in STANDARD_12_LEADS]
    if unknown or not len(leads):
        raise SyntheticSpecError(f"unknown lead(s) {unknown or list(leads)}; supported: {', '.join(STANDARD_12_LEADS)}")
    if not duration_s > 0:
        raise SyntheticSpecError(f"duration_s must be positive, got {duration_s} s")
    if not fs >= 100:
        raise SyntheticSpecError(f"fs must be at least 100 Hz to resolve a QRS, got {fs} Hz")
    if int(seed) != seed or seed < 0:
        raise SyntheticSpecError(f"seed must be a non-negative integer, got {seed!r}")
    return [STANDARD_12_LEADS.index(lead) for lead in leads]


def synthesize_ecg(rhythm: str, *, seed: int, duration_s: float = 10.0, fs: float = 500.0,
                   leads: Sequence[str] = STANDARD_12_LEADS, noise_mv: float = 0.02,
                   wander_mv: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic ECG of one rhythm.

    Args:
        rhythm: a Chapman acronym from :data:`RHYTHMS` (``"SR"``, ``"AFIB"``, ...).
        seed: non-negative; with ``rhythm`` it fixes everything, so equal arguments give bitwise
            equal output. Asking for fewer leads returns exactly those rows of the 12-lead output.
        duration_s: record length in s; ``round(duration_s * fs)`` samples.
        fs: sampling rate in Hz (at least 100).
        leads: lead names out of ``STANDARD_12_LEADS``, in the order wanted.
        noise_mv: nominal standard deviation of the white noise on each lead, mV (each record
            scales it by 0.5-1.5 and adds 50 Hz hum up to about 0.3 of it). 0 turns noise off.
        wander_mv: nominal size of baseline wander (breathing, slow drift, electrode offset), mV.
            0 turns it off.

    Returns:
        ``(signal, r_peaks)``: signal (n_leads, n) float32 in mV; r_peaks, int64 sample indices of
        the R-wave centres inside the record (the QRS fiducial, also for beats whose R is small).

    Raises:
        SyntheticSpecError (a ValueError): unknown rhythm or lead, non-positive duration,
            fs < 100 Hz, negative seed.
    """
    rows = checked_spec(rhythm, leads, duration_s, fs, seed)
    n = int(round(duration_s * fs))
    morph_ss, rhythm_ss, noise_ss = np.random.SeedSequence([int(seed), zlib.crc32(rhythm.encode())]).spawn(3)
    morph = draw_morphology(np.random.default_rng(morph_ss))
    act = BUILDERS[rhythm](np.random.default_rng(rhythm_ss), morph, -_PRE_S, duration_s + _POST_S)
    t = np.arange(n) / fs
    dipole = heart_waves(morph, act).render(n, fs)
    if act.atrial is not None:
        dipole += act.atrial(t)
    electrodes = ELECTRODES @ dipole + _electrode_noise(np.random.default_rng(noise_ss), t, morph, noise_mv, wander_mv)
    signal = (LEADS_FROM_ELECTRODES[rows] @ electrodes).astype(np.float32)
    r_peaks = np.round(act.r_times * fs).astype(np.int64)
    return signal, r_peaks[(r_peaks >= 0) & (r_peaks < n)]
