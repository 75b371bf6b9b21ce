"""Issue 25, policy 4: physical bounds on every number from outside, one table (:mod:`ecgedge.bounds`).

Before: a header sampling rate of 0 aborted ``evaluate`` and ``data build`` with a traceback, a rate of
``1e9`` was read as 1 Hz by wfdb without a word, and ``evaluate --bootstrap 1000000000`` ran for a day.
Batch jobs now skip such a record and count it with its reason; options are one line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgedge.bounds import BOUNDS, header_problems, markdown_table
from ecgedge.cli.main import app
from ecgedge.config import DataConfig, PreprocessConfig, WindowConfig
from ecgedge.data.records import read_record
from ecgedge.data.windows import build_windows
from ecgedge.errors import BadRecord

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def good(tmp_path):
    """A real 1-lead MAT v4 record written in code (int16, 1000 adu/mV, 300 Hz, 9000 samples)."""
    import wfdb

    rng = np.random.default_rng(0)
    sig = (np.sin(np.arange(9000) / 300 * 2 * math.pi * 1.2) + 0.01 * rng.standard_normal(9000))[:, None]
    wfdb.wrsamp("R", fs=300, units=["mV"], sig_name=["I"], p_signal=sig, fmt=["16"], adc_gain=[1000.0], baseline=[0],
                write_dir=str(tmp_path))
    return tmp_path / "R.hea"


def _variant(good: Path, name: str, record_line=None, signal_line=None) -> Path:
    lines = good.read_text().splitlines()
    rec = lines[0].split()
    rec[0] = name
    if record_line:
        rec = record_line(rec)
    lines[0] = " ".join(rec)
    if signal_line:
        lines[1] = signal_line(lines[1])
    (good.parent / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return good.parent / f"{name}.hea"


def _set(i, value):
    def f(rec):
        rec[i] = value
        return rec
    return f


CASES = {
    "rate0": (_set(2, "0"), None, "0"),
    "rateneg": (_set(2, "-300"), None, "-300"),
    "rate1e9": (_set(2, "1e9"), None, "1e+09 Hz"),
    "rate250k": (_set(2, "250000"), None, "250000 Hz"),
    "gain1e12": (None, lambda s: re.sub(r"1000(\.0)?(\(0\))?/mV", "1e12(0)/mV", s), "1e+12 adu/mV"),
    "gainneg": (None, lambda s: re.sub(r"1000(\.0)?(\(0\))?/mV", "-5(0)/mV", s), "-5 adu/mV"),
    "len1e14": (_set(3, "99999999999999"), None, "1e+14 samples"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_impossible_header_numbers_are_bad_records(good, case):
    rec, sig, shown = CASES[case]
    hea = _variant(good, case, rec, sig)
    with pytest.raises(BadRecord) as err:
        read_record(hea)
    assert shown in str(err.value) and "\n" not in str(err.value)


def test_batch_jobs_skip_and_count(good, tmp_path):
    for case, (rec, sig, _) in CASES.items():
        _variant(good, case, rec, sig)
    ws = build_windows(DataConfig(paths=(str(tmp_path),), cache_dir=str(tmp_path / "cache"), workers=1), ("I",),
                       PreprocessConfig(), WindowConfig(), progress=False)
    assert ws.record_ids == ["R"] and set(ws.summary.skipped) == set(CASES)


def test_slow_but_possible_rate_is_the_quality_checks_business(good):
    """0.5 Hz is a possible header number; it is the model's band that cannot use it (test_plausibility)."""
    assert read_record(_variant(good, "slow", _set(2, "0.5"))).fs == 0.5


def test_header_problems_names_each_field():
    assert header_problems(250.0, 12, 5000, [200.0] * 12) == []
    assert len(header_problems(float("nan"), 10_000, -1, [0.0, float("inf")])) == 5


@pytest.mark.parametrize("value", ["0", "-3", "1000000000"])
def test_bootstrap_is_bounded_with_its_reason(value, tmp_path):
    res = CliRunner().invoke(app, ["evaluate", "cinc2017-rhythm", "--data", str(tmp_path), "--labels", "cinc2017",
                                   "--out", str(tmp_path / "ev"), "--bootstrap", value])
    assert res.exit_code == 2 and "bootstrap repeats" in res.output and "more is days" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1


def test_the_docs_carry_the_one_table():
    doc = (REPO / "docs" / "reliability-round3.md").read_text()
    assert markdown_table() in doc, "regenerate with: python -c 'from ecgedge.bounds import markdown_table; print(markdown_table())'"
    assert all(b.why for b in BOUNDS.values())
