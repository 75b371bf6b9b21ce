"""Issue 25, policy 4 on the wire: a device announcing a rate no ECG has is refused once per
condition (one ``stream_error`` event, StreamRefused), never a flood.

Before: frames announcing 0.3 Hz (or 0.001 Hz) were never refused: 16 KB of frames produced 10,001
output lines, and at 0.001 Hz the output grew to 680 MB in 2 minutes. Real encoded frames, a real
ONNX Runtime model built in code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgedge.bridge.cobs import encode_frame
from ecgedge.bridge.frame import Frame
from ecgedge.manifest import load_manifest
from ecgedge.runtime import runner_from_export
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.monitor import ModelSpec, StreamSettings
from ecgedge.stream.session import StreamSession
from tests.helpers import feed, linear_export


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return linear_export(tmp_path_factory.mktemp("wire") / "linear", leads=("II",))


@pytest.fixture(scope="module")
def runner(export):
    with runner_from_export(export, "fp32", threads=1) as r:
        yield r


def _frames(fs: float, n_frames: int, *, stream_id: int = 0, spf: int = 20, first_seq: int = 0) -> bytes:
    rng = np.random.default_rng(0)
    out = []
    for k in range(n_frames):
        adu = rng.integers(-500, 500, (1, spf))
        out.append(encode_frame(Frame(stream_id=stream_id, seq=(first_seq + k) % 65536, first_sample=k * spf, fs_hz=fs,
                                      lead_ids=("II",), samples=adu, gain_uv=1.0)))
    return b"".join(out)


def _run(runner, export, data: bytes) -> list[dict]:
    session = StreamSession(StreamHub(runner, ModelSpec.from_manifest(load_manifest(export)), StreamSettings()))
    return feed(session, data)


@pytest.mark.parametrize("fs", [0.3, 0.001, 24.9, 25_000.0, 4_000_000.0])  # the wire itself holds 0.001 Hz to 4.29 MHz
def test_absurd_announced_rate_is_refused_once(runner, export, fs):
    data = _frames(fs, 400)  # ~16 KB of frames
    records = _run(runner, export, data)
    refused = [r for r in records if r["type"] == "stream_error"]
    assert len(refused) == 1 and "announced sampling rate" in refused[0]["detail"], records[:5]
    assert len(records) <= 4, [r["type"] for r in records]  # start, refused, summary: no flood


def test_possible_rates_are_not_refused(runner, export):
    for fs in (50.0, 250.0, 500.0, 1000.0):
        records = _run(runner, export, _frames(fs, 50))
        assert not [r for r in records if r["type"] == "stream_error" and "announced" in r["detail"]], fs


def test_refused_once_per_condition_and_again_after_a_change(runner, export):
    """A bed that changes to another absurd rate is refused again (a new condition), once; one that
    recovers to a real rate is classified."""
    data = _frames(0.3, 100) + _frames(0.001, 100, first_seq=100) + _frames(0.001, 100, first_seq=200)
    records = _run(runner, export, data)
    assert len([r for r in records if r["type"] == "stream_error"]) == 2


def test_each_bed_is_refused_on_its_own(runner, export):
    data = b"".join(_frames(0.3, 50, stream_id=s) for s in range(8))
    records = _run(runner, export, data)
    assert sorted(r["stream"] for r in records if r["type"] == "stream_error") == list(range(8))
