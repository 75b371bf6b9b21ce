"""Which records a model was trained on, by record id and by content hash (torch-free).

A training run writes the ids of the records it fitted on (``split.json``: ``train_used``) and, for
each, the sha256 of the record's signal content (``train_sha256``); an export carries both into its
manifest (``training_records``). ``ecgedge evaluate`` compares them with the records it is given, so
a data set that overlaps the training set is flagged whether the overlap keeps the record ids or
renames the files.

The content hash (:func:`record_content_sha256`) is the sha256 of the record's raw data file bytes:
the ``.mat``/``.dat`` file(s) a WFDB header names (in header order, concatenated; the header itself is
left out, since it repeats the record's name), or the Chapman ``.csv`` / SPH ``.h5`` file itself. For a
one-file record it equals ``sha256sum`` of that file. It is cheap: one read of the data files, no
decoding (the 6,529 CinC-2017 training records hash in a second or two).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ecgedge.config import DataConfig
from ecgedge.data.records import RecordFormat, RecordRef, as_record_ref, find_records
from ecgedge.data.wfdb_files import parse_header
from ecgedge.errors import ArtefactError, BadRecord

CONTENT_HASH_RULE = "sha256 of the record's raw data file bytes (WFDB: the .mat/.dat files its header names, in order; else the .csv/.h5 file)"


def record_data_files(ref: RecordRef | str | Path) -> list[Path]:
    """The files that hold a record's samples: a WFDB header's data files (header order, each once),
    else the record file itself. A multi-segment WFDB record (no data files of its own) gives its header.

    Raises:
        BadRecord: an unreadable WFDB header.
    """
    ref = as_record_ref(ref)
    path = Path(ref.path)
    if ref.format != RecordFormat.wfdb:
        return [path]
    header = parse_header(path, ref.record_id)
    if header.multi_segment:
        return [path]
    names = dict.fromkeys(s.file for s in header.signals if s.file != "~")  # "~": a signal with no samples stored
    return [path.parent / name for name in names]


def record_content_sha256(ref: RecordRef | str | Path, chunk: int = 1 << 20) -> str:
    """The record's content hash (see module doc), hex.

    Raises:
        BadRecord: unreadable header or missing data file.
    """
    ref = as_record_ref(ref)
    h = hashlib.sha256()
    for f in record_data_files(ref):
        try:
            with open(f, "rb") as fh:
                while block := fh.read(chunk):
                    h.update(block)
        except OSError as exc:
            raise BadRecord(ref.record_id, f"cannot read data file {f.name}: {exc.strerror}") from None
    return h.hexdigest()


def record_hashes(refs: Iterable[RecordRef], record_ids: Iterable[str] | None = None) -> dict[str, str]:
    """``{record id: content sha256}`` of ``refs`` (only those whose id is in ``record_ids``, when given).

    A record id found twice keeps its first file (as :func:`~ecgedge.data.windows.build_windows`
    does); a record whose files cannot be read is left out (training skipped it too).
    """
    wanted = None if record_ids is None else set(record_ids)
    out: dict[str, str] = {}
    for ref in refs:
        if ref.record_id in out or (wanted is not None and ref.record_id not in wanted):
            continue
        try:
            out[ref.record_id] = record_content_sha256(ref)
        except BadRecord:
            continue
    return out


def data_record_hashes(data: DataConfig, record_ids: Iterable[str] | None = None) -> dict[str, str]:
    """:func:`record_hashes` of the records under ``data.paths`` (honouring ``data.max_records``)."""
    refs = find_records(data.paths)
    if data.max_records:
        refs = refs[: data.max_records]
    return record_hashes(refs, record_ids)


@dataclass(frozen=True)
class TrainingRecords:
    """The records a model was fitted on: ``ids`` and, where the run recorded them, ``sha256`` by id."""

    ids: tuple[str, ...]
    sha256: dict[str, str] = field(default_factory=dict)
    origin: str = ""

    def to_dict(self) -> dict:
        """The manifest's ``training_records`` section: ``sha256`` by id (its keys are the ids), or ``ids``
        alone for a run that recorded no hashes. About 80 bytes a record."""
        ids = {"ids": list(self.ids)} if set(self.sha256) != set(self.ids) else {}
        return {"count": len(self.ids), **ids, "sha256": dict(self.sha256), "hash_rule": CONTENT_HASH_RULE, "origin": self.origin}

    @classmethod
    def from_dict(cls, d: dict, origin: str = "") -> "TrainingRecords":
        sha = dict(d.get("sha256", {}))
        return cls(tuple(d.get("ids") or sha), sha, d.get("origin") or origin)


def training_records_from_split(split_file: str | Path) -> TrainingRecords | None:
    """The training records a run's ``split.json`` names (``train_used``, ``train_sha256``), or ``None``
    when the file or its ``train_used`` list is absent (a CAE run, or a run folder without its split)."""
    path = Path(split_file)
    if not path.is_file():
        return None
    try:
        split = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtefactError(f"{path} is not readable JSON: {exc}") from None
    if "train_used" not in split:
        return None
    return TrainingRecords(tuple(split["train_used"]), dict(split.get("train_sha256", {})), str(path))

