"""How a bed is monitored (:class:`StreamSettings`), what the monitor needs to know of its model
(:class:`ModelSpec`), and the constants behind their defaults, each with its reason.
:mod:`ecgedge.stream.monitor` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecgedge.bridge.frame import DeviceFlag
from ecgedge.config import PreprocessConfig
from ecgedge.errors import ConfigError
from ecgedge.stream.rate import RateAlarmSettings

# Device flag bits that make a window unreliable (PROTOCOL.md, device_flags).
CALIBRATION_FLAG, SATURATED_FLAG = int(DeviceFlag.CALIBRATION), int(DeviceFlag.SATURATED)


def device_flag_names(flags: int) -> str:
    """The device flags that make samples unusable, named: ``"calibration pulse, ADC saturated"``."""
    return ", ".join(name for bit, name in ((CALIBRATION_FLAG, "calibration pulse"), (SATURATED_FLAG, "ADC saturated"))
                     if flags & bit)


# Longest gap ``ecgedge stream`` conceals (s): two 40-ms frames of ecgsim/Chapman at 500 Hz, not
# three. A straight line between two real samples has no peak of its own, so concealment cannot
# invent a beat; 0.1 s is the upper end of a normal QRS complex (80-100 ms) and well below the
# shortest QRS-to-QRS interval of the rhythms classified (about 0.24 s in a 250-bpm GSVT), so a
# concealed gap can never span from one beat into the next: at most it clips part of one complex,
# and the R-R intervals the rhythm classes rest on stay as recorded. Longer gaps restart the filters.
CONCEAL_MAX_S = 0.1
# Stream seconds without a classified window before the ``ecg_signal_inoperable`` alert (a bedside
# monitor's "ECG signal inoperable"): more than three times the 9.2-s start-up (8.192-s window and
# 1 s of filter settling), so starting up or a restart after a long gap never raises it.
INOPERABLE_AFTER_S = 30.0
# CinC-2017's "noisy" class: no rhythm, the signal is unreadable (StreamSettings.noise_labels).
NOISE_LABELS: tuple[str, ...] = ("~",)


@dataclass(frozen=True)
class StreamSettings:
    """How a stream is classified.

    Args:
        hop_s: seconds between window ends (default 1.0).
        hysteresis: consecutive reliable windows a new label must win before a rhythm change is
            raised (default 3).
        conceal_max_s: longest gap (s) that is concealed by linear interpolation instead of
            restarting the filters (default 0: every gap restarts them; ``ecgedge stream`` uses
            :data:`CONCEAL_MAX_S`, 0.1 s, whose comment gives the reason).
        inoperable_after_s: stream seconds without a classified window before the
            ``ecg_signal_inoperable`` alert is raised (default :data:`INOPERABLE_AFTER_S`, 30 s;
            0: never).
        noise_labels: model classes that say "too noisy to classify" rather than name a rhythm
            (default :data:`NOISE_LABELS`: CinC-2017's ``~``). A window the model puts in one is
            reported ``unreliable`` (reason ``model: noisy signal (~ 0.74)``): it neither raises
            nor ends a rhythm, as a window that fails the signal checks does. The inoperable alert
            stays driven by the signal checks (its clock runs before the model does).
        beats: run the QRS detector (:mod:`ecgedge.stream.rate`): every hop's events carry a
            :class:`~ecgedge.stream.events.HeartRate`, and rate alarms are raised (default True).
        rate_alarms: the asystole, extreme bradycardia and extreme tachycardia limits
            (:class:`~ecgedge.stream.rate.RateAlarmSettings`).
        source_lead: for a single-lead model, the source lead it reads instead of its own, by name
            or 1-based position for unnamed (``?``) leads (``--lead``;
            :func:`ecgedge.data.leads.chosen_lead_row`); default None: the model's lead by name.
    """

    hop_s: float = 1.0
    hysteresis: int = 3
    conceal_max_s: float = 0.0
    inoperable_after_s: float = INOPERABLE_AFTER_S
    noise_labels: tuple[str, ...] = NOISE_LABELS
    beats: bool = True
    rate_alarms: RateAlarmSettings = RateAlarmSettings()
    source_lead: str | None = None

    def __post_init__(self):
        if not self.hop_s > 0:
            raise ConfigError(f"hop must be > 0 s, got {self.hop_s}")
        if self.hysteresis < 1:
            raise ConfigError(f"hysteresis must be >= 1 window, got {self.hysteresis}")
        if not 0 <= self.conceal_max_s <= 1.0:
            # A second can hold several beats: filling it with a straight line would hide them.
            raise ConfigError(f"conceal_max_s must be in [0, 1] s (0: never conceal), got {self.conceal_max_s}")
        if not self.inoperable_after_s >= 0:
            raise ConfigError(f"inoperable_after_s must be >= 0 s (0: no alert), got {self.inoperable_after_s}")


@dataclass(frozen=True)
class ModelSpec:
    """What a monitor needs to know about the model: its leads, labels, preprocessing and window."""

    leads: tuple[str, ...]
    labels: tuple[str, ...]
    preprocess: PreprocessConfig
    window_samples: int

    @classmethod
    def from_manifest(cls, manifest) -> "ModelSpec":
        """From an export folder's :class:`~ecgedge.manifest.Manifest`."""
        return cls(manifest.leads, manifest.labels, manifest.preprocess_config(), manifest.window_samples)
