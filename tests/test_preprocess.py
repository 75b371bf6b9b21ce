"""The shared preprocessing chain: resampling, causal band-pass, chunked == offline, normalisation."""

import numpy as np
import pytest
from scipy import signal as sps

from ecgedge.config import PreprocessConfig
from ecgedge.data.preprocess import (
    StreamingPreprocessor, StreamingResampler, bandpass_sos, normalise_windows, preprocess_signal, resampling_ratio, window_starts)
from ecgedge.errors import ConfigError, ShapeMismatch

CFG = PreprocessConfig()


@pytest.mark.parametrize("fs, expect", [(500, (1, 2)), (360, (25, 36)), (300, (5, 6)), (1000, (1, 4)), (250, (1, 1))])
def test_resampling_ratio(fs, expect):
    assert resampling_ratio(fs, 250) == expect


@pytest.mark.parametrize("fs", [500.0, 360.0, 300.0, 1000.0, 257.0])
def test_resampled_length_and_duration(fs):
    n = int(fs * 10)
    out = preprocess_signal(np.zeros((2, n)), fs, CFG)
    up, down = resampling_ratio(fs, 250)
    assert out.shape == (2, (n - 1) * up // down + 1)
    assert abs(out.shape[1] / 250 - 10) < 0.01  # 10 s in, 10 s out (to one sample)


@pytest.mark.parametrize("fs", [500.0, 360.0, 300.0, 250.0])
def test_chunked_streaming_equals_offline(fs):
    """The stream sees exactly the training signal, however the samples arrive (tolerance 1e-9 mV)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, int(fs * 12))) + np.linspace(0, 2, int(fs * 12))  # noise + baseline drift
    offline = preprocess_signal(x, fs, CFG)
    sp = StreamingPreprocessor(CFG, fs, 3)
    parts, i = [], 0
    while i < x.shape[1]:
        k = int(rng.integers(1, 400))
        parts.append(sp.push(x[:, i:i + k]))
        i += k
    streamed = np.concatenate(parts, axis=1)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-9)


@pytest.mark.parametrize("fs", [500.0, 360.0, 1000.0, 257.0, 128.0])
def test_resampler_picks_the_full_rate_convolution_bit_for_bit(fs):
    """Output n is sample ``n * down`` of the full-rate convolution of the input held at its first value
    before it starts, exactly (not to a tolerance), whichever chunking: the resampler computes only the
    outputs it keeps (upfirdn with ``down``) and must equal computing all and picking."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, int(fs * 6)))
    rs = StreamingResampler(fs, 250.0, 2)
    parts, i = [], 0
    while i < x.shape[1]:
        k = int(rng.integers(1, 700))
        parts.append(rs.push(x[:, i:i + k]))
        i += k
    streamed = np.concatenate(parts, axis=1)
    pad = len(rs.h)  # input samples held at the first value: more than the filter reaches back
    full = sps.upfirdn(rs.h, np.concatenate([np.repeat(x[:, :1], pad, axis=1), x], axis=1), rs.up, 1, axis=-1)
    expected = full[:, pad * rs.up + np.arange(streamed.shape[1]) * rs.down]
    assert np.array_equal(streamed, expected)


def test_bandpass_response():
    """Pass band (1-30 Hz) within 3 dB; baseline wander (0.05 Hz) and mains (50 Hz, 60 Hz) attenuated (order-2 design)."""
    sos = bandpass_sos(CFG)
    f = np.array([0.05, 1.0, 10.0, 30.0, 50.0, 60.0])
    _, h = sps.sosfreqz(sos, worN=f, fs=CFG.fs_hz)
    gain_db = 20 * np.log10(np.abs(h))
    assert np.all(np.abs(gain_db[1:4]) < 3.0), gain_db
    assert gain_db[0] < -30 and gain_db[4] < -6 and gain_db[5] < -9, gain_db


def test_filter_is_causal():
    """An impulse at sample 1000 leaves every earlier output sample untouched."""
    x = np.zeros((1, 2500))
    x[0, 1000] = 1.0
    y = preprocess_signal(x, 250, CFG)
    assert np.all(y[0, :1000] == 0.0)
    assert np.abs(y[0, 1000:]).max() > 0


def test_resampler_removes_alias():
    """A 200 Hz tone at 500 Hz is above the 125 Hz Nyquist of 250 Hz and must not fold back."""
    t = np.arange(5000) / 500
    r = StreamingResampler(500, 250, 1)
    y = r.push(np.sin(2 * np.pi * 200 * t)[None])
    assert np.abs(y[0, 200:]).max() < 0.01
    assert 0.03 < r.delay_s < 0.05  # 40 ms group delay for 500 -> 250 Hz


def test_dc_offset_does_not_ring():
    """A 1 mV DC offset (electrode polarisation) gives no start-up transient."""
    y = preprocess_signal(np.full((1, 5000), 1.0), 500, CFG)
    assert np.abs(y[0, 100:]).max() < 1e-3


def test_normalise_windows_and_flat_floor():
    rng = np.random.default_rng(0)
    w = rng.normal(2.0, 0.5, size=(4, 12, 2048)).astype(np.float32)
    w[1, 3] = 0.7  # flat lead
    z, std = normalise_windows(w, CFG)
    assert z.dtype == np.float32 and std.shape == (4, 12, 1)
    np.testing.assert_allclose(z[0].mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(z[0].std(-1), 1, atol=1e-3)
    assert np.abs(z[1, 3]).max() < 1e-4 and std[1, 3, 0] == pytest.approx(CFG.std_floor_mv)


def test_window_starts_align_to_end_and_skip_settling():
    assert window_starts(2500, 2048, 2048, 250) == [452]
    assert window_starts(2297, 2048, 1024, 250) == []  # shorter than settle + window: no silent padding
    s = window_starts(10000, 2048, 1024, 250)
    assert s[-1] == 10000 - 2048 and all(b - a == 1024 for a, b in zip(s, s[1:])) and s[0] >= 250
    assert window_starts(10000, 2048, 1024, 250, max_windows=2) == s[-2:]


def test_bad_inputs():
    with pytest.raises(ConfigError):
        PreprocessConfig(bandpass_high_hz=200)
    with pytest.raises(ShapeMismatch):
        StreamingPreprocessor(CFG, 500, 12).push(np.zeros((11, 100)))
