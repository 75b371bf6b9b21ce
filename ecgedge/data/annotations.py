"""Reference rhythm intervals from WFDB annotation files (``.atr``), and writing them.

MIT-BIH conventions, which PhysioNet's long-term databases (AFDB, LTAFDB, CPSC-2021) share:

- a **rhythm change** is an annotation with symbol ``+`` whose ``aux_note`` names the rhythm that
  starts at its sample: ``(N`` normal sinus, ``(AFIB`` atrial fibrillation, ``(AFL`` atrial flutter,
  ``(SBR`` sinus bradycardia, ``(SVTA``, ``(B`` bigeminy, ``(T`` trigeminy, ``(VT``, ...; it holds
  until the next rhythm change or the end of the record. Samples before the first one have no
  reference rhythm (code ``""``);
- a **signal quality change** is a ``~`` annotation: ``subtype`` 0 means clean from here, a positive
  subtype a bit mask of noisy signals, -1 unreadable (for example an electrode off) until the next
  ``~``.

Codes are stored without the parenthesis and the trailing NUL that some files carry (``"AFIB"``).

**Beats** (:func:`read_beat_reference`) are the annotations whose code WFDB counts as a QRS complex
(``wfdb.io.annotation.is_qrs``, WFDB's ``isqrs()``: ``N L R B A a J S V r F e j n E / f Q ?`` and the
flutter wave ``!``); rhythm changes ``+``, noise ``~``, artefacts ``|``, comments ``"`` and the other
non-beat codes are not beats. A reference ventricular flutter/fibrillation episode (``[`` to ``]``)
is returned as an unscored span: bxb, the EC57 comparator, counts no beat inside one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ecgedge.errors import BadRecord

Interval = tuple[int, int]


@dataclass(frozen=True)
class RhythmReference:
    """One record's reference rhythm.

    Args:
        record: the record's path without extension.
        fs_hz: sampling rate, Hz.
        n_samples: record length in samples.
        intervals: ``(start, end, code)``, half-open sample intervals in order, covering the record
            from its first rhythm annotation to its end.
        noise: ``(start, end)`` spans annotated noisy or unreadable.
    """

    record: str
    fs_hz: float
    n_samples: int
    intervals: tuple[tuple[int, int, str], ...]
    noise: tuple[Interval, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        """The rhythm codes that occur, sorted."""
        return tuple(sorted({c for _, _, c in self.intervals}))

    def spans(self, codes: Iterable[str]) -> list[Interval]:
        """Sample intervals of the rhythms in ``codes`` (adjacent ones joined)."""
        wanted = set(codes)
        out: list[list[int]] = []
        for a, b, c in self.intervals:
            if c in wanted and b > a:
                if out and out[-1][1] == a:
                    out[-1][1] = b
                else:
                    out.append([a, b])
        return [(a, b) for a, b in out]

    def code_at(self, samples: np.ndarray) -> np.ndarray:
        """The reference code at each sample index (``""`` before the first rhythm annotation)."""
        samples = np.asarray(samples)
        if not self.intervals:
            return np.full(samples.shape, "", dtype=object)
        starts = np.array([a for a, _, _ in self.intervals])
        codes = np.array([c for _, _, c in self.intervals] + [""], dtype=object)
        i = np.searchsorted(starts, samples, side="right") - 1
        i = np.where((i < 0) | (samples >= self.n_samples), len(self.intervals), i)
        return codes[i]


def _code(aux: str) -> str:
    return aux.replace("\x00", "").strip().lstrip("(").strip()


def _header_and_annotations(record: str | Path, extension: str, what: str):
    """``(path without extension, wfdb header, wfdb annotation)`` of a record; ``what`` names the
    reference in the error when the annotation file is missing.

    Raises:
        BadRecord: no header or annotation file, or one wfdb cannot read (said with the path).
    """
    import wfdb

    base = str(record)[:-4] if str(record).endswith(".hea") else str(record)
    try:
        header = wfdb.rdheader(base)
    except Exception as exc:  # noqa: BLE001 - wfdb raises several types for one unreadable header
        raise BadRecord(f"{base}.hea", f"cannot read the header ({exc})") from None
    if not Path(f"{base}.{extension}").is_file():
        raise BadRecord(base, f"no .{extension} annotation file, so no {what} to score against")
    try:
        ann = wfdb.rdann(base, extension)
    except Exception as exc:  # noqa: BLE001
        raise BadRecord(f"{base}.{extension}", f"cannot read the annotations ({exc})") from None
    return base, header, ann


def read_rhythm_reference(record: str | Path, extension: str = "atr") -> RhythmReference:
    """The reference rhythm of a WFDB record from its annotation file.

    Args:
        record: the record's ``.hea`` path or its path without extension.
        extension: annotation file extension (``atr`` for reference annotations).

    Raises:
        BadRecord: no header or annotation file, or one wfdb cannot read (said with the path).
    """
    base, header, ann = _header_and_annotations(record, extension, "reference rhythm")
    n = int(header.sig_len or 0)
    fs = float(header.fs)
    changes = [(int(s), _code(a or "")) for s, sym, a in zip(ann.sample, ann.symbol, ann.aux_note or [""] * len(ann.sample))
               if sym == "+" and _code(a or "")]
    intervals = [(s, e, c) for (s, c), (e, _) in zip(changes, changes[1:] + [(n, "")]) if e > s]
    noise, since = [], None
    subtypes = ann.subtype if ann.subtype is not None else np.zeros(len(ann.sample), dtype=int)
    for s, sym, sub in zip(ann.sample, ann.symbol, subtypes):
        if sym != "~":
            continue
        if sub != 0 and since is None:
            since = int(s)
        elif sub == 0 and since is not None:
            noise.append((since, int(s)))
            since = None
    if since is not None:
        noise.append((since, n))
    return RhythmReference(base, fs, n, tuple(intervals), tuple(noise))


@dataclass(frozen=True)
class BeatReference:
    """One record's reference beats.

    Args:
        record: the record's path without extension (or its file, for layouts other than WFDB).
        fs_hz: sampling rate of ``samples``, Hz.
        n_samples: record length in samples.
        samples: 0-based sample index of each reference beat (its fiducial point: MIT-BIH marks the
            R peak or the QRS's largest deflection), int64, sorted.
        symbols: each beat's annotation code (``N``, ``V``, ...; ``""`` where the source has none).
        unscored: ``(start, end)`` sample spans where no beat is scored (reference VF episodes).
    """

    record: str
    fs_hz: float
    n_samples: int
    samples: np.ndarray
    symbols: tuple[str, ...] = ()
    unscored: tuple[Interval, ...] = ()


def beat_symbols() -> frozenset[str]:
    """The annotation codes WFDB counts as beats (``wfdb.io.annotation.is_qrs``)."""
    from wfdb.io.annotation import ann_labels, is_qrs

    return frozenset(lab.symbol for lab in ann_labels if lab.label_store < len(is_qrs) and is_qrs[lab.label_store])


def read_beat_reference(record: str | Path, extension: str = "atr") -> BeatReference:
    """The reference beats of a WFDB record from its annotation file (beat codes only: module doc).

    Args:
        record: the record's ``.hea`` path or its path without extension.
        extension: annotation file extension (``atr`` for reference annotations; ``qrs``, ``ecg`` ...).

    Raises:
        BadRecord: no header or annotation file, or one wfdb cannot read (said with the path).
    """
    base, header, ann = _header_and_annotations(record, extension, "reference beats")
    n = int(header.sig_len or 0)
    beats = beat_symbols()
    keep = [(int(s), sym) for s, sym in zip(ann.sample, ann.symbol) if sym in beats]
    vf, since = [], None
    for s, sym in zip(ann.sample, ann.symbol):
        if sym == "[" and since is None:
            since = int(s)
        elif sym == "]" and since is not None:
            vf.append((since, int(s)))
            since = None
    if since is not None:
        vf.append((since, n))
    samples = np.array([s for s, _ in keep], dtype=np.int64)
    order = np.argsort(samples, kind="stable")
    return BeatReference(base, float(header.fs), n, samples[order], tuple(keep[i][1] for i in order), tuple(vf))


def write_rhythm_annotations(record_name: str, write_dir: str | Path, fs_hz: float, changes: Sequence[tuple[int, str]],
                             noise: Sequence[tuple[int, int, int]] = (), extension: str = "atr") -> Path:
    """Write rhythm changes (``+`` with ``(CODE``) and quality changes (``~``) as a WFDB annotation file.

    Args:
        record_name: the record's name (no extension), in ``write_dir``.
        fs_hz: sampling rate, Hz (stored in the file).
        changes: ``(sample, code)`` rhythm changes, code without the parenthesis (``"AFIB"``).
        noise: ``(start, end, subtype)`` spans: a ``~`` of ``subtype`` (1: noisy, -1: unreadable)
            at ``start`` and a clean ``~`` (subtype 0) at ``end``.
    """
    import wfdb

    rows = [(int(s), 0, "+", f"({c}") for s, c in changes]
    for a, b, sub in noise:
        rows += [(int(a), int(sub), "~", ""), (int(b), 0, "~", "")]
    rows.sort(key=lambda r: (r[0], r[2] != "+"))
    wfdb.wrann(record_name, extension, sample=np.array([r[0] for r in rows], dtype=np.int64),
               symbol=[r[2] for r in rows], subtype=np.array([r[1] for r in rows], dtype=np.int64),
               aux_note=[r[3] for r in rows], fs=fs_hz, write_dir=str(write_dir))
    return Path(write_dir) / f"{record_name}.{extension}"
