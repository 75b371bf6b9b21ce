"""Record-level splits: stratified, seeded, never leaking a record between parts."""

import numpy as np

from ecgedge.data.splits import Split, bootstrap, split_records, subsample


def _labels():
    return np.repeat(np.arange(4), [50, 30, 12, 1])


def test_split_is_disjoint_complete_and_stratified():
    y = _labels()
    s = split_records(y, 0.2, 0.1, seed=3)
    parts = [set(s.train), set(s.val), set(s.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(range(len(y)))
    assert np.sum(y[s.test] == 0) == 10 and np.sum(y[s.test] == 1) == 6
    assert 3 not in y[s.test] and any("1 record" in n for n in s.notes)  # singleton class: training only


def test_split_is_seeded():
    y = _labels()
    a, b, c = split_records(y, seed=1), split_records(y, seed=1), split_records(y, seed=2)
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)


def test_subsample_fraction_keeps_every_class():
    y = _labels()
    s = split_records(y, seed=0)
    sub = subsample(s.train, y, 0.25, seed=0)
    assert set(sub) <= set(s.train)
    assert set(y[sub]) == set(y[s.train])
    assert abs(len(sub) - 0.25 * len(s.train)) <= 4


def test_bootstrap_same_size_with_replacement():
    train = np.arange(100)
    b = bootstrap(train, seed=0)
    assert len(b) == 100 and len(set(b)) < 100 and set(b) <= set(train)


def test_split_round_trips_through_record_ids():
    y = _labels()
    ids = [f"R{i:03d}" for i in range(len(y))]
    s = split_records(y, seed=0)
    back = Split.from_dict(s.to_dict(ids), ids)
    assert np.array_equal(back.test, s.test) and np.array_equal(back.train, s.train)
