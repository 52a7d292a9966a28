"""Generators as deployable files: ONNX, TorchScript and safetensors, and reading them back.

Every exported file carries what translation needs besides the weights (the model config,
the direction, the training load size) as metadata: ONNX `metadata_props`, a TorchScript
extra file `cyclegan.json`, safetensors metadata. The padding to the generator's stride stays
outside the graph, in the Translator, so one exported graph serves every image size. Loading
TorchScript runs the code in the file, so it is loaded only on purpose: from a file named
NAME.torchscript.pt, or when the caller says so (`--torchscript`); a TorchScript archive
under another name is refused, told apart by its zip members' names without loading it.

ONNX is exported with the `torch.export`-based exporter (`dynamo=True`, PyTorch's maintained
path; the TorchScript-based one is deprecated) with dynamic batch, height and width. Its graph
is the network's own ops (Conv, InstanceNormalization, Pad, ConvTranspose, ...), which
ONNX Runtime runs with its fused CPU kernels. It needs the `onnx` extra
(`pip install 'cyclegan[onnx]'`: onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cyclegan.config import ConfigError, ModelConfig
from cyclegan.inference.options import EXPORT_SUFFIXES, ExportFormat
from cyclegan.models.artifact import describe, parse_metadata, save_generator

TORCHSCRIPT_EXTRA = "cyclegan.json"
INPUT_NAME, OUTPUT_NAME = "images", "translated"
ONNX_TOLERANCE = 1e-3  # max |onnxruntime - torch| accepted when an export is checked


class OnnxUnavailable(ConfigError):
    """The optional ONNX packages are missing; the message says how to install them."""


def export_generator(
    generator: nn.Module,
    model: ModelConfig,
    direction: str,
    path: Path,
    export_format: ExportFormat,
    load_size: int | None = None,
    source: str = "",
) -> float | None:
    """Write `generator` to `path` in `export_format`, atomically. For ONNX, returns the max
    difference between ONNX Runtime and PyTorch on an odd-sized test image."""
    # a Translator on CUDA holds its module channels_last: files get the default layout
    generator = generator.to("cpu", memory_format=torch.contiguous_format).eval()
    metadata = describe(model, direction, load_size=load_size, source=source)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    difference = None
    try:
        if export_format == "onnx":
            proto = onnx_model(generator, model, metadata)
            temporary.write_bytes(proto.SerializeToString())
            difference = check_onnx(temporary, generator, model)
        elif export_format == "torchscript":
            example = torch.zeros(1, _in_channels(model, direction), 64, 64)
            with warnings.catch_warnings():
                # the tracer warns about instance norm's shape checks, which hold for any size
                warnings.simplefilter("ignore")
                # no data-dependent control flow to check for; the check would rerun it twice
                traced = torch.jit.trace(generator, example, check_trace=False)
                torch.jit.save(
                    traced, str(temporary), _extra_files={TORCHSCRIPT_EXTRA: json.dumps(metadata)}
                )
        elif export_format == "safetensors":
            # atomic itself
            save_generator(path, generator, model, direction, load_size=load_size, source=source)
            return None
        else:
            raise ConfigError(
                f"unknown export format {export_format!r}; choose one of {list(EXPORT_SUFFIXES)}"
            )
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return difference


# ---- ONNX --------------------------------------------------------------------------------------


def onnx_model(generator: nn.Module, model: ModelConfig, metadata: dict[str, str]) -> Any:
    """The generator as an onnx.ModelProto with dynamic (batch, height, width), checked by
    onnx.checker and carrying `metadata` in its metadata_props."""
    onnx = import_onnx()
    try:
        import onnxscript  # noqa: F401  (what torch.onnx's exporter writes the graph with)
    except ImportError as error:
        raise OnnxUnavailable(
            "exporting to ONNX needs the optional packages: pip install 'cyclegan[onnx]'"
        ) from error
    stride = model_stride(model)
    example = torch.zeros(1, _in_channels(model, metadata["direction"]), 4 * stride, 4 * stride)
    dynamic = torch.export.Dim.DYNAMIC
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            generator,
            (example,),
            dynamo=True,
            verbose=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {0: dynamic, 2: dynamic, 3: dynamic}},
        )
    proto = program.model_proto
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto


def check_onnx(path: Path, generator: nn.Module, model: ModelConfig) -> float:
    """Max |onnxruntime - torch| on a batch of 2 at an odd multiple of the stride; raises if
    it exceeds ONNX_TOLERANCE (an exporter bug must not ship silently)."""
    session_generator, _ = load_onnx(path)
    stride = model_stride(model)
    images = torch.rand(2, session_generator.in_channels, 5 * stride, 3 * stride) * 2 - 1
    with torch.no_grad():
        expected = generator(images)
    difference = float((session_generator(images) - expected).abs().max())
    if not difference <= ONNX_TOLERANCE:
        raise RuntimeError(
            f"{path}: ONNX Runtime differs from PyTorch by {difference:.2e} "
            f"(> {ONNX_TOLERANCE}); please report this with your torch and onnx versions"
        )
    return difference


class OnnxGenerator:
    """An ONNX Runtime session that behaves like the generator module: tensor in, tensor out.

    `model` (the onnx.ModelProto the session runs) lets tiles share the whole image's
    instance-norm statistics, as PyTorch generators do: see `shared_norm_statistics`.
    """

    def __init__(self, session: Any, in_channels: int, model: Any, device: str = "auto") -> None:
        self.session = session
        self.in_channels = in_channels
        self.model = model
        self.device = device
        self._statistics_sessions: tuple[Any, Any] | None = None  # (recording, normalizing)
        self._recording = False
        self._statistics: list[np.ndarray] | None = None  # mean, var, mean, var, ...

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # (N, C, H, W) float32 in [-1, 1], H and W multiples of the stride
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        if self._recording:
            result, *self._statistics = self._sessions()[0].run(None, {INPUT_NAME: array})
        elif self._statistics is not None:
            (result,) = self._sessions()[1].run([OUTPUT_NAME], self._normalizing_feeds(array))
        else:
            (result,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})
        return torch.from_numpy(result)

    @contextlib.contextmanager
    def shared_norm_statistics(self, record: Callable[[], object]) -> Iterator[bool]:
        """Within this block, every InstanceNormalization normalizes with the per-image
        statistics it saw while `record()` ran, like `tiling.shared_norm_statistics` does for
        modules. Yields whether it applies (False for a graph without InstanceNormalization)."""
        from cyclegan.inference.onnx_statistics import count_norms

        if count_norms(self.model) == 0:
            yield False
            return
        try:
            self._recording = True
            record()
            self._recording = False
            yield True
        finally:
            self._recording, self._statistics = False, None

    def _sessions(self) -> tuple[Any, Any]:
        # built on first use: only tiled translation needs them
        if self._statistics_sessions is None:
            from cyclegan.inference.onnx_statistics import normalizing_graph, recording_graph

            self._statistics_sessions = (
                onnx_session(recording_graph(self.model).SerializeToString(), self.device),
                onnx_session(normalizing_graph(self.model).SerializeToString(), self.device),
            )
        return self._statistics_sessions

    def _normalizing_feeds(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from cyclegan.inference.onnx_statistics import mean_name, var_name

        assert self._statistics is not None
        # tiles of one batch are stacked tile-major: [tile 0: images 0..N-1, tile 1: ...]
        repeats = len(images) // len(self._statistics[0])
        feeds = {INPUT_NAME: images}
        for index in range(len(self._statistics) // 2):
            mean, var = self._statistics[2 * index : 2 * index + 2]
            feeds[mean_name(index)] = np.tile(mean, (repeats, 1, 1, 1))
            feeds[var_name(index)] = np.tile(var, (repeats, 1, 1, 1))
        return feeds


def onnx_session(source: Path | bytes, device: str = "auto", threads: int = 0) -> Any:
    """An onnxruntime InferenceSession on CUDA when asked (or auto and available), else CPU."""
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise ConfigError(
            "--device cuda: this onnxruntime has no CUDA provider "
            "(install onnxruntime-gpu) ; use --device cpu"
        )
    if device in ("cuda", "auto") and "CUDAExecutionProvider" in available:
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3  # errors only: its warnings are about CUDA provider setup
    model = str(source) if isinstance(source, Path) else source
    return ort.InferenceSession(model, options, providers=providers)


def load_onnx(path: Path, device: str = "auto") -> tuple[OnnxGenerator, dict[str, Any]]:
    """An exported ONNX generator and its metadata."""
    onnx = import_onnx()
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf decode errors have no common base class
        raise ConfigError(f"{path} is not a readable ONNX file: {error}") from error
    metadata = parse_metadata({p.key: p.value for p in proto.metadata_props}, path)
    session = onnx_session(path, device)
    in_channels = _in_channels(metadata["model"], metadata["direction"])
    return OnnxGenerator(session, in_channels, proto, device), metadata


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise OnnxUnavailable(
            "ONNX needs the optional packages: pip install 'cyclegan[onnx]'"
        ) from error
    return onnx


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise OnnxUnavailable(
            "--backend onnxruntime needs the optional packages: pip install 'cyclegan[onnx]'"
        ) from error
    return onnxruntime


# ---- TorchScript -------------------------------------------------------------------------------


def is_torchscript(path: Path) -> bool:
    """Whether `path` is a TorchScript archive, from its zip members' names alone (nothing is
    loaded): TorchScript holds compiled code (`code/`, `constants.pkl`); a torch.save file
    (checkpoint, state dict) is a zip too but holds only `data.pkl` and tensors."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def named_torchscript(path: Path) -> bool:
    """Whether the file's name says it is TorchScript (NAME.torchscript.pt, as export writes)."""
    return path.name.lower().endswith(EXPORT_SUFFIXES["torchscript"])


