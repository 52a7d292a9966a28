"""ResNet generators (Johnson et al., 2016), as used by CycleGAN (paper appendix 7.2).

c7s1-ngf, stride-2 downsamplings (doubling the channels each time), residual blocks at the
lowest resolution, as many upsamplings back, c7s1-C and tanh. Reflection padding avoids
border artefacts; instance norm has no affine parameters, so the convolutions carry biases.
The seed preset downsamples three times (to 8*ngf channels) with 3 residual blocks.

With `residual=True` the network predicts a change to its input instead of a new image:
out = tanh(atanh(x) + change(x)), its last convolution starting at zero, so a new generator is
exactly the identity. Translations keep the input's detail from the first step and only learn
what differs between the domains, which is what makes training on a CPU budget work.

With `skip=True` the first layer's full-resolution features are added to the last
upsampling's output (a U-Net-like shortcut), so a change at the scale of single pixels, such
as sharpening, need not be squeezed through the bottleneck.

With `norm="none"` the layers carry no instance norm. Instance norm scales every image's
features to unit variance, so the network cannot tell a faint texture from a strong one; a map
that depends on how strong an edge is (ink on steep edges, smoothing away weak texture) then
cannot be learned, and flat crops come out with their noise blown up (benchmarks/RESULTS.md,
"The cartoon: what the generator can hold").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from cyclegan.models.colour import GlobalColour
from cyclegan.models.detail import EdgeDetail
from cyclegan.models.sharpness import GlobalSharpness

Upsample = Literal["transpose", "resize"]
Block = Literal["standard", "mobile"]
Norm = Literal["instance", "none"]
# atanh(+-1) is infinite; 1 - 1e-3 maps to about +-3.8 and back to within 1e-3 of the input
RESIDUAL_LIMIT = 1.0 - 1e-3
STEM_LAYERS = 4  # the encoder's full-resolution part: pad, 7x7 conv, norm, relu


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """Instance norm (the paper's), or nothing in its place (an Identity, so the layers keep
    their indices). Instance norm scales each image's features to unit variance, which throws
    away how strong its edges and textures are: a flat crop's faint noise comes out as strong
    as a textured crop's detail."""
    return nn.InstanceNorm2d(channels) if norm == "instance" else nn.Identity()


def conv_norm_relu(
    in_channels: int, out_channels: int, stride: int, norm: Norm = "instance"
) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1),
        norm_layer(norm, out_channels),
        nn.ReLU(inplace=True),
    ]


def upsample_norm_relu(
    in_channels: int, out_channels: int, mode: Upsample, norm: Norm = "instance"
) -> list[nn.Module]:
    if mode == "transpose":
        up: list[nn.Module] = [
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)
        ]
    else:  # resize then convolve: no uneven kernel overlap, hence no checkerboard (Odena 2016)
        up = [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_channels, out_channels, kernel_size=3),
        ]
    return [*up, norm_layer(norm, out_channels), nn.ReLU(inplace=True)]


