"""Steadier video translation, and how steady a video is.

Translating each frame alone turns every small change between frames (sensor noise, a
re-encoded block, a slight move) into a change of texture and colour: flicker. Both the
measure and the fix follow the motion of the *input*, estimated as dense optical flow
(OpenCV's DIS) from each frame back to the one before:

- **Warping error** (Lai et al., ECCV 2018): warp the previous output by that flow and take
  the mean absolute difference to the current output over the pixels where the flow is
  reliable (it maps forth and back to within a pixel, and the warped previous input matches
  the current input). The same error of the input video itself is the floor to compare with.
- **Steadying** (`Steadier`): each frame's translated *change* (output minus input) is blended
  with the previous frame's steadied change, warped by the flow, where the flow is reliable;
  elsewhere (new content, occlusions, cuts) the frame keeps its own translation exactly. Static
  regions then keep the change they had, moving ones carry it along, and nothing is smeared
  where the motion is unknown. With `blend="output"` the outputs themselves are blended
  instead: the input's own frame-to-frame noise is smoothed too, not only the translation's.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

import numpy as np

from cyclegan.inference.options import SteadyBlend

FLOW_CONSISTENCY_PX = 1.0  # forth-and-back flow must return to within this many pixels
PHOTOMETRIC_LEVELS = 12.0  # warped previous input within this many 8-bit levels (mean of RGB)
DEFAULT_STRENGTH = 0.8  # weight of the previous frame's steadied change where reliable


def import_cv2() -> object:
    try:
        import cv2
    except ImportError as error:  # a clear line, not a traceback, for a missing extra
        from cyclegan.config import ConfigError

        raise ConfigError(
            f"steady video translation needs OpenCV ({error}): pip install 'cyclegan[video]'"
        ) from None
    return cv2


def gray(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W) uint8 -> (H, W) uint8 luminance."""
    if frame.ndim == 2:
        return frame
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (frame[..., :3].astype(np.float32) @ weights).clip(0, 255).astype(np.uint8)


class FlowEstimator:
    """Dense optical flow between consecutive frames (OpenCV DIS, its medium preset)."""

    def __init__(self) -> None:
        cv2 = import_cv2()
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]

    def flow(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """(H, W, 2) float32: where each pixel of `source` is found in `target` (dx, dy)."""
        return self._dis.calc(gray(source), gray(target), None)

    def warp(self, image: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """`image` (of the flow's target frame) brought to the flow's source frame: the value
        at p + flow(p), bilinear, borders replicated. Float arrays stay float."""
        height, width = flow.shape[:2]
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32),
                                     np.arange(height, dtype=np.float32))  # fmt: skip
        cv2 = self._cv2
        return cv2.remap(  # type: ignore[attr-defined]
            image,
            grid_x + flow[..., 0],
            grid_y + flow[..., 1],
            interpolation=cv2.INTER_LINEAR,  # type: ignore[attr-defined]
            borderMode=cv2.BORDER_REPLICATE,  # type: ignore[attr-defined]
        )

    def backward_flow(
        self, current: np.ndarray, previous: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The flow from `current` back to `previous` and where it is reliable ((H, W) bool):
        the forward flow from the found place returns to within FLOW_CONSISTENCY_PX, and the
        previous frame warped by it matches the current one within PHOTOMETRIC_LEVELS."""
        back = self.flow(current, previous)
        forth = self.flow(previous, current)
        returned = back + self.warp(forth, back)  # ~0 where the two flows agree
        consistent = np.linalg.norm(returned, axis=2) < FLOW_CONSISTENCY_PX
        warped = self.warp(previous, back).astype(np.float32)
        difference = np.abs(warped - current.astype(np.float32))
        if difference.ndim == 3:
            difference = difference.mean(axis=2)
        return back, consistent & (difference < PHOTOMETRIC_LEVELS)


class Steadier:
    """Steadies a translated video frame by frame (module docstring): `steady(input,
    output)` in display order, uint8 (H, W, C) arrays of one size, returns the steadied
    output. `strength` in [0, 1): how much of the previous steadied change (or output, with
    `blend="output"`) a reliable pixel keeps (0: per-frame translation)."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, blend: SteadyBlend = "change") -> None:
        from cyclegan.config import ConfigError

        if not 0 <= strength < 1:
            raise ConfigError(f"the steadying strength must be in [0, 1), got {strength}")
        if blend not in typing.get_args(SteadyBlend):
            raise ConfigError(
                f"unknown steadying blend {blend!r}; choose one of "
                f"{list(typing.get_args(SteadyBlend))}"
            )
        self.strength = strength
        self.blend = blend
        self.flows = FlowEstimator()
        self._previous: np.ndarray | None = None  # the previous input frame
        self._change: np.ndarray | None = None  # its steadied change, float32

    def steady(self, source: np.ndarray, translated: np.ndarray) -> np.ndarray:
        # blending outputs is blending changes measured from a zero base: one code path
        base = source.astype(np.float32) if self.blend == "change" else np.zeros((), np.float32)
        change = translated.astype(np.float32) - base
        if self._previous is not None and self._previous.shape == source.shape:
            flow, reliable = self.flows.backward_flow(source, self._previous)
            carried = self.flows.warp(self._change, flow)
            if carried.ndim < change.ndim:
                carried = carried[..., None]
            blended = self.strength * carried + (1 - self.strength) * change
            mask = reliable[..., None] if change.ndim == 3 else reliable
            change = np.where(mask, blended, change)
        self._previous, self._change = source, change
        return (base + change).round().clip(0, 255).astype(np.uint8)


@dataclass
class WarpingError:
    """Accumulates the warping error of a translated video and of its input (module
    docstring); mean absolute difference in 8-bit levels over the reliable pixels."""

    output_sum: float = 0.0
    input_sum: float = 0.0
    pixels: int = 0
    pairs: int = 0

    def __post_init__(self) -> None:
        self.flows = FlowEstimator()
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, source: np.ndarray, translated: np.ndarray) -> None:
        """The next frame in display order: its input and its translation (one size)."""
        if self._previous is not None and self._previous[0].shape == source.shape:
            previous_source, previous_output = self._previous
            flow, reliable = self.flows.backward_flow(source, previous_source)
            count = int(reliable.sum())
            if count:
                self.output_sum += _masked_error(
                    self.flows.warp(previous_output, flow), translated, reliable
                )
                self.input_sum += _masked_error(
                    self.flows.warp(previous_source, flow), source, reliable
                )
                self.pixels += count
                self.pairs += 1
        self._previous = (source, translated)

    @property
    def output(self) -> float:
        """The translation's warping error (8-bit levels); nan before two frames."""
        return self.output_sum / self.pixels if self.pixels else float("nan")

    @property
    def input(self) -> float:
        """The input video's own warping error, the floor to compare with."""
        return self.input_sum / self.pixels if self.pixels else float("nan")


def _masked_error(warped: np.ndarray, current: np.ndarray, mask: np.ndarray) -> float:
    """Sum over the masked pixels of the mean absolute difference of their channels."""
    difference = np.abs(warped.astype(np.float32) - current.astype(np.float32))
    if difference.ndim == 3:
        difference = difference.mean(axis=2)
    return float(difference[mask].sum())
