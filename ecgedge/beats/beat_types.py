"""What the QRS detector takes and gives: its settings (:class:`QrsConfig`), the beats it finds
(:class:`Beats`) and their flags (:class:`BeatFlag`). Times in seconds, frequencies in Hz, positions in
input samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntFlag

import numpy as np

from ecgedge.errors import ConfigError

MIN_FS_HZ = 100.0


class BeatFlag(IntFlag):
    """Per-beat flags (bit mask, ``uint8``)."""

    NONE = 0
    NOISY = 1
    CONCEALED = 2
    SEARCHBACK = 4


@dataclass(frozen=True)
class QrsConfig:
    """Settings of the QRS detector (times in seconds, frequencies in Hz).

    Defaults are Pan-Tompkins' published choices where they exist (refractory 200 ms, T-wave zone
    360 ms, search-back at 166 % of the mean RR, threshold a quarter of the way from noise to
    signal peak level); the band (5-20 Hz) and integration width (120 ms) are the usual
    rate-independent choices.
    """

    band_low_hz: float = 5.0
    band_high_hz: float = 20.0
    integration_s: float = 0.120
    candidate_s: float = 0.080
    refractory_s: float = 0.200
    twave_s: float = 0.360
    twave_slope_ratio: float = 0.5
    searchback_rr: float = 1.66
    learning_s: float = 2.0
    threshold_fraction: float = 0.25
    noise_ratio: float = 0.35
    locate_s: float = 0.060
    rr_memory: int = 8
    initial_rr_s: float = 1.0
    min_qrs_mv: float = 0.1
    negative_ratio: float = 1.6

    def __post_init__(self):
        if not 0 < self.band_low_hz < self.band_high_hz:
            raise ConfigError(f"QRS band {self.band_low_hz}-{self.band_high_hz} Hz is not a band")
        for name in ("integration_s", "candidate_s", "refractory_s", "twave_s", "learning_s", "locate_s", "initial_rr_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"QRS setting {name} must be positive, not {getattr(self, name)}")
        if self.rr_memory < 1:
            raise ConfigError("QRS setting rr_memory must be at least 1")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Beats:
    """Beats found in a signal.

    Args:
        samples: R-peak positions, int64 sample indices at ``fs`` counted from the first sample
            pushed (``first_sample`` of the detector added).
        flags: ``uint8`` :class:`BeatFlag` bit mask per beat.
        fs: sampling rate of ``samples``, Hz.
    """

    samples: np.ndarray
    flags: np.ndarray
    fs: float

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    @property
    def times_s(self) -> np.ndarray:
        """R-peak times in seconds from the first sample."""
        return self.samples / self.fs

    @property
    def rr_s(self) -> np.ndarray:
        """RR intervals in seconds (``len(self) - 1`` of them)."""
        return np.diff(self.samples) / self.fs

    @staticmethod
    def empty(fs: float) -> "Beats":
        return Beats(np.zeros(0, np.int64), np.zeros(0, np.uint8), float(fs))

    @staticmethod
    def concat(parts: "list[Beats]", fs: float) -> "Beats":
        if not parts:
            return Beats.empty(fs)
        return Beats(np.concatenate([p.samples for p in parts]).astype(np.int64),
                     np.concatenate([p.flags for p in parts]).astype(np.uint8), float(fs))

    def to_json(self) -> dict:
        return {"fs_hz": self.fs, "samples": self.samples.tolist(), "flags": self.flags.tolist()}
