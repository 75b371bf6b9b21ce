"""Label schemes, and the mapping from a record's raw labels to one class of a scheme.

Raw labels arrive as the source gives them (:attr:`Record.labels`): SNOMED-CT codes from a
``#Dx:`` header comment or SPH ``metadata.csv``, Chapman acronyms from ``Diagnostics.xlsx``, CinC
2017 letters from ``REFERENCE.csv``, or rhythm annotations from a WFDB ``.atr`` file.

Chapman schemes (``chapman11``, ``chapman4``): SNOMED codes of the 11 Chapman rhythms and the
acronyms themselves are both understood; every other code (conduction, ST-T, beats ...) is ignored.
A record often carries more than one rhythm code. The rule, in order:

1. a specific rhythm wins over the two "background" sinus descriptions SR and SA
   (SB + SA -> SB, AFIB + SR -> AFIB), and SA (sinus irregularity) wins over SR;
2. two different specific rhythms are ambiguous (AFIB + ST) and the record is rejected, except
   in ``chapman4`` when both merge into the same class (ST + SVT -> GSVT, AFIB + AF -> AFIB).

Rejections are :class:`~ecgedge.errors.BadRecord` with the reason, so data loaders can skip and count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from ecgedge.config import LabelScheme
from ecgedge.errors import BadRecord

if TYPE_CHECKING:
    from ecgedge.data.record_types import Record

CHAPMAN11: tuple[str, ...] = ("SB", "SR", "AFIB", "ST", "AF", "SA", "SVT", "AT", "AVNRT", "AVRT", "SAAWR")
"""The 11 Chapman-Shaoxing rhythms (Zheng et al. 2020), in the paper's order."""

CHAPMAN4: tuple[str, ...] = ("SB", "AFIB", "GSVT", "SR")
"""The paper's 4 merged classes: SB; AFIB = AFIB + AF; GSVT = SVT + AT + AVNRT + AVRT + SAAWR + ST; SR = SR + SA."""

CHAPMAN11_TO_4: dict[str, str] = {
    "SB": "SB",
    "AFIB": "AFIB", "AF": "AFIB",
    "SVT": "GSVT", "AT": "GSVT", "AVNRT": "GSVT", "AVRT": "GSVT", "SAAWR": "GSVT", "ST": "GSVT",
    "SR": "SR", "SA": "SR",
}

SNOMED_TO_CHAPMAN: dict[str, str] = {
    "426177001": "SB",
    "426783006": "SR",
    "164889003": "AFIB",
    "427084000": "ST",
    "164890007": "AF",       # atrial flutter
    "427393009": "SA",       # sinus irregularity / sinus arrhythmia
    "426761007": "SVT",
    "713422000": "AT",
    "251166008": "AVNRT",
    "233897008": "AVRT",
    "17366009": "SAAWR",     # sinus rhythm to atrial wandering rhythm
}
"""SNOMED-CT code -> Chapman acronym, for the codes CinC 2020/2021 and ecg-arrhythmia headers use."""

CINC2017: tuple[str, ...] = ("N", "A", "O", "~")
"""PhysioNet/CinC 2017 classes: normal, AF, other rhythm, noisy."""

_BACKGROUND = ("SR", "SA")   # lowest precedence first: SR < SA < any specific rhythm


def class_names(scheme: LabelScheme | str, observed: Iterable[str] = ()) -> tuple[str, ...]:
    """The classes of ``scheme`` in model-output order.

    Fixed for ``chapman11``, ``chapman4`` and ``cinc2017``; for ``atr`` the sorted set of
    ``observed`` rhythm labels (a data set's annotations define its classes).
    """
    scheme = LabelScheme(scheme)
    if scheme == LabelScheme.chapman11:
        return CHAPMAN11
    if scheme == LabelScheme.chapman4:
        return CHAPMAN4
    if scheme == LabelScheme.cinc2017:
        return CINC2017
    return tuple(sorted(set(observed)))


