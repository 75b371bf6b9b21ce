"""A WFDB record as the simulated device plays it: the host's wfdb reads it, ``ecgsim`` sends it.

``firmware_bridge/build/ecgsim`` parses no WFDB itself, so there is one WFDB reader, not two. Given a
record (``ecgsim [options] RECORD``, which the ``wfdb:`` stream source runs), ecgsim executes this
module (:func:`main`), which reads the record and executes ecgsim again on its ADC integers.
:func:`device_recording_from_wfdb` reads a record with ``wfdb.rdrecord(..., physical=False)`` (every storage
format wfdb reads, byte offsets, skew, several samples per frame, multi-segment records joined with
``m2s``), keeps its ECG leads (:func:`ecgedge.data.leads.ecg_channel`; ``ABP`` in mmHg, ``PLETH`` in
NU ... are left out and named in :attr:`DeviceRecording.ignored_channels`), and
:meth:`DeviceRecording.write_raw` writes their ADC integers to an interchange file that ecgsim plays
with the options :meth:`DeviceRecording.ecgsim_args` gives (``--raw FILE --raw-format int32`` and the
per-lead gains and baselines). The device therefore plays every record the host can read.

Interchange file: little-endian int32, interleaved (sample ``t`` of every lead, then ``t + 1``), no
header (the options describe it). :data:`INVALID` (``-2**31``) marks a sample time without a valid
reading (wfdb's invalid value, NaN in ``p_signal``, or a lead absent from a segment): ecgsim does not
send such sample times and the receiver reports them as a gap (PROTOCOL.md, "Invalid samples").

Calibration travels as wfdb reads it: ``gain_uv = 1000 x mV-per-unit / adc_gain`` µV per ADC unit and the
header's baseline, per lead; leads calibrated alike go out in protocol version 1, leads with different
gains or baselines in version 2.

Where the rules differ from plain ``rdrecord``:

- Samples per frame: when the ECG leads share ``k > 1`` samples per frame, every sample is played, at
  ``k x fs`` (as ecgedge's record readers do); when their counts differ, wfdb averages each frame to one
  sample (``smooth_frames``).
- A multi-segment record whose segments calibrate a lead differently cannot be joined in ADC units
  (wfdb refuses): it is joined in physical units and quantised at the finest gain any segment gives
  that lead (baseline 0), within half an ADC step of wfdb's physical values.
- A header wfdb rejects (CinC 2017's ISO date) is read through ecgedge's documented fallback
  (:mod:`ecgedge.data.wfdb_files`) and quantised back with the header's own gain and baseline: exact.

wfdb is imported when a record is read (the ``train`` extra).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgedge.data.leads import canonical_lead_name, channel_label, ecg_channel, mv_per_unit
from ecgedge.data.scan import optional_import
from ecgedge.data.wfdb_files import quiet_wfdb, read_header, read_wfdb
from ecgedge.errors import BadRecord, ConfigError, EcgEdgeError

INVALID = -(2**31)
"""Interchange-file value of a sample time without a valid reading (not sent: a gap)."""

# ADC bits of the WFDB storage formats: the invalid value is -2**(bits-1), the rail 2**(bits-1) - 1.
# Format 8 stores first differences: it has no invalid value and no rail of its own.
_ADC_BITS = {"80": 8, "508": 8, "310": 10, "311": 10, "212": 12, "16": 16, "61": 16, "160": 16, "516": 16,
             "24": 24, "524": 24, "32": 32}
_INT16 = (-(2**15), 2**15 - 1)
_INT24 = (-(2**23), 2**23 - 1)
_WFDB_DEFAULT_ADC_GAIN = 200.0  # WFDB reads a gain of 0 (or none) as 200 adu per physical unit


@dataclass(frozen=True, eq=False)
class DeviceRecording:
    """The ECG leads of a record as a device would sample them.

    Args:
        name: the record's name (for messages).
        fs_hz: sampling rate in Hz of ``adu``'s columns.
        lead_names: one per row of ``adu``.
        gains_uv: µV per ADC unit, per lead.
        baselines: ADC value that reads 0 mV, per lead.
        adu: ``(n_leads, n)`` int64 ADC integers; :data:`INVALID` where there is no valid reading.
        rail: the recorder ADC's largest value (``ecgsim --lead-off LEAD@T0-T1:rail``).
        ignored_channels: channels that are not ECG leads, as ``"ABP (mmHg)"``.
    """

    name: str
    fs_hz: float
    lead_names: tuple[str, ...]
    gains_uv: tuple[float, ...]
    baselines: tuple[int, ...]
    adu: np.ndarray
    rail: int
    ignored_channels: tuple[str, ...] = ()

    @property
    def valid(self) -> np.ndarray:
        """``(n,)`` bool: sample times where every lead has a valid reading (the ones ecgsim sends)."""
        return (self.adu != INVALID).all(axis=0)

    @property
    def sample_format(self) -> str:
        """``int16`` when every valid value fits 16 bits on the wire, else ``int24``.

        Raises:
            ConfigError: values beyond 24 bits (a format-32 record using its range), which no wire
                sample format carries.
        """
        values = self.adu[self.adu != INVALID]
        lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if _INT16[0] <= lo and hi <= _INT16[1]:
            return "int16"
        if _INT24[0] <= lo and hi <= _INT24[1]:
            return "int24"
        raise ConfigError(f"record {self.name}: ADC values {lo}..{hi} exceed the 24 bits a wire sample carries "
                          f"(int24: {_INT24[0]}..{_INT24[1]})")

    def write_raw(self, path: Path) -> None:
        """Write the interchange file (module doc) to ``path``, replacing it atomically."""
        from ecgedge.fsio import atomic_write_bytes

        atomic_write_bytes(path, np.ascontiguousarray(self.adu.T).astype("<i4").tobytes())

    def ecgsim_args(self, path: Path) -> list[str]:
        """ecgsim options that play the interchange file at ``path`` as this recording's device."""
        fmt = self.sample_format
        names = ",".join(n.replace(",", " ") or "?" for n in self.lead_names)
        return ["--raw", str(path), "--raw-format", "int32", "--fs", repr(float(self.fs_hz)),
                "--leads", str(len(self.lead_names)),
                "--gain-uv", ",".join(repr(float(g)) for g in self.gains_uv),
                "--baseline", ",".join(str(int(b)) for b in self.baselines),
                "--lead-names", names, "--sample-format", fmt,
                "--rail", str(min(self.rail, (_INT16 if fmt == "int16" else _INT24)[1]))]


