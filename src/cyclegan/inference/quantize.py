"""Int8 ONNX generators: ONNX Runtime's static quantization, calibrated and checked on photos.

The fp32 graph that `cyclegan.inference.export.onnx_model` builds is quantized with
`onnxruntime.quantization.quantize_static`: convolution weights to int8 per output channel,
activations to uint8 per tensor with ranges measured by running calibration photos through
the graph. The default (`Int8Settings`) writes int8 operators (QOperator format), which leaves
the two upsampling ConvTranspose layers in float: quantizing them cost 3-6 dB on real photos
and gained no speed (benchmarks/RESULTS.md). Instance norm needs care twice. One activation
scale per tensor suits the unit-variance channels after each norm, but not the convolution
outputs before it, whose channels differ in range (up to 6x in the generator measured): the
narrow ones keep a few levels, which the norm then blows up. So every convolution that feeds
a norm is first rescaled per channel to even ranges (`equalized_graph`; the norm undoes it).
And the norms themselves stay float, so tiled translation still gives every tile the whole
image's statistics (`cyclegan.inference.onnx_statistics`).

Quantization is lossy, so `export_int8` checks its result on real photos held out of
calibration: the PSNR of the int8 output against the fp32 PyTorch output, and the speed of
int8 against fp32 PyTorch and fp32 ONNX Runtime (the median of SPEED_RUNS timed runs after
a warm-up, interleaved so that a busy moment of the machine weighs on all three alike). A
model below `min_psnr` is refused and not written. Needs the `onnx` extra.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.config import ConfigError, ModelConfig
from cyclegan.data.images import (
    UnreadableImageError,
    image_to_tensor,
    list_images,
    load_image,
    resize_short_side,
)
from cyclegan.inference.export import (
    INPUT_NAME,
    OnnxGenerator,
    import_onnx,
    import_onnxruntime,
    model_stride,
    onnx_model,
    onnx_session,
)
from cyclegan.inference.options import DEFAULT_MIN_PSNR
from cyclegan.inference.translator import Translator
from cyclegan.models.artifact import describe

CALIBRATION_PHOTOS = 16  # at most this many photos set the activation ranges
CHECK_PHOTOS = 4  # at most this many other photos measure PSNR and speed
CALIBRATION_SIDE = 256  # calibration photos' short side at most (ranges do not need more)
CHECK_SIDE = 512  # check photos' short side at most (the size the speed target is set at)
SPEED_RUNS = 5  # timed runs per model after a warm-up; the median is reported
# MinMax calibration sets each activation's range to the extremes the calibration photos reach.
# For a new photo drawn like them, the chance that it exceeds the largest of k photos' maxima
# is 1/(k + 1) per activation (and as much for the minima): 1 in 2 photos clip somewhere with
# one calibration photo, 1 in 9 with 8. Below 8 the export warns.
MIN_CALIBRATION_PHOTOS = 8

# the generators' op types that get int8; InstanceNormalization (and Tanh) stay float: the
# norms' statistics are what tiles share
QUANTIZED_OPS = ("Conv", "ConvTranspose", "Relu", "Pad", "Add")

QuantFormat = Literal["qdq", "qoperator"]
CalibrationMethod = Literal["minmax", "entropy", "percentile"]
End = Literal["first", "last"]


@dataclass(frozen=True)
class Int8Settings:
    """How the graph is quantized; the defaults are the variant that measured fastest at
    PSNR >= 30 dB (benchmarks/RESULTS.md lists every variant tried)."""

    format: QuantFormat = "qoperator"
    """qoperator: int8 operators (QLinearConv, QLinearAdd) written into the graph, with no
    int8 ConvTranspose, so the upsampling stays float; qdq: QuantizeLinear/DequantizeLinear
    pairs around float operators, which ONNX Runtime fuses into int8 kernels"""
    per_channel: bool = True
    """one weight scale per output channel instead of one per tensor"""
    calibration: CalibrationMethod = "minmax"
    """how activation ranges are set from the calibration photos"""
    equalize: bool = True
    """rescale the channels of convolutions that feed an instance norm (see module doc)"""
    float_ends: tuple[End, ...] = ("last",)
    """the end convolutions ("first", "last") kept in float: the last one writes the image
    from 3 output channels, too few for int8 kernels to gain, and its error is the output's"""
    float_ops: tuple[str, ...] = ()
    """op types kept in float besides InstanceNormalization (e.g. "ConvTranspose")"""