def refuse_unnamed_torchscript(path: Path) -> None:
    """ConfigError for a TorchScript archive not named as such: loading it would run its code,
    which a .pt or .pth file's name does not announce."""
    raise ConfigError(
        f"{path} is TorchScript (it holds compiled code, which loading runs), not a checkpoint "
        f"or state dict; to load it on purpose, rename it {path.stem}"
        f"{EXPORT_SUFFIXES['torchscript']} or pass --torchscript (in Python: torchscript=True), "
        "and only for a file you trust"
    )


def load_torchscript(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """A TorchScript generator and its metadata. Loading TorchScript runs its compiled code:
    callers load only files named or asked for as TorchScript, which the user trusts."""
    if not is_torchscript(path):
        raise ConfigError(
            f"{path} is no TorchScript archive (it holds no compiled code): load it without "
            f"--torchscript, under a name that does not end in {EXPORT_SUFFIXES['torchscript']}"
        )
    extra = {TORCHSCRIPT_EXTRA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as error:
        raise ConfigError(f"{path} is not a loadable TorchScript file: {error}") from error
    if not extra[TORCHSCRIPT_EXTRA]:
        raise ConfigError(
            f"{path} is a TorchScript file without cyclegan metadata ({TORCHSCRIPT_EXTRA}); "
            "export it with `cyclegan export --format torchscript`"
        )
    return module, parse_metadata(json.loads(extra[TORCHSCRIPT_EXTRA]), path)


# ---- shared ------------------------------------------------------------------------------------


def model_stride(model: ModelConfig) -> int:
    """Sides must be multiples of this: 2 ** the generator's downsamplings."""
    from cyclegan.models import GENERATORS

    return 2 ** GENERATORS[model.generator][1]


def _in_channels(model: ModelConfig, direction: str) -> int:
    return model.channels(direction)[0]
