"""Generators of the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix).

Its `ResnetGenerator` is one `nn.Sequential` named `model`, so its state dict has flat keys
(`model.1.weight`, `model.10.conv_block.5.bias`, ...), and a file carries no config. Our
generator has the same layers in the same order, split into `encoder`, `blocks` (each block's
`body` numbered like its `conv_block`) and `decoder`; this module maps the keys across and
infers the architecture (residual blocks, downsamplings, width, channels) from the keys and
shapes. Files saved by old PyTorch versions carry `running_mean` / `running_var` keys on
their instance norms, which hold no weights; they are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cyclegan.checkpoint import CheckpointError, load_weights_only
from cyclegan.config import ConfigError, ModelConfig
from cyclegan.models import GENERATORS, make_generator
from cyclegan.models.generator import ResnetGenerator

# what the reference trains its published generators with (--load_size 286 --crop_size 256)
REFERENCE_LOAD_SIZE = 286
LEGACY_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
_KEY = re.compile(r"model\.(\d+)\.(?:conv_block\.(\d+)\.)?(weight|bias)")


class ReferenceFormatError(CheckpointError):
    """A state dict that is not a reference ResnetGenerator; the message names the key."""


@dataclass(frozen=True)
class ReferenceArchitecture:
    """What the keys and shapes of a reference generator say about it."""

    in_channels: int
    out_channels: int
    ngf: int
    num_blocks: int
    num_downsamplings: int
    dropout: bool  # the residual blocks hold a Dropout (their second conv is at index 6)

    @property
    def generator(self) -> str:
        """Our preset with these blocks and downsamplings; ReferenceFormatError if none."""
        for name, shape in GENERATORS.items():
            if shape == (self.num_blocks, self.num_downsamplings):
                return name
        presets = {name: f"{b} blocks, {d} downsamplings" for name, (b, d) in GENERATORS.items()}
        raise ReferenceFormatError(
            f"a generator with {self.num_blocks} residual blocks and {self.num_downsamplings} "
            f"downsamplings has no cyclegan preset; presets: {presets}"
        )

    def model_config(self, direction: str = "AtoB") -> ModelConfig:
        source, target = self.in_channels, self.out_channels
        if direction == "BtoA":
            source, target = target, source
        return ModelConfig(
            generator=self.generator,  # type: ignore[arg-type]
            ngf=self.ngf,
            channels_a=source,
            channels_b=target,
            # any positive value: dropout only acts in training, it only adds the layer
            dropout=0.5 if self.dropout else 0.0,
        )


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict from `path` (weights_only: opening it runs no code)."""
    state = load_weights_only(path, "a PyTorch weights file", error=ReferenceFormatError)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReferenceFormatError(f"{path} does not hold a state dict (name -> tensor)")
    return state


def is_reference_state(state: dict[str, Any]) -> bool:
    """Whether `state` looks like a reference generator: it has the first convolution's
    `model.1.weight` (any other key that does not fit is then named by the loader)."""
    return any(key.removeprefix("module.") == "model.1.weight" for key in state)


def infer_architecture(state: dict[str, torch.Tensor], source: Path | str) -> ReferenceArchitecture:
    """Read the architecture off the keys and shapes; ReferenceFormatError names the first
    key that does not fit the reference ResnetGenerator."""
    layers: dict[int, dict[str, torch.Tensor]] = {}  # reference layer index -> its weights
    for key, tensor in state.items():
        match = _KEY.fullmatch(key)
        if match is None:
            raise ReferenceFormatError(
                f"{source}: unexpected key {key!r}; a reference ResnetGenerator has keys like "
                "'model.1.weight' and 'model.10.conv_block.1.weight' (an instance-norm "
                "generator: was it trained with --norm batch or another --netG?)"
            )
        index, inner, kind = int(match[1]), match[2], match[3]
        layers.setdefault(index, {})[f"{inner}.{kind}" if inner else kind] = tensor
    first = layers.get(1, {}).get("weight")
    if first is None or first.ndim != 4 or first.shape[-2:] != (7, 7):
        raise ReferenceFormatError(
            f"{source}: expected 'model.1.weight' to be the first 7x7 convolution "
            f"(ngf, in_channels, 7, 7), found {_shape(first)}"
        )
    ngf, in_channels = int(first.shape[0]), int(first.shape[1])
    if "weight" in layers.get(2, {}):
        raise ReferenceFormatError(
            f"{source}: 'model.2.weight' means the norm layers have weights (--norm batch or an "
            "affine norm); only the reference's default, --norm instance, is supported"
        )
    blocks = sorted(index for index, weights in layers.items() if "1.weight" in weights)
    if not blocks:
        raise ReferenceFormatError(
            f"{source}: no residual blocks (keys 'model.K.conv_block.1.weight'); "
            "not a resnet generator (the reference's unet generators are not supported)"
        )
    # encoder: pad, conv 7x7, norm, relu, then (conv, norm, relu) per downsampling
    num_downsamplings, remainder = divmod(blocks[0] - 4, 3)
    if remainder or num_downsamplings < 1:
        raise ReferenceFormatError(
            f"{source}: the first residual block is model.{blocks[0]}; expected model.{4 + 3 * 2} "
            "(after the 7x7 convolution and the downsamplings)"
        )
    dropout = any("6.weight" in layers[index] for index in blocks)
    return ReferenceArchitecture(
        in_channels=in_channels,
        out_channels=_out_channels(layers, source),
        ngf=ngf,
        num_blocks=len(blocks),
        num_downsamplings=num_downsamplings,
        dropout=dropout,
    )


