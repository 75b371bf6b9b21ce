"""The user-facing error family.

Anything derived from :class:`EcgEdgeError` is a problem with the user's input, data, artefact
or machine; the CLI prints its message on one line and exits non-zero (``GateFailed`` with its
own exit code). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class EcgEdgeError(Exception):
    """Base of every error a user can cause and fix."""

    exit_code = 2


class BadRecord(EcgEdgeError):
    """A record cannot be used: unreadable header, NaNs, flat or saturated lead, wrong length,
    unknown label. ``record`` names it so batch jobs can skip and count."""

    def __init__(self, record: str, reason: str):
        super().__init__(f"{record}: {reason}")
        self.record = record
        self.reason = reason


class ConfigError(EcgEdgeError):
    """A configuration value, TOML file or flag is invalid."""


class DataNotFound(EcgEdgeError):
    """A data path holds no record ecgedge can read."""


class ShapeMismatch(EcgEdgeError):
    """Input does not match the model's input spec (leads, samples, sampling rate, dtype)."""


class ArtefactError(EcgEdgeError):
    """An exported artefact or checkpoint is missing, tampered with, or inconsistent with its manifest."""


class BackendUnavailable(EcgEdgeError):
    """A runtime backend (CUDA, TensorRT, ...) is not available on this machine."""


class GateFailed(EcgEdgeError):
    """An artefact failed the accuracy gate."""

    exit_code = 3


class StreamError(EcgEdgeError):
    """A streaming source cannot be opened or has failed beyond recovery."""
