"""INT8 quantization on tiny graphs built in code, compared with FP32 through the one comparator.

Each graph is one shape of layer the ECG models are made of (a Conv1d + ReLU; Gemm/MatMul; two
convolution branches concatenated and pooled), a few hundred weights, windows of (2 leads, 64
samples). Each is quantized with the project's quantizer (:func:`int8_onnx_from_onnx`, static QDQ,
per-channel int8 weights, for each target's activation type) and compared with its FP32 self on
held-out windows through :func:`ecgedge.evaluate.compare.compare`, so a quantizer regression (a
wrong calibration, a layer left unquantized, broken per-channel scales) fails here in seconds.

Tolerances: windows are uniform in [-1, 1] (bounded, as z-scored ECG nearly is, so 256
calibration windows cover the range the 128 held-out ones reach) and weights He-scaled, so FP32
logits are of order 1 (checked). 8-bit activations and weights then err by about 1 % of each
tensor's range. Measured on x86-64 with AVX-512 (ONNX Runtime 1.32, one thread): max |logit error|
0.014 to 0.045 over graphs and presets; the bound, :data:`ATOL`, is 0.15, a margin of 3 for other
CPUs' kernels. A miscalibrated quantizer errs by more than 2 (the last test). Decision agreement is
not asserted: tiny random graphs have near-ties that a 1e-2 change may flip.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ecgedge.config import Target
from ecgedge.evaluate.compare import compare
from ecgedge.export.quantize import int8_onnx_from_onnx
from ecgedge.export.targets import PRESETS
from ecgedge.runtime import InputSpec, Precision, runner_from_onnx

LEADS, SAMPLES, CLASSES = 2, 64, 4
ATOL = 0.15  # largest |logit| difference INT8 vs FP32 on these graphs (see the module docstring)
SPEC = InputSpec("ecg", tuple(f"L{i}" for i in range(LEADS)), 250.0, SAMPLES)


def _weights(rng, *shape):
    """He-scaled weights: each layer keeps its activations of order 1."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _save(nodes, inits, out_shape, path, name):
    x = helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", LEADS, SAMPLES])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", *out_shape])
    graph = helper.make_graph(nodes, name, [x], [y], [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def conv_relu(path, rng):
    """Conv1d (2 -> 8 channels, 5 taps, same padding) + ReLU, flattened: every output is a logit."""
    inits = {"w": _weights(rng, 8, LEADS, 5), "b": (0.1 * rng.standard_normal(8)).astype(np.float32),
             "shape": np.array([0, -1], np.int64)}
    nodes = [helper.make_node("Conv", ["ecg", "w", "b"], ["c"], kernel_shape=[5], pads=[2, 2], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "shape"], ["logits"], name="flatten")]
    return _save(nodes, inits, [8 * SAMPLES], path, "conv_relu")


def gemm_matmul(path, rng):
    """Flatten -> Gemm (128 -> 32) -> ReLU -> MatMul (32 -> 4) + Add: the classifier head's shapes."""
    inits = {"w1": _weights(rng, 32, LEADS * SAMPLES), "b1": (0.1 * rng.standard_normal(32)).astype(np.float32),
             "w2": _weights(rng, CLASSES, 32).T.copy(), "b2": (0.1 * rng.standard_normal(CLASSES)).astype(np.float32)}
    nodes = [helper.make_node("Flatten", ["ecg"], ["f"], axis=1, name="flatten"),
             helper.make_node("Gemm", ["f", "w1", "b1"], ["h"], transB=1, name="gemm"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["m"], name="matmul"),
             helper.make_node("Add", ["m", "b2"], ["logits"], name="bias")]
    return _save(nodes, inits, [CLASSES], path, "gemm_matmul")


def concat_pool(path, rng):
    """Two Conv1d branches (3 and 7 taps) concatenated on channels, max-pooled by 2, global
    average-pooled and a Gemm to 4 classes: the fusion head's shapes."""
    inits = {"wa": _weights(rng, 6, LEADS, 3), "ba": np.zeros(6, np.float32),
             "wb": _weights(rng, 6, LEADS, 7), "bb": np.zeros(6, np.float32),
             "wc": _weights(rng, CLASSES, 12), "bc": (0.1 * rng.standard_normal(CLASSES)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["ecg", "wa", "ba"], ["a"], kernel_shape=[3], pads=[1, 1], name="conv_a"),
             helper.make_node("Conv", ["ecg", "wb", "bb"], ["b"], kernel_shape=[7], pads=[3, 3], name="conv_b"),
             helper.make_node("Concat", ["a", "b"], ["ab"], axis=1, name="concat"),
             helper.make_node("Relu", ["ab"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2], strides=[2], name="maxpool"),
             helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flatten"),
             helper.make_node("Gemm", ["f", "wc", "bc"], ["logits"], transB=1, name="gemm")]
    return _save(nodes, inits, [CLASSES], path, "concat_pool")


GRAPHS = {"conv_relu": conv_relu, "gemm_matmul": gemm_matmul, "concat_pool": concat_pool}
# U8S8 (x86-64) and symmetric S8S8 (TensorRT); arm64's asymmetric S8S8 is x86-64's grid with the zero point shifted.
PRESET_TARGETS = (Target.cpu, Target.tensorrt)


def _windows(n, seed):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (n, LEADS, SAMPLES)).astype(np.float32)


