"""Translate images with a trained generator, at each image's own size.

A `Translator` wraps one generator (one direction) from any source: a run folder, a training
checkpoint, an exported safetensors / ONNX / TorchScript file, a generator of the reference
implementation, or a published pretrained name. It runs on PyTorch or ONNX Runtime.

Generators need sides that are multiples of their stride (4 for the ResNet presets, 8 for
the seed's); images are padded by reflection up to the next multiple and cropped back, so a
317x211 photo comes back 317x211 (the seed's evaluate drifted to multiples of 8). Optional
steps around that: resize the short side first (`size`), translate at the scale the model
was trained at and resize back (`scale="train"`), translate a smaller copy and carry its
change to full size (`work_size`: fast, detail kept), and translate in tiles (`tile`) so that
memory stays bounded for images of any size.

PyTorch generators run under `torch.inference_mode` in a chosen precision (`auto`: the one
policy of `cyclegan.precision`, shared with training: bf16 autocast on CUDA GPUs that support
it, else fp16; bf16 on CPUs with bf16 instructions, else fp32), and channels_last memory where
it measures faster (`default_channels_last`). ONNX files run in their own precision: fp32, or
int8 as `cyclegan export --quantize int8` writes them.
"""

from __future__ import annotations

import typing
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch
from PIL import Image
from torch import nn

from cyclegan import device as this_machine
from cyclegan.checkpoint import (
    CheckpointError,
    find_checkpoint,
    generator_from_checkpoint,
    load_checkpoint,
    load_weights_only,
)
from cyclegan.config import ConfigError, ModelConfig, load_config
from cyclegan.data.images import (
    alpha_channel,
    array_from_image,
    convert_mode,
    image_from_array,
    image_to_tensor,
    resize_short_side,
    short_side_size,
    tensor_to_image,
)
from cyclegan.device import autocast, device_precision, pick_device
from cyclegan.inference.export import (
    OnnxGenerator,
    is_torchscript,
    load_onnx,
    load_torchscript,
    model_stride,
    named_torchscript,
    onnx_model,
    onnx_session,
    refuse_unnamed_torchscript,
)
from cyclegan.inference.options import (
    Backend,
    OutputOptions,
    Scale,
    SteadyBlend,
    VideoOptions,
)
from cyclegan.inference.reference import (
    REFERENCE_LOAD_SIZE,
    ReferenceFormatError,
    is_reference_state,
    reference_generator,
)
from cyclegan.inference.tiling import downscale_to, shared_norm_statistics, translate_tiled
from cyclegan.models.artifact import describe, load_generator
from cyclegan.models.cyclegan import make_generator
from cyclegan.models.generator import generator_min_side, translate_any_size
from cyclegan.precision import Precision

if TYPE_CHECKING:
    from cyclegan.inference.video import VideoReport

DIRECTIONS = ("AtoB", "BtoA")
DEFAULT_OVERLAP = 64
TILES_PER_BATCH = 4
# the precisions that run faster channels_last on a CPU with AMX: at 512x512 on a Xeon, fp32
# ran at 0.81-0.89x the speed of the default layout, bf16 at 1.03-1.16x; on an AMD EPYC with
# AVX-512 BF16 and no AMX, bf16 ran slower channels_last (0.94x at 512 px, 0.89x at 720p), so
# there nothing is (benchmarks/RESULTS.md)
CPU_CHANNELS_LAST = frozenset({"bf16"})

# the most pixels one generator pass takes on the CPU: batches of 4 720p frames ran at 0.61x
# the speed per frame of one at a time (bf16, the fast preset's generator; fp32 0.68x);
# see benchmarks/RESULTS.md, "Video translation"
CPU_BATCH_PIXELS = 512 * 512