def _wfdb():
    return optional_import("wfdb", "playing a WFDB record on the simulated device")


def _gain_uv(adc_gain: float, units: str | None) -> float:
    adc_gain = float(adc_gain) or _WFDB_DEFAULT_ADC_GAIN
    return 1000.0 * (mv_per_unit(units) or 1.0) / adc_gain


def _rail(fmts) -> int:
    bits = [_ADC_BITS.get(str(f)) for f in fmts]
    return max((2 ** (b - 1) - 1 if b else _INT24[1]) for b in bits) if bits else _INT16[1]


def _mark_invalid(d: np.ndarray, fmt) -> np.ndarray:
    """int64 copy of one channel's ADC values with wfdb's invalid value of ``fmt`` set to :data:`INVALID`."""
    out = np.asarray(d).astype(np.int64)
    bits = _ADC_BITS.get(str(fmt))
    if bits:
        out[out == -(2 ** (bits - 1))] = INVALID
    return out


def device_recording_from_wfdb(record: str | Path) -> DeviceRecording:
    """Read a WFDB record (path without extension) as the simulated device plays it (module doc).

    Raises:
        ConfigError: no record there, a record wfdb cannot read, no ECG lead, more than 16 ECG leads.
    """
    wfdb = _wfdb()
    path = Path(str(record)[:-4] if str(record).endswith(".hea") else str(record))
    hea = path.with_name(path.name + ".hea")
    if not hea.is_file():
        raise ConfigError(f"no WFDB record at {path} (expected {hea})")
    try:
        with quiet_wfdb():
            header = wfdb.rdheader(str(path))
    except Exception:  # wfdb raises many types for headers it rejects: ecgedge's fallback reads those
        return _recording_from_fallback(path, hea)
    try:
        if isinstance(header, wfdb.MultiRecord):
            rec = _read_multi_segment(wfdb, path, header)
        else:
            rec = _read_single_segment(wfdb, path, header)
    except ConfigError:
        raise
    except Exception as exc:  # wfdb's errors for data it cannot decode are not one type
        raise ConfigError(f"record {path.name}: wfdb cannot read it: {exc}") from None
    fs, names, units, gains, baselines, fmts, columns, ignored = rec
    keep = [i for i in range(len(names)) if ecg_channel(names[i], units[i])]
    ignored = ignored + [channel_label(names[i], units[i]) for i in range(len(names)) if i not in keep]
    if not keep:
        raise ConfigError(f"record {path.name} has no ECG lead to play (channels: {', '.join(ignored)})")
    if len(keep) > 16:
        raise ConfigError(f"record {path.name} has {len(keep)} ECG leads; the wire carries at most 16")
    return DeviceRecording(
        name=path.name, fs_hz=fs, lead_names=tuple(canonical_lead_name(names[i]) for i in keep),
        gains_uv=tuple(_gain_uv(gains[i], units[i]) for i in keep), baselines=tuple(int(baselines[i]) for i in keep),
        adu=np.stack([columns[i] for i in keep]), rail=_rail([fmts[i] for i in keep]), ignored_channels=tuple(ignored))


