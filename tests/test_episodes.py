"""AF episode statistics (ecgedge.evaluate.episodes) on hand-made episode pairs whose answers are worked out here.

Sampling rate 1 Hz throughout, so samples are seconds and the arithmetic can be read off.
"""

from __future__ import annotations

import pytest

from ecgedge.evaluate.episodes import intersect, markdown_table, merge, score_episodes, subtract, summarise


def test_interval_algebra():
    assert merge([(5, 9), (0, 3), (3, 4), (8, 12), (20, 20)]) == [(0, 4), (5, 12)]
    assert intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    assert subtract([(0, 100)], [(10, 20), (50, 60), (90, 120)]) == [(0, 10), (20, 50), (60, 90)]
    assert subtract([(0, 10)], []) == [(0, 10)]


def worked_example():
    # Reference AF 100-200 and 500-600; the monitor says AF 150-250 (late, overlapping the first)
    # and 700-800 (nothing there): one of two episodes found, one of two alarms true, 50 s of
    # 200 s overlap on either side, the found episode 50 s late, one false alarm in 1000 s.
    return score_episodes([(100, 200), (500, 600)], [(150, 250), (700, 800)], n_samples=1000, fs_hz=1.0,
                          covered=[(0, 500)], record="r1")


def test_worked_example():
    s = worked_example()
    assert (s.ref_episodes, s.ref_detected, s.missed) == (2, 1, 1)
    assert (s.test_episodes, s.test_true, s.false_alarms) == (2, 1, 1)
    assert s.episode_se == 0.5 and s.episode_ppv == 0.5
    assert (s.ref_s, s.test_s, s.overlap_s) == (200.0, 200.0, 50.0)
    assert s.duration_se == 0.25 and s.duration_ppv == 0.25
    assert s.delays_s == [50.0]
    assert s.false_alarms_per_hour == pytest.approx(3.6)
    assert s.coverage == 0.5


def test_flutter_is_excluded_from_both_sides():
    # Reference AF 100-200, flutter 300-400. The monitor says AF 150-350 (half of it in flutter) and
    # 310-390 (all of it in flutter: dropped, not a false alarm). Scored time 900 s; the first test
    # episode keeps 150-300 (150 s), 50 s of which overlap the reference.
    s = score_episodes([(100, 200)], [(150, 350), (310, 390)], n_samples=1000, fs_hz=1.0, excluded=[(300, 400)])
    assert s.scored_s == 900.0
    assert (s.test_episodes, s.test_true, s.false_alarms) == (1, 1, 0)
    assert s.test_s == 150.0 and s.overlap_s == 50.0
    assert s.duration_se == 0.5 and s.duration_ppv == pytest.approx(1 / 3)
    assert s.delays_s == [50.0]


def test_af_already_reported_at_onset_has_no_delay_and_touching_alarms_are_one():
    s = score_episodes([(100, 200)], [(0, 120), (120, 500)], n_samples=600, fs_hz=1.0)
    assert s.test_episodes == 1 and s.delays_s == [0.0]
    assert s.duration_se == 1.0 and s.duration_ppv == pytest.approx(100 / 500)


def test_any_overlap_counts_and_sampling_rate_scales_seconds():
    # One sample of overlap detects the episode (epicmp's rule); 250 Hz turns samples into seconds.
    s = score_episodes([(1000, 2000)], [(1999, 3000)], n_samples=250 * 60, fs_hz=250.0)
    assert s.ref_detected == 1 and s.test_true == 1
    assert s.overlap_s == pytest.approx(1 / 250)
    assert s.delays_s == [pytest.approx(999 / 250)]


def test_gross_and_average_differ_as_worked_out():
    r1 = worked_example()
    # r2: an hour without AF, one false alarm of 10 s: no Se, +P 0, 1 false alarm per hour.
    r2 = score_episodes([], [(10, 20)], n_samples=3600, fs_hz=1.0, record="r2")
    assert r2.episode_se is None and r2.episode_ppv == 0.0 and r2.false_alarms_per_hour == 1.0
    out = summarise([r1, r2])
    g, a = out["gross"], out["average"]
    assert g["episode_se"] == 0.5 and a["episode_se"] == 0.5          # only r1 has reference AF
    assert g["episode_ppv"] == pytest.approx(1 / 3, abs=1e-4)         # 1 true of 3 alarms
    assert a["episode_ppv"] == 0.25                                   # mean of 0.5 and 0
    assert g["duration_ppv"] == pytest.approx(50 / 210, abs=1e-4)     # 50 s of 210 s of test AF
    assert g["false_alarms_per_hour"] == pytest.approx(2 / (4600 / 3600), abs=1e-4)
    assert a["false_alarms_per_hour"] == pytest.approx((3.6 + 1.0) / 2)
    assert out["alarm_delay"] == {"detected": 1, "missed": 1, "median_s": 50.0, "p90_s": 50.0, "max_s": 50.0}
    table = markdown_table([r1, r2], out)
    assert "| r1 | 0.28 | 2 | 50.0 | 50.0 | 25.0 | 25.0 | 50.0 | 3.60 | 50.0 |" in table
    assert "**gross**" in table and "**average**" in table
