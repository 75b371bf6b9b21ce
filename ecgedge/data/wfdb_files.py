"""WFDB records (a PhysioNet ``.hea`` header and its data files) -> :class:`Record`, through ``wfdb``.

``wfdb`` reads every record it can: ``wfdb.rdheader`` reads the header and ``wfdb.rdrecord`` the
samples in physical units, in every storage format it reads (8, 16, 24, 32, 61, 80, 160, 212, 310,
311, the FLAC formats 508/516/524, byte offsets ``16+24``, skew, several samples per frame) and
multi-segment records (a master header naming segments, optionally a layout segment first, joined
by ``rdrecord(m2s=True)``; a channel absent from a segment is NaN there).

Channels: the ECG leads (:func:`ecgedge.data.leads.ecg_channel`: a voltage unit and no other
biosignal's name) become the record's signal in mV; every other channel (``ABP`` mmHg, ``PLETH`` NU,
``HR`` bpm, ``RESP`` ...) is left out and named in :attr:`Record.ignored_channels`. A record with no
ECG lead at all is refused. Where the ECG leads share ``k > 1`` samples per frame they are read at
``k`` times the frame rate, sample for sample (rhythm annotations, which count frames, are scaled
to that rate); where their counts differ, each frame is averaged to one sample (``wfdb``'s
``smooth_frames``) at the frame rate.

Fallback (:func:`parse_header`, our tolerant reading of the header): used only where ``wfdb.rdheader``
rejects the header (CinC 2017's ISO date ``2014-05-08 05:05:15``, a gain that is not a number, a
garbled baseline) or where a ``.mat`` record's gain is missing or zero (which WFDB silently reads as
200 adu/mV): such ``.mat`` records are read by ``ecgedge.data.mat_files``; other records whose header
wfdb rejects are bad records. The fallback parser also names the reason of a header neither reads.

Checked before reading, so that a bad record is refused with its reason rather than read wrong:
every file the header names stays in the header's folder; data files exist; a data file holds the
samples its header states (formats 16/212/24/32 by size, with room for skew; MAT v4 by its stated
shape); segment headers of a multi-segment record exist.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgedge.data.label_tables import beside_table, labels_for
from ecgedge.data.leads import canonical_lead_name, channel_label, ecg_channel, mv_per_unit
from ecgedge.data.mat_files import check_mat_shape, read_mat_direct
from ecgedge.data.record_types import LabelTable, Record
from ecgedge.data.scan import is_number, optional_import
from ecgedge.errors import BadRecord

# Bytes per sample of the WFDB formats whose file size follows from the sample count (the
# compressed FLAC formats 508/516/524 do not), to call a short file truncated before reading it.
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "61": 2, "80": 1, "160": 2, "212": 1.5, "24": 3, "32": 4, "310": 4 / 3, "311": 4 / 3}
_EXACT_SIZE_FORMATS = {"16", "212", "24", "32"}   # wfdb writes these without padding beyond the last sample
_DX = re.compile(r"^Dx\s*:\s*(.*)$", re.IGNORECASE)


@dataclass
class HeaderSignal:
    """One signal line of a header, as the checks and the ``.mat`` fallback need it."""

    file: str
    fmt: str
    byte_offset: int
    gain: float | None      # adu per unit; None where the header's gain is missing, zero or not a number
    baseline: int
    units: str
    name: str
    samples_per_frame: int = 1
    skew: int = 0


@dataclass
class Header:
    """A header's content: record line, signals (none for a multi-segment master header, whose
    ``segments`` are the names of its segment records, ``~`` for a gap), comments without ``#``."""

    fs: float
    n_samples: int | None
    signals: list[HeaderSignal]
    comments: list[str]
    multi_segment: bool
    segments: list[str] = field(default_factory=list)