def to_our_keys(
    state: dict[str, torch.Tensor], arch: ReferenceArchitecture
) -> dict[str, torch.Tensor]:
    """`model.N...` -> `encoder.N...` / `blocks.I.body.J...` / `decoder.M...`."""
    encoder_end = 4 + 3 * arch.num_downsamplings
    blocks_end = encoder_end + arch.num_blocks
    ours = {}
    for key, tensor in state.items():
        index_text, rest = key.removeprefix("model.").split(".", 1)
        index = int(index_text)
        if index < encoder_end:
            name = f"encoder.{index}.{rest}"
        elif index < blocks_end:
            name = f"blocks.{index - encoder_end}.body.{rest.removeprefix('conv_block.')}"
        else:
            name = f"decoder.{index - blocks_end}.{rest}"
        ours[name] = tensor
    return ours


def to_reference_key(our_key: str, arch: ReferenceArchitecture) -> str:
    """The inverse of `to_our_keys` for one key, for messages in the file's own terms."""
    encoder_end = 4 + 3 * arch.num_downsamplings
    part, index_text, rest = our_key.split(".", 2)
    if part == "encoder":
        return f"model.{index_text}.{rest}"
    if part == "blocks":
        return f"model.{encoder_end + int(index_text)}.conv_block.{rest.removeprefix('body.')}"
    return f"model.{encoder_end + arch.num_blocks + int(index_text)}.{rest}"


def reference_generator(
    state: dict[str, torch.Tensor], source: Path | str, direction: str = "AtoB"
) -> tuple[ResnetGenerator, ModelConfig]:
    """Our generator (eval mode) holding the reference state dict's weights, and its config."""
    state = {
        key.removeprefix("module."): tensor  # saved from a DataParallel wrapper
        for key, tensor in state.items()
        if not key.endswith(LEGACY_SUFFIXES)
    }
    arch = infer_architecture(state, source)
    try:
        model = arch.model_config(direction)
    except ConfigError as error:  # e.g. 4 input channels
        raise ReferenceFormatError(f"{source}: unsupported generator: {error}") from error
    generator = make_generator(model, direction)
    ours = to_our_keys(state, arch)
    expected = generator.state_dict()
    for key, tensor in expected.items():
        reference_key = to_reference_key(key, arch)
        if key not in ours:
            raise ReferenceFormatError(
                f"{source}: missing {reference_key!r} of shape {tuple(tensor.shape)}, expected "
                f"in a {model.generator} generator with ngf={model.ngf} (inferred from the keys)"
            )
        if ours[key].shape != tensor.shape:
            raise ReferenceFormatError(
                f"{source}: {reference_key!r} has shape {tuple(ours[key].shape)}, expected "
                f"{tuple(tensor.shape)} in a {model.generator} generator with ngf={model.ngf}"
            )
    unexpected = sorted(set(ours) - set(expected), key=lambda key: list(ours).index(key))
    if unexpected:
        raise ReferenceFormatError(
            f"{source}: unexpected key {to_reference_key(unexpected[0], arch)!r} for a "
            f"{model.generator} generator with ngf={model.ngf}"
        )
    generator.load_state_dict({key: tensor.float() for key, tensor in ours.items()})
    return generator.eval(), model


def _out_channels(layers: dict[int, dict[str, torch.Tensor]], source: Path | str) -> int:
    last = layers[max(layers)].get("weight")
    if last is None or last.ndim != 4 or last.shape[-2:] != (7, 7):
        raise ReferenceFormatError(
            f"{source}: expected the last layer 'model.{max(layers)}.weight' to be the final "
            f"7x7 convolution (out_channels, ngf, 7, 7), found {_shape(last)}"
        )
    return int(last.shape[0])


def _shape(tensor: torch.Tensor | None) -> str:
    return "nothing" if tensor is None else f"shape {tuple(tensor.shape)}"