def record_label(record: Record, scheme: LabelScheme | str) -> str:
    """One class of ``scheme`` for the whole record, from its raw labels (see module doc).

    For ``atr`` this is the rhythm that covers the largest part of the record
    (:func:`window_label` over the full duration).

    Raises:
        BadRecord: no label, no label of this scheme among the record's, or an ambiguous rhythm;
            the reason names the labels found.
    """
    scheme = LabelScheme(scheme)
    rid = record.record_id
    if scheme == LabelScheme.atr:
        label = window_label(record.rhythm_annotations, 0.0, record.duration_s, record.fs)
        if label is None:
            raise BadRecord(rid, "no rhythm annotation")
        return label
    raw = tuple(dict.fromkeys(str(x).strip() for x in record.labels if str(x).strip()))
    if not raw:
        raise BadRecord(rid, "no label")
    if scheme == LabelScheme.cinc2017:
        return _cinc2017_label(rid, raw, record.label_source)
    return _chapman_label(rid, raw, scheme, record.label_source)


def _chapman_label(record_id: str, raw_labels: Sequence[str], scheme: LabelScheme | str, label_source: str = "snomed") -> str:
    """The ``chapman11``/``chapman4`` class of raw SNOMED codes or Chapman acronyms (rule in the module doc)."""
    scheme = LabelScheme(scheme)
    rhythms = [r for r in dict.fromkeys(SNOMED_TO_CHAPMAN.get(x, x) for x in raw_labels) if r in CHAPMAN11]
    if not rhythms:
        kind = "Dx" if label_source == "snomed" else "labels"
        raise BadRecord(record_id, f"no Chapman rhythm among {kind} {', '.join(raw_labels)}")
    specific = [r for r in rhythms if r not in _BACKGROUND]
    top = specific or [max(rhythms, key=_BACKGROUND.index)]
    classes = top if scheme == LabelScheme.chapman11 else list(dict.fromkeys(CHAPMAN11_TO_4[r] for r in top))
    if len(classes) > 1:
        raise BadRecord(record_id, f"ambiguous rhythm: {' + '.join(top)}")
    return classes[0]


def _cinc2017_label(record_id: str, raw: tuple[str, ...], label_source: str) -> str:
    letters = [x for x in raw if x in CINC2017]
    if not letters:
        kind = "Dx" if label_source == "snomed" else "labels"
        raise BadRecord(record_id, f"no CinC 2017 class ({', '.join(CINC2017)}) among {kind} {', '.join(raw)}")
    if len(letters) > 1:
        raise BadRecord(record_id, f"ambiguous CinC 2017 label: {' + '.join(letters)}")
    return letters[0]


def window_label(annotations: Sequence[tuple[int, str]], start_s: float, end_s: float, fs: float) -> str | None:
    """The rhythm covering the largest part of the window ``[start_s, end_s)`` (seconds).

    Args:
        annotations: ``(sample, rhythm)`` rhythm changes sorted by sample (as in
            :attr:`Record.rhythm_annotations`); each rhythm lasts until the next change.
        start_s, end_s: the window, in seconds from the record's first sample.
        fs: the sampling rate (Hz) the annotation sample indices count at.

    Returns:
        The rhythm with the largest share of the window (shares of the same rhythm in separate
        stretches add up; a tie goes to the later rhythm, the one a live stream is in at the
        window's end). ``None`` when no rhythm annotation precedes the window's end, or when the
        stretch before the first annotation (no known rhythm) is larger than every rhythm's share.
    """
    start, end = start_s * fs, end_s * fs
    if not annotations or end <= start or annotations[0][0] >= end:
        return None
    share: dict[str, float] = {}
    unknown = max(0.0, min(end, annotations[0][0]) - start)
    for k, (sample, rhythm) in enumerate(annotations):
        stop = annotations[k + 1][0] if k + 1 < len(annotations) else float("inf")
        overlap = min(end, stop) - max(start, sample)
        if overlap > 0:
            share[rhythm] = share.pop(rhythm, 0.0) + overlap   # re-insert: the later stretch orders last
        if stop >= end:
            break
    best = max(reversed(share), key=share.__getitem__)
    return best if share[best] >= unknown else None
