"""Long annotated recordings with paroxysmal AF: the ground truth for scoring a bedside stream.

One recording is one patient: one morphology (drawn once, as :mod:`ecgedge.data.synthetic` draws a
record's), whose rhythm changes at known samples between sinus rhythm (``SR``, sometimes ``SB`` or
``ST``), atrial fibrillation (``AFIB``) and, if asked, atrial flutter (Chapman's ``AF``). Each episode
is built by the same rhythm builders as :func:`~ecgedge.data.synthetic.synthesize_ecg` over its own
time span, so RR, P waves and f-waves are those of the short records the models learn from; the
first beat of an episode falls at least 0.4 s after the last of the one before, and f / F waves fade
in and out over 0.2 s at its edges.

On top come:

- baseline wander, drift, hum and white noise per electrode whose parameters are drawn once per
  recording (so the baseline is continuous across episodes; the noise in
  :mod:`~ecgedge.data.synthetic` is drawn per short record);
- **noise bursts** (muscle and motion artefact: 0.2-0.6 mV white noise plus a 1-3 Hz swing) and
  **electrode-off spells** (the lead reads a flat 0 mV), at random times, of random lengths.

Written as WFDB records (format 16, 200 adu/mV, so 5 µV steps) with a MIT-style ``.atr``:
``+`` rhythm changes with ``(N``, ``(SBR``, ``(AFIB``, ``(AFL`` (sinus tachycardia is ``(N``, as in
MIT-BIH) and ``~`` quality changes (subtype 1 noisy, -1 electrode off, 0 clean) that
:func:`~ecgedge.data.annotations.read_rhythm_reference` reads back. Any length (hours), any leads of
the standard 12, 250-500 Hz. The same seed gives bitwise the same recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ecgedge.data.annotations import write_rhythm_annotations
from ecgedge.data.synthetic import (
    BUILDERS,
    ELECTRODES,
    LEADS_FROM_ELECTRODES,
    MAINS_HZ,
    checked_spec,
    draw_morphology,
    heart_waves,
    Waves,
)
from ecgedge.errors import ConfigError

MIT_CODE = {"SR": "N", "SB": "SBR", "ST": "N", "AFIB": "AFIB", "AF": "AFL"}
"""MIT-BIH rhythm code written for each generated rhythm."""

_CHUNK_S = 60.0          # rendered a minute at a time: memory stays flat for any length
_MIN_RR_S = 0.4          # first beat of an episode after the last of the previous one
_FADE_S = 0.2            # atrial activity fades in and out at episode edges
_GAIN_ADU_PER_MV = 200


@dataclass(frozen=True)
class ParoxysmalConfig:
    """How a paroxysmal-AF recording is made.

    Args:
        duration_s: recording length, s.
        fs_hz: sampling rate, Hz (250-500 typical; at least 100).
        leads: standard lead names written, in order.
        af_burden: share of the time in AF (0-1).
        mean_af_s: mean AF episode length, s (exponential, at least ``min_episode_s``).
        min_episode_s: shortest episode of any rhythm, s.
        flutter_share: share of non-AF episodes that are atrial flutter instead of sinus.
        noise_bursts_per_hour, noise_burst_s: artefact bursts: rate (per hour) and length range (s).
        electrode_off_per_hour, electrode_off_s: flat-line spells: rate (per hour) and length range (s).
        noise_mv, wander_mv: white noise and baseline wander scales, mV (as in ``synthesize_ecg``).
        seed: everything follows from it.
    """

    duration_s: float = 3600.0
    fs_hz: float = 250.0
    leads: tuple[str, ...] = ("II",)
    af_burden: float = 0.3
    mean_af_s: float = 300.0
    min_episode_s: float = 30.0
    flutter_share: float = 0.0
    noise_bursts_per_hour: float = 2.0
    noise_burst_s: tuple[float, float] = (5.0, 30.0)
    electrode_off_per_hour: float = 1.0
    electrode_off_s: tuple[float, float] = (3.0, 20.0)
    noise_mv: float = 0.02
    wander_mv: float = 0.1
    seed: int = 0

    def __post_init__(self):
        checked_spec("SR", self.leads, self.duration_s, self.fs_hz, self.seed)
        if not 0.0 <= self.af_burden < 1.0:
            raise ConfigError(f"af_burden must be in [0, 1), got {self.af_burden}")
        if not 0.0 <= self.flutter_share <= 1.0:
            raise ConfigError(f"flutter_share must be in [0, 1], got {self.flutter_share}")
        if not self.mean_af_s >= self.min_episode_s > 0:
            raise ConfigError(f"need mean_af_s >= min_episode_s > 0 s, got {self.mean_af_s} and {self.min_episode_s}")


@dataclass(frozen=True)
class Episode:
    """One rhythm episode: ``[start_s, end_s)`` of ``rhythm`` (a Chapman acronym)."""

    start_s: float
    end_s: float
    rhythm: str


def plan_episodes(cfg: ParoxysmalConfig, rng: np.random.Generator) -> list[Episode]:
    """Alternating non-AF and AF episodes filling the recording, starting (and mostly ending) in sinus rhythm."""
    mean_other = cfg.mean_af_s * (1.0 - cfg.af_burden) / cfg.af_burden if cfg.af_burden > 0 else np.inf
    out, t, af = [], 0.0, False
    while t < cfg.duration_s:
        mean = cfg.mean_af_s if af else mean_other
        length = cfg.duration_s if not np.isfinite(mean) else max(cfg.min_episode_s, rng.exponential(mean))
        end = min(cfg.duration_s, t + length)
        if cfg.duration_s - end < cfg.min_episode_s:
            end = cfg.duration_s
        if af:
            rhythm = "AFIB"
        elif rng.random() < cfg.flutter_share:
            rhythm = "AF"
        else:
            rhythm = str(rng.choice(["SR", "SB", "ST"], p=[0.8, 0.1, 0.1]))
        out.append(Episode(t, end, rhythm))
        t, af = end, not af
    return out


def _spells(rng: np.random.Generator, per_hour: float, length_s: tuple[float, float], duration_s: float) -> list[tuple[float, float]]:
    n = rng.poisson(per_hour * duration_s / 3600.0)
    starts = np.sort(rng.uniform(0.0, duration_s, n))
    out: list[tuple[float, float]] = []
    for a in starts:
        b = min(duration_s, a + rng.uniform(*length_s))
        if out and a <= out[-1][1]:
            continue  # overlapping spells would blur the annotation
        out.append((float(a), float(b)))
    return out


class _Baseline:
    """Per-electrode wander, drift, hum and offset with parameters drawn once; white noise per chunk."""

    def __init__(self, rng: np.random.Generator, morph, noise_mv: float, wander_mv: float, fs: float):
        n_el = ELECTRODES.shape[0]
        self.rng, self.morph, self.fs = rng, morph, fs
        self.white = rng.uniform(0.5, 1.5) * noise_mv / np.sqrt(2)
        self.mains = rng.uniform(0.0, 0.4, (n_el, 1)) * noise_mv if fs >= 2.5 * MAINS_HZ else np.zeros((n_el, 1))
        self.mains_phase = rng.uniform(0, 2 * np.pi)
        self.breath = rng.uniform(0.2, 0.7, (n_el, 1)) * wander_mv
        self.breath_phase = rng.uniform(-0.5, 0.5, (n_el, 1))
        self.drift_hz = rng.uniform(0.02, 0.25, (n_el, 3, 1))
        self.drift = rng.uniform(0.1, 0.5, (n_el, 3, 1)) * wander_mv
        self.drift_phase = rng.uniform(0, 2 * np.pi, (n_el, 3, 1))
        self.offset = rng.uniform(-1.5, 1.5, (n_el, 1)) * wander_mv

    def __call__(self, t: np.ndarray) -> np.ndarray:
        m = self.morph
        out = self.white * self.rng.standard_normal((self.offset.shape[0], t.size))
        out += self.mains * np.sin(2 * np.pi * MAINS_HZ * t + self.mains_phase)
        out += self.breath * np.sin(2 * np.pi * m.resp_hz * t + m.resp_phase + self.breath_phase)
        out += np.sum(self.drift * np.sin(2 * np.pi * self.drift_hz * t + self.drift_phase), 1)
        return out + self.offset


def _fade(t: np.ndarray, a: float, b: float) -> np.ndarray:
    """1 inside [a, b), raised-cosine ramps of _FADE_S at both edges, 0 outside."""
    up = np.clip((t - a) / _FADE_S, 0.0, 1.0)
    down = np.clip((b - t) / _FADE_S, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))


@dataclass
class ParoxysmalRecording:
    """A generated recording: ``signal`` (leads, n) float32 mV, its episodes and artefact spells (s)."""

    signal: np.ndarray
    fs_hz: float
    leads: tuple[str, ...]
    episodes: list[Episode]
    noise_bursts: list[tuple[float, float]]
    electrode_off: list[tuple[float, float]]


def synthesize_paroxysmal(cfg: ParoxysmalConfig, *, progress: bool = False) -> ParoxysmalRecording:
    """One recording (module docstring); bitwise the same for the same ``cfg``."""
    rows = checked_spec("SR", cfg.leads, cfg.duration_s, cfg.fs_hz, cfg.seed)
    plan_ss, morph_ss, rhythm_ss, noise_ss, art_ss = np.random.SeedSequence([int(cfg.seed), 0x9A70]).spawn(5)
    episodes = plan_episodes(cfg, np.random.default_rng(plan_ss))
    morph = draw_morphology(np.random.default_rng(morph_ss))
    waves = Waves([], [], [])
    atrial = []
    last_r = -np.inf
    for ep, ss in zip(episodes, rhythm_ss.spawn(len(episodes))):
        act = BUILDERS[ep.rhythm](np.random.default_rng(ss), morph, max(ep.start_s, last_r + _MIN_RR_S), ep.end_s)
        if act.r_times.size:
            last_r = float(act.r_times[-1])
        part = heart_waves(morph, act)
        waves.centers += part.centers
        waves.sigmas += part.sigmas
        waves.vectors += part.vectors
        if act.atrial is not None:
            atrial.append((ep.start_s, ep.end_s, act.atrial))
    centers, sigmas, vectors = (np.concatenate(x) for x in (waves.centers, waves.sigmas, waves.vectors))
    order = np.argsort(centers, kind="stable")
    centers, sigmas, vectors = centers[order], sigmas[order], vectors[order]
    art = np.random.default_rng(art_ss)
    bursts = _spells(art, cfg.noise_bursts_per_hour, cfg.noise_burst_s, cfg.duration_s)
    off = _spells(art, cfg.electrode_off_per_hour, cfg.electrode_off_s, cfg.duration_s)
    baseline = _Baseline(np.random.default_rng(noise_ss), morph, cfg.noise_mv, cfg.wander_mv, cfg.fs_hz)
    fs = cfg.fs_hz
    n = int(round(cfg.duration_s * fs))
    signal = np.empty((len(rows), n), dtype=np.float32)
    chunk = int(_CHUNK_S * fs)
    margin = 1.0  # s: waves are at most a few hundred ms wide
    for c0 in tqdm(range(0, n, chunk), desc="paroxysmal", unit="min", disable=not progress):
        c1 = min(n, c0 + chunk)
        t = np.arange(c0, c1) / fs
        lo, hi = np.searchsorted(centers, [t[0] - margin, t[-1] + margin])
        part = Waves([centers[lo:hi] - c0 / fs], [sigmas[lo:hi]], [vectors[lo:hi]])
        dipole = part.render(c1 - c0, fs)
        for a, b, wave in atrial:
            if a - _FADE_S < t[-1] and b + _FADE_S > t[0]:
                dipole += wave(t) * _fade(t, a, b)
        electrodes = ELECTRODES @ dipole + baseline(t)
        x = LEADS_FROM_ELECTRODES[rows] @ electrodes
        for a, b in bursts:
            k = (t >= a) & (t < b)
            if k.any():
                amp = art.uniform(0.2, 0.6)
                swing = art.uniform(0.3, 1.0) * np.sin(2 * np.pi * art.uniform(1.0, 3.0) * t[k])
                x[:, k] += amp * art.standard_normal((len(rows), int(k.sum()))) + swing
        for a, b in off:
            x[:, (t >= a) & (t < b)] = 0.0
        signal[:, c0:c1] = x
    return ParoxysmalRecording(signal, fs, tuple(cfg.leads), episodes, bursts, off)


def write_paroxysmal_record(rec: ParoxysmalRecording, name: str, out_dir: str | Path, comments: Sequence[str] = ()) -> Path:
    """Write ``rec`` as WFDB record ``out_dir/name`` (``.hea``, ``.dat`` format 16, ``.atr``); the ``.hea`` path."""
    import wfdb

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d = np.clip(np.round(rec.signal.T.astype(np.float64) * _GAIN_ADU_PER_MV), -32767, 32767).astype(np.int64)
    n_leads = len(rec.leads)
    wfdb.wrsamp(name, fs=rec.fs_hz, units=["mV"] * n_leads, sig_name=list(rec.leads), d_signal=d, fmt=["16"] * n_leads,
                adc_gain=[float(_GAIN_ADU_PER_MV)] * n_leads, baseline=[0] * n_leads, write_dir=str(out),
                comments=list(comments))
    fs = rec.fs_hz
    changes: list[tuple[int, str]] = []
    for ep in rec.episodes:
        code = MIT_CODE[ep.rhythm]
        if not changes or changes[-1][1] != code:
            changes.append((int(round(ep.start_s * fs)), code))
    noise = [(int(round(a * fs)), int(round(b * fs)), 1) for a, b in rec.noise_bursts]
    noise += [(int(round(a * fs)), int(round(b * fs)), -1) for a, b in rec.electrode_off]
    write_rhythm_annotations(name, out, fs, changes, sorted(noise))
    return out / f"{name}.hea"


def write_paroxysmal_set(out_dir: str | Path, *, records: int, cfg: ParoxysmalConfig, progress: bool = False) -> list[Path]:
    """``records`` recordings ``PAF001``, ``PAF002``, ... in ``out_dir``, each from ``cfg`` with seed ``cfg.seed + i``."""
    paths = []
    for i in tqdm(range(records), desc="paroxysmal records", unit="rec", disable=not progress):
        rc = ParoxysmalConfig(**{**cfg.__dict__, "seed": cfg.seed + i})
        rec = synthesize_paroxysmal(rc)
        burden = sum(e.end_s - e.start_s for e in rec.episodes if e.rhythm == "AFIB") / rc.duration_s
        comments = [f"ecgedge paroxysmal seed={rc.seed} duration_s={rc.duration_s:g} AF burden {burden:.3f}"]
        paths.append(write_paroxysmal_record(rec, f"PAF{i + 1:03d}", out_dir, comments))
    return paths
