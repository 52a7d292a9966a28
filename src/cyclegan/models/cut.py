"""CUT and FastCUT (Park, Efros, Zhang, Zhu: "Contrastive Learning for Unpaired Image-to-Image
Translation", ECCV 2020): one generator A -> B, one discriminator of domain B, and a small MLP
per encoder layer that projects the generator's features for the PatchNCE loss.

PatchNCE (paper eq. 2-5): the generator's encoder sees the input x and the output G(x); at
each of a few layers, the features of P sampled locations are projected (2-layer MLP, 256
values) and L2-normalised. The output's feature at a location must pick out the input's
feature at the same location among the input's P features of that image: a P-way softmax
over dot products / temperature, cross-entropy with the same location as the answer.
That ties the content of each output patch to its input patch without a second generator.

The MLP heads are built with the model, from the generator's channel counts, rather than on a
first batch as the paper's code does: they exist before DDP wraps the model and before a
checkpoint is loaded into them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.config import ModelConfig
from cyclegan.models.cyclegan import make_generator
from cyclegan.models.discriminator import build_discriminator
from cyclegan.models.generator import ResnetGenerator

NCE_FEATURES = 256  # the projection's width (the paper's netF_nc)
NORM_EPS = 1e-7  # as the paper's code: x / (|x| + eps)


class PatchProjection(nn.Module):
    """One MLP per encoder layer: Linear(C, 256) - ReLU - Linear(256, 256), then L2 norm."""

    def __init__(self, channels: list[int], features: int = NCE_FEATURES) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(c, features), nn.ReLU(), nn.Linear(features, features))
            for c in channels
        )

    def forward(
        self, feature_maps: list[torch.Tensor], locations: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """(N, C, H, W) maps and each layer's (P,) flat locations -> (N * P, 256) unit rows,
        image by image (the rows of image n are n*P .. n*P + P - 1)."""
        projected = []
        for head, feature, where in zip(self.heads, feature_maps, locations):
            # pick the places first, then transpose: the gradient that reaches the feature
            # map is then contiguous. Transposed first (as the paper's code), it arrives
            # channels-last, and torch's CPU instance norm turns such a gradient wrong for
            # single images (torch 2.14.1; see benchmarks/RESULTS.md, CUT)
            rows = feature.flatten(2)[:, :, where].transpose(1, 2).flatten(0, 1)  # (N * P, C)
            out = head(rows)
            projected.append(out / (out.norm(p=2, dim=1, keepdim=True) + NORM_EPS))
        return projected


def sample_locations(
    feature_maps: list[torch.Tensor], count: int, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """`count` distinct flat locations per layer (all of them if fewer), the same for every
    image of the batch, as the paper samples them."""
    locations = []
    for feature in feature_maps:
        size = feature.shape[2] * feature.shape[3]
        order = torch.randperm(size, generator=generator)[: min(count, size)]
        locations.append(order.to(feature.device))
    return locations


def patch_nce_loss(
    query: torch.Tensor, key: torch.Tensor, images: int, temperature: float
) -> torch.Tensor:
    """PatchNCE of one layer: query (N * P, D) features of the output, key (N * P, D) of the
    input at the same locations (no gradient flows into the key). Row i's positive is key i;
    its negatives the other P - 1 keys of the same image. Returns the (N * P,) losses.

    The positive logit is put first and the same location's entry among the negatives is set
    to -10 (exp(-10) / temperature: practically absent), as in the paper's code."""
    key = key.detach()
    rows, dim = query.shape
    # row by row as a batch of 1x1 products, as the paper's code: the same float rounding
    positive = torch.bmm(query.view(rows, 1, dim), key.view(rows, dim, 1)).view(rows, 1)
    per_image_q = query.view(images, -1, dim)
    per_image_k = key.view(images, -1, dim)
    patches = per_image_q.shape[1]
    negative = torch.bmm(per_image_q, per_image_k.transpose(1, 2))  # (N, P, P)
    same_place = torch.eye(patches, device=query.device, dtype=torch.bool)[None]
    negative = negative.masked_fill(same_place, -10.0).view(rows, patches)
    logits = torch.cat([positive, negative], dim=1) / temperature
    answer = torch.zeros(rows, dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, answer, reduction="none")


