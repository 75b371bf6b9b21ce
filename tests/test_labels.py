"""Label schemes: SNOMED and Chapman acronyms to chapman11/chapman4, precedence, CinC 2017, .atr windows."""

import numpy as np
import pytest

from ecgedge.config import LabelScheme
from ecgedge.data.labels import (
    CHAPMAN4, CHAPMAN11, CHAPMAN11_TO_4, CINC2017, SNOMED_TO_CHAPMAN, class_names, record_label, window_label)
from ecgedge.data.records import Record
from ecgedge.errors import BadRecord

C11, C4 = LabelScheme.chapman11, LabelScheme.chapman4

# The 11 codes as the data README lists them (an independent copy, not the module's table).
README_CODES = {
    "SB": "426177001", "SR": "426783006", "AFIB": "164889003", "ST": "427084000", "AF": "164890007",
    "SA": "427393009", "SVT": "426761007", "AT": "713422000", "AVNRT": "251166008", "AVRT": "233897008",
    "SAAWR": "17366009",
}
PAPER_MERGE = {"SB": "SB", "AFIB": "AFIB", "AF": "AFIB", "SR": "SR", "SA": "SR",
               "SVT": "GSVT", "AT": "GSVT", "AVNRT": "GSVT", "AVRT": "GSVT", "SAAWR": "GSVT", "ST": "GSVT"}


def rec(*labels, source="snomed", annotations=(), seconds=10.0, fs=500.0) -> Record:
    return Record("R1", np.zeros((1, int(seconds * fs)), np.float32), fs, ("II",), labels, source,
                  rhythm_annotations=annotations)


def test_tables_cover_the_eleven_rhythms():
    assert {v: k for k, v in SNOMED_TO_CHAPMAN.items()} == README_CODES
    assert set(CHAPMAN11) == set(README_CODES) and len(CHAPMAN11) == 11
    assert CHAPMAN11_TO_4 == PAPER_MERGE and set(CHAPMAN11_TO_4.values()) == set(CHAPMAN4)


@pytest.mark.parametrize("rhythm", CHAPMAN11)
def test_every_snomed_code_and_acronym(rhythm):
    code = README_CODES[rhythm]
    assert record_label(rec(code), C11) == rhythm
    assert record_label(rec(code), C4) == PAPER_MERGE[rhythm]
    assert record_label(rec(rhythm, source="chapman"), C11) == rhythm
    assert record_label(rec(rhythm, source="chapman"), "chapman4") == PAPER_MERGE[rhythm]
    # non-rhythm codes beside it (RBBB, T-wave change) are ignored
    assert record_label(rec("59118001", code, "164934002"), C11) == rhythm


@pytest.mark.parametrize("labels, c11, c4", [
    (("SB", "SA"), "SB", "SB"),            # a specific rhythm wins over SA ...
    (("AFIB", "SR"), "AFIB", "AFIB"),      # ... and over SR
    (("SR", "SA", "ST"), "ST", "GSVT"),
    (("SR", "SA"), "SA", "SR"),            # SA (sinus irregularity) is more specific than SR
    (("SR", "SR"), "SR", "SR"),
    (("AFIB", "AF"), None, "AFIB"),        # two specific rhythms: ambiguous unless they merge
    (("ST", "SVT"), None, "GSVT"),
    (("AVNRT", "AT", "SA"), None, "GSVT"),
    (("AFIB", "ST"), None, None),
    (("SB", "ST"), None, None),
])
def test_precedence_and_ambiguity(labels, c11, c4):
    codes = tuple(README_CODES[x] for x in labels)
    for scheme, want in ((C11, c11), (C4, c4)):
        if want is None:
            with pytest.raises(BadRecord, match="ambiguous rhythm: ") as err:
                record_label(rec(*codes), scheme)
            assert err.value.record == "R1"
        else:
            assert record_label(rec(*codes), scheme) == want


