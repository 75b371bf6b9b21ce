"""A self-contained C99 library from the gate-accepted INT8 QDQ model, for a microcontroller.

``c_library_from_int8_onnx`` reads the QDQ graph ONNX Runtime runs (``model.int8.onnx``) and
writes, into ``export/NAME/mcu/``:

    ecgedge_model.h / .c    the layer table, the ``const`` weights and quantization parameters,
                            one static arena sized here, and ``ecgedge_model_run``
    ecgedge_kernels.h / .c  1-D convolution (stride, padding, dilation; fused ReLU as the output
                            clamp), mean and max over time, channel concatenation, fully connected

The numbers are ONNX Runtime's, so the library's outputs equal ``model.int8.onnx`` on ONNX Runtime:

- activations are int8 channels-last; ONNX Runtime's uint8 activations (the x86 preset) become
  int8 by subtracting 128 from values and zero points, which changes no product or sum;
- each INT8 convolution / Gemm accumulates in int32 (bias included), then requantizes with a
  fixed-point multiplier and shift (``ecgedge_requantize``): the multiplier is the 24-bit significand
  of the float32 scale ONNX Runtime computes (``x_scale * w_scale / y_scale`` in float32), and the
  int64 product is rounded to 24 significant bits and then to the nearest integer, ties to even,
  which is exactly what ONNX Runtime's float32 requantization (MLAS) does, in integers only;
- max over time and the concatenation requantize through 256-entry tables computed here with
  numpy float32 (DequantizeLinear then QuantizeLinear, ONNX Runtime's two float ops);
- mean over time sums exactly in int32 and requantizes once; ONNX Runtime sums dequantized floats,
  so where the exact mean lies within float32 rounding of a half step the two may differ by one
  step (the only place they may; none of the shipped model's check windows does);
- **the first convolution stays FP32** (as in the QDQ model: it reads the z-scored signal itself,
  and quantizing that to 8 bits is where most of the accuracy goes). On a Cortex-M4F it runs on the
  single-precision FPU (64 weights, 1 % of the multiply-adds), in ONNX Runtime's order (one fused
  multiply-add per tap, bias last), then QuantizeLinear as ONNX Runtime computes it (divide, round
  half to even). So the entry point takes the float window the model takes:
  ``ecgedge_model_run(const float *in, int8_t *out)``, and the quantization it needs (of the first
  convolution's output) is inside it; ``ecgedge_model_dequantize`` turns the int8 logits back into
  the ONNX model's float logits. A NaN or +-Inf input value is read as 0 (the window's mean after
  z-scoring); only a convolution output whose sum is not finite re-reads its inputs that way, so a
  finite window costs nothing more (``tests/test_mcu_nan.py`` runs this under -fsanitize=undefined).

A multi-lead model's shared encoder runs once per lead, each lead's output written into its
channels of the joined tensor (the graph's ``(batch * leads, c, t) -> (batch, leads * c, t)``
reshape). Anything the kernels do not implement is refused with
:class:`~ecgedge.errors.ArtefactError` naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ecgedge.config import require
from ecgedge.errors import ArtefactError
from ecgedge.fsio import staged_folder, swap_folder

MCU_DIR = "mcu"
KERNEL_FILES = ("ecgedge_kernels.h", "ecgedge_kernels.c")
MODEL_FILES = ("ecgedge_model.h", "ecgedge_model.c")


@dataclass
class QTensor:
    """An int8 activation in the arena: ``shape`` is (channels, length) or (channels,)."""

    name: str
    shape: tuple[int, ...]
    scale: float
    zp: int  # int8 zero point (ONNX Runtime's uint8 zero point minus 128 where activations are uint8)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Layer:
    kind: str  # conv_f32 | conv | mean | max | concat | gemm
    inputs: list[str]
    output: str
    params: dict = field(default_factory=dict)
    per_lead: bool = False  # runs once per lead (the shared encoder), reading that lead's samples
    fused_into: str = ""  # per-lead output written into this tensor's channels lead * c_out ... (the reshape that ends the encoder)


@dataclass
class McuPlan:
    """The model as the C library runs it: layers in order over named int8 tensors."""

    input_samples: int  # per lead
    input_channels: int  # of the first convolution: 2 for the polyphase form of a stride-2 convolution
    layers: list[Layer]
    tensors: dict[str, QTensor]
    output: str
    leads: int = 1

    @property
    def out_tensor(self) -> QTensor:
        return self.tensors[self.output]


def _f32(x) -> np.float32:
    return np.float32(np.asarray(x, dtype=np.float32).reshape(()))


def _significand(scale: np.float32) -> tuple[int, int]:
    """float32 ``scale`` as ``m * 2**-shift`` with 2**23 <= m < 2**24 (exact for a normal float32)."""
    mant, exp = np.frexp(np.float64(scale))  # scale = mant * 2**exp, 0.5 <= mant < 1
    m = int(np.ldexp(mant, 24))
    shift = 24 - int(exp)
    if not (1 << 23) <= m < (1 << 24) or not 0 <= shift <= 63 or m * 2.0 ** -shift != float(scale):
        raise ArtefactError(f"requantization scale {float(scale)!r} is outside what the MCU kernels represent")
    return m, shift


def _requant_table(src: QTensor, dst: QTensor) -> np.ndarray | None:
    """int8 -> int8 map of DequantizeLinear(src) then QuantizeLinear(dst), in numpy float32 as ORT computes it."""
    if src.scale == dst.scale and src.zp == dst.zp:
        return None
    q = np.arange(-128, 128, dtype=np.int32)
    x = np.float32(q - src.zp).astype(np.float32) * _f32(src.scale)  # MlasDequantizeLinear: (q - zp) * scale
    y = np.rint(x / _f32(dst.scale)) + dst.zp  # MlasQuantizeLinear: divide, round half to even
    return np.clip(y, -128, 127).astype(np.int8)


class _Graph:
    def __init__(self, model):
        from onnx import numpy_helper

        self.model = model
        self.init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in model.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def attrs(self, node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def only_consumer(self, name: str, op: str):
        users = self.consumers.get(name, [])
        if len(users) != 1 or users[0].op_type != op:
            raise ArtefactError(f"tensor {name} feeds {[u.op_type for u in users]}; the MCU translator expects one {op}")
        return users[0]


def plan_from_int8_onnx(path: str | Path) -> McuPlan:
    """Translate a QDQ INT8 ONNX model (ecgedge's classifier shape) into an :class:`McuPlan`.

    Raises:
        ArtefactError: a node or layout the MCU kernels do not implement, named.
    """
    onnx = require("onnx", extra="train")
    g = _Graph(onnx.load(str(path)))
    graph = g.model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ArtefactError(f"{path}: the MCU library takes one input and one output")
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 3 or min(dims[1:]) < 1:
        raise ArtefactError(f"{path}: input shape {dims}; the MCU library takes (batch, leads, samples)")
    n_leads, samples = dims[1], dims[2]
    per_lead = False  # inside the shared per-lead encoder (leads folded into the batch)
    tensors: dict[str, QTensor] = {}
    layers: list[Layer] = []
    # Symbolic values: ("raw", shape, strides) views of the float input; ("dq", qtensor name, shape) dequantized
    # activations; ("w", q, scale, zp) dequantized constants; ("pending", Layer, shape) float results awaiting Q.
    env: dict[str, tuple] = {graph.input[0].name: ("raw", (n_leads, samples), (samples, 1))}

    def qparams(node) -> tuple[float, int]:
        scale = g.init[node.input[1]]
        zp = g.init[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros((), np.uint8)
        if scale.size != 1:
            raise ArtefactError(f"{node.name}: per-channel activation quantization is not supported")
        return float(scale.reshape(())), int(zp.reshape(())) - (128 if zp.dtype == np.uint8 else 0)

    for node in graph.node:
        op, ins, out = node.op_type, list(node.input), node.output[0]
        a = g.attrs(node)
        if op == "DequantizeLinear":
            if ins[0] in g.init:
                zp = g.init[ins[2]] if len(ins) > 2 and ins[2] else np.zeros_like(g.init[ins[1]], dtype=np.int8)
                env[out] = ("w", g.init[ins[0]], g.init[ins[1]], zp)
            else:
                src = env[ins[0]]
                if src[0] != "q":
                    raise ArtefactError(f"{node.name}: dequantizes {ins[0]}, which is not an activation the translator made")
                env[out] = ("dq", src[1], tensors[src[1]].shape)
        elif op == "QuantizeLinear":
            found = env.get(ins[0])
            scale, zp = qparams(node)
            if found is None or found[0] not in ("pending", "dq"):
                raise ArtefactError(f"{node.name}: quantizes {ins[0]}, which no supported layer produced")
            src = found
            if src[0] == "dq":  # Q(DQ(x)) with a reshape between: the same tensor where the layout is unchanged
                t = tensors[src[1]]
                if (scale, zp) != (t.scale, t.zp):
                    raise ArtefactError(f"{node.name}: requantizes a reshaped tensor; not supported")
                env[out] = ("q", src[1])
                continue
            layer, shape = src[1], src[2]
            layer.output = out
            layer.per_lead = per_lead
            tensors[out] = QTensor(out, shape, scale, zp)
            layers.append(layer)
            env[out] = ("q", out)
        elif op in ("Reshape", "Transpose"):
            src = env[ins[0]]
            if src[0] == "raw":
                shape, strides = src[1], src[2]
                if op == "Reshape":
                    target = [int(v) for v in g.init[ins[1]]][1:]  # drop the batch dimension
                    if strides != _row_major(shape):
                        raise ArtefactError(f"{node.name}: reshape of a transposed input view")
                    size = int(np.prod(shape))
                    if shape == (n_leads, samples) and n_leads > 1 and int(np.prod(target)) == samples and not per_lead:
                        per_lead, size = True, samples  # (batch, leads, samples) -> (batch * leads, 1, samples)
                    shape = _resolve_shape(target, size)
                    strides = _row_major(shape)
                else:
                    perm = [p - 1 for p in a["perm"][1:]]
                    if a["perm"][0] != 0:
                        raise ArtefactError(f"{node.name}: transposes the batch dimension")
                    shape, strides = tuple(shape[p] for p in perm), tuple(strides[p] for p in perm)
                env[out] = ("raw", shape, strides)
            elif src[0] == "dq" and op == "Reshape":
                x = tensors[src[1]]
                joined = _resolve_shape([int(v) for v in g.init[ins[1]]][1:], x.size * (n_leads if per_lead else 1))
                if per_lead and len(x.shape) == 2 and joined == (n_leads * x.shape[0], x.shape[1]):
                    # (batch * leads, c, t) -> (batch, leads * c, t): the encoder's output, lead by lead
                    per_lead = False
                    fused = f"{src[1]}_leads"
                    tensors[fused] = QTensor(fused, joined, x.scale, x.zp)
                    producer = next(la for la in layers if la.output == src[1])
                    producer.fused_into = fused
                    env[out] = ("dq", fused, joined)
                    continue
                if joined != x.shape:
                    raise ArtefactError(f"{node.name}: reshape {tensors[src[1]].shape} -> {joined} changes the layout")
                env[out] = src
            else:
                raise ArtefactError(f"{node.name}: {op} of {ins[0]} is not supported")
        elif op == "Conv":
            src, w, b = env[ins[0]], ins[1], ins[2] if len(ins) > 2 else ""
            if a.get("group", 1) != 1 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ArtefactError(f"{node.name}: grouped or auto-padded convolution is not supported")
            k = int(a["kernel_shape"][0])
            stride, dil = int(a.get("strides", [1])[0]), int(a.get("dilations", [1])[0])
            pads = [int(p) for p in a.get("pads", [0, 0])]
            if src[0] == "raw":
                shape, strides = src[1], src[2]
                if len(shape) != 2 or strides != (1, shape[0]):
                    raise ArtefactError(f"{node.name}: its input is not the raw window read channels-last")
                c_in, l_in = shape
                weight = g.init[w].astype(np.float32)  # (c_out, c_in, k)
                bias = g.init[b].astype(np.float32) if b else np.zeros(len(weight), np.float32)
                l_out = (l_in + pads[0] + pads[1] - dil * (k - 1) - 1) // stride + 1
                layer = Layer("conv_f32", [], "", dict(c_in=c_in, l_in=l_in, c_out=len(weight), l_out=l_out, kernel=k, stride=stride,
                                                       dilation=dil, pad_left=pads[0], weights=weight, bias=bias))
                env[out] = ("pending", layer, (len(weight), l_out))
            elif src[0] == "dq":
                wq = env[w]
                bq = env[b] if b else None
                x = tensors[src[1]]
                c_in, l_in = x.shape
                l_out = (l_in + pads[0] + pads[1] - dil * (k - 1) - 1) // stride + 1
                layer = Layer("conv", [src[1]], "", dict(c_in=c_in, l_in=l_in, c_out=wq[1].shape[0], l_out=l_out, kernel=k,
                                                         stride=stride, dilation=dil, pad_left=pads[0], wq=wq, bq=bq))
                env[out] = ("pending", layer, (wq[1].shape[0], l_out))
            else:
                raise ArtefactError(f"{node.name}: convolution of {ins[0]} is not supported")
        elif op == "Gemm":
            src, wq = env[ins[0]], env[ins[1]]
            if src[0] != "dq" or wq[0] != "w" or a.get("transB", 0) != 1 or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0:
                raise ArtefactError(f"{node.name}: only Gemm(x, W^T) + b on an INT8 activation is supported")
            x = tensors[src[1]]
            layer = Layer("gemm", [src[1]], "", dict(c_in=x.size, l_in=1, c_out=wq[1].shape[0], l_out=1, kernel=1, stride=1,
                                                     dilation=1, pad_left=0, wq=wq, bq=env[ins[2]] if len(ins) > 2 else None))
            env[out] = ("pending", layer, (wq[1].shape[0],))
        elif op == "Relu":
            src = env[ins[0]]
            if src[0] != "pending":
                raise ArtefactError(f"{node.name}: ReLU on {ins[0]}, not on a layer's output")
            src[1].params["relu"] = True
            env[out] = src
        elif op in ("ReduceMean", "ReduceMax"):
            src = env[ins[0]]
            axes = [int(v) for v in g.init[ins[1]]] if len(ins) > 1 and ins[1] else list(a.get("axes", []))
            if src[0] != "dq" or len(tensors[src[1]].shape) != 2 or axes not in ([-1], [2]) or a.get("keepdims", 1):
                raise ArtefactError(f"{node.name}: only {op} over time (last axis, keepdims=0) of an INT8 activation is supported")
            x = tensors[src[1]]
            layer = Layer("mean" if op == "ReduceMean" else "max", [src[1]], "", {})
            env[out] = ("pending", layer, (x.shape[0],))
        elif op == "Concat":
            srcs = [env[i] for i in ins]
            if any(s[0] != "dq" or len(tensors[s[1]].shape) != 1 for s in srcs) or a.get("axis") not in (1, -1):
                raise ArtefactError(f"{node.name}: only channel concatenation of pooled INT8 vectors is supported")
            layer = Layer("concat", [s[1] for s in srcs], "", {})
            env[out] = ("pending", layer, (sum(tensors[s[1]].shape[0] for s in srcs),))
        else:
            raise ArtefactError(f"{node.name}: ONNX op {op} has no MCU kernel")
    final = env.get(graph.output[0].name)
    if final is None or final[0] != "dq":
        raise ArtefactError(f"{path}: the output is not a dequantized INT8 tensor")
    if not layers or layers[0].kind != "conv_f32":
        raise ArtefactError(f"{path}: the MCU library expects the first convolution in FP32 (ecgedge's INT8 export)")
    if per_lead:
        raise ArtefactError(f"{path}: the per-lead encoder's outputs are never joined across leads")
    return McuPlan(samples, layers[0].params["c_in"], layers, tensors, final[1], n_leads)


def _row_major(shape) -> tuple[int, ...]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def _resolve_shape(target: list[int], size: int) -> tuple[int, ...]:
    if target.count(-1) > 1:
        raise ArtefactError(f"reshape to {target}: more than one unknown dimension")
    known = int(np.prod([d for d in target if d != -1])) if target else 1
    return tuple(size // known if d == -1 else d for d in target)


# ---------------------------------------------------------------- code generation


C_BYTES = {"int8_t": 1, "uint8_t": 1, "int32_t": 4, "uint32_t": 4, "float": 4}


def _c_array(ctype: str, name: str, values, per_line: int = 24) -> str:
    vals = [str(int(v)) if ctype != "float" else _c_float(v) for v in np.asarray(values).ravel()]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return f"static const {ctype} {name}[{len(vals)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def _c_float(v) -> str:
    return f"{float(np.float32(v)).hex()}f"  # C99 hexadecimal float: the exact float32 bits


def _conv_arrays(prefix: str, layer: Layer, x: QTensor, y: QTensor) -> tuple[str, dict]:
    p = layer.params
    _, wq, wscale, wzp = p["wq"]
    if np.any(wzp):
        raise ArtefactError(f"{y.name}: asymmetric weights (nonzero weight zero point) are not supported")
    w = wq.astype(np.int8).reshape(p["c_out"], p["c_in"], p["kernel"]) if layer.kind == "conv" else wq.astype(np.int8).reshape(p["c_out"], p["c_in"], 1)
    rows = w.transpose(0, 2, 1).reshape(p["c_out"], -1)  # [c_out][k][c_in], channels-last like the column
    row = -(-rows.shape[1] // 4) * 4
    c_pad = -(-p["c_out"] // 4) * 4
    rows = np.pad(rows, ((0, c_pad - p["c_out"]), (0, row - rows.shape[1])))  # zero channels and taps
    # [block of 4 channels][group of 4 values][channel][value], each group (0, 2, 1, 3) for SXTB16 / SMLAD
    stored = rows.reshape(c_pad // 4, 4, row // 4, 4)[:, :, :, [0, 2, 1, 3]].transpose(0, 2, 1, 3).reshape(-1)
    if p["bq"] is not None:
        _, bias, bscale, bzp = p["bq"]
        if np.any(bzp):
            raise ArtefactError(f"{y.name}: bias with a zero point is not supported")
        bias = bias.astype(np.int64)
    else:
        bias = np.zeros(p["c_out"], np.int64)
    wscale = np.broadcast_to(np.asarray(wscale, np.float32), (p["c_out"],))
    # ONNX Runtime's float32 output scale: x_scale * w_scale[i] / y_scale, each op rounded to float32
    scales = (_f32(x.scale) * wscale).astype(np.float32) / _f32(y.scale)
    mult, shift = (list(v) for v in zip(*(_significand(np.float32(s)) for s in scales)))
    pad = c_pad - p["c_out"]
    bias, mult, shift = np.pad(bias, (0, pad)), mult + [1 << 23] * pad, shift + [24] * pad
    text = (_c_array("int8_t", f"{prefix}_w", stored) + _c_array("int32_t", f"{prefix}_b", bias)
            + _c_array("uint32_t", f"{prefix}_m", mult) + _c_array("uint8_t", f"{prefix}_s", shift))
    params = dict(c_in=p["c_in"], l_in=p["l_in"], c_out=p["c_out"], l_out=p["l_out"], kernel=p["kernel"], stride=p["stride"],
                  dilation=p["dilation"], pad_left=p["pad_left"], row=row, in_offset=-x.zp, out_zp=y.zp,
                  out_min=y.zp if p.get("relu") else -128)
    return text, params


def _arena(plan: McuPlan) -> tuple[dict[str, int], int]:
    """First-fit offsets (4-byte aligned) of every tensor by its live range; returns offsets, total bytes."""
    last_use = {plan.output: len(plan.layers)}
    for i, layer in enumerate(plan.layers):
        for name in layer.inputs:
            last_use[name] = max(last_use.get(name, i), i)
    # (birth, tensor): a layer's output is born where it runs; the encoder's joined output (fused_into)
    # where the per-lead loop starts, since every lead writes into it; the per-lead tensor it replaces is not stored.
    first_lead = next((i for i, la in enumerate(plan.layers) if la.per_lead), 0)
    births = sorted([(i, la.output) for i, la in enumerate(plan.layers) if not la.fused_into]
                    + [(first_lead, la.fused_into) for la in plan.layers if la.fused_into])
    placed: list[tuple[int, int, int]] = []  # (offset, size, last use)
    offsets: dict[str, int] = {}
    for i, name in births:
        live = [(o, s) for o, s, end in placed if end >= i]
        size = -(-plan.tensors[name].size // 4) * 4
        off = 0
        for o, s in sorted(live):
            if off + size <= o:
                break
            off = max(off, o + s)
        offsets[name] = off
        placed.append((off, size, last_use.get(name, i)))
    for la in plan.layers:
        if la.fused_into:
            offsets[la.output] = offsets[la.fused_into]
    return offsets, max((o + s for o, s, _ in placed), default=0)


def c_sources_from_plan(plan: McuPlan, *, name: str, labels: list[str]) -> dict[str, str]:
    """The generated ``ecgedge_model.h`` / ``.c`` texts for ``plan``."""
    offsets, arena = _arena(plan)
    col = max((-(-layer.params["c_in"] * layer.params["kernel"] // 4) * 4 for layer in plan.layers if layer.kind in ("conv", "gemm")), default=4)
    out = plan.out_tensor
    arrays, calls, structs = [], [], []
    in_loop = False
    for i, layer in enumerate(plan.layers):
        y = plan.tensors[layer.output]
        dst = f"A({offsets[layer.output]})"
        out_stride = y.shape[0]
        if layer.fused_into:  # this lead's channels of the joined encoder output
            out_stride = plan.tensors[layer.fused_into].shape[0]
            dst = f"A({offsets[layer.fused_into]}) + lead * {y.shape[0]}"
        if layer.per_lead and not in_loop:
            calls.append(f"    for (lead = 0; lead < {plan.leads}; lead++) {{  /* the shared encoder, once per lead */")
        elif in_loop and not layer.per_lead:
            calls.append("    }")
        in_loop = layer.per_lead
        pre = f"l{i}"
        if layer.kind == "conv_f32":
            p = layer.params
            w = p["weights"].transpose(0, 2, 1)  # [c_out][k][c_in]
            arrays.append(_c_array("float", f"{pre}_w", w) + _c_array("float", f"{pre}_b", p["bias"]))
            structs.append(f"static const ecgedge_conv_f32_t {pre} = {{{p['c_in']}, {p['l_in']}, {p['c_out']}, {p['l_out']}, {p['kernel']}, "
                           f"{p['stride']}, {p['dilation']}, {p['pad_left']}, {out_stride}, {pre}_w, {pre}_b, {_c_float(y.scale)}, {y.zp}, "
                           f"{y.zp if p.get('relu') else -128}}};\n")
            src = f"in + lead * {plan.input_samples}" if layer.per_lead else "in"
            calls.append(f"    ecgedge_conv_f32(&{pre}, {src}, {dst});")
        elif layer.kind in ("conv", "gemm"):
            x = plan.tensors[layer.inputs[0]]
            text, q = _conv_arrays(pre, layer, x, y)
            arrays.append(text)
            structs.append(f"static const ecgedge_conv_t {pre} = {{{q['c_in']}, {q['l_in']}, {q['c_out']}, {q['l_out']}, {q['kernel']}, "
                           f"{q['stride']}, {q['dilation']}, {q['pad_left']}, {out_stride}, {q['row']}, {q['in_offset']}, {q['out_zp']}, "
                           f"{q['out_min']}, {pre}_w, {pre}_b, {pre}_m, {pre}_s}};\n")
            calls.append(f"    ecgedge_conv(&{pre}, A({offsets[x.name]}), {dst}, col);")
        elif layer.kind == "mean":
            x = plan.tensors[layer.inputs[0]]
            c, n = x.shape
            m, s = _significand(np.float32(np.float64(x.scale) / n / np.float64(y.scale)))
            calls.append(f"    ecgedge_mean_time({n}, {c}, A({offsets[x.name]}), {x.zp}, {m}u, {s}u, {y.zp}, {dst});")
        elif layer.kind == "max":
            x = plan.tensors[layer.inputs[0]]
            table = _requant_table(x, y)
            if table is not None:
                arrays.append(_c_array("int8_t", f"{pre}_t", table))
            calls.append(f"    ecgedge_max_time({x.shape[1]}, {x.shape[0]}, A({offsets[x.name]}), {f'{pre}_t' if table is not None else 'NULL'}, {dst});")
        elif layer.kind == "concat":
            at = 0
            for j, part in enumerate(layer.inputs):
                x = plan.tensors[part]
                table = _requant_table(x, y)
                if table is not None:
                    arrays.append(_c_array("int8_t", f"{pre}_t{j}", table))
                calls.append(f"    ecgedge_requantize_table({x.size}, A({offsets[part]}), {f'{pre}_t{j}' if table is not None else 'NULL'}, "
                             f"A({offsets[layer.output]} + {at}));")
                at += x.size
        calls.append(f"    ECGEDGE_LAYER_DONE({i});")
    if in_loop:
        calls.append("    }")
    guard = "ECGEDGE_MODEL_H"
    label_list = ", ".join(f'"{c}"' for c in labels)
    header = f"""/* {name}: generated by ecgedge.export.mcu from model.int8.onnx; do not edit. */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#define ECGEDGE_MODEL_INPUT_LEADS {plan.leads}
#define ECGEDGE_MODEL_INPUT_SAMPLES {plan.input_samples}  /* per lead, z-scored, float32 */
#define ECGEDGE_MODEL_INPUT_VALUES (ECGEDGE_MODEL_INPUT_LEADS * ECGEDGE_MODEL_INPUT_SAMPLES)
#define ECGEDGE_MODEL_CLASSES {out.size}
#define ECGEDGE_MODEL_ARENA_BYTES {arena}
#define ECGEDGE_MODEL_OUTPUT_SCALE {_c_float(out.scale)}
#define ECGEDGE_MODEL_OUTPUT_ZERO_POINT {out.zp}
#define ECGEDGE_MODEL_LABELS {{{label_list}}}

/* Classify one window: in[ECGEDGE_MODEL_INPUT_VALUES] (the ONNX model's input: leads x samples,
 * lead-major, z-scored per lead) -> out[ECGEDGE_MODEL_CLASSES] int8 logits. Not reentrant: one static arena.
 * A NaN or +-Inf input value is read as 0 (the window's mean after z-scoring): defined, no trap. */
void ecgedge_model_run(const float *in, int8_t *out);
/* int8 logits -> the ONNX model's float logits: (q - zero point) * scale. */
void ecgedge_model_dequantize(const int8_t *q, float *logits);
/* Index of the largest logit (the class decision; first on ties, as numpy's argmax). */
int ecgedge_model_argmax(const int8_t *q);

#endif
"""
    body = f"""/* {name}: generated by ecgedge.export.mcu from model.int8.onnx; do not edit. */
#include "ecgedge_model.h"

#include <stddef.h>
#include <string.h>

#include "ecgedge_kernels.h"

#ifndef ECGEDGE_LAYER_DONE
#define ECGEDGE_LAYER_DONE(layer) /* profiling hook: define it to time each layer */
#endif

/* One static arena, laid out at export time (first fit over the tensors' live ranges). */
static int32_t arena_words[{-(-arena // 4)}];
#define A(offset) ((int8_t *)arena_words + (offset))
static int16_t col[{col}];  /* one im2col column, zero points removed */

{"".join(arrays)}
{"".join(structs)}
void ecgedge_model_run(const float *in, int8_t *out)
{{
{"    int lead;" + chr(10) if plan.leads > 1 else ""}{chr(10).join(calls)}
    memcpy(out, A({offsets[plan.output]}), ECGEDGE_MODEL_CLASSES);
}}

void ecgedge_model_dequantize(const int8_t *q, float *logits)
{{
    int i;
    for (i = 0; i < ECGEDGE_MODEL_CLASSES; i++) logits[i] = (float)(q[i] - ECGEDGE_MODEL_OUTPUT_ZERO_POINT) * ECGEDGE_MODEL_OUTPUT_SCALE;
}}

int ecgedge_model_argmax(const int8_t *q)
{{
    int i, best = 0;
    for (i = 1; i < ECGEDGE_MODEL_CLASSES; i++) {{
        if (q[i] > q[best]) best = i;
    }}
    return best;
}}
"""
    return {"ecgedge_model.h": header, "ecgedge_model.c": body}


def const_bytes(model_c: str) -> int:
    """Bytes of the ``static const`` arrays (weights, biases, scales, tables) in a generated ecgedge_model.c."""
    import re

    return sum(C_BYTES[t] * int(n) for t, n in re.findall(r"^static const (\w+) \w+\[(\d+)\]", model_c, re.M))


def kernel_sources() -> dict[str, str]:
    """The fixed kernel files shipped with ecgedge (package data)."""
    base = resources.files("ecgedge.export") / "mcu_c"
    return {f: (base / f).read_text() for f in KERNEL_FILES}


@dataclass
class McuLibrary:
    folder: Path
    files: list[Path]
    plan: McuPlan
    arena_bytes: int
    const_bytes: int  # weights and quantization parameters (flash)

    def to_dict(self, root: Path) -> dict:
        out = self.plan.out_tensor
        return {"files": [p.relative_to(root).as_posix() for p in self.files], "arena_bytes": self.arena_bytes,
                "const_bytes": self.const_bytes,
                "entry": "void ecgedge_model_run(const float *in, int8_t *out)",
                "input": {"leads": self.plan.leads, "samples": self.plan.input_samples, "dtype": "float32"},
                "output": {"classes": out.size, "dtype": "int8", "scale": out.scale, "zero_point": out.zp},
                "layers": [f"{layer.kind} -> {plan_shape(self.plan, layer)}" for layer in self.plan.layers],
                "fp32_layers": ["first convolution (runs on the FPU: float input, quantized output)"]}


def plan_shape(plan: McuPlan, layer: Layer) -> str:
    return "x".join(str(d) for d in plan.tensors[layer.output].shape)


def c_library_from_int8_onnx(int8_path: str | Path, folder: str | Path, *, name: str, labels: list[str]) -> McuLibrary:
    """Write the C library for ``int8_path`` into ``folder/mcu/`` (replaced whole); returns what was written."""
    plan = plan_from_int8_onnx(int8_path)
    if plan.out_tensor.size != len(labels):
        raise ArtefactError(f"{int8_path}: {plan.out_tensor.size} outputs, manifest labels {labels}")
    dest = Path(folder) / MCU_DIR
    tmp = staged_folder(dest)
    sources = {**c_sources_from_plan(plan, name=name, labels=labels), **kernel_sources()}
    for fname, text in sources.items():
        (tmp / fname).write_text(text)
    swap_folder(tmp, dest)
    _, arena = _arena(plan)
    return McuLibrary(dest, [dest / f for f in sorted(sources)], plan, arena, const_bytes(sources["ecgedge_model.c"]))
