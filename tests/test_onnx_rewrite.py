"""The polyphase rewrite of a stride-2 single-channel first convolution is exact, and only applies where it can."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ecgedge.export.onnx_rewrite import polyphase_first_conv

LENGTH = 256


def conv_model(path, k, pads, stride=2, c_in=1, bias=True):
    rng = np.random.default_rng(k)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", c_in, LENGTH])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, "t"])
    inits = [numpy_helper.from_array(rng.standard_normal((4, c_in, k)).astype(np.float32), "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"))
        inputs.append("b")
    node = helper.make_node("Conv", inputs, ["c"], kernel_shape=[k], strides=[stride], pads=list(pads), name="first")
    relu = helper.make_node("Relu", ["c"], ["y"])
    model = helper.make_model(helper.make_graph([node, relu], "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("k, pads", [(7, (3, 3)), (5, (2, 2)), (3, (1, 1)), (9, (4, 4)), (6, (2, 3))])
def test_rewrite_is_exact(tmp_path, k, pads):
    path = conv_model(tmp_path / "m.onnx", k, pads)
    x = np.random.default_rng(0).standard_normal((3, 1, LENGTH)).astype(np.float32)
    before = run(path, x)
    assert polyphase_first_conv(path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs["strides"] == [1] and [n.op_type for n in model.graph.node][:2] == ["Reshape", "Transpose"]
    assert "w" not in {t.name for t in model.graph.initializer}  # the old weight is gone
    after = run(path, x)
    assert after.shape == before.shape
    np.testing.assert_allclose(after, before, atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(stride=1), dict(c_in=2), dict(pads=(0, 0))])
def test_rewrite_leaves_other_convolutions_alone(tmp_path, kwargs):
    pads = kwargs.pop("pads", (3, 3))
    path = conv_model(tmp_path / "m.onnx", 7, pads, **kwargs)
    before = path.read_bytes()
    assert not polyphase_first_conv(path)
    assert path.read_bytes() == before