def _int8(fp32, tmp_path, target, calib):
    out = tmp_path / f"{fp32.stem}.{target.value}.int8.onnx"
    # keep_first_conv_fp32=False: the tiny graphs' first Conv is most of what there is to quantize
    settings = int8_onnx_from_onnx(fp32, out, calib, input_name="ecg", preset=PRESETS[target], keep_first_conv_fp32=False)
    return out, settings


def _compare(fp32, int8, x):
    return compare({"fp32": runner_from_onnx(fp32, SPEC, threads=1),
                    "int8": runner_from_onnx(int8, SPEC, Precision.int8, threads=1)}, x, ATOL)


@pytest.mark.parametrize("target", PRESET_TARGETS, ids=lambda t: t.value)
@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_int8_stays_within_tolerance_of_fp32(graph, target, tmp_path):
    fp32 = GRAPHS[graph](tmp_path / f"{graph}.onnx", np.random.default_rng(7))
    int8, settings = _int8(fp32, tmp_path, target, _windows(256, seed=1))
    model = onnx.load(str(int8))
    ops = [n.op_type for n in model.graph.node]
    # Every weighted layer quantized: one QDQ pair per quantized tensor, nothing left in FP32.
    assert ops.count("QuantizeLinear") >= 1 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear"), ops
    assert settings["fp32_nodes"] == [] and settings["per_channel"] and settings["format"] == "QDQ"
    weights = [i for i in model.graph.initializer if i.data_type == TensorProto.INT8]
    n_weighted = sum(op in ("Conv", "Gemm", "MatMul") for op in ops)
    assert len(weights) >= n_weighted >= 1, f"{len(weights)} int8 initializers for {n_weighted} weighted layers"

    res = _compare(fp32, int8, _windows(128, seed=2))  # held out: not the calibration windows
    fp32_logits = res.outputs["fp32"]
    assert 0.3 < np.abs(fp32_logits).max() < 30, "the graph's logits should be of order 1 for ATOL to mean anything"
    assert res, res["int8"].describe()


def test_a_miscalibrated_quantizer_fails_the_comparison(tmp_path):
    """The comparison has teeth: calibrated on windows 100x smaller than those it runs on, the INT8
    activations saturate and the logits leave the tolerance."""
    fp32 = conv_relu(tmp_path / "conv_relu.onnx", np.random.default_rng(7))
    int8, _ = _int8(fp32, tmp_path, Target.cpu, _windows(256, seed=1) * 0.01)
    res = _compare(fp32, int8, _windows(128, seed=2))
    assert not res and res["int8"].max_abs_logit_error > ATOL
