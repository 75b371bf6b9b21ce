"""The simulated device plays the WFDB header layouts wfdb-python writes, skew and byte offsets included.

ecgsim parses no WFDB: the ``wfdb:`` source reads the record with wfdb (``ecgedge.data.device_samples``;
headers wfdb rejects, like CinC 2017's ISO date, through ecgedge's documented fallback) and ecgsim
plays its ADC integers. Each record is written by wfdb-python 4.3 (``wrsamp``, ``Record.wrheader``,
``wfdb_to_mat``), or by hand where wfdb-python writes no such header, and the test first checks that
the header really holds the layout under test. Then the record is streamed through ``ecgedge
stream``'s wire path (``tests/helpers.stream_from_device``) and compared with ``wfdb.rdrecord``:

- ADC counts: exactly equal to ``d_signal``; gain and baseline on the wire equal the header's.
- mV: ``(raw - baseline) * gain_uv / 1000`` equals ``p_signal`` within ``rtol = 2**-23``, because the
  wire carries ``gain_uv`` as float32 (``1000 / adc_gain`` rounded to 24 bits).
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ecgedge.bridge.frame import LEAD_NAMES, Frame
from ecgedge.config import STANDARD_12_LEADS
from helpers import MV_RTOL, REPLAY_N, stream_from_device

pytestmark = [pytest.mark.c, pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop")]




def _adc(limit: int, n_sig: int, seed: int = 0) -> np.ndarray:
    """(REPLAY_N, n_sig) ADC integers spanning a format's range."""
    return np.random.default_rng(seed).integers(-limit, limit, size=(REPLAY_N, n_sig))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}:\n{text}"
    path.write_text(text.replace(old, new))


def _mat_v4(path: Path, d_signal: np.ndarray) -> None:
    """``path`` as the CinC/Chapman ``.mat`` files are: a 24-byte MATLAB v4 preamble (type 30 =
    little-endian int16, rows = signals, columns = samples, name ``val``), then int16 samples,
    signal-interleaved."""
    n, n_sig = d_signal.shape
    path.write_bytes(struct.pack("<5i", 30, n_sig, n, 0, 4) + b"val\0" + d_signal.astype("<i2").tobytes())


# ---- writers: each returns (the record ecgsim plays, the record wfdb-python reads as reference)


def wrsamp_16_one_lead(wfdb, d: Path):
    wfdb.wrsamp("one", fs=500, units=["mV"], sig_name=["II"], d_signal=_adc(32767, 1), fmt=["16"],
                adc_gain=[1000.0], baseline=[0], write_dir=str(d))
    return d / "one", d / "one"


def wrsamp_16_twelve_leads_dated(wfdb, d: Path):
    import datetime

    wfdb.wrsamp("twelve", fs=500, units=["mV"] * 12, sig_name=list(STANDARD_12_LEADS), d_signal=_adc(32767, 12),
                fmt=["16"] * 12, adc_gain=[200.5] * 12, baseline=[1024] * 12, write_dir=str(d),
                base_time=datetime.time(5, 5, 15), base_date=datetime.date(2014, 5, 8), comments=["Age: 61"])
    return d / "twelve", d / "twelve"


def wrsamp_212(wfdb, d: Path):
    wfdb.wrsamp("r212", fs=360, units=["mV"] * 2, sig_name=["MLII", "V5"], d_signal=_adc(2047, 2), fmt=["212"] * 2,
                adc_gain=[200.0] * 2, baseline=[-3] * 2, write_dir=str(d))
    return d / "r212", d / "r212"


def wrsamp_24(wfdb, d: Path):
    wfdb.wrsamp("r24", fs=250, units=["mV"] * 3, sig_name=["I", "aVF", "V3R"], d_signal=_adc(8388607, 3),
                fmt=["24"] * 3, adc_gain=[1000.0] * 3, baseline=[7] * 3, write_dir=str(d))
    return d / "r24", d / "r24"