@dataclass
class Int8Report:
    """What `export_int8` measured; `written` is False when the model was refused."""

    psnr: float  # mean over the check photos, dB against fp32 PyTorch
    worst_psnr: float
    check_photos: int
    calibration_photos: int
    held_out: bool  # whether the check photos were kept out of calibration
    # median seconds to translate the check photos: "fp32 PyTorch", "fp32 ONNX Runtime" and
    # "int8 ONNX Runtime" (see `time_interleaved`)
    seconds: dict[str, float]
    written: bool = False
    settings: Int8Settings = field(default_factory=Int8Settings)

    @property
    def speedup(self) -> float:
        """int8's speed as a multiple of fp32 PyTorch's."""
        return self.seconds["fp32 PyTorch"] / self.seconds["int8 ONNX Runtime"]

    @property
    def speedup_onnx(self) -> float:
        """int8's speed as a multiple of the fp32 ONNX export's (below 1: int8 is slower)."""
        return self.seconds["fp32 ONNX Runtime"] / self.seconds["int8 ONNX Runtime"]

    @property
    def few_calibration_photos(self) -> bool:
        return self.calibration_photos < MIN_CALIBRATION_PHOTOS


# ---- photos ------------------------------------------------------------------------------------


def find_photos(folder: Path, what: str) -> list[Path]:
    """The images in `folder`; ConfigError naming `what` (where the folder came from) when
    there are none."""
    if not folder.is_dir():
        raise ConfigError(
            f"int8 calibration needs photos: {what} {folder} is not a folder; give a folder "
            "of images with --calibration-images"
        )
    paths = list_images(folder)
    if not paths:
        raise ConfigError(
            f"int8 calibration needs photos: {what} {folder} holds no images; give a folder "
            "of images with --calibration-images"
        )
    return paths


def split_photos(paths: Sequence[Path]) -> tuple[list[Path], list[Path], bool]:
    """(calibration, check, held_out): every other photo, up to CHECK_PHOTOS, is kept out of
    calibration for the check; a single photo serves both (held_out False)."""
    paths = list(paths)
    if len(paths) < 2:
        return paths, paths, False
    check = paths[1::2][:CHECK_PHOTOS]
    calibration = [path for path in paths if path not in check]
    return calibration[:CALIBRATION_PHOTOS], check, True


def load_photos(paths: Sequence[Path], channels: int, max_side: int) -> list[torch.Tensor]:
    """Each readable photo as (1, C, H, W) in [-1, 1], short side at most `max_side`;
    unreadable files are skipped (ConfigError if none is left)."""
    photos = []
    for path in paths:
        try:
            image = load_image(path, channels)
        except UnreadableImageError:
            continue
        if min(image.size) > max_side:
            image = resize_short_side(image, max_side)
        photos.append(image_to_tensor(image)[None])
    if not photos:
        raise ConfigError(
            f"none of the {len(paths)} calibration photos could be read (first: {paths[0]}); "
            "give a folder of readable images with --calibration-images"
        )
    return photos


