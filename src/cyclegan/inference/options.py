"""What a user chooses about translation and export, written once and free of torch: the
command line generates `cyclegan translate`'s output flags from `OutputOptions` (the field
docstrings are their help) and takes its format and backend choices from here (precision:
`cyclegan.precision`, shared with training)."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from cyclegan.config import ConfigError

Scale = Literal["native", "train"]
SteadyBlend = Literal["change", "output"]  # what --steady carries along the flow
Backend = Literal["torch", "onnxruntime"]
OutputFormat = Literal["png", "jpg", "webp"]
ExportFormat = Literal["onnx", "torchscript", "safetensors"]
Quantize = Literal["int8"]
OUTPUT_SUFFIXES: dict[OutputFormat, str] = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
EXPORT_SUFFIXES: dict[ExportFormat, str] = {
    "onnx": ".onnx",
    # TorchScript runs its code when loaded: only files named so load without --torchscript
    "torchscript": ".torchscript.pt",
    "safetensors": ".safetensors",
}
DEFAULT_MAX_PIXELS = 200_000_000
DEFAULT_MIN_PSNR = 30.0  # dB against the fp32 output: an int8 export below it is refused


@dataclass(frozen=True)
class OutputOptions:
    """How translated images are computed and written."""

    size: int | None = None
    """resize the short side to this first (the output keeps that size)"""
    scale: Scale = "native"
    """train: translate at the short side the model was trained at (its load size), then
    resize back to the input's size"""
    work_size: int | None = None
    """translate at this short side and add the translation's change, upscaled, to the
    full-size image: the output keeps the input's size and fine detail, and at half the side
    takes about a quarter of the generator's time (the colour map and other global paths still
    apply at full size; fine texture the translation adds is softened). For fast video"""
    tile: int | None = None
    """translate in tiles of this size (a multiple of the generator's stride, at least twice
    it, e.g. 512): any image size fits in bounded memory (default: whole images)"""
    overlap: int | None = None
    """tile overlap in pixels, blended with linear ramps (default: min(64, tile / 4))"""
    batch_size: int = 4
    """images of one size read and translated together (on the CPU, at most 512x512 pixels
    of them a generator pass)"""
    format: OutputFormat | None = None
    """output format (default: each input's own)"""
    quality: int = 95
    """JPEG/WebP quality"""
    side_by_side: bool = False
    """write input | output pairs instead of the output alone"""
    max_pixels: int = DEFAULT_MAX_PIXELS
    """refuse images with more pixels, a decompression-bomb guard; 0: no limit"""

    def __post_init__(self) -> None:
        if self.size is not None and self.size <= 0:
            raise ConfigError(f"--size must be positive, got {self.size}")
        if self.scale not in ("native", "train"):
            raise ConfigError(f"unknown scale {self.scale!r}; choose native or train")
        if self.format is not None and self.format not in OUTPUT_SUFFIXES:
            raise ConfigError(
                f"unknown output format {self.format!r}; choose one of {list(OUTPUT_SUFFIXES)}"
            )
        if self.size is not None and self.scale != "native":
            raise ConfigError("give either --size or --scale train, not both")
        if self.work_size is not None and self.work_size <= 0:
            raise ConfigError(f"--work-size must be positive, got {self.work_size}")
        if self.work_size is not None and self.scale != "native":
            raise ConfigError(
                "give either --work-size or --scale train, not both (both translate smaller "
                "than the input; --work-size keeps the input's detail)"
            )
        if self.batch_size <= 0:
            raise ConfigError(f"--batch-size must be positive, got {self.batch_size}")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"--quality must be in [1, 100], got {self.quality}")
        if self.max_pixels < 0:
            raise ConfigError(f"--max-pixels must be 0 (no limit) or more, got {self.max_pixels}")


VIDEO_CRF_RANGE = (0, 51)


@dataclass(frozen=True)
class VideoOptions:
    """How a video is translated and written (`cyclegan translate CLIP --out OUT`)."""

    crf: int = 18
    """video quality of .mp4/.mov/.mkv/.webm outputs: the encoder's constant rate factor, 0
    (lossless) to 51 (worst); 18 looks like the input, 23 is FFmpeg's default"""
    steady: bool = False
    """steady the output: each frame's translated change is blended with the previous frame's,
    carried along the input's optical flow where that flow is reliable, so textures and colours
    do not flicker (needs OpenCV: cyclegan[video])"""
    strength: float = 0.8
    """with --steady: how much of the previous frame's change a reliably tracked pixel keeps,
    in [0, 1)"""
    steady_blend: SteadyBlend = "change"
    """with --steady, what is carried along the flow and blended: the translation's change
    (output minus input: the input's own noise stays as it is) or the output itself (the
    input's noise is smoothed as well)"""
    fps: float = 25.0
    """frames per second of a video made from a folder of frames"""
    audio: bool = True
    """keep the input's sound: its first audio stream, copied as it is where the output
    container takes its codec, else re-encoded"""
    flicker: bool = False
    """also measure flicker: the warping error of the output (the previous output frame warped
    by the input's optical flow, against the current one, in 8-bit levels where the flow is
    reliable) beside the input video's own (needs OpenCV; slower)"""

    def __post_init__(self) -> None:
        low, high = VIDEO_CRF_RANGE
        if not low <= self.crf <= high:
            raise ConfigError(f"--crf must be in [{low}, {high}], got {self.crf}")
        if not 0 <= self.strength < 1:
            raise ConfigError(f"--strength must be in [0, 1), got {self.strength}")
        if self.steady_blend not in typing.get_args(SteadyBlend):
            raise ConfigError(
                f"unknown --steady-blend {self.steady_blend!r}; choose change or output"
            )
        if not self.fps > 0:
            raise ConfigError(f"--fps must be positive, got {self.fps}")
