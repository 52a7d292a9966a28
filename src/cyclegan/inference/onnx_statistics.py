"""Whole-image instance-norm statistics for exported ONNX generators, for tiled translation.

An ONNX graph takes no hooks, so `cyclegan.inference.tiling.shared_norm_statistics` cannot
reach it. Instead the exported graph is rewritten twice, at run time (files are never
changed): a *recording* graph that also outputs the per-image mean and variance at the input
of every InstanceNormalization node, and a *normalizing* graph in which every such node is
replaced by (x - mean) / sqrt(var + epsilon) * scale + bias with the mean and variance as
extra graph inputs. Recording the whole image (downscaled to fit) once and normalizing every
tile with its statistics makes ONNX Runtime tile as PyTorch does. The same recorded
statistics prepare int8 quantization (`equalized_graph`, used by
`cyclegan.inference.quantize`). Needs the `onnx` extra.
"""

from __future__ import annotations

import numpy as np
from onnx import ModelProto, TensorProto, helper, numpy_helper

NORM_OP = "InstanceNormalization"
_AXES_HW = "cyclegan_axes_hw"  # (2, 3): the spatial axes of (N, C, H, W)
_AXES_C11 = "cyclegan_axes_c11"  # (1, 2): (C,) -> (C, 1, 1), which broadcasts over (N, C, H, W)


def mean_name(index: int) -> str:
    """The recording graph's output, and the normalizing graph's input, of the mean at the
    index-th InstanceNormalization node (in graph order); (N, C, 1, 1) float32."""
    return f"cyclegan_norm{index}_mean"


def var_name(index: int) -> str:
    """As `mean_name`, for the (biased) variance."""
    return f"cyclegan_norm{index}_var"


def count_norms(model: ModelProto) -> int:
    """How many InstanceNormalization nodes the graph has (0: nothing to share)."""
    return sum(node.op_type == NORM_OP for node in model.graph.node)


def recording_graph(model: ModelProto) -> ModelProto:
    """A copy of `model` that also outputs each InstanceNormalization
    input's per-image, per-channel mean and variance: `translated`, then mean_name(0),
    var_name(0), mean_name(1), ..."""
    recording = _copy(model)
    graph = recording.graph
    graph.initializer.append(numpy_helper.from_array(np.array([2, 3], dtype=np.int64), _AXES_HW))
    norms = [node for node in graph.node if node.op_type == NORM_OP]
    for index, node in enumerate(norms):
        features, prefix = node.input[0], f"cyclegan_norm{index}"
        graph.node.extend(
            [
                helper.make_node("ReduceMean", [features, _AXES_HW], [mean_name(index)]),
                helper.make_node("Sub", [features, mean_name(index)], [f"{prefix}_centred"]),
                helper.make_node(
                    "Mul", [f"{prefix}_centred", f"{prefix}_centred"], [f"{prefix}_squared"]
                ),
                helper.make_node("ReduceMean", [f"{prefix}_squared", _AXES_HW], [var_name(index)]),
            ]
        )
        for name in (mean_name(index), var_name(index)):
            graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return recording


def normalizing_graph(model: ModelProto) -> ModelProto:
    """A copy of `model` in which every InstanceNormalization node normalizes with the mean
    and variance given as the inputs mean_name(i), var_name(i) instead of its input's own."""
    normalizing = _copy(model)
    graph = normalizing.graph
    graph.initializer.append(numpy_helper.from_array(np.array([1, 2], dtype=np.int64), _AXES_C11))
    nodes = []
    index = 0
    for node in graph.node:
        if node.op_type != NORM_OP:
            nodes.append(node)
            continue
        features, scale, bias = node.input
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        prefix, mean, var = f"cyclegan_norm{index}", mean_name(index), var_name(index)
        graph.initializer.append(
            numpy_helper.from_array(np.array(epsilon, dtype=np.float32), f"{prefix}_epsilon")
        )
        nodes += [
            helper.make_node("Sub", [features, mean], [f"{prefix}_centred"]),
            helper.make_node("Add", [var, f"{prefix}_epsilon"], [f"{prefix}_var_eps"]),
            helper.make_node("Sqrt", [f"{prefix}_var_eps"], [f"{prefix}_std"]),
            helper.make_node("Div", [f"{prefix}_centred", f"{prefix}_std"], [f"{prefix}_unit"]),
            helper.make_node("Unsqueeze", [scale, _AXES_C11], [f"{prefix}_scale"]),
            helper.make_node("Unsqueeze", [bias, _AXES_C11], [f"{prefix}_bias"]),
            helper.make_node("Mul", [f"{prefix}_unit", f"{prefix}_scale"], [f"{prefix}_scaled"]),
            helper.make_node("Add", [f"{prefix}_scaled", f"{prefix}_bias"], [node.output[0]]),
        ]
        for name in (mean, var):
            graph.input.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", None, 1, 1])
            )
        index += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return normalizing


def equalized_graph(model: ModelProto, spreads: list[np.ndarray]) -> ModelProto:
    """A copy of `model` in which every convolution that feeds only an InstanceNormalization
    has each output channel's weights and bias multiplied by max(spread) / spread[c], where
    `spreads[i]` is the (C,) standard deviation of the i-th norm's input channels (measured
    with `recording_graph`). The norm divides each channel by its own spread, so the output
    is unchanged but for the norm's epsilon, whose weight only shrinks (x / sqrt(var + eps)
    becomes x / sqrt(var + eps / factor**2)), while the channels come to share one range:
    what int8's single scale per activation tensor needs, or the narrow channels keep a few
    levels that the norm then blows up to unit variance."""
    equalized = _copy(model)
    graph = equalized.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    norms = [node for node in graph.node if node.op_type == NORM_OP]
    for node, spread in zip(norms, spreads, strict=True):
        conv = producers.get(node.input[0])
        if conv is None or conv.op_type not in _CHANNEL_AXIS or consumers[node.input[0]] != 1:
            continue
        if any(a.name == "group" and a.i != 1 for a in conv.attribute):
            continue  # grouped weights hold output channels differently
        if not all(name in initializers for name in conv.input[1:]):
            continue
        spread = np.asarray(spread, dtype=np.float64)
        factors = spread.max() / np.maximum(spread, spread.max() / _MAX_FACTOR)
        for position, name in enumerate(conv.input[1:]):
            axis = _CHANNEL_AXIS[conv.op_type] if position == 0 else 0  # weight, then bias
            values = numpy_helper.to_array(initializers[name])
            shape = [1] * values.ndim
            shape[axis] = -1
            scaled = (values * factors.reshape(shape)).astype(values.dtype)
            initializers[name].CopyFrom(numpy_helper.from_array(scaled, name))
    return equalized


# the axis of output channels in each convolution's weight: (out, in, kh, kw), (in, out, kh, kw)
_CHANNEL_AXIS = {"Conv": 0, "ConvTranspose": 1}
_MAX_FACTOR = 1e4  # dead channels (spread ~0) are not blown up without bound


def _copy(model: ModelProto) -> ModelProto:
    copy = ModelProto()
    copy.CopyFrom(model)
    return copy
