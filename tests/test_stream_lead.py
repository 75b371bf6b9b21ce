"""Issue 25, policy 6: ``ecgedge stream --lead`` (by name, or by position for unnamed ``?`` leads) for
single-lead models, the one rule :func:`ecgedge.data.leads.chosen_lead_row` that ``evaluate stream
--lead`` uses too.

Before: the shipped lead-I model on a MIT-BIH record (MLII, V5) said "the model needs I too", and
records whose leads are unnamed (``?``) could not be streamed at all. Real frames, a real ONNX model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgedge.data.leads import chosen_lead_row
from ecgedge.data.synthetic import synthesize_ecg
from ecgedge.errors import ConfigError, MissingLeads
from ecgedge.manifest import load_manifest
from ecgedge.runtime import runner_from_export
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.monitor import ModelSpec, StreamSettings
from ecgedge.stream.session import StreamSession
from tests.helpers import cli, feed, linear_export, python_frames

FS = 360.0


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return linear_export(tmp_path_factory.mktemp("lead") / "lead-I", leads=("I",))


@pytest.fixture(scope="module")
def runner(export):
    with runner_from_export(export, "fp32", threads=1) as r:
        yield r


@pytest.fixture(scope="module")
def two_leads() -> np.ndarray:
    """20 s of synthetic sinus rhythm, two leads, mV at 360 Hz (MIT-BIH's rate)."""
    return synthesize_ecg("SR", seed=0, duration_s=20.0, fs=FS, leads=("II", "V5"))[0].astype(np.float64)


def _play(runner, export, signal, leads, lead=None) -> list[dict]:
    spec = ModelSpec.from_manifest(load_manifest(export))
    session = StreamSession(StreamHub(runner, spec, StreamSettings(source_lead=lead)))
    return feed(session, b"".join(python_frames(signal, FS, leads)))


def _classified(records) -> list[dict]:
    return [r for r in records if r["type"] == "window" and r.get("quality") == "ok"]


def test_without_lead_the_refusal_says_how(runner, export, two_leads):
    records = _play(runner, export, two_leads, ("MLII", "V5"))
    (err,) = [r for r in records if r["type"] == "stream_error"]
    assert "needs I too" in err["detail"] and "--lead" in err["detail"]


@pytest.mark.parametrize("leads, lead, row", [
    (("MLII", "V5"), "MLII", 0),
    (("MLII", "V5"), "v5", 1),
    (("MLII", "V5"), "II", 0),      # the alias: MLII is II
    (("?", "?"), "2", 1),            # unnamed leads, by position
    (("?", "?"), "#1", 0),
])
def test_lead_by_name_or_position_is_classified(runner, export, two_leads, leads, lead, row):
    records = _play(runner, export, two_leads, leads, lead)
    assert not [r for r in records if r["type"] == "stream_error"]
    got = _classified(records)
    assert got, [r["type"] for r in records][:10]
    alone = _classified(_play(runner, export, two_leads[row:row + 1], ("I",)))  # that lead, sent as the model's own
    assert [r["probs"] for r in got] == [r["probs"] for r in alone]


@pytest.mark.parametrize("lead, match", [("V1", "V1"), ("3", "#3"), ("0", "#0")])
def test_a_lead_the_source_lacks_is_refused_naming_it(runner, export, two_leads, lead, match):
    records = _play(runner, export, two_leads, ("MLII", "V5"), lead)
    (err,) = [r for r in records if r["type"] == "stream_error"]
    assert match in err["detail"]


def test_lead_on_a_multi_lead_model_is_a_config_error():
    with pytest.raises(ConfigError, match="single-lead model"):
        chosen_lead_row(["I", "II"], "II", ["I", "II"])
    with pytest.raises(MissingLeads):
        chosen_lead_row(["?"], "#2", ["I"])


def test_cli_stream_lead(export, two_leads):
    data = b"".join(python_frames(two_leads, FS, ("MLII", "V5")))
    records, _ = cli(export, "--source", "stdin", "--precision", "fp32", "--lead", "MLII", input=data)
    assert _classified(records) and not [r for r in records if r["type"] == "stream_error"]


def test_evaluate_stream_shares_the_rule():
    from ecgedge.evaluate.stream import _model_leads

    spec = ModelSpec(("I",), ("N", "A"), None, 2048)  # type: ignore[arg-type]
    assert _model_leads(["?", "?"], "r", spec, "2") == ([1], ["I"])
    assert _model_leads(["MLII", "V5"], "r", spec, "mlii") == ([0], ["I"])