def _read_single_segment(wfdb, path: Path, header):
    n = header.n_sig or 0
    names = list(header.sig_name or [f"lead{i + 1}" for i in range(n)])
    units = list(header.units or ["mV"] * n)
    ecg = [i for i in range(n) if ecg_channel(names[i], units[i])]
    ignored = [channel_label(names[i], units[i]) for i in range(n) if i not in ecg]
    if not ecg:
        raise ConfigError(f"record {path.name} has no ECG lead to play (channels: {', '.join(ignored)})")
    spf = {int((header.samps_per_frame or [1] * n)[i] or 1) for i in ecg}
    expanded = len(spf) == 1 and spf != {1}
    with quiet_wfdb():
        rec = wfdb.rdrecord(str(path), physical=False, channels=ecg, smooth_frames=not expanded)
    if expanded:
        raw = list(rec.e_d_signal)
        fs = float(rec.fs) * spf.pop()
    else:
        raw = [rec.d_signal[:, j] for j in range(rec.n_sig)]
        fs = float(rec.fs)
    columns = [_mark_invalid(raw[j], rec.fmt[j]) for j in range(rec.n_sig)]
    return (fs, list(rec.sig_name), list(rec.units or ["mV"] * rec.n_sig), list(rec.adc_gain), list(rec.baseline),
            list(rec.fmt), columns, ignored)