class ResidualBlock(nn.Module):
    """x + conv-norm-relu-conv-norm(x), with reflection padding; keeps shape (N, C, H, W)."""

    def __init__(self, channels: int, dropout: float = 0.0, norm: Norm = "instance") -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            norm_layer(norm, channels),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MobileResidualBlock(nn.Module):
    """A residual block whose two 3x3 convolutions are depthwise-separable (MobileNet, Howard
    et al. 2017): a 3x3 convolution of each channel alone, instance norm, then a 1x1
    convolution that mixes the channels. 8-9x fewer multiply-adds than ResidualBlock at
    the same width, the block GAN Compression (Li et al. 2020) builds its small generators of."""

    def __init__(self, channels: int, dropout: float = 0.0, norm: Norm = "instance") -> None:
        super().__init__()
        layers: list[nn.Module] = [
            *separable_conv_norm(channels, norm),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += separable_conv_norm(channels, norm)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def separable_conv_norm(channels: int, norm: Norm = "instance") -> list[nn.Module]:
    """Reflection pad, depthwise 3x3, norm, pointwise 1x1, norm: (N, C, H, W) -> same shape."""
    return [
        nn.ReflectionPad2d(1),
        nn.Conv2d(channels, channels, kernel_size=3, groups=channels),
        norm_layer(norm, channels),
        nn.Conv2d(channels, channels, kernel_size=1),
        norm_layer(norm, channels),
    ]


BLOCKS: dict[str, type[nn.Module]] = {"standard": ResidualBlock, "mobile": MobileResidualBlock}


class ResnetGenerator(nn.Module):
    """Image-to-image generator: (N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W).

    H and W must be multiples of `stride` (2 ** num_downsamplings); translation pads to it.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        num_blocks: int = 9,
        num_downsamplings: int = 2,
        dropout: float = 0.0,
        upsample: Upsample = "transpose",
        residual: bool = False,
        skip: bool = False,
        colour: bool = False,
        block: Block = "standard",
        sharpness: bool = False,
        norm: Norm = "instance",
        detail: bool = False,
    ) -> None:
        super().__init__()
        if (residual or colour or sharpness or detail) and in_channels != out_channels:
            raise ValueError(
                f"a residual generator or one with a colour map, sharpness filter or detail "
                f"path needs as "
                f"many output as input channels, got {in_channels} -> {out_channels}"
            )
        self.stride = 2**num_downsamplings
        # the global paths applied first, or none: a sharpness filter (models/sharpness.py),
        # a colour map (models/colour.py), then the edge-aware detail path (models/detail.py)
        self.sharpness = GlobalSharpness() if sharpness else None
        self.colour = GlobalColour(in_channels) if colour else None
        self.detail = EdgeDetail() if detail else None
        self.texture_only = False  # see settle_fitted_paths
        if detail:  # a loaded detail path's switch decides whether the colour map trains
            self.register_load_state_dict_post_hook(_after_loading)
        self.residual = residual
        self.skip = skip
        self.checkpoint_blocks = False  # training option: recompute the blocks in backward
        encoder: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, base_channels, kernel_size=7),
            norm_layer(norm, base_channels),
            nn.ReLU(inplace=True),
        ]
        channels = base_channels
        for _ in range(num_downsamplings):
            encoder += conv_norm_relu(channels, channels * 2, stride=2, norm=norm)
            channels *= 2
        self.encoder = nn.Sequential(*encoder)  # (N, C*2^d, H/2^d, W/2^d)
        residual_block = BLOCKS[block]
        self.blocks = nn.Sequential(
            *(residual_block(channels, dropout, norm) for _ in range(num_blocks))
        )
        decoder: list[nn.Module] = []
        for _ in range(num_downsamplings):
            decoder += upsample_norm_relu(channels, channels // 2, upsample, norm)
            channels //= 2
        self.head_start = len(decoder)  # the last convolution (and tanh) follow the upsamplings
        decoder += [nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, kernel_size=7)]
        if not residual:
            decoder.append(nn.Tanh())
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]

    def forward_with_features(
        self, x: torch.Tensor, blocks: tuple[int, ...] = ()
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The translation of x and the features after each residual block in `blocks`
        (indices into self.blocks, rising): what a distillation compares."""
        x = self.global_paths(x)  # the global changes first; the network does the rest
        # recomputed, the encoder keeps only its input (and the stem's output, for the shortcut)
        run = recomputed if self.checkpoint_blocks and torch.is_grad_enabled() else run_plainly
        if self.skip:  # keep the stem's (N, ngf, H, W) features for the shortcut
            stem = run(self.encoder[:STEM_LAYERS], x)
            features = run(self.encoder[STEM_LAYERS:], stem)
        else:
            features = run(self.encoder, x)
        kept = []
        for index, block in enumerate(self.blocks):
            features = run(block, features)  # recomputed: only each block's input kept
            if index in blocks:
                kept.append(features)
        # the decoder's activations are the largest (full resolution): recomputed, the whole
        # of it keeps only its input
        out = run(functools.partial(self.decode, stem=stem if self.skip else None), features)
        if not self.residual:
            return out, kept
        # the change is added before the tanh, so the output stays in (-1, 1) without clipping
        return torch.tanh(torch.atanh(x.clamp(-RESIDUAL_LIMIT, RESIDUAL_LIMIT)) + out), kept

    def decode(self, features: torch.Tensor, stem: torch.Tensor | None = None) -> torch.Tensor:
        """The upsamplings, the shortcut's sum with the `stem` features (given a shortcut) and
        the last convolution: the network's output before any residual sum."""
        upsampled = self.decoder[: self.head_start](features)
        if stem is not None:
            upsampled = upsampled + stem
        return self.decoder[self.head_start :](upsampled)

    def settle_fitted_paths(self) -> None:
        """Decide, after a fit or a load, whether the fits found the domains to differ in
        texture only: a detail path switched on, and the colour map (if any) kept as the
        identity. Then the colour map is held too, and `texture_only` asks training to keep
        the translation near the paths' output (--lambda-path). Between such domains the
        discriminators' verdicts on colour are noise, and a colour map moving at
        COLOUR_LR_SCALE times the lr follows them (on learn_photos' cartoon its drift cost
        4.5 dB of the fitted paths' 33.4). Before DDP wraps the generator (it skips
        parameters that need no gradient)."""
        self.texture_only = (
            self.detail is not None
            and self.detail.on
            and (self.colour is None or self.colour.is_identity())
        )
        if self.colour is not None:
            self.colour.requires_grad_(not self.texture_only)

    def global_paths(self, x: torch.Tensor) -> torch.Tensor:
        """x through the sharpness filter, the colour map and the detail path, those the
        generator has."""
        if self.sharpness is not None:
            x = self.sharpness(x)
        if self.colour is not None:
            x = self.colour(x)
        if self.detail is not None:
            x = self.detail(x)
        return x

    def nce_layers(self) -> tuple[int, ...]:
        """Where PatchNCE (models/cut.py) reads the encoder, as indices into
        [*encoder, *blocks]: the padded input, the first two downsampling convolutions, the
        first residual block and the fifth (or the last of fewer). Park et al. 2020 read the
        same five places ("0,4,8,12,16" in their anti-aliased network's numbering)."""
        first_block = len(self.encoder)
        downsamplings = [STEM_LAYERS + 3 * k for k in range(2)]
        return (0, *downsamplings, first_block, first_block + min(4, len(self.blocks) - 1))

    def layer_channels(self, layers: tuple[int, ...]) -> list[int]:
        """The channels of each feature map `encode` returns for `layers`."""
        channels, found = self.encoder[1].in_channels, {}
        for index, layer in enumerate([*self.encoder, *self.blocks]):
            if isinstance(layer, nn.Conv2d):
                channels = layer.out_channels
            found[index] = channels
        return [found[index] for index in layers]

    def encode(self, x: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
        """The feature maps after each of `layers` (indices into [*encoder, *blocks], rising),
        computing no further than the last of them; the global paths, if any, come first."""
        x = self.global_paths(x)
        network = [*self.encoder, *self.blocks]
        run = recomputed if self.checkpoint_blocks and torch.is_grad_enabled() else run_plainly
        # recomputed, each stretch of the encoder up to a returned map keeps only its input,
        # each residual block too (as in forward)
        ends = sorted({*layers, *range(len(self.encoder) - 1, layers[-1] + 1)})
        features, start = [], 0
        for end in ends:
            x = run(nn.Sequential(*network[start : end + 1]), x)
            if end in layers:
                features.append(x)
            start = end + 1
        return features

    def start_as_identity(self) -> None:
        """Zero the last convolution of a residual generator: it then returns its input."""
        if not self.residual:
            raise ValueError("only a residual generator starts as the identity")
        last = self.decoder[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)


def run_plainly(layers: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return layers(x)


def recomputed(layers: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """layers(x), keeping only x for the backward pass, which computes the rest again."""
    return checkpoint(layers, x, use_reentrant=False)


def translate_any_size(
    generator: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    stride: int | None = None,
) -> torch.Tensor:
    """(N, C, H, W) of any H and W -> (N, C', H, W): pad to the stride, run, crop back.

    `stride` defaults to the generator's own (exported generators, which lack the attribute,
    pass it). Reflection padding continues the image naturally; sides too small to reflect
    (padding >= side) are replicated instead.
    """
    stride = stride or generator.stride  # type: ignore[attr-defined]
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % stride, -width % stride
    if pad_h == 0 and pad_w == 0:
        return generator(images)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    padded = F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
    return generator(padded)[..., :height, :width]


def _after_loading(module: nn.Module, incompatible_keys: object) -> None:
    """After load_state_dict (the detail path's own hook has set its switch)."""
    assert isinstance(module, ResnetGenerator)
    module.settle_fitted_paths()


# name -> (residual blocks, stride-2 downsamplings)
GENERATORS: dict[str, tuple[int, int]] = {
    "resnet_9blocks": (9, 2),
    "resnet_6blocks": (6, 2),
    "resnet_3blocks": (3, 2),
    "seed": (3, 3),
}


def generator_stride(name: str) -> int:
    """Sides of the generator's input must be multiples of this: 2 ** its downsamplings."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; choose one of {sorted(GENERATORS)}")
    return 2 ** GENERATORS[name][1]


def generator_min_side(name: str) -> int:
    """The smallest image side the generator translates, once `translate_any_size` has padded
    it to the stride: every residual block reflection-pads the bottleneck (1/stride of the
    padded side) by 1 pixel, and a reflection pad must be smaller than the side it pads, so
    the bottleneck needs 2 pixels a side and the padded side 2 * stride, which any side above
    the stride reaches. That also meets the stem's pad of 3 and instance norm's need for more
    than one value per channel (tests/test_translate_small.py runs every generator at this
    side and at one pixel less)."""
    return generator_stride(name) + 1


def build_generator(
    name: str,
    in_channels: int = 3,
    out_channels: int = 3,
    base_channels: int = 64,
    dropout: float = 0.0,
    upsample: Upsample = "transpose",
    residual: bool = False,
    skip: bool = False,
    colour: bool = False,
    block: Block = "standard",
    sharpness: bool = False,
    norm: Norm = "instance",
    detail: bool = False,
) -> ResnetGenerator:
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; choose one of {sorted(GENERATORS)}")
    num_blocks, num_downsamplings = GENERATORS[name]
    return ResnetGenerator(
        in_channels,
        out_channels,
        base_channels,
        num_blocks,
        num_downsamplings,
        dropout,
        upsample,
        residual,
        skip,
        colour,
        block,
        sharpness,
        norm,
        detail,
    )
