"""The user-facing error family.

Anything derived from :class:`EcgEdgeError` is a problem with the user's input, data, artefact
or machine; the CLI prints its message on one line and exits non-zero (``GateFailed`` with its
own exit code). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager


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


class MissingLeads(ShapeMismatch):
    """Requested leads are not among the leads a record, store or stream carries.

    ``missing`` names the requested leads that were not found, ``have`` the leads there are.
    """

    def __init__(self, missing, have):
        self.missing = tuple(missing)
        self.have = tuple(have)
        super().__init__(f"missing lead(s) {', '.join(self.missing)}; there are {', '.join(self.have) or 'none'}")


class ArtefactError(EcgEdgeError):
    """An exported artefact or checkpoint is missing, tampered with, or inconsistent with its manifest."""


class BackendUnavailable(EcgEdgeError):
    """A runtime backend (CUDA, TensorRT, ...) is not available on this machine."""


class GateFailed(EcgEdgeError):
    """An artefact failed the accuracy gate."""

    exit_code = 3


class StreamError(EcgEdgeError):
    """A streaming source cannot be opened or has failed beyond recovery."""


class DownloadError(EcgEdgeError):
    """A database cannot be downloaded: server unreachable, a bad ``SHA256SUMS.txt``, or files that
    failed sha256 verification after every attempt."""


class StorageError(EcgEdgeError):
    """A file or folder cannot be written or read: a full disk, no permission, a missing or
    read-only folder. Made from the ``OSError`` by :func:`storage_error`."""


# Errors of the machine, not of the code, even when the OSError names no file (a write that hits a
# full disk does not): these become one StorageError line; any other OSError without a file keeps
# its traceback (a socket misuse, a bad file descriptor: bugs).
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG})


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an ``OSError`` about the user's files or disk (it names a file, or its
    errno is one of :data:`STORAGE_ERRNOS`), i.e. one :func:`storage_error` should report."""
    return isinstance(exc, OSError) and (exc.filename is not None or exc.errno in STORAGE_ERRNOS)


def storage_error(exc: OSError, doing: str = "") -> StorageError:
    """The one-line user error for ``exc``: what failed (``doing``, e.g. ``"write checkpoint
    runs/x/last.pt"``), which path (the OSError's file, where it names one) and why.

    ``"cannot write checkpoint runs/x/last.pt: No space left on device (the disk or quota is full:
    free space or choose another folder)"``.
    """
    why = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why += " (the disk or quota is full: free space or choose another folder)"
    where = ""
    if exc.filename is not None:
        where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    if doing:
        return StorageError(f"cannot {doing}: {why}" + (f" ({where})" if where and not doing.endswith(where) else ""))
    return StorageError(f"{where}: {why}" if where else why)


@contextmanager
def storage_errors(doing: str):
    """Inside, an OSError about the user's files or disk (:func:`is_storage_error`) becomes the one-line
    :func:`storage_error` saying what was being done; any other exception passes unchanged."""
    try:
        yield
    except OSError as exc:
        if not is_storage_error(exc):
            raise
        raise storage_error(exc, doing) from None
