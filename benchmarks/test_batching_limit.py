"""Why INT8 batching does not pay on ONNX Runtime CPU for this model: the convolution layers alone.

The classifier runs the 12 leads of a window as 12 single-lead images, so a call of B windows runs
12 x B images through each layer. If ONNX Runtime paid a per-image cost, folding the images of a
call into one long image (each image followed by a gap of zeros, so the kernel never spans two)
would make each layer one bigger GEMM and run faster: that is the graph rewrite "batching that
pays" would need. This suite measures it on the encoder's three INT8 convolutions in isolation
(``QLinearConv``, uint8 activations x int8 weights, stride 2, the model's channel counts, kernels
and lengths), for 12 and 96 images (batch 1 and 8), as separate images and as one long image.

    pytest benchmarks/test_batching_limit.py --benchmark-only -s

``extra_info["us_per_window"]``: microseconds per 12 images (one window). Measured on the 2-core
Xeon (README, *Benchmarks*): the long image is no faster (within 5 %) at any layer or batch, so
per window the cost is set by the layer shapes (8-32 channels x 5-7 taps), not by the call size.
"""

from __future__ import annotations

import numpy as np
import pytest

LEADS = 12
# (input channels, output channels, kernel, input length): encoder layers 2-4 of the shipped architecture.
LAYERS = [(8, 16, 7, 1024), (16, 32, 5, 512), (32, 32, 5, 256)]


def _session(cin: int, cout: int, k: int):
    pytest.importorskip("onnx", reason="building the one-layer graph needs the onnx package")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).integers(-127, 128, (cout, cin, k)).astype(np.int8)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "xs"), numpy_helper.from_array(np.array(128, np.uint8), "xz"),
             numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.full(cout, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(cout, np.int8), "wz"), numpy_helper.from_array(np.array(0.05, np.float32), "ys"),
             numpy_helper.from_array(np.array(128, np.uint8), "yz"), numpy_helper.from_array(np.zeros(cout, np.int32), "b")]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                            kernel_shape=[k], strides=[2], pads=[0, 0])
    graph = helper.make_graph([node], "layer", [helper.make_tensor_value_info("x", TensorProto.UINT8, ["n", cin, "l"])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("layout", ["images", "one long image"])
@pytest.mark.parametrize("windows", [1, 8])
@pytest.mark.parametrize("layer", LAYERS, ids=lambda s: f"{s[0]}to{s[1]}k{s[2]}")
def test_qlinearconv_per_window(benchmark, layer, windows, layout, info, capsys):
    cin, cout, k, length = layer
    session = _session(cin, cout, k)
    images, gap = LEADS * windows, 2 * (k // 2)  # an even gap keeps every image's outputs on the stride grid
    x = np.random.default_rng(1).integers(0, 256, (images, cin, length + gap)).astype(np.uint8)
    if layout == "one long image":
        x = np.ascontiguousarray(x.transpose(1, 0, 2).reshape(1, cin, images * (length + gap)))
    for _ in range(10):
        session.run(None, {"x": x})
    benchmark.group = f"QLinearConv {cin}->{cout} k{k}, per window"
    y = benchmark(session.run, None, {"x": x})[0]
    per_window = benchmark.stats.stats.median / windows * 1e6
    benchmark.extra_info.update(info, layer=f"{cin}->{cout} k{k} L{length}", windows=windows, layout=layout,
                                us_per_window=per_window)
    # Every output position of every image is computed either way (the long image's extra ones span gaps).
    assert y.shape[1] == cout and y.size >= images * cout * ((length + gap - k) // 2 + 1)
    with capsys.disabled():
        print(f"\nQLinearConv {cin}->{cout} k{k} L{length}, {windows} window(s) as {layout}: {per_window:.1f} us per window")
