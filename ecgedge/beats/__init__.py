"""Beats: QRS detection (:mod:`ecgedge.beats.qrs`), heart rate and rhythm features from RR intervals.

numpy/scipy only, no torch: the stream, ``evaluate`` and training import the same code, and
``firmware_bridge/src/ecgb_qrs.c`` ports the detector to the device.
"""

from ecgedge.beats.features import RATE_BEATS, RhythmFeatures, heart_rate_bpm, rhythm_features, rr_irregularity
from ecgedge.beats.qrs import Beats, BeatFlag, QrsConfig, StreamingQrsDetector, detect_beats

__all__ = ["Beats", "BeatFlag", "QrsConfig", "RATE_BEATS", "RhythmFeatures", "StreamingQrsDetector", "detect_beats",
           "heart_rate_bpm", "rhythm_features", "rr_irregularity"]