def wrsamp_samps_per_frame_1(wfdb, d: Path):
    source = _adc(32767, 2)
    wfdb.wrsamp("spf1", fs=500, units=["mV"] * 2, sig_name=["I", "II"], e_d_signal=[source[:, 0], source[:, 1]],
                samps_per_frame=[1, 1], fmt=["16"] * 2, adc_gain=[1000.0] * 2, baseline=[0] * 2, write_dir=str(d))
    return d / "spf1", d / "spf1"


def _wrheader_mat(wfdb, d: Path, name: str, n_sig: int, skew: list | None = None) -> None:
    """A CinC-2017-style record: wfdb-python's own header writer (``wrheader`` writes the ``x1`` when
    ``byte_offset`` is set) over a ``.mat`` data file written by hand."""
    zeros = [0] * n_sig
    record = wfdb.Record(record_name=name, n_sig=n_sig, fs=300, sig_len=REPLAY_N, file_name=[f"{name}.mat"] * n_sig,
                         fmt=["16"] * n_sig, samps_per_frame=[1] * n_sig, skew=skew or [None] * n_sig,
                         byte_offset=[24] * n_sig, adc_gain=[1000.0] * n_sig, baseline=zeros, units=["mV"] * n_sig,
                         adc_res=[16] * n_sig, adc_zero=zeros, init_value=zeros, checksum=zeros, block_size=zeros,
                         sig_name=["ECG", "II"][:n_sig])
    record.wrheader(write_dir=str(d))
    _mat_v4(d / f"{name}.mat", _adc(32767, n_sig, seed=1))


def wrheader_mat_byte_offset_24(wfdb, d: Path):
    _wrheader_mat(wfdb, d, "A00001", 1)
    return d / "A00001", d / "A00001"


def cinc2017_iso_date_crlf_comments(wfdb, d: Path):
    """The CinC 2017 record line ``A00001 1 300 9000 2014-05-08 05:05:15``, CRLF line ends, comments
    and blank lines. wfdb-python 4.3 cannot read that date ("unconverted data remains"), so the
    reference is the same record before the edit."""
    ref, played = d / "ref", d / "played"
    ref.mkdir()
    played.mkdir()
    _wrheader_mat(wfdb, ref, "A00001", 1)
    shutil.copy(ref / "A00001.mat", played / "A00001.mat")
    record_line, signal_line = ref.joinpath("A00001.hea").read_text().splitlines()
    text = (f"# CinC 2017 style\r\n{record_line} 2014-05-08 05:05:15 \r\n\r\n# signal:\r\n{signal_line} \r\n"
            "# Age: 61\r\n")
    played.joinpath("A00001.hea").write_bytes(text.encode())
    return played / "A00001", ref / "A00001"


def wfdb_to_mat_offset_192(wfdb, d: Path):
    from wfdb.io.convert.matlab import wfdb_to_mat

    wfdb.wrsamp("src", fs=500, units=["mV"] * 2, sig_name=["I", "II"], d_signal=_adc(32767, 2), fmt=["16"] * 2,
                adc_gain=[200.0] * 2, baseline=[-3] * 2, write_dir=str(d))
    wfdb_to_mat(str(d / "src"))  # writes srcm.mat and srcm.hea into the current directory
    return d / "srcm", d / "srcm"


def uppercase_data_file(wfdb, d: Path):
    wfdb.wrsamp("JS00001", fs=500, units=["mV"] * 2, sig_name=["I", "II"], d_signal=_adc(32767, 2), fmt=["16"] * 2,
                adc_gain=[1000.0] * 2, baseline=[0] * 2, write_dir=str(d))
    (d / "JS00001.dat").rename(d / "JS00001.DAT")
    _edit(d / "JS00001.hea", "JS00001.dat", "JS00001.DAT")
    return d / "JS00001", d / "JS00001"


def gain_zero_without_units(wfdb, d: Path):
    """Gain 0 (WFDB: the default 200 adu/mV) with a baseline and no units (WFDB: mV)."""
    wfdb.wrsamp("g0", fs=500, units=["mV"] * 2, sig_name=["I", "II"], d_signal=_adc(32767, 2), fmt=["16"] * 2,
                adc_gain=[1000.0] * 2, baseline=[0] * 2, write_dir=str(d))
    _edit(d / "g0.hea", "1000.0(0)/mV", "0(5)")
    return d / "g0", d / "g0"