class Translator:
    """A generator ready for inference: PIL in, PIL out, same size; numpy arrays in, arrays
    out; or (N, C, H, W) tensors in [-1, 1] through `translate_tensor`."""

    def __init__(
        self,
        generator: nn.Module | OnnxGenerator,
        model: ModelConfig,
        direction: str,
        device: str | torch.device = "auto",
        *,
        load_size: int | None = None,
        source: str = "",
        precision: Precision = "auto",
        channels_last: bool | None = None,
    ) -> None:
        """`generator` maps (N, C, H, W) in [-1, 1], sides multiples of the stride, to
        (N, C', H, W); `load_size` is the short side the training images had (for
        scale="train"), None when unknown. `precision` and `channels_last` (None: the
        device's faster choice) apply to PyTorch generators (see `cyclegan.precision`)."""
        _check_direction(direction)
        self.model = model
        self.direction = direction
        self.load_size = load_size
        self.source = source
        self._warned_about_tiles = False
        self.stride = model_stride(model)
        self.min_side = generator_min_side(model.generator)  # pixels, after any resizing
        self.in_channels, self.out_channels = model.channels(direction)
        if isinstance(generator, OnnxGenerator):
            _check_onnx_precision(precision)
            self.backend: Backend = "onnxruntime"
            self.device = torch.device("cpu")  # tensors go to the session through numpy
            self.precision = "fp32"
            self.channels_last = False
            self.generator: nn.Module | OnnxGenerator = generator
        else:
            self.backend = "torch"
            self.device = pick_device(device) if isinstance(device, str) else device
            self.precision = device_precision(self.device, precision)
            if channels_last is None:
                channels_last = default_channels_last(self.device, self.precision)
            self.channels_last = channels_last
            memory_format = torch.channels_last if channels_last else torch.contiguous_format
            self.generator = generator.to(self.device, memory_format=memory_format).eval()

    def __repr__(self) -> str:
        return (
            f"Translator({self.direction}, {self.model.generator} ngf={self.model.ngf}, "
            f"{self.backend} {self.precision} on {self.device}, from {self.source or 'memory'})"
        )

    # ---- where generators come from ----------------------------------------------------------

    @classmethod
    def from_run(
        cls,
        run_dir: Path | str,
        direction: str = "AtoB",
        device: str = "auto",
        epoch: int | None = None,
        backend: Backend | None = None,
        precision: Precision = "auto",
    ) -> Translator:
        """The run's generator: its exported one (generators/DIRECTION.safetensors), else the
        latest checkpoint, or the numbered checkpoint of `epoch`."""
        run_dir = Path(run_dir)
        _check_direction(direction)
        if not run_dir.is_dir():
            raise ConfigError(f"run folder {run_dir} does not exist")
        if epoch is not None:
            path = run_dir / "checkpoints" / f"epoch_{epoch:03d}.pt"
            if not path.is_file():
                kept = sorted(p.name for p in (run_dir / "checkpoints").glob("epoch_*.pt"))
                raise ConfigError(f"{path} does not exist; this run kept {kept or 'none'}")
            return cls.from_file(path, direction, device, backend, precision)
        exported = run_dir / "generators" / f"{direction}.safetensors"
        if exported.is_file():
            return cls.from_file(exported, direction, device, backend, precision)
        return cls.from_file(find_checkpoint(run_dir), direction, device, backend, precision)

    @classmethod
    def from_file(
        cls,
        path: Path | str,
        direction: str | None = None,
        device: str = "auto",
        backend: Backend | None = None,
        precision: Precision = "auto",
        *,
        torchscript: bool = False,
    ) -> Translator:
        """A training checkpoint, an exported generator (.safetensors, .onnx,
        .torchscript.pt) or a reference-implementation state dict (.pth), told apart by their
        content.

        `direction` defaults to the file's own (AtoB for checkpoints and reference files);
        `backend` defaults to onnxruntime for .onnx files and torch otherwise. TorchScript
        runs the code in the file when it loads, so it loads only from a file named
        NAME.torchscript.pt or with `torchscript=True`; another TorchScript file raises
        ConfigError, unloaded.
        """
        path = Path(path)
        if direction is not None:
            _check_direction(direction)
        if path.is_dir():
            raise ConfigError(f"{path} is a folder; give a run folder with --run, or a file")
        if not path.is_file():
            raise ConfigError(f"{path} does not exist")
        if backend is not None and backend not in typing.get_args(Backend):
            raise ConfigError(
                f"unknown backend {backend!r}; choose one of {list(typing.get_args(Backend))}"
            )
        if backend == "onnxruntime" or (backend is None and path.suffix.lower() == ".onnx"):
            _check_onnx_precision(precision)  # before the file is loaded or exported
        loaded = _load_any(path, direction, device, torchscript)
        if direction is not None and loaded.direction != direction:
            raise ConfigError(f"{path} holds the {loaded.direction} generator, not {direction}")
        generator = loaded.generator
        if backend == "torch" and isinstance(generator, OnnxGenerator):
            raise ConfigError(f"{path} is an ONNX file: it runs with --backend onnxruntime")
        if backend == "onnxruntime" and not isinstance(generator, OnnxGenerator):
            if isinstance(generator, torch.jit.ScriptModule):
                raise ConfigError(
                    f"{path} is TorchScript; for onnxruntime export the run or weights "
                    "with `cyclegan export --format onnx`"
                )
            metadata = describe(
                loaded.model, loaded.direction, load_size=loaded.load_size, source=str(path)
            )
            proto = onnx_model(generator, loaded.model, metadata)
            generator = OnnxGenerator(
                onnx_session(proto.SerializeToString(), device),
                loaded.model.channels(loaded.direction)[0],
                proto,
                device,
            )
        return cls(
            generator,
            loaded.model,
            loaded.direction,
            device,
            load_size=loaded.load_size,
            source=str(path),
            precision=precision,
        )

    @classmethod
    def from_pretrained(
        cls,
        name: str,
        device: str = "auto",
        backend: Backend | None = None,
        cache_dir: Path | str | None = None,
        base_url: str | None = None,
        progress: bool = True,
        precision: Precision = "auto",
        sha256: str | None = None,
    ) -> Translator:
        """A published generator of the reference implementation (`cyclegan pretrained list`),
        downloaded into the cache on first use and checked against its published SHA-256 (or
        `sha256`, lowercase hex; see `fetch_pretrained`). Its direction is its name's
        (horse2zebra: horse -> zebra), called AtoB."""
        from cyclegan.inference.pretrained import PretrainedError, fetch_pretrained

        path = fetch_pretrained(name, cache_dir, base_url, progress=progress, sha256=sha256)
        try:
            return cls.from_file(path, "AtoB", device, backend, precision)
        except (ReferenceFormatError, CheckpointError) as error:
            path.unlink(missing_ok=True)
            raise PretrainedError(
                f"the cached {name} generator was damaged and is removed ({error}); "
                "run the command again to download it anew"
            ) from error

    # ---- sizes -------------------------------------------------------------------------------

    def too_small(
        self,
        image_size: tuple[int, int],
        size: int | None = None,
        scale: Scale = "native",
        work_size: int | None = None,
    ) -> str | None:
        """Why an image of `image_size` (width, height) cannot be translated with these options,
        or None: the generator needs `min_side` pixels on each side of what it translates, which
        is the image after `size`, scale="train" or `work_size` resized it (see
        `generator_min_side`)."""
        width, height = self._translated_size(image_size, size, scale)
        if work_size is not None and work_size < min(width, height):
            width, height = short_side_size((width, height), work_size)
        if min(width, height) >= self.min_side:
            return None
        resized = "" if (width, height) == tuple(image_size) else f", {width}x{height} resized"
        return (
            f"too small ({image_size[0]}x{image_size[1]}{resized}; at least {self.min_side} px "
            "on each side)"
        )

    def _translated_size(
        self, image_size: tuple[int, int], size: int | None, scale: Scale
    ) -> tuple[int, int]:
        """(width, height) at which `_prepare` hands an image of `image_size` to the generator."""
        if size is not None:
            return short_side_size(image_size, size)
        if scale == "train" and self.load_size is not None:
            return short_side_size(image_size, self.load_size)
        return image_size

    # ---- tensors -----------------------------------------------------------------------------

    def translate_tensor(
        self,
        images: torch.Tensor,
        tile: int | None = None,
        overlap: int | None = None,
        work_size: int | None = None,
    ) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1], any H and W -> (N, C', H, W) float32 in [-1, 1], on the CPU.

        With `tile`, images larger than tile x tile go through in overlapping tiles (a multiple
        of the stride) blended over `overlap` pixels (default: min(64, tile / 4)); see
        `cyclegan.inference.tiling`. With `work_size`, images whose short side is larger are
        translated at that short side and the translation's change is carried to full size
        (`_translate_small`).
        """
        with torch.inference_mode():
            if work_size is not None and min(images.shape[-2:]) > work_size:
                translated = self._translate_small(images, tile, overlap, work_size)
            else:
                translated = self._translate_tensor(images, tile, overlap)
        # an ordinary tensor again, which callers may change in place or use with autograd
        return translated.clone()

    def _translate_tensor(
        self, images: torch.Tensor, tile: int | None, overlap: int | None
    ) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (N, {self.in_channels}, H, W) images, got {tuple(images.shape)}"
            )
        images = images.float()
        height, width = images.shape[-2:]
        if min(height, width) < self.min_side:
            raise ValueError(
                f"images of {width}x{height} are too small for the {self.model.generator} "
                f"generator: it needs at least {self.min_side} px on each side"
            )
        if tile is None or (height <= tile and width <= tile):
            per_pass = self.images_per_pass(height, width)
            return torch.cat([self._forward(part).cpu() for part in images.split(per_pass)])
        overlap = default_overlap(tile) if overlap is None else overlap
        check_tiling(tile, overlap, self.stride, self.min_side)

        def record() -> object:
            # the statistics pass costs the memory of one batch of tiles
            whole = downscale_to(images, TILES_PER_BATCH * tile * tile, self.min_side)
            return self._forward(whole)

        generator = self.generator
        if isinstance(generator, OnnxGenerator):
            shared = generator.shared_norm_statistics(record)
        else:
            shared = shared_norm_statistics(generator, record)
        with shared as applies:
            if not applies:
                self._warn_tiles_normalize_themselves()
            return translate_tiled(
                self._forward, images, tile, overlap, self.out_channels, TILES_PER_BATCH
            )

    def _translate_small(
        self, images: torch.Tensor, tile: int | None, overlap: int | None, work_size: int
    ) -> torch.Tensor:
        """Translate at a short side of `work_size`, then add the change the translation made
        there, upscaled, to the full-size image: the network's work shrinks with the square of
        the side, and the output keeps the input's size and detail. A generator's global paths
        (colour map, sharpness filter, detail path: per pixel or nearly, and cheap) apply at
        full size, so only the network's own change is upscaled."""
        if self.in_channels != self.out_channels:
            raise ConfigError(
                f"--work-size adds the translation's change to the input, which needs as many "
                f"output as input channels; this generator maps {self.in_channels} to "
                f"{self.out_channels}"
            )
        images = images.float()
        height, width = images.shape[-2:]
        small_width, small_height = short_side_size((width, height), work_size)
        small = nn.functional.interpolate(
            images, size=(small_height, small_width), mode="bilinear", antialias=True
        ).clamp(-1, 1)
        change = self._translate_tensor(small, tile, overlap) - self._global_paths(small)
        upscaled = nn.functional.interpolate(change, size=(height, width), mode="bilinear")
        return (self._global_paths(images) + upscaled).clamp(-1, 1)

    def _global_paths(self, images: torch.Tensor) -> torch.Tensor:
        """`images` through the generator's global paths (float32, on the CPU), or as they are
        where it has none or they are not reachable (ONNX, TorchScript)."""
        paths = getattr(self.generator, "global_paths", None)
        if not isinstance(self.generator, nn.Module) or not callable(paths):
            return images
        outputs = []
        for part in images.split(self.images_per_pass(*images.shape[-2:])):
            with autocast(self.device, self.precision):
                outputs.append(paths(part.to(self.device)).float().cpu())
        return torch.cat(outputs)

    def images_per_pass(self, height: int, width: int) -> int:
        """How many images of height x width go through the generator at once: on the CPU
        as many as fit CPU_BATCH_PIXELS (a larger batch measured slower per image there: its
        activations leave the caches), at least one; elsewhere any number."""
        if self.device.type != "cpu":
            return 1 << 30
        return max(1, CPU_BATCH_PIXELS // (height * width))

    def _warn_tiles_normalize_themselves(self) -> None:
        if not self._warned_about_tiles:
            self._warned_about_tiles = True
            warnings.warn(
                f"{self.source or 'this generator'} cannot take the whole image's "
                "instance-norm statistics, so each tile normalizes itself and tones may differ "
                "between tiles; translate without --tile, with larger tiles, or with the "
                "safetensors export or checkpoint of this generator",
                stacklevel=3,
            )

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pad (N, C, H, W) to multiples of the stride, run the generator, crop back; float32."""
        images = images.to(self.device)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            translated = translate_any_size(self.generator, images, self.stride)
        return translated.float()

    # ---- PIL images and numpy arrays ---------------------------------------------------------

    @overload
    def __call__(
        self,
        image: Image.Image,
        *,
        size: int | None = None,
        scale: Scale = "native",
        tile: int | None = None,
        overlap: int | None = None,
        work_size: int | None = None,
    ) -> Image.Image: ...

    @overload
    def __call__(
        self,
        image: np.ndarray,
        *,
        size: int | None = None,
        scale: Scale = "native",
        tile: int | None = None,
        overlap: int | None = None,
        work_size: int | None = None,
    ) -> np.ndarray: ...

    def __call__(
        self,
        image: Image.Image | np.ndarray,
        *,
        size: int | None = None,
        scale: Scale = "native",
        tile: int | None = None,
        overlap: int | None = None,
        work_size: int | None = None,
    ) -> Image.Image | np.ndarray:
        """Translate one image: PIL in, PIL out; numpy array in, numpy array out. See
        `translate_images` for the options and the array layouts."""
        return self.translate_images(
            [image], size=size, scale=scale, tile=tile, overlap=overlap, work_size=work_size
        )[0]

    def translate_images(
        self,
        images: Sequence[Image.Image | np.ndarray],
        *,
        size: int | None = None,
        scale: Scale = "native",
        tile: int | None = None,
        overlap: int | None = None,
        work_size: int | None = None,
    ) -> list[Image.Image | np.ndarray]:
        """Translate PIL images or numpy arrays, each returned as the type it came in; those of
        one size go through the generator as one batch.

        Any PIL mode is accepted (gray, palette, RGBA, CMYK, 16-bit): it is converted to the
        generator's channels with alpha composited over white, and an input's alpha channel is
        put back on its output (RGBA / LA). Arrays are uint8 (H, W) or (H, W, 1) gray,
        (H, W, 2) gray + alpha, (H, W, 3) RGB or (H, W, 4) RGBA, and come back uint8 in the
        output's layout: (H, W, 3) from an RGB generator ((H, W, 4) with alpha), (H, W) or
        (H, W, 1) from a gray one, as given. Other dtypes raise TypeError, other shapes
        ValueError.

        The output has the input's size, unless `size` resizes the short side to `size` first
        (the output keeps that size). scale="train" translates at the short side the model was
        trained at (its load size), so objects appear at the scale it knows, and resizes the
        result back to the input's size. `work_size` translates at that short side and carries
        the change to the image's full size, detail kept (see `translate_tensor`).

        An image smaller than `min_side` on a side (after that resizing) raises ValueError
        saying which and why, before any image is translated; `too_small` tells beforehand.
        """
        if size is not None and scale != "native":
            raise ConfigError("give either a size or scale='train', not both")
        if scale not in ("native", "train"):
            raise ConfigError(f"unknown scale {scale!r}; choose native or train")
        OutputOptions(size=size, scale=scale, work_size=work_size)  # its checks, in one place
        if scale == "train" and self.load_size is None:
            raise ConfigError(
                f"the training scale of {self.source or 'this generator'} is unknown (it "
                "records no load size); give --size N instead"
            )
        pictures = [_as_image(image) for image in images]
        for index, picture in enumerate(pictures):
            reason = self.too_small(picture.size, size, scale, work_size)
            if reason is not None:
                which = "the image" if len(pictures) == 1 else f"image {index} of {len(pictures)}"
                raise ValueError(f"{which} is {reason}")
        prepared = [self._prepare(picture, size, scale) for picture in pictures]
        results: list[Image.Image | None] = [None] * len(prepared)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(prepared):
            by_shape.setdefault(tuple(item.tensor.shape), []).append(index)
        for indices in by_shape.values():
            batch = torch.stack([prepared[index].tensor for index in indices])
            translated = self.translate_tensor(
                batch, tile=tile, overlap=overlap, work_size=work_size
            )
            for index, tensor in zip(indices, translated):
                results[index] = _finish(tensor, prepared[index])
        return [
            array_from_image(result, given) if isinstance(given, np.ndarray) else result
            for given, result in zip(images, results)
            if result is not None
        ]

    def translate_video(
        self,
        source: Path | str,
        out: Path | str,
        *,
        size: int | None = None,
        scale: Scale = "native",
        tile: int | None = None,
        overlap: int | None = None,
        work_size: int | None = None,
        batch_size: int = 4,
        side_by_side: bool = False,
        crf: int = 18,
        steady: bool = False,
        strength: float = 0.8,
        steady_blend: SteadyBlend = "change",
        fps: float = 25.0,
        audio: bool = True,
        flicker: bool = False,
        progress: bool = True,
    ) -> VideoReport:
        """Translate a video file, an animated GIF or a folder of frames into `out`: a video
        file (.mp4, .mov, .m4v, .mkv: H.264; .webm: VP9), a .gif or a folder of PNG frames,
        keeping the frames' size, timestamps, rotation and the sound (`cyclegan.inference.video`;
        the options are `cyclegan translate`'s). Returns what was done (frames, seconds,
        audio, and with `flicker` the warping errors of output and input)."""
        from cyclegan.inference.video import translate_video

        options = OutputOptions(size=size, scale=scale, tile=tile, overlap=overlap,
                                work_size=work_size, batch_size=batch_size,
                                side_by_side=side_by_side)  # fmt: skip
        video = VideoOptions(crf=crf, steady=steady, strength=strength, fps=fps, audio=audio,
                             steady_blend=steady_blend,
                             flicker=flicker)  # fmt: skip
        return translate_video(self, Path(source), Path(out), options, video, progress=progress)

    def _prepare(self, image: Image.Image, size: int | None, scale: Scale) -> _Prepared:
        alpha = alpha_channel(image)
        image = convert_mode(image, self.in_channels)
        final = image.size
        if size is not None:
            final = short_side_size(image.size, size)
            image = resize_short_side(image, size)
        elif scale == "train" and self.load_size is not None:
            image = resize_short_side(image, self.load_size)
        return _Prepared(image_to_tensor(image), alpha, final)


def _as_image(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return image_from_array(image)
    raise TypeError(
        f"expected a PIL image or a numpy array, got {type(image).__name__}; (N, C, H, W) "
        "tensors in [-1, 1] go through translate_tensor"
    )


@dataclass
class _Prepared:
    tensor: torch.Tensor  # (C, h, w) in [-1, 1], at the size it is translated at
    alpha: Image.Image | None  # the input's alpha channel ("L"), at the input's size
    size: tuple[int, int]  # (width, height) of the output


def _finish(tensor: torch.Tensor, prepared: _Prepared) -> Image.Image:
    image = tensor_to_image(tensor)
    if image.size != prepared.size:
        image = image.resize(prepared.size, Image.Resampling.BICUBIC)
    if prepared.alpha is not None:
        alpha = prepared.alpha
        if alpha.size != prepared.size:
            alpha = alpha.resize(prepared.size, Image.Resampling.BICUBIC)
        image.putalpha(alpha)  # RGB -> RGBA, L -> LA
    return image


def default_channels_last(device: torch.device, precision: str, amx: bool | None = None) -> bool:
    """Whether channels_last memory is the faster layout on `device`'s type in `precision`:
    always on CUDA, where tensor cores want it; on a CPU with AMX (`amx`, None: this one's)
    for CPU_CHANNELS_LAST, and nowhere on other CPUs (measured)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu" or precision not in CPU_CHANNELS_LAST:
        return False
    return this_machine.cpu_has_amx() if amx is None else amx


def _check_onnx_precision(precision: str) -> None:
    if precision not in ("auto", "fp32"):
        raise ConfigError(
            f"--precision {precision} applies to PyTorch generators; ONNX Runtime runs the "
            "file's own precision (int8 files come from `cyclegan export --quantize int8`): "
            "drop --precision or use --backend torch"
        )


def default_overlap(tile: int) -> int:
    return min(DEFAULT_OVERLAP, tile // 4)


def check_tiling(tile: int, overlap: int, stride: int, min_side: int) -> None:
    """Refuse a tile size the generator cannot take: a multiple of its stride, and at least
    its smallest side (`generator_min_side`), since edge tiles are no larger than the tile."""
    smallest = -(-min_side // stride) * stride
    if tile < smallest or tile % stride:
        raise ConfigError(
            f"--tile {tile}: the tile size must be a multiple of the generator's stride "
            f"{stride} and at least {smallest} (e.g. {max(smallest, tile - tile % stride)})"
        )
    if not 0 <= overlap < tile:
        raise ConfigError(f"--overlap {overlap} must be at least 0 and less than --tile {tile}")


# ---- loading -----------------------------------------------------------------------------------


@dataclass
class _Loaded:
    generator: nn.Module | OnnxGenerator
    model: ModelConfig
    direction: str
    load_size: int | None


def _load_any(path: Path, direction: str | None, device: str, torchscript: bool) -> _Loaded:
    """Read `path` by what it holds (the suffix only tells .onnx and .safetensors apart);
    TorchScript only where named or asked for (`torchscript`), since loading runs its code."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        session, metadata = load_onnx(path, device)
        return _Loaded(session, metadata["model"], metadata["direction"], metadata["load_size"])
    if suffix == ".safetensors":
        generator, metadata = load_generator(path)
        load_size = metadata.get("load_size") or _run_load_size(path.parent.parent)
        return _Loaded(generator, metadata["model"], metadata["direction"], load_size)
    if torchscript or named_torchscript(path):
        script, metadata = load_torchscript(path)
        model, direction = metadata["model"], metadata["direction"]
        return _Loaded(_rebuilt(script, model, direction), model, direction, metadata["load_size"])
    if is_torchscript(path):  # before torch.load, which would hand it to torch.jit.load < 2.6
        refuse_unnamed_torchscript(path)
    content = _read_torch_file(path)
    if _is_checkpoint(content):
        checkpoint = load_checkpoint(path)  # validates it and parses its config
        config = checkpoint["config"]
        direction = direction or config.model.directions[0]  # a distillation may lack AtoB
        generator = generator_from_checkpoint(checkpoint, direction, path)
        return _Loaded(generator, config.model, direction, config.data.load_size)
    if isinstance(content, dict) and is_reference_state(content):
        direction = direction or "AtoB"
        generator, model = reference_generator(content, path, direction)
        return _Loaded(generator, model, direction, REFERENCE_LOAD_SIZE)
    first = list(content)[:3] if isinstance(content, dict) else type(content).__name__
    raise CheckpointError(
        f"{path} is no generator cyclegan can read: not a cyclegan checkpoint, an export "
        f"(.safetensors, .onnx, TorchScript) or a reference generator (keys 'model.N...'); "
        f"it holds {first}"
    )


def _rebuilt(script: nn.Module, model: ModelConfig, direction: str) -> nn.Module:
    """A TorchScript generator as the PyTorch module it was traced from: the same weights and
    results, and unlike a compiled graph it takes the hooks through which tiles share the
    whole image's instance-norm statistics. A graph whose weights do not fit the architecture
    its metadata names runs as it is."""
    generator = make_generator(model, direction)
    try:
        generator.load_state_dict(script.state_dict())
    except RuntimeError:
        return script
    return generator.eval()


def holds_both_directions(path: Path) -> bool:
    """Whether `path` is a training checkpoint (both generators); exports and reference
    files hold one."""
    if path.suffix.lower() in (".onnx", ".safetensors") or is_torchscript(path):
        return False
    return _is_checkpoint(_read_torch_file(path))


def _is_checkpoint(content: Any) -> bool:
    return isinstance(content, dict) and "format_version" in content and "models" in content


def _read_torch_file(path: Path) -> Any:
    # memory-mapped where the format allows, so sniffing a large checkpoint costs little
    return load_weights_only(
        path, "a cyclegan checkpoint or generator", mmap=zipfile.is_zipfile(path)
    )


def _run_load_size(run_dir: Path) -> int | None:
    """The load size in a run folder's config.yaml, for generators exported by training."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return None
    try:
        return load_config(config_path).data.load_size
    except ConfigError:
        return None


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ConfigError(f"unknown direction {direction!r}; choose one of {list(DIRECTIONS)}")
    return direction