def _read_multi_segment(wfdb, path: Path, header):
    # Each lead's calibration in every segment that holds samples (a layout segment holds none).
    calibrations: dict[str, set[tuple[float, int, str, str]]] = {}
    for seg, length in zip(header.seg_name or [], header.seg_len or []):
        if seg == "~" or not length:
            continue
        with quiet_wfdb():
            h = wfdb.rdheader(str(path.with_name(seg)))
        for j, name in enumerate(h.sig_name or []):
            calibrations.setdefault(name, set()).add((float(h.adc_gain[j]) or _WFDB_DEFAULT_ADC_GAIN,
                                                      int(h.baseline[j]), (h.units or ["mV"] * h.n_sig)[j] or "mV",
                                                      str(h.fmt[j])))
    with quiet_wfdb():
        if all(len(c) == 1 for c in calibrations.values()):
            rec = wfdb.rdrecord(str(path), physical=False, m2s=True)
            columns = [_mark_invalid(rec.d_signal[:, j], rec.fmt[j]) for j in range(rec.n_sig)]
            return (float(rec.fs), list(rec.sig_name), list(rec.units or ["mV"] * rec.n_sig), list(rec.adc_gain),
                    list(rec.baseline), list(rec.fmt), columns, [])
        # Segments calibrate a lead differently: wfdb joins them in physical units only (module doc).
        rec = wfdb.rdrecord(str(path), physical=True, m2s=True)
    names = list(rec.sig_name)
    finest = {name: max(calibrations[name]) for name in names}  # the largest adc_gain: the finest step
    columns = []
    for j, name in enumerate(names):
        p = rec.p_signal[:, j]
        col = np.full(p.shape, INVALID, np.int64)
        ok = np.isfinite(p)
        col[ok] = np.round(p[ok] * finest[name][0]).astype(np.int64)
        columns.append(col)
    return (float(rec.fs), names, [finest[n][2] for n in names], [finest[n][0] for n in names], [0] * len(names),
            [finest[n][3] for n in names], columns, [])


def _recording_from_fallback(path: Path, hea: Path) -> DeviceRecording:
    """A header wfdb rejects: ecgedge's fallback reader (mV), quantised back with the header's gains."""
    try:
        header = read_header(hea, path.name)
        record = read_wfdb(hea, path.name, None, False)
    except BadRecord as exc:
        raise ConfigError(f"record {path.name}: {exc}") from None
    by_name = {canonical_lead_name(s.name): s for s in header.signals}
    sigs = [by_name[name] for name in record.lead_names]
    columns, gains, baselines = [], [], []
    for row, s in zip(record.signal, sigs):
        adc_gain = s.gain or _WFDB_DEFAULT_ADC_GAIN
        mv_per = mv_per_unit(s.units) or 1.0
        col = np.full(row.shape, INVALID, np.int64)
        ok = np.isfinite(row)
        col[ok] = np.round(row[ok] / mv_per * adc_gain).astype(np.int64) + s.baseline
        columns.append(col)
        gains.append(1000.0 * mv_per / adc_gain)
        baselines.append(s.baseline)
    return DeviceRecording(name=path.name, fs_hz=record.fs, lead_names=tuple(record.lead_names), gains_uv=tuple(gains),
                           baselines=tuple(baselines), adu=np.stack(columns), rail=_rail([s.fmt for s in sigs]),
                           ignored_channels=tuple(record.ignored_channels))


def main(argv: list[str] | None = None) -> int:
    """``python -m ecgedge.data.device_samples --ecgsim ECGSIM RECORD [ecgsim options]``: what
    ``ecgsim [options] RECORD`` runs.

    Writes the interchange file into the temporary folder and replaces this process with ECGSIM
    (``--raw ... --raw-unlink``, then the options given, which therefore win), so the process that
    was started stays the device; ecgsim removes the file once open. Returns 2 (after one line on
    stderr, as ecgsim words its errors) when the record cannot be played.
    """
    import tempfile

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["--ecgsim"] or len(args) < 3:
        print("usage: python -m ecgedge.data.device_samples --ecgsim ECGSIM RECORD [ecgsim options]\n"
              "(run by 'ecgsim [options] RECORD')", file=sys.stderr)
        return 2
    exe, record, options = args[1], args[2], args[3:]
    try:
        recording = device_recording_from_wfdb(record)
        fd, raw = tempfile.mkstemp(prefix=f"ecgsim-{recording.name}-", suffix=".i32")
        os.close(fd)
        recording.write_raw(Path(raw))
        play = [exe, *recording.ecgsim_args(Path(raw)), "--raw-unlink", *options]
    except EcgEdgeError as exc:
        print(f"ecgsim: {exc}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    os.execv(exe, play)
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
