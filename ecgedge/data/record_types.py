"""The types the readers hand out: :class:`Record` (one ECG record in memory), :class:`RecordRef` (a
record found on disk, nothing read yet), :class:`LabelTable` (a parsed label table), and the closed
choices :class:`RecordFormat` and :class:`LabelSource`.

numpy only: no file format is known here (``ecgedge.data.records`` and its format modules read files).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np


class RecordFormat(str, enum.Enum):
    """On-disk record formats (see ``ecgedge.data.records``)."""

    wfdb = "wfdb"
    chapman_csv = "chapman_csv"
    sph_h5 = "sph_h5"


class LabelSource(str, enum.Enum):
    """What kind of codes :attr:`Record.labels` holds."""

    snomed = "snomed"        # SNOMED-CT codes as strings (#Dx: comments, SPH metadata.csv)
    chapman = "chapman"      # Chapman acronyms (Diagnostics.xlsx Rhythm column): SB, AFIB, ...
    cinc2017 = "cinc2017"    # CinC 2017 letters N, A, O, ~ (REFERENCE.csv)
    none = "none"            # no label found


@dataclass
class Record:
    """One ECG record in memory.

    ``signal`` is (n_leads, n_samples) float32 in mV at ``fs`` Hz: the record's ECG leads only. NaN
    marks samples the source stores as invalid (WFDB's "no sample" value, a channel absent from a
    segment of a multi-segment record, a NaN cell): the windowing skips the windows that touch them.
    ``lead_names`` are canonical (I II III aVR aVL aVF V1..V6; others as the source names them).
    ``ignored_channels`` are the record's other channels, left out of ``signal``, each as
    ``"NAME (units)"`` (``"ABP (mmHg)"``, ``"PLETH (NU)"``). ``labels`` are raw codes of kind
    ``label_source``. ``rhythm_annotations`` are ``(sample, rhythm)`` changes from a WFDB ``.atr``
    (sample indices at ``fs``, sorted; filled only when asked for). ``source`` is the file read.
    """

    record_id: str
    signal: np.ndarray
    fs: float
    lead_names: tuple[str, ...]
    labels: tuple[str, ...] = ()
    label_source: LabelSource | str = LabelSource.none
    source: str = ""
    rhythm_annotations: tuple[tuple[int, str], ...] = ()
    ignored_channels: tuple[str, ...] = ()

    def __post_init__(self):
        self.signal = np.asarray(self.signal, dtype=np.float32)
        self.fs = float(self.fs)
        self.lead_names = tuple(self.lead_names)
        self.labels = tuple(str(x) for x in self.labels)
        self.label_source = LabelSource(self.label_source)
        self.rhythm_annotations = tuple((int(s), str(r)) for s, r in self.rhythm_annotations)
        self.ignored_channels = tuple(map(str, self.ignored_channels))
        if self.signal.ndim != 2 or self.signal.shape[0] != len(self.lead_names):
            raise ValueError(f"{self.record_id}: signal of shape {self.signal.shape} does not match "
                             f"{len(self.lead_names)} lead name(s) {self.lead_names}")
        if not self.fs > 0:
            raise ValueError(f"{self.record_id}: sampling rate must be positive, got {self.fs} Hz")

    @property
    def duration_s(self) -> float:
        """Length of the record in seconds."""
        return self.signal.shape[1] / self.fs


@dataclass(frozen=True)
class RecordRef:
    """A record found on disk: the file that identifies it, its format and id (no data read yet)."""

    path: str
    format: RecordFormat | str
    record_id: str

    def __post_init__(self):
        object.__setattr__(self, "path", str(self.path))
        object.__setattr__(self, "format", RecordFormat(self.format))


@dataclass(frozen=True, eq=False)
class LabelTable(Mapping):
    """A parsed label table: a read-only mapping record id -> raw labels, plus where they came from.

    ``source`` says what the labels are (``chapman`` acronyms, ``cinc2017`` letters, ``snomed``
    codes); ``fs`` holds sampling rates (Hz) a table states per record (SPH ``metadata.csv``).
    Tables are cached per process and shared: do not modify ``labels``.
    """

    source: LabelSource
    labels: dict[str, tuple[str, ...]]
    path: str = ""
    fs: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "source", LabelSource(self.source))

    def __getitem__(self, record_id: str) -> tuple[str, ...]:
        return self.labels[record_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"LabelTable(source={self.source.value!r}, records={len(self.labels)}, path={self.path!r})"
