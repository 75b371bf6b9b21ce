"""Issue 25, policy 2: caches keyed by content. The window cache's key holds the sha256 of every file a
record reads, so an edit that keeps size and modification time (``cp -p``, ``rsync -t``, ``touch -r``)
is seen.

Before: the key was path, size and mtime; ``evaluate`` reported the old prediction (AF) for a file that
now held a normal record. Each case edits real generated WFDB records, then puts the old mtime back.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from ecgedge.config import DataConfig, LabelScheme, PreprocessConfig, WindowConfig
from ecgedge.data.synthetic_records import write_wfdb_dataset
from ecgedge.data.windows import build_windows


@pytest.fixture()
def small_set(tmp_path):
    heas = write_wfdb_dataset(tmp_path / "data", records_per_rhythm=2, rhythms=("SR", "AFIB"), seed=3)
    data = DataConfig(paths=(str(tmp_path / "data"),), cache_dir=str(tmp_path / "cache"), workers=1)
    return heas, data


def _windows(data, scheme=None):
    return build_windows(data, ("II",), PreprocessConfig(), WindowConfig(), scheme, progress=False)


def _fresh(data, tmp_path, scheme=None):
    return _windows(DataConfig(paths=data.paths, cache_dir=str(tmp_path / "fresh"), workers=1), scheme)


def _keep_stat(path, edit):
    """Run ``edit`` on ``path``, then restore its size-preserving stat (atime, mtime), as ``touch -r`` does."""
    st = path.stat()
    edit()
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _same(a, b):
    return a.record_ids == b.record_ids and np.array_equal(np.asarray(a.windows), np.asarray(b.windows)) \
        and np.array_equal(a.labels, b.labels)


def test_cp_p_of_another_record_over_a_data_file(small_set, tmp_path):
    """The issue's case: record A's data replaced by record B's (same size), mtime kept (``cp -p``)."""
    heas, data = small_set
    first = _windows(data)
    a, b = heas[0].with_suffix(".mat"), heas[-1].with_suffix(".mat")
    _keep_stat(a, lambda: shutil.copyfile(b, a))
    second = _windows(data)
    assert second.key != first.key and _same(second, _fresh(data, tmp_path))


def test_one_flipped_sample_with_mtime_kept(small_set, tmp_path):
    heas, data = small_set
    first = _windows(data)
    mat = heas[1].with_suffix(".mat")

    def flip():
        raw = bytearray(mat.read_bytes())
        raw[-2] ^= 0x40
        mat.write_bytes(bytes(raw))

    _keep_stat(mat, flip)
    second = _windows(data)
    assert second.key != first.key and _same(second, _fresh(data, tmp_path))


def test_header_label_edit_with_mtime_kept(small_set, tmp_path):
    """A relabelled header (same length: one SNOMED code for another) changes the labels served."""
    heas, data = small_set
    first = _windows(data, LabelScheme.chapman4)
    hea = heas[-1]
    text = hea.read_text()
    sr, afib = "426783006", "164889003"  # SNOMED: sinus rhythm, atrial fibrillation (same length)
    assert afib in text
    _keep_stat(hea, lambda: hea.write_text(text.replace(afib, sr)))
    second = _windows(data, LabelScheme.chapman4)
    assert second.key != first.key and _same(second, _fresh(data, tmp_path, LabelScheme.chapman4))


def test_unchanged_bytes_still_hit_after_touch(small_set):
    """The other direction: a new mtime with the same bytes (a fresh copy, ``touch``) is still a hit."""
    heas, data = small_set
    first = _windows(data)
    for h in heas:
        os.utime(h.with_suffix(".mat"))
    assert _windows(data).key == first.key


def test_record_swapped_for_one_of_equal_size_in_a_copied_tree(small_set, tmp_path):
    """``rsync -t`` of an edited tree over the old one: files swapped pairwise, times carried over."""
    heas, data = small_set
    first = _windows(data)
    a, b = heas[0].with_suffix(".mat"), heas[1].with_suffix(".mat")
    ra, rb = a.read_bytes(), b.read_bytes()
    if ra == rb:
        pytest.skip("the two generated records are identical")
    _keep_stat(a, lambda: a.write_bytes(rb))
    _keep_stat(b, lambda: b.write_bytes(ra))
    second = _windows(data)
    assert second.key != first.key and _same(second, _fresh(data, tmp_path))
