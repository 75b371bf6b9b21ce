"""Lead names (ecgedge.data.leads): one alias table that training, the window store and the stream all use."""

from __future__ import annotations

import numpy as np
import pytest

from ecgedge.config import STANDARD_12_LEADS, PreprocessConfig
from ecgedge.data.leads import LEAD_ALIASES, canonical_lead_name, channel_label, ecg_channel, lead_indices, mv_per_unit, standard_lead
from ecgedge.data.records import Record, select_leads
from ecgedge.errors import BadRecord, MissingLeads, ShapeMismatch
from ecgedge.stream.monitor import BedMonitor, ModelSpec
from ecgedge.stream.show import lead_index


def test_canonical_spelling_keeps_other_names():
    assert [canonical_lead_name(n.upper()) for n in STANDARD_12_LEADS] == list(STANDARD_12_LEADS)
    assert canonical_lead_name(" avf ") == "aVF" and canonical_lead_name("v1") == "V1"
    assert canonical_lead_name("MLII") == "MLII" and canonical_lead_name(" ECG ") == "ECG" and canonical_lead_name("v7") == "v7"


@pytest.mark.parametrize("name, lead", [("MLI", "I"), ("mlii", "II"), (" MLIII", "III"), ("AVR", "aVR"), ("ii", "II"),
                                        ("ECG", "ECG"), ("V7", "V7")])
def test_standard_lead_resolves_every_alias(name, lead):
    assert standard_lead(name) == lead


def test_aliases_name_standard_leads_only():
    assert set(LEAD_ALIASES.values()) <= set(STANDARD_12_LEADS)
    assert all(k == k.upper() for k in LEAD_ALIASES)


def test_lead_indices_order_aliases_and_missing():
    have = ("MLII", "V5", "aVR", "MLI")
    assert lead_indices(have, ["I", "ii", "AVR", "v5"]) == [3, 0, 2, 1]
    assert lead_indices(("I", "II", "II"), ["II"]) == [1]  # the first of repeated names
    assert lead_indices(("II", "V1"), ["MLII"]) == [0]  # aliases work both ways
    with pytest.raises(MissingLeads, match=r"^missing lead\(s\) V3, aVF; there are MLII, V5, aVR, MLI$") as err:
        lead_indices(have, ["V3", "II", "AVF"])
    assert err.value.missing == ("V3", "aVF") and isinstance(err.value, ShapeMismatch)


def test_a_single_lead_source_serves_a_single_lead_request_unless_names_are_chosen():
    assert lead_indices(("ECG",), ["II"]) == [0]  # CinC 2017's single lead for a lead-II model
    with pytest.raises(MissingLeads):
        lead_indices(("ECG",), ["I", "II"])
    with pytest.raises(MissingLeads, match="missing lead.s. V1"):
        lead_indices(("II",), ["V1"], single_lead_serves_any=False)  # a window store's names are chosen


def test_training_and_streaming_accept_the_same_aliases():
    """A lead-I model takes an MLI record in training (select_leads) as the stream monitor takes an MLI stream."""
    sig = np.arange(3 * 10, dtype=np.float32).reshape(3, 10)
    record = Record("mit", sig, 360.0, ("MLI", "MLII", "V5"))
    np.testing.assert_array_equal(select_leads(record, ["I"]), sig[[0]])
    np.testing.assert_array_equal(select_leads(record, ["II", "I"]), sig[[1, 0]])
    spec = ModelSpec(("I",), ("SR", "AFIB"), PreprocessConfig(), 2048)
    assert BedMonitor(0, fs_in=360.0, lead_names=record.lead_names, model=spec).lead_index == [0]
    assert lead_index(record.lead_names, "II") == 1 and lead_index(record.lead_names, "V1") == 0  # --show's lead

    two = ModelSpec(("I", "V1"), ("SR", "AFIB"), PreprocessConfig(), 2048)
    with pytest.raises(BadRecord, match=r"mit: missing lead\(s\) V1; record has MLI, MLII, V5"):
        select_leads(record, two.leads)
    with pytest.raises(ShapeMismatch, match="stream 0 carries leads MLI, MLII, V5; the model needs V1 too"):
        BedMonitor(0, fs_in=360.0, lead_names=record.lead_names, model=two)


@pytest.mark.parametrize("name, units, is_lead", [
    ("MLII", "mV", True), ("V5", "uV", True), ("ECG", "", True), ("II", None, True), ("aVF", "MV", True), ("I", "µV", True),
    ("ABP", "mmHg", False), ("PLETH", "NU", False), ("HR", "bpm", False), ("SpO2", "%", False), ("RESP", "Ohm", False),
    ("RESP", "mV", False), ("EEG C3-A2", "uV", False), ("C4-M1", "uV", False), ("EOG", "uV", False), ("T", "degC", False),
])
def test_which_channels_are_ecg_leads(name, units, is_lead):
    """The one rule the readers use to keep a channel as a lead: a voltage unit, and not another biosignal's name."""
    assert ecg_channel(name, units) is is_lead


def test_units_to_mv_and_channel_labels():
    assert mv_per_unit("uV") == mv_per_unit("µV") == 1e-3 and mv_per_unit(" mv ") == 1.0 and mv_per_unit("V") == 1e3
    assert mv_per_unit(None) == mv_per_unit("") == 1.0   # WFDB's default unit
    assert mv_per_unit("mmHg") is None
    assert channel_label("ABP", "mmHg") == "ABP (mmHg)" and channel_label("PLETH", "") == "PLETH"