class ContrastiveModel(nn.Module):
    """CUT's networks: gen_ab, disc_b and the PatchNCE projection heads."""

    network_keys = ("gen_ab", "disc_b", "nce_heads")
    generator_keys = ("gen_ab",)
    discriminator_keys = ("disc_b",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gen_ab: ResnetGenerator = make_generator(config, "AtoB")
        self.disc_b = build_discriminator(
            config.discriminator, config.channels_b, config.ndf, config.d_layers
        )
        self.layers = self.gen_ab.nce_layers()
        self.nce_heads = PatchProjection(self.gen_ab.layer_channels(self.layers))
        for module in (self.gen_ab, self.disc_b, self.nce_heads):
            xavier_init(module, config.init_std)
        if config.residual:
            self.gen_ab.start_as_identity()

    @property
    def generators(self) -> nn.ModuleDict:
        return nn.ModuleDict({"gen_ab": self.gen_ab})

    @property
    def discriminators(self) -> nn.ModuleDict:
        return nn.ModuleDict({"disc_b": self.disc_b})

    @property
    def trained_with_generators(self) -> nn.Module:
        """What the generator's optimizer trains besides it: the projection heads."""
        return self.nce_heads

    def nce_loss(
        self,
        source: torch.Tensor,
        output: torch.Tensor,
        patches: int,
        temperature: float,
        flipped: bool = False,
    ) -> torch.Tensor:
        """PatchNCE between the generator's features of `source` and of its `output`, the mean
        over layers of each layer's mean loss. flipped: `output` is the translation of the
        mirrored source, so its features are mirrored back first."""
        return patch_nce(self.gen_ab, self.nce_heads, self.layers, source, output, patches,
                         temperature, flipped)  # fmt: skip


class GeneratorSide(nn.Module):
    """A ContrastiveModel's generator and projection heads (shared, not copied) as one module
    whose one call computes all the generator's update needs, the translations and their
    PatchNCE losses: what DDP wraps, since it averages the gradients of one call's graph."""

    def __init__(self, model: ContrastiveModel) -> None:
        super().__init__()
        self.gen_ab = model.gen_ab
        self.nce_heads = model.nce_heads
        self.layers = model.layers

    def forward(
        self,
        inputs: torch.Tensor,
        sources: list[torch.Tensor],
        patches: int,
        temperature: float,
        flipped: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """G(inputs), and the PatchNCE of each source's part of the output (the inputs are the
        sources concatenated, mirrored when `flipped`) against that source."""
        outputs = self.gen_ab(inputs)
        parts = outputs.split([len(source) for source in sources])
        losses = [
            patch_nce(
                self.gen_ab,
                self.nce_heads,
                self.layers,
                source,
                part,
                patches,
                temperature,
                flipped,
            )
            for source, part in zip(sources, parts)
        ]
        return outputs, losses


def patch_nce(
    generator: ResnetGenerator,
    heads: PatchProjection,
    layers: tuple[int, ...],
    source: torch.Tensor,
    output: torch.Tensor,
    patches: int,
    temperature: float,
    flipped: bool = False,
) -> torch.Tensor:
    """The PatchNCE loss of `output` against its `source` (see ContrastiveModel.nce_loss). The
    source's side is the fixed target of the loss, so it is computed without a graph."""
    queries = generator.encode(output, layers)
    if flipped:
        queries = [torch.flip(feature, dims=[3]) for feature in queries]
    with torch.no_grad():
        keys = generator.encode(source, layers)
    locations = sample_locations(keys, patches)
    with torch.no_grad():
        key_rows = heads(keys, locations)
    query_rows = heads(queries, locations)
    images = source.shape[0]
    # the softmax over hundreds of patches in at least float32, whatever autocast computed
    wide = torch.promote_types(query_rows[0].dtype, torch.float32)
    losses = [
        patch_nce_loss(q.to(wide), k.to(wide), images, temperature).mean()
        for q, k in zip(query_rows, key_rows)
    ]
    return torch.stack(losses).mean()


def xavier_init(module: nn.Module, gain: float = 0.02) -> None:
    """Xavier-normal weights with `gain`, zero biases, for convolutions and linear layers:
    the initialisation of the paper's code for CUT (its init_type xavier, init_gain 0.02)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_normal_(layer.weight, gain=gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