@dataclass(frozen=True)
class Case:
    write: Callable
    layout: str  # the header text under test, as the writer puts it there

    @property
    def id(self) -> str:
        return self.write.__name__


CASES = [
    Case(wrsamp_16_one_lead, "one.dat 16 1000.0(0)/mV 16 0 "),
    Case(wrsamp_16_twelve_leads_dated, "twelve 12 500 1001 05:05:15 08/05/2014\ntwelve.dat 16 200.5(1024)/mV 16 0 "),
    Case(wrsamp_212, "r212.dat 212 200.0(-3)/mV 12 0 "),
    Case(wrsamp_24, "r24.dat 24 1000.0(7)/mV 24 0 "),
    Case(wrsamp_samps_per_frame_1, "spf1.dat 16x1 1000.0(0)/mV 16 0 "),
    Case(wrheader_mat_byte_offset_24, "A00001.mat 16x1+24 1000.0(0)/mV 16 0 0 0 0 ECG"),
    Case(cinc2017_iso_date_crlf_comments, "A00001 1 300 1001 2014-05-08 05:05:15 \r\n\r\n# signal:\r\n"
                                          "A00001.mat 16x1+24 1000.0(0)/mV"),
    Case(wfdb_to_mat_offset_192, "srcm.mat 16x1+192 200.0(-3)/mV 16 0 "),
    Case(uppercase_data_file, "JS00001.DAT 16 1000.0(0)/mV"),
    Case(gain_zero_without_units, "g0.dat 16 0(5) 16 0 "),
]


def _play(build: Path, record: Path) -> list[Frame]:
    frames, events, errors = stream_from_device(record)
    assert errors == [] and events == []
    assert [f.first_sample for f in frames[1:]] == [f.end_sample for f in frames[:-1]]  # contiguous
    return frames


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_wfdb_python_headers_play_exactly(build, wfdb, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)  # wfdb_to_mat writes into the current directory
    played, reference = case.write(wfdb, tmp_path)
    assert case.layout in played.with_suffix(".hea").read_bytes().decode()

    frames = _play(build, played)
    ref = wfdb.rdrecord(str(reference), physical=False)
    raw = np.concatenate([f.samples for f in frames], axis=1)
    np.testing.assert_array_equal(raw, ref.d_signal.T)  # exact: ADC counts
    first = frames[0]
    assert first.gains_uv == tuple(float(np.float32(1000.0 / g)) for g in ref.adc_gain)
    assert first.baselines == tuple(ref.baseline)
    assert first.lead_ids == tuple(name if name in LEAD_NAMES else "?" for name in ref.sig_name)
    assert all(f.sample_format.value == ("int24" if ref.fmt[0] == "24" else "int16") for f in frames)

    mv = np.concatenate([f.samples_mv() for f in frames], axis=1)
    np.testing.assert_allclose(mv, wfdb.rdrecord(str(reference)).p_signal.T, rtol=MV_RTOL, atol=0)


def test_skew_plays_as_wfdb_reads_it(build, wfdb, tmp_path):
    _wrheader_mat(wfdb, tmp_path, "sk", 2, skew=[None, 3])
    assert "sk.mat 16x1:3+24 1000.0(0)/mV" in (tmp_path / "sk.hea").read_text()
    frames = _play(build, tmp_path / "sk")
    ref = wfdb.rdrecord(str(tmp_path / "sk"), physical=False)
    # Lead II starts 3 samples late, so wfdb has no reading of it at the last 3 sample times: not sent.
    assert (ref.d_signal[-3:, 1] == -32768).all() and frames[-1].end_sample == REPLAY_N - 3
    np.testing.assert_array_equal(np.concatenate([f.samples for f in frames], axis=1), ref.d_signal[:-3].T)
