"""RunningSignalChecks, the once-per-hop fast path of signal_problems: it may only say "clean" when the
full check finds nothing, so the monitor's verdicts and messages are exactly those of the full check.

Signals are built to sit on and around every threshold (flat std, saturation fraction, implausible
peak) and to carry NaN/inf; windows are runs of randomly sized blocks, as the monitor cuts them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.data.quality import FLAT_STD_MV, MAX_PLAUSIBLE_MV, SATURATION_FRACTION, RunningSignalChecks, signal_problems

FS = 500.0
KINDS = ("ecg", "flat", "near_flat", "constant", "saturated", "near_saturated", "implausible", "at_limit",
         "nan", "inf", "offset")


def lead(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """One lead of ``n`` samples in mV, on or around the threshold its kind names."""
    t = np.arange(n) / FS
    x = np.sin(2 * np.pi * rng.uniform(0.8, 2.0) * t) + rng.normal(scale=0.02, size=n)
    if kind == "flat":
        x = 0.3 + rng.normal(scale=FLAT_STD_MV * rng.uniform(0.1, 0.99), size=n)
    elif kind == "near_flat":  # std within a hair of 5 µV, either side
        x = rng.normal(size=n)
        x = (x - x.mean()) / x.std() * FLAT_STD_MV * (1 + rng.choice([-1, 1]) * 10.0 ** rng.uniform(-12, -3))
    elif kind == "constant":
        x = np.full(n, rng.choice([0.0, -0.0, 1.5]))
    elif kind in ("saturated", "near_saturated"):
        # k samples at the top rail: k / n on, just under or just over 5 %.
        k = int(round(SATURATION_FRACTION * n)) + (int(rng.integers(-2, 3)) if kind == "near_saturated" else 3)
        x = x.clip(-5.0, 4.0)
        x[rng.choice(n, size=max(k, 1), replace=False)] = 4.0
    elif kind == "implausible":
        x = x * rng.uniform(18.0, 25.0)
    elif kind == "at_limit":  # the peak exactly at 20 mV, or one ulp beyond
        x[int(rng.integers(n))] = MAX_PLAUSIBLE_MV if rng.random() < 0.5 else np.nextafter(MAX_PLAUSIBLE_MV, 99.0)
    elif kind in ("nan", "inf"):
        a = int(rng.integers(n))
        x[a:a + int(rng.integers(1, 50))] = np.nan if kind == "nan" else rng.choice([np.inf, -np.inf])
    elif kind == "offset":  # large DC offset, small but not flat variation
        x = 15.0 + 0.01 * x
    return x


def checked(x: np.ndarray, cuts: list[int], capacity: int = 64) -> RunningSignalChecks:
    checks = RunningSignalChecks(x.shape[0], capacity)
    for a, b in zip([0, *cuts], [*cuts, x.shape[1]]):
        if b > a:
            checks.add(x[:, a:b], a)
    return checks


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=4),
       n=st.integers(200, 5000), n_cuts=st.integers(0, 12))
def test_clean_only_when_the_full_check_finds_nothing(seed, kinds, n, n_cuts):
    rng = np.random.default_rng(seed)
    x = np.stack([lead(k, n, rng) for k in kinds])
    cuts = sorted(set(rng.integers(1, n, size=n_cuts).tolist()))
    checks = checked(x, cuts)
    names = STANDARD_12_LEADS[:len(kinds)]
    for start in [0, *cuts]:  # every window that is a run of whole blocks ending at the newest sample
        exact = signal_problems(x[:, start:], FS, names)
        if checks.clearly_clean(start, n):
            assert exact == [], (kinds, start)
        fast = [] if checks.clearly_clean(start, n) else signal_problems(x[:, start:], FS, names)
        assert fast == exact


def test_clean_ecg_takes_the_fast_path():
    rng = np.random.default_rng(0)
    x = np.stack([lead("ecg", 4096, rng) for _ in range(12)])
    checks = checked(x, list(range(500, 4096, 500)))
    assert checks.clearly_clean(0, 4096) and checks.clearly_clean(500, 4096)
    assert signal_problems(x, FS, STANDARD_12_LEADS) == []


@pytest.mark.parametrize("kind", ["flat", "constant", "saturated", "implausible", "nan", "inf"])
def test_every_problem_falls_back_to_the_full_check(kind):
    rng = np.random.default_rng(1)
    x = np.stack([lead("ecg", 3000, rng), lead(kind, 3000, rng)])
    assert signal_problems(x, FS, ["I", "II"]) != []
    assert not checked(x, [1000, 2000]).clearly_clean(0, 3000)


def test_exact_thresholds_fall_on_the_full_check_side():
    """5 % of samples at the rail is saturated, 20 mV is plausible and one ulp beyond is not, as in signal_problems."""
    rng = np.random.default_rng(2)
    base = lead("ecg", 2000, rng)
    for k, saturated in ((99, True), (98, False)):  # k samples at the top rail, plus the one at the minimum
        x = 0.5 * base
        x[rng.choice(2000, size=k, replace=False)] = 0.9
        assert np.count_nonzero(x == x.min()) == 1
        assert (signal_problems(x[None], FS, ["II"]) != []) == saturated
        assert checked(x[None], [700]).clearly_clean(0, 2000) != saturated
    peak = base.copy()
    peak[5] = MAX_PLAUSIBLE_MV
    assert signal_problems(peak[None], FS, ["II"]) == [] and checked(peak[None], [700]).clearly_clean(0, 2000)
    peak[5] = np.nextafter(MAX_PLAUSIBLE_MV, 99.0)
    assert signal_problems(peak[None], FS, ["II"]) != [] and not checked(peak[None], [700]).clearly_clean(0, 2000)


def test_a_span_that_is_not_whole_blocks_is_not_judged():
    rng = np.random.default_rng(3)
    x = np.stack([lead("ecg", 3000, rng)])
    checks = checked(x, [1000, 2000], capacity=2)  # the first block has fallen out
    assert checks.clearly_clean(1000, 3000)
    assert not checks.clearly_clean(0, 3000)  # not kept
    assert not checks.clearly_clean(1500, 3000)  # starts inside a block
    assert not checks.clearly_clean(1000, 2000)  # does not end at the newest sample