def padded_to_stride(images: torch.Tensor, stride: int) -> np.ndarray:
    """(N, C, H, W) reflected at the bottom and right up to multiples of `stride`, as the
    Translator pads before the generator; float32 numpy."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % stride, -width % stride
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    padded = F.pad(images, (0, pad_w, 0, pad_h), mode=mode) if pad_h or pad_w else images
    return padded.contiguous().numpy().astype(np.float32)


def time_interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The median seconds of each of `runs` over `repeats` timed calls, after one untimed
    warm-up call each (first calls pay for allocations and kernel choices). The calls take
    turns, one of each per round, so a moment when the machine is busy slows all of them."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def psnr(output: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of two images in [-1, 1] (peak: the range, 2); inf when identical."""
    mse = float(((output.float() - reference.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


# ---- quantization ------------------------------------------------------------------------------


def quantize_int8(
    proto: Any, calibration: Sequence[np.ndarray], settings: Int8Settings | None = None
) -> Any:
    """`proto` (an fp32 generator graph) quantized to int8 with ranges from `calibration`
    ((1, C, H, W) float32 arrays, sides multiples of the stride); its metadata is kept, plus
    "quantized": "int8"."""
    import_onnxruntime()
    from onnxruntime import quantization

    settings = settings or Int8Settings()
    onnx = import_onnx()
    if settings.equalize:
        from cyclegan.inference.onnx_statistics import equalized_graph

        proto = equalized_graph(proto, norm_input_spreads(proto, calibration))
    methods = {
        "minmax": quantization.CalibrationMethod.MinMax,
        "entropy": quantization.CalibrationMethod.Entropy,
        "percentile": quantization.CalibrationMethod.Percentile,
    }
    formats = {"qdq": quantization.QuantFormat.QDQ, "qoperator": quantization.QuantFormat.QOperator}
    with tempfile.TemporaryDirectory(prefix="cyclegan-int8-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(_named_nodes(proto).SerializeToString())
        with _quiet():
            quantization.quantize_static(
                str(source),
                str(target),
                _Calibration(calibration),
                quant_format=formats[settings.format],
                per_channel=settings.per_channel,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=methods[settings.calibration],
                nodes_to_exclude=[
                    *_end_convolutions(proto, settings.float_ends),
                    *_colour_map_nodes(proto),
                ],
                op_types_to_quantize=[op for op in QUANTIZED_OPS if op not in settings.float_ops],
            )
        quantized = onnx.load(str(target))
    # the quantizer's own entries (onnx.infer) are no cyclegan metadata: only ours are kept
    del quantized.metadata_props[:]
    for key, value in [*((p.key, p.value) for p in proto.metadata_props), ("quantized", '"int8"')]:
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    return quantized


def norm_input_spreads(proto: Any, calibration: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The (C,) standard deviation of every InstanceNormalization input channel, the root of
    its per-photo variances' mean over `calibration` (the statistics tiling records)."""
    from cyclegan.inference.onnx_statistics import count_norms, recording_graph

    session = onnx_session(recording_graph(proto).SerializeToString(), "cpu")
    sums = [0.0] * count_norms(proto)
    for array in calibration:
        _, *statistics = session.run(None, {INPUT_NAME: array})  # mean, var, mean, var, ...
        for index, var in enumerate(statistics[1::2]):  # var: (1, C, 1, 1)
            sums[index] = sums[index] + var.reshape(-1).astype(np.float64)
    return [np.sqrt(total / len(calibration)) for total in sums]


class _Calibration:
    """ONNX Runtime's CalibrationDataReader (duck-typed): one photo per call, then None."""

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        self.arrays = list(arrays)
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position == len(self.arrays):
            return None
        self.position += 1
        return {INPUT_NAME: self.arrays[self.position - 1]}

    def rewind(self) -> None:
        self.position = 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the quantizer's advice (printed, warned and logged to the root logger)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _named_nodes(proto: Any) -> Any:
    """`proto` with a name on every node (nodes_to_exclude names them)."""
    for index, node in enumerate(proto.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    return proto


def _colour_map_nodes(proto: Any) -> list[str]:
    """The quantizable nodes before the network's first convolution: a generator's global
    paths (--sharpness, --colour), a single-channel filter and pointwise arithmetic on the
    full-resolution image, which would gain rounding at every one of their steps and save
    next to no time."""
    single_channel = _single_channel_convolutions(proto)
    names = []
    for node in proto.graph.node:
        if node.op_type in ("Conv", "ConvTranspose") and node.name not in single_channel:
            break
        if node.op_type in QUANTIZED_OPS and node.op_type != "Pad":
            names.append(node.name)
    return names


def _single_channel_convolutions(proto: Any) -> set[str]:
    """Convolutions of one channel into one (a (1, 1, K, K) weight): the sharpness filter,
    which applies one kernel to each colour plane alone (models/sharpness.py)."""
    shapes = {tensor.name: list(tensor.dims) for tensor in proto.graph.initializer}
    return {
        node.name
        for node in proto.graph.node
        if node.op_type == "Conv" and shapes.get(node.input[1], [None, None])[:2] == [1, 1]
    }


def _end_convolutions(proto: Any, ends: Sequence[End]) -> list[str]:
    global_paths = _single_channel_convolutions(proto)
    convolutions = [
        n.name
        for n in proto.graph.node
        if n.op_type in ("Conv", "ConvTranspose") and n.name not in global_paths
    ]
    positions = {"first": 0, "last": -1}
    return [convolutions[positions[end]] for end in ends] if convolutions else []


# ---- the export --------------------------------------------------------------------------------


def export_int8(
    generator: nn.Module,
    model: ModelConfig,
    direction: str,
    path: Path,
    photos: Sequence[Path],
    *,
    min_psnr: float = DEFAULT_MIN_PSNR,
    settings: Int8Settings | None = None,
    load_size: int | None = None,
    source: str = "",
) -> Int8Report:
    """Quantize `generator` to an int8 ONNX file at `path`, calibrated on `photos`, and check
    it against the fp32 PyTorch generator on photos held out of calibration (see
    `split_photos`). Written atomically, and only when the mean PSNR reaches `min_psnr`."""
    import_onnxruntime()
    settings = settings or Int8Settings()
    generator = generator.to("cpu", memory_format=torch.contiguous_format).eval()
    in_channels = model.channels(direction)[0]
    calibration_paths, check_paths, held_out = split_photos(photos)
    stride = model_stride(model)
    calibration = [
        padded_to_stride(photo, stride)
        for photo in load_photos(calibration_paths, in_channels, CALIBRATION_SIDE)
    ]
    check = load_photos(check_paths, in_channels, CHECK_SIDE)
    metadata = describe(model, direction, load_size=load_size, source=source)
    fp32 = onnx_model(generator, model, metadata)
    quantized = quantize_int8(fp32, calibration, settings)
    translators = {
        "fp32 PyTorch": Translator(generator, model, direction, "cpu", precision="fp32"),
        "fp32 ONNX Runtime": _onnx_translator(fp32, model, direction),
        "int8 ONNX Runtime": _onnx_translator(quantized, model, direction),
    }
    expected = [translators["fp32 PyTorch"].translate_tensor(photo) for photo in check]
    int8 = translators["int8 ONNX Runtime"]
    scores = [psnr(int8.translate_tensor(photo), want) for photo, want in zip(check, expected)]
    seconds = time_interleaved(
        {
            name: lambda translator=translator: [translator.translate_tensor(p) for p in check]
            for name, translator in translators.items()
        },
        SPEED_RUNS,
    )
    report = Int8Report(
        psnr=float(np.mean(scores)),
        worst_psnr=min(scores),
        check_photos=len(check),
        calibration_photos=len(calibration),
        held_out=held_out,
        seconds=seconds,
        settings=settings,
    )
    if report.psnr >= min_psnr:
        _write_atomically(path, quantized.SerializeToString())
        report.written = True
    return report


def _onnx_translator(proto: Any, model: ModelConfig, direction: str) -> Translator:
    session = onnx_session(proto.SerializeToString(), "cpu")
    return Translator(OnnxGenerator(session, model.channels(direction)[0], proto), model, direction)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