@contextmanager
def quiet_wfdb():
    """A block in which wfdb's pandas deprecation warnings are not shown (wfdb 4.3 calls a pandas API
    that pandas 3 deprecates on every header it parses: not ours to show). Every wfdb read goes through it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword")
        yield


def read_header(hea: Path, record_id: str) -> Header:
    """The header at ``hea``: by ``wfdb.rdheader``, or by :func:`parse_header` where wfdb rejects it.

    Raises:
        BadRecord: neither can read it (the fallback parser's reason), or it names a file outside its folder.
    """
    header, _ = _read_header(hea, record_id)
    return header


def _read_header(hea: Path, record_id: str) -> tuple[Header, Exception | None]:
    wfdb = optional_import("wfdb", "reading WFDB records")
    try:
        with quiet_wfdb():
            h = wfdb.rdheader(str(hea.with_suffix("")))
    except Exception as exc:   # wfdb raises ValueError, TypeError, IndexError, HeaderSyntaxError ... for headers it rejects
        return parse_header(hea, record_id), exc
    if isinstance(h, wfdb.MultiRecord):
        segments = list(h.seg_name or [])
        for seg in segments:
            _check_inside(seg, hea, record_id)
        return Header(float(h.fs), h.sig_len, [], list(h.comments or []), True, segments), None
    n = h.n_sig or 0
    if n and len(h.file_name or ()) != n:   # wfdb accepts a record line without its signal lines
        return parse_header(hea, record_id), ValueError(f"{n} signals announced, {len(h.file_name or ())} read")
    signals = []
    for i in range(n):
        _check_inside(h.file_name[i], hea, record_id)
        signals.append(HeaderSignal(
            file=h.file_name[i], fmt=str(h.fmt[i]), byte_offset=int((h.byte_offset or [None] * n)[i] or 0),
            gain=float(h.adc_gain[i]), baseline=int(h.baseline[i]), units=(h.units[i] if h.units else None) or "mV",
            name=(h.sig_name[i] if h.sig_name else None) or f"lead{i + 1}",
            samples_per_frame=int((h.samps_per_frame or [1] * n)[i] or 1), skew=int((h.skew or [0] * n)[i] or 0)))
    return Header(float(h.fs), h.sig_len, signals, list(h.comments or []), False), None


def parse_header(path: Path, record_id: str) -> Header:
    """The fallback: a tolerant reading of a WFDB header (see module doc), for headers wfdb rejects.

    Raises:
        BadRecord: unreadable, not text, no record line, fewer signal lines than announced, a signal
            line without a valid format, a file named outside the header's folder.
    """
    def bad(reason: str) -> BadRecord:
        return BadRecord(record_id, f"unreadable header {path.name}: {reason}")

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise bad(exc.strerror or str(exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Headers written on Windows carry Latin-1 comments ("# Médecin: ..."): every byte decodes,
        # and a binary file is still caught by its NUL bytes or its record line. (wfdb.rdrecord
        # reads headers as ASCII, dropping such bytes, so it accepts them too.)
        text = raw.decode("latin-1")
    if "\x00" in text:
        raise bad("not a text file")
    lines = [line.strip() for line in text.splitlines()]
    comments = [line[1:].strip() for line in lines if line.startswith("#")]
    fields = [line.split() for line in lines if line and not line.startswith("#")]
    if not fields:
        raise bad("no record line")
    rec = fields[0]
    try:
        n_sig = int(rec[1])
        # A pattern of "*" always matches (maybe empty: float("") raises ValueError); 250 Hz is WFDB's default rate.
        fs = float(re.match(r"[0-9.eE+-]*", rec[2]).group()) if len(rec) > 2 else 250.0  # type: ignore[union-attr]
    except (IndexError, ValueError):
        raise bad(f"record line {' '.join(rec)!r} needs '<name> <signals> <fs> [<samples>]'") from None
    if n_sig < 0 or not fs > 0:
        raise bad(f"record line {' '.join(rec)!r}: {n_sig} signals at {fs} Hz")
    n_samples = int(rec[3]) if len(rec) > 3 and rec[3].isdigit() else None
    if "/" in rec[0]:   # a multi-segment record: its segments are headers of their own
        for seg in fields[1:]:
            _check_inside(seg[0], path, record_id)
        return Header(fs, n_samples, [], comments, True, [seg[0] for seg in fields[1:]])
    if len(fields) - 1 < n_sig:
        raise bad(f"{n_sig} signals announced, {len(fields) - 1} signal lines found")
    signals = []
    for i, tok in enumerate(fields[1:1 + n_sig]):
        fmt = re.fullmatch(r"(\d+)(?:x(\d+))?(?::(-?\d+))?(?:\+(\d+))?", tok[1]) if len(tok) > 1 else None
        if fmt is None:
            raise bad(f"signal line {' '.join(tok)!r} has no valid format")
        _check_inside(tok[0], path, record_id)
        gain_field = tok[2] if len(tok) > 2 else ""
        parts = re.fullmatch(r"([^(/]*)(?:\((-?\d+)\))?(?:/(.*))?", gain_field)
        gain_text, base_text, units = parts.groups() if parts else ("", None, gain_field.partition("/")[2])
        gain = float(gain_text) if is_number(gain_text) and float(gain_text) != 0 else None
        adc_zero = int(tok[4]) if len(tok) > 4 and re.fullmatch(r"-?\d+", tok[4]) else 0
        baseline = int(base_text) if base_text is not None else adc_zero
        name = " ".join(tok[8:]) or f"lead{i + 1}"
        signals.append(HeaderSignal(tok[0], fmt.group(1), int(fmt.group(4) or 0), gain, baseline, units or "mV", name,
                                    int(fmt.group(2) or 1), int(fmt.group(3) or 0)))
    return Header(fs, n_samples, signals, comments, False)


def _check_inside(name: str, hea: Path, record_id: str) -> None:
    """A file a header names is read from the header's folder: an absolute name or one through ``..``
    would read a file elsewhere (the name is checked, not resolved: data sets are often symlinked in)."""
    if name != "~" and (os.path.isabs(name) or ".." in Path(name).parts):
        raise BadRecord(record_id, f"header names a file outside the record's folder: {name} (in {hea.name})")


def listing_header(hea: Path, record_id: str) -> Header:
    """The header as far as listing its files goes: the fallback parser first, ``wfdb.rdheader`` where
    it fails. File names are each signal line's first field whoever reads them, and the parser is 20
    times faster (0.12 ms a header against 2.3 ms): the window cache lists the files of every record on
    each run, 6,559 CinC-2017 records in under a second instead of 15."""
    try:
        return parse_header(hea, record_id)
    except BadRecord:
        return read_header(hea, record_id)


def data_files(hea: Path, record_id: str, header: Header | None = None) -> list[Path]:
    """Every file the record's samples come from, in header order: its data files, or for a
    multi-segment record each segment's header and data files (segments whose header is missing or
    unreadable are listed by their header). Headers are read by :func:`listing_header`."""
    header = header or listing_header(hea, record_id)
    if not header.multi_segment:
        return list(dict.fromkeys(hea.parent / s.file for s in header.signals if s.file != "~"))
    out: list[Path] = []
    for seg in header.segments:
        if seg == "~":
            continue
        seg_hea = hea.parent / f"{seg}.hea"
        out.append(seg_hea)
        try:
            out += data_files(seg_hea, record_id)
        except BadRecord:
            pass
    return list(dict.fromkeys(out))


def check_data_files(hea: Path, header: Header, record_id: str) -> None:
    """Refuse a record whose data files are missing or hold other than the header's samples (module doc).

    Raises:
        BadRecord: ``missing data file ...``, ``truncated data file ...``, ``data file ... holds ...``,
            ``missing segment header ...``.
    """
    if header.multi_segment:
        for seg in header.segments:
            if seg == "~":
                continue
            seg_hea = hea.parent / f"{seg}.hea"
            if not seg_hea.is_file():
                raise BadRecord(record_id, f"missing segment header {seg}.hea")
            check_data_files(seg_hea, read_header(seg_hea, record_id), record_id)
        return
    by_file: dict[str, list[HeaderSignal]] = {}
    for s in header.signals:
        if s.file != "~":   # "~" = no data file (a signal with no samples stored)
            by_file.setdefault(s.file, []).append(s)
    for name, sigs in by_file.items():
        f = hea.parent / name
        if not f.is_file():
            raise BadRecord(record_id, f"missing data file {name}")
        if header.n_samples is None or any(s.fmt not in _BYTES_PER_SAMPLE for s in sigs):
            continue
        frame = sum(_BYTES_PER_SAMPLE[s.fmt] * s.samples_per_frame for s in sigs)
        need = sigs[0].byte_offset + math.ceil(header.n_samples * frame)
        size = f.stat().st_size
        if size < need:
            raise BadRecord(record_id, f"truncated data file {name}: {size} bytes, the header's "
                                       f"{header.n_samples} samples x {len(sigs)} signals need {need}")
        # A longer file means the header misdescribes it (8 signals named for a 12-lead file would be
        # read as 8 scrambled leads), for the formats whose size is exact; a .mat states its shape.
        # Skewed signals are stored up to their skew beyond the record's length.
        slack = math.ceil(max(s.skew for s in sigs) * frame)
        if name.lower().endswith(".mat"):
            check_mat_shape(f, len(sigs), header.n_samples, record_id)
        elif size > need + slack and all(s.fmt in _EXACT_SIZE_FORMATS for s in sigs):
            raise BadRecord(record_id, f"data file {name} holds {size} bytes, the header's "
                                       f"{header.n_samples} samples x {len(sigs)} signals need {need}")


def check_header_bounds(hea: Path, header: Header, record_id: str) -> None:
    """Refuse (:class:`BadRecord`, so batch jobs skip and count) a header holding a number no ECG can
    have (:func:`ecgedge.bounds.header_problems`), before anything is sized from it. The header's
    own text is checked too: wfdb reads a rate of ``1e9`` as 1 Hz."""
    from ecgedge.bounds import header_problems

    problems = header_problems(header.fs, len(header.signals), header.n_samples, [s.gain for s in header.signals])
    if not problems and not header.multi_segment:
        fs, gains = _stated_numbers(hea)
        problems = header_problems(header.fs if fs is None else fs, len(header.signals), header.n_samples, gains)
    if problems:
        raise BadRecord(record_id, f"impossible header {hea.name}: {'; '.join(problems)}")


def _stated_numbers(hea: Path) -> tuple[float | None, list[float]]:
    """The rate and gains a header's text states, read leniently (wfdb reads ``-300`` Hz as its
    default 250 and ``1e9`` as 1): ``None`` / no gain where a field is absent or not a number."""
    try:
        lines = [ln.split() for ln in hea.read_text(encoding="latin-1").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError:
        return None, []

    def number(field: str) -> float | None:
        text = re.match(r"[^/(]*", field).group()  # type: ignore[union-attr]
        return float(text) if is_number(text) else None

    fs = number(lines[0][2]) if lines and len(lines[0]) > 2 else None
    gains = [g for line in lines[1:] if len(line) > 2 and (g := number(line[2])) is not None and g != 0]
    return fs, gains


def read_wfdb(hea: Path, record_id: str, table: LabelTable | None, with_annotations: bool) -> Record:
    """Read a WFDB record (module doc): ECG leads in mV, other channels named, labels, annotations.

    Raises:
        BadRecord: an unreadable header, a failed file check, a record wfdb cannot read (and no
            ``.mat`` fallback applies), no ECG lead, unreadable annotations.
    """
    header, rejected = _read_header(hea, record_id)
    check_header_bounds(hea, header, record_id)
    check_data_files(hea, header, record_id)
    all_mat = bool(header.signals) and all(s.file.lower().endswith(".mat") for s in header.signals)
    if all_mat and rejected is None:
        # wfdb reads a missing or zero gain as 200 adu/mV: ask the fallback parser what the header states.
        stated = parse_header(hea, record_id)
        if any(s.gain is None for s in stated.signals):
            header, rejected = stated, ValueError("gain missing or zero")
    if rejected is not None:
        if not all_mat:
            raise BadRecord(record_id, f"unreadable WFDB record: {rejected}")
        signal, names, ignored, fs = read_mat_direct(hea, header, record_id)
    else:
        signal, names, ignored, fs = _read_with_wfdb(hea, header, record_id)
    if not names:
        raise BadRecord(record_id, f"no ECG lead: channel(s) {', '.join(ignored)} are not in a voltage unit or not ECG")
    dx = next((m.group(1) for c in header.comments if (m := _DX.match(c))), "")
    header_labels = tuple(c.strip() for c in dx.split(",") if c.strip())
    beside = None if header_labels else beside_table(record_id, hea.parent / "REFERENCE.csv")
    labels, source = labels_for(record_id, table, header_labels, beside)
    annotations = rhythm_annotations(hea, record_id) if with_annotations else ()
    if annotations and fs != header.fs:   # leads read at k samples per frame; annotations count frames
        k = fs / header.fs
        annotations = tuple((int(round(sample * k)), rhythm) for sample, rhythm in annotations)
    return Record(record_id, signal, fs, tuple(map(canonical_lead_name, names)), labels, source, str(hea), annotations,
                  tuple(ignored))


def _read_with_wfdb(hea: Path, header: Header, record_id: str) -> tuple[np.ndarray, list[str], list[str], float]:
    """``wfdb.rdrecord`` in physical units -> (ECG leads in mV, names, ignored channels, fs in Hz)."""
    wfdb = optional_import("wfdb", "reading WFDB records")
    name = str(hea.with_suffix(""))
    channels = None
    spf = {1}
    if not header.multi_segment:
        ecg = [i for i, s in enumerate(header.signals) if ecg_channel(s.name, s.units)]
        if not ecg:
            return np.zeros((0, 0)), [], [channel_label(s.name, s.units) for s in header.signals], header.fs
        channels = ecg
        spf = {header.signals[i].samples_per_frame for i in ecg}
    expanded = len(spf) == 1 and spf != {1}
    try:
        with quiet_wfdb():
            rec = wfdb.rdrecord(name, physical=True, m2s=True, channels=channels, smooth_frames=not expanded)
    except Exception as exc:   # wfdb's errors for data it cannot decode are not one type
        raise BadRecord(record_id, f"unreadable WFDB record: {exc}") from None
    n = rec.n_sig or 0
    names = list(rec.sig_name or [f"lead{i + 1}" for i in range(n)])
    units = list(rec.units or ["mV"] * n)
    if expanded:
        cols = [np.asarray(x, dtype=np.float64) for x in rec.e_p_signal]
        p = np.stack(cols, axis=1) if cols else np.zeros((0, n))
        fs = float(rec.fs) * spf.pop()
    else:
        p = rec.p_signal if rec.p_signal is not None else np.zeros((0, n))
        fs = float(rec.fs)
    keep = [i for i in range(n) if ecg_channel(names[i], units[i])]
    ignored = [] if channels is None else [channel_label(s.name, s.units) for i, s in enumerate(header.signals) if i not in channels]
    ignored += [channel_label(names[i], units[i]) for i in range(n) if i not in keep]
    scale = np.array([mv_per_unit(units[i]) for i in keep])
    signal = p[:, keep].T * scale[:, None]
    return signal, [names[i] for i in keep], ignored, fs


def rhythm_annotations(hea: Path, record_id: str) -> tuple[tuple[int, str], ...]:
    """Rhythm changes ``(sample, rhythm)`` of the ``.atr`` beside ``hea`` (``aux_note`` ``(N``, ``(AFIB``
    ...: leading ``(`` and trailing NUL stripped), sorted; none without an ``.atr``.

    Raises:
        BadRecord: an unreadable annotation file.
    """
    if not hea.with_suffix(".atr").is_file():
        return ()
    wfdb = optional_import("wfdb", "reading WFDB annotations")
    try:
        with quiet_wfdb():
            ann = wfdb.rdann(str(hea.with_suffix("")), "atr")
    except Exception as exc:   # wfdb's errors for a corrupt annotation file are not one type
        raise BadRecord(record_id, f"unreadable annotation file {hea.stem}.atr: {exc}") from None
    out = []
    for sample, note in zip(ann.sample, ann.aux_note or [""] * len(ann.sample)):
        if note and note.startswith("("):
            rhythm = note[1:].rstrip("\x00 \t\r\n")
            if rhythm:
                out.append((int(sample), rhythm))
    return tuple(sorted(out, key=lambda a: a[0]))