def test_ambiguity_names_the_rhythms():
    with pytest.raises(BadRecord) as err:
        record_label(rec(README_CODES["AFIB"], "59118001", README_CODES["ST"]), C4)
    assert err.value.reason == "ambiguous rhythm: AFIB + ST"


def test_no_label_and_no_rhythm():
    with pytest.raises(BadRecord) as err:
        record_label(rec(source="none"), C4)
    assert err.value.reason == "no label"
    with pytest.raises(BadRecord) as err:
        record_label(rec("59118001", "164934002"), C11)
    assert err.value.reason == "no Chapman rhythm among Dx 59118001, 164934002"
    with pytest.raises(BadRecord, match="no Chapman rhythm among labels N"):
        record_label(rec("N", source="cinc2017"), C4)


@pytest.mark.parametrize("letter", CINC2017)
def test_cinc2017_letters(letter):
    assert record_label(rec(letter, source="cinc2017"), LabelScheme.cinc2017) == letter


def test_cinc2017_rejects_other_labels():
    with pytest.raises(BadRecord, match=r"no CinC 2017 class \(N, A, O, ~\) among Dx 426783006"):
        record_label(rec("426783006"), LabelScheme.cinc2017)
    with pytest.raises(BadRecord, match="ambiguous CinC 2017 label: N \\+ A"):
        record_label(rec("N", "A", source="cinc2017"), LabelScheme.cinc2017)


def test_class_names():
    assert class_names(C11) == CHAPMAN11
    assert class_names("chapman4") == ("SB", "AFIB", "GSVT", "SR")
    assert class_names(LabelScheme.cinc2017) == ("N", "A", "O", "~")
    assert class_names(LabelScheme.atr, ["T", "N", "AFIB", "N"]) == ("AFIB", "N", "T")
    assert class_names(LabelScheme.atr) == ()


# .atr windows: fs 100 Hz, N from sample 100, AFIB from 500, N again from 800
ANN = ((100, "N"), (500, "AFIB"), (800, "N"))


@pytest.mark.parametrize("start_s, end_s, want", [
    (1.0, 5.0, "N"),         # entirely N
    (4.0, 8.0, "AFIB"),      # 1 s N, 3 s AFIB
    (2.0, 7.0, "N"),         # 3 s N, 2 s AFIB
    (3.0, 10.0, "N"),        # N 2 s + 2 s (two stretches add up) > AFIB 3 s
    (5.0, 12.0, "N"),        # after the last change: still N for 4 s vs AFIB 3 s
    (3.0, 7.0, "AFIB"),      # tie 2 s / 2 s: the later rhythm, the one the window ends in
    (0.0, 0.5, None),        # before the first annotation
    (0.0, 1.0, None),        # ends where the first annotation starts
    (0.0, 2.5, "N"),         # 1 s unknown, 1.5 s N
    (0.0, 1.8, None),        # 1 s unknown beats 0.8 s N
])
def test_window_label(start_s, end_s, want):
    assert window_label(ANN, start_s, end_s, 100.0) == want


def test_window_label_uses_the_annotation_rate():
    assert window_label(((0, "N"), (500, "AFIB")), 2.0, 4.0, 250.0) == "AFIB"   # AFIB from 2.0 s at 250 Hz
    assert window_label(((0, "N"), (500, "AFIB")), 2.0, 4.0, 100.0) == "N"      # ... from 5.0 s at 100 Hz
    assert window_label((), 0.0, 10.0, 100.0) is None


def test_record_label_for_atr_is_the_majority_rhythm():
    r = rec(annotations=((0, "N"), (500, "AFIB"), (1500, "N"), (2000, "AFIB")), seconds=8.0, fs=500.0)
    assert record_label(r, LabelScheme.atr) == "AFIB"   # AFIB 2 + 4 s, N 1 + 1 s
    with pytest.raises(BadRecord, match="no rhythm annotation"):
        record_label(rec(), LabelScheme.atr)
