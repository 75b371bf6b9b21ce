"""Helpers that several test modules share: tiny models built in code, wire-protocol byte streams,
record filters, and the end-to-end check of a stream run.

A plain module, not a test module: test modules import from here and never from each other
(``tests/test_imports.py`` checks it); fixtures that several modules use live in ``conftest.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ecgedge.bridge.cobs import encode_frame
from ecgedge.bridge.frame import Frame
from ecgedge.config import STANDARD_12_LEADS, PreprocessConfig
from ecgedge.data.preprocess import normalise_windows, preprocess_params, preprocess_signal
from ecgedge.runtime.softmax import softmax
from ecgedge.manifest import FORMAT, Manifest
from ecgedge.stream.session import StreamSession

REPO = Path(__file__).resolve().parents[1]


# ---- the runtime tests' tiny ONNX graph ---------------------------------------------------------

LEADS, SAMPLES, CLASSES = ("I", "II"), 64, 3
W = np.arange(6, dtype=np.float32).reshape(2, 3) / 10


def tiny_onnx(path, *, samples=SAMPLES, opset=18, input_name="ecg"):
    """logits = mean over time of each lead, times W: (batch, 2, samples) -> (batch, 3)."""
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", len(LEADS), samples])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])
    axes = numpy_helper.from_array(np.array([2], dtype=np.int64), "axes")
    nodes = [helper.make_node("ReduceMean", [input_name, "axes"], ["m"], keepdims=0),
             helper.make_node("MatMul", ["m", "W"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [x], [y], [numpy_helper.from_array(W, "W"), axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# ---- the stream tests' linear model: every sample of the window moves its output -----------------

LABELS = ("SB", "AFIB", "GSVT", "SR")
WINDOW = 2048  # model-rate samples per window (8.192 s at 250 Hz)
CFG = PreprocessConfig()


def linear_export(folder: Path, *, leads=STANDARD_12_LEADS, samples: int = WINDOW, labels=LABELS, seed: int = 0) -> Path:
    """An export folder (FP32 only) of ``logits = flatten(x) @ W``, W ~ N(0, 9 / (leads * samples))."""
    folder.mkdir(parents=True, exist_ok=True)
    n_in, n_out = len(leads) * samples, len(labels)
    w = (np.random.default_rng(seed).standard_normal((n_in, n_out)) * 3 / np.sqrt(n_in)).astype(np.float32)
    x = helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", len(leads), samples])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out])
    shape = numpy_helper.from_array(np.array([-1, n_in], np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["ecg", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["logits"])]
    graph = helper.make_graph(nodes, "linear", [x], [y], [numpy_helper.from_array(w, "W"), shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.fp32.onnx"))
    Manifest(folder, {
        "format": FORMAT, "name": "linear",
        "input": {"name": "ecg", "shape": ["batch", len(leads), samples], "leads": list(leads), "fs_hz": 250.0,
                  "window_samples": samples},
        "output": {"name": "logits", "labels": list(labels)},
        "preprocess": preprocess_params(PreprocessConfig()),
        "artefacts": {"fp32": {"file": "model.fp32.onnx", "precision": "fp32", "runtime": "onnx", "status": "reference"}},
    }).save()
    return folder


def offline_probs(runner, x: np.ndarray, fs: float, ends_in: list[int], cfg=CFG) -> np.ndarray:
    """Probabilities of the offline windows ending at source samples ``ends_in`` of ``x`` (index 0 = x's start)."""
    from ecgedge.runtime.softmax import softmax

    pre = preprocess_signal(x, fs, cfg)
    ends = [round(e * cfg.fs_hz / fs) for e in ends_in]
    w, _ = normalise_windows(np.stack([pre[:, e - WINDOW:e] for e in ends]), cfg)
    return softmax(runner.infer(w).astype(np.float64))


class CountingRunner:
    """Wraps a runner and records the batch size of every call."""

    def __init__(self, runner):
        self.runner, self.batches = runner, []

    def infer(self, x):
        self.batches.append(len(x))
        return self.runner.infer(x)


# ---- records ---------------------------------------------------------------------------------------


def windows(records, quality=None) -> list[dict]:
    return [r for r in records if r["type"] == "window" and (quality is None or r["quality"] == quality)]


def of(records, kind: str, stream=None) -> list[dict]:
    return [r for r in records if r["type"] == kind and (stream is None or r.get("stream") == stream)]


def records_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---- the wire and the simulated device ------------------------------------------------------------

REPLAY_N = 1001  # samples of a replayed test record: odd, so a format-212 file ends in half a byte triple
MV_RTOL = 2.0**-23  # what the device's mV may differ from wfdb's by: gain_uv travels as float32

FS, SPF = 500, 20  # Chapman: 500 Hz; ecgsim sends 40 ms (20 samples) per frame


def python_frames(signal_mv: np.ndarray, fs: float, leads, *, stream_id: int = 0, spf: int = SPF, first: int = 0,
                  seq: int = 0, lead_off: dict[int, int] | None = None) -> list[bytes]:
    """Encoded frames (1 µV per unit) of ``signal_mv``, one per ``spf`` samples; ``lead_off``: frame -> mask."""
    adu = np.round(signal_mv * 1000).astype(np.int64)
    out = []
    for k, a in enumerate(range(0, adu.shape[1], spf)):
        out.append(encode_frame(Frame(stream_id=stream_id, seq=(seq + k) % 65536, first_sample=first + a, fs_hz=fs,
                                      lead_ids=tuple(leads), samples=adu[:, a:a + spf], gain_uv=1.0,
                                      lead_off=(lead_off or {}).get(k, 0))))
    return out


def ecgsim_announces(proc: subprocess.Popen, prefix: str) -> str:
    """The value ecgsim prints on stderr after ``prefix`` (``PTY /dev/pts/N``, ``LISTEN HOST:PORT``)."""
    while True:
        line = proc.stderr.readline().decode()
        if not line:
            raise AssertionError(f"ecgsim exited before printing {prefix!r}")
        if line.startswith(prefix):
            return line.split()[1]


def looped(source_adu: np.ndarray, n: int, lead_off=()) -> np.ndarray:
    """What ecgsim --loop sends for ``n`` samples, in ADC units; ``lead_off`` = [(lead, t0_s, t1_s)] at the baseline."""
    x = source_adu[:, np.arange(n) % source_adu.shape[1]].copy()
    t = np.arange(n) / FS
    for lead, t0, t1 in lead_off:
        x[lead, (t >= t0) & (t < t1)] = 0
    return x


def mv(adu: np.ndarray) -> np.ndarray:
    """mV as a receiver computes them (Frame.samples_mv) at 1 µV per unit, baseline 0."""
    return adu * (1.0 / 1000.0)


# ---- stream runs -------------------------------------------------------------------------------------


def feed(session: StreamSession, data: bytes, chunks=(4096,)) -> list[dict]:
    out, a, i = [], 0, 0
    while a < len(data):
        n = chunks[i % len(chunks)]
        out += session.feed(data[a:a + n])
        a, i = a + n, i + 1
    return out + [session.summary()]


def cli(export: Path, *args, input: bytes | None = None, timeout: float = 90, prelude: str = "") -> tuple[list[dict], str]:
    """Run ``ecgedge stream`` in a fresh interpreter (``prelude`` runs first); returns (records, stderr)."""
    code = textwrap.dedent(prelude) + textwrap.dedent(f"""
        import sys
        sys.argv = ["ecgedge stream", *{[str(export), *map(str, args)]!r}]
        from ecgedge.cli.stream import main
        try:
            main()
        finally:
            print("TORCH_LOADED" if "torch" in sys.modules else "NO_TORCH", file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", code], input=input, capture_output=True, timeout=timeout, cwd=REPO)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    return records_of(done.stdout.decode()), stderr


def check_run(records: list[dict], signal_mv: np.ndarray, runner, *, stream=0, fs: float = FS, hysteresis: int = 3) -> list[dict]:
    """Check one stream's records (the summary last); returns its windows.

    - every sample index is accounted for once: in a window's ``new`` span (classified or unreliable),
      in a reported gap, or pending at the end (less than a hop);
    - every classified window equals the offline classification of the same window: ``runner.infer``
      on ``normalise_windows(preprocess_signal(signal since the segment started)[:, e - 2048:e])``,
      probabilities to 1e-5 (records carry 6 decimals);
    - the rhythm-change events are what hysteresis makes of those offline labels.
    """
    summary = records[-1]
    assert summary["type"] == "summary"
    counts = next(s for s in summary["streams"] if s["stream"] == stream)
    start = of(records, "stream_start", stream)[0]["sample"]
    wins, gaps = of(records, "window", stream), of(records, "gap", stream)
    spans = sorted([tuple(w["new"]) for w in wins] + [tuple(g["samples"]) for g in gaps])
    assert spans[0][0] == start and all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "a sample in two spans or none"
    assert spans[-1][1] + counts["pending"] == counts["next_sample"] and 0 <= counts["pending"] < fs
    assert counts["received"] + counts["lost"] == counts["next_sample"] - start
    assert counts["classified"] + counts["unreliable"] + counts["pending"] == counts["received"]
    assert counts["lost"] == sum(g["samples"][1] - g["samples"][0] for g in gaps)

    segments = sorted({start} | {g["samples"][1] for g in gaps})
    ok = [w for w in wins if w["quality"] == "ok"]
    pre: dict[int, np.ndarray] = {}
    batch = []
    for w in ok:
        seg = max(s for s in segments if s <= w["samples"][0])
        if seg not in pre:
            pre[seg] = preprocess_signal(signal_mv[:, seg:counts["next_sample"]], fs, CFG)
        e = round((w["samples"][1] - seg) * CFG.fs_hz / fs)
        batch.append(pre[seg][:, e - WINDOW:e])
    if ok:
        expected = softmax(runner.infer(normalise_windows(np.stack(batch), CFG)[0]).astype(np.float64))
        names = list(ok[0]["probs"])
        np.testing.assert_allclose([[w["probs"][k] for k in names] for w in ok], expected, atol=1e-5)
        offline = dict(zip((w["samples"][1] for w in ok), (names[i] for i in expected.argmax(1))))
        assert [w["label"] for w in ok] == [offline[w["samples"][1]] for w in ok]
    else:
        offline = {}

    current, candidate, count, events = None, None, 0, []
    for w in wins:
        label = offline.get(w["samples"][1]) if w["quality"] == "ok" else None
        if label is None:
            candidate, count = None, 0
            continue
        count, candidate = (count + 1 if label == candidate else 1), label
        if label != current and count >= hysteresis:
            events.append((w["t"], current, label))
            current = label
    assert [(e["t"], e["from"], e["to"]) for e in of(records, "rhythm_change", stream)] == events
    return wins


def stream_from_device(record: Path, *sim_args: str) -> tuple[list, list, list]:
    """``record`` through ``ecgedge stream``'s wire path: the ``wfdb:`` source (wfdb reads the record,
    ecgsim plays its ADC integers as fast as it can), :class:`FrameDecoder`, :class:`SequenceTracker`.

    Returns:
        (delivered frames, tracker events, decode errors), in stream order.
    """
    from ecgedge.bridge.decoder import FrameDecoder
    from ecgedge.bridge.frame import DecodeError
    from ecgedge.bridge.sequence import SequenceTracker
    from ecgedge.bridge.sources import LinkEvent, source_from_spec

    source = source_from_spec(f"wfdb:{record}@0", sim_args=list(sim_args))
    decoder, tracker = FrameDecoder(), SequenceTracker()
    frames: list = []
    events: list = []
    errors: list = []
    source.open()
    try:
        for chunk in source.chunks(idle_s=0.5):
            if isinstance(chunk, LinkEvent):
                continue
            for event in decoder.feed(chunk):
                if isinstance(event, DecodeError):
                    errors.append(event)
                    continue
                result = tracker.push(event)
                events += result.events
                if result.frame is not None:
                    frames.append(result.frame)
    finally:
        source.close()
    return frames, events, errors


def mv_by_sample(frames: list, n: int) -> np.ndarray:
    """``(n_leads, n)`` mV of delivered frames placed at their sample indices (``Frame.samples_mv``: each
    lead with its own gain and baseline); NaN where no frame delivered the sample."""
    out = np.full((frames[0].n_leads, n), np.nan)
    for f in frames:
        out[:, f.first_sample:f.end_sample] = f.samples_mv()
    return out
