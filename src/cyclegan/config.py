"""The typed configuration: the single source of truth for a run.

Every option of `cyclegan train` is a field of one of the frozen dataclass sections below;
the command line is generated from them (`cyclegan.cli`), the resolved config is written to
`runs/NAME/config.yaml` and into every checkpoint, and resume/translate read it back. The
field docstrings are the `--help` texts. Defaults follow the CycleGAN paper (Zhu et al.,
2017, sec. 4 and appendix 7).
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import itertools
import json
import math
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

GeneratorName = Literal["resnet_9blocks", "resnet_6blocks", "resnet_3blocks", "seed"]
PresetName = Literal["paper", "fast"]
ModelFamily = Literal["cyclegan", "cut", "fastcut", "distill"]
Directions = Literal["both", "AtoB", "BtoA"]
DiscriminatorName = Literal["patch", "seed", "patch_pixel"]
Upsample = Literal["transpose", "resize"]
Block = Literal["standard", "mobile"]
GeneratorNorm = Literal["instance", "none"]
GanMode = Literal["lsgan", "vanilla"]
ResizeMode = Literal["short_side", "square"]
DeviceName = Literal["auto", "cpu", "cuda", "mps"]
AUTO_WORKERS = -1  # --workers -1: as many DataLoader workers as the machine can spare


class ConfigError(ValueError):
    """A config value or combination that cannot work; the message speaks to the user."""


# ---- what each option is to a run, declared on its field --------------------------------------


class Role(enum.Enum):
    """What an option is to a run. Each field declares its role (`option(...)`); resuming,
    the command line's help and the web UI's config view take their rules from it, so a new
    option cannot be forgotten by a hand-kept list."""

    ARCHITECTURE = "architecture"  # what the weights are or compute: a resumed run refuses a change
    START = "start"  # used once, when a run starts: a resumed run refuses a change
    SCHEDULE = "schedule"  # the lr schedule: a change on resume starts a new schedule there
    TRAINING = "training"  # how training goes on: a change on resume applies from the next step
    SPEED = "speed"  # how each step is computed, not what is learned: changes freely
    OUTPUT = "output"  # what the run writes and measures: changes freely
    PLACE = "place"  # where the run folder is: a change on resume continues in another folder
    RECORDED = "recorded"  # what the run records about itself: not an option

    @property
    def fixed(self) -> bool:
        """Whether a resumed run must keep the value it started with."""
        return self in (Role.ARCHITECTURE, Role.START)

    @property
    def note(self) -> str:
        """What the role means for the user, as the command line's help says it."""
        return ROLE_NOTES[self]


ROLE_NOTES = {
    Role.ARCHITECTURE: "architecture: fixed once the run starts",
    Role.START: "used when the run starts: fixed after that",
    Role.SCHEDULE: "with --resume it starts a new lr schedule",
    Role.TRAINING: "",
    Role.SPEED: "",
    Role.OUTPUT: "",
    Role.PLACE: "",
    Role.RECORDED: "recorded by the run, not an option",
}


@dataclass(frozen=True)
class Applies:
    """Where an option does something: `when(config)`; elsewhere it does nothing, and the
    sentence "--OPTION does nothing OTHERWISE" says so."""

    when: Callable[[Config], bool]
    otherwise: str


def option(
    default: Any,
    role: Role,
    *,
    applies: Applies | None = None,
    compatible: Callable[[Any, Any], bool] | None = None,
) -> Any:
    """A config field with its role. applies: where it does something (default: always).
    compatible(old, new): for a fixed role, whether a resumed run can take `new` in place of
    `old` all the same (dropout 0.1 -> 0.2 keeps the network's layers)."""
    return field(
        default=default, metadata={"role": role, "applies": applies, "compatible": compatible}
    )


def _dropout_layers_kept(old: float, new: float) -> bool:
    return (old > 0) == (new > 0)  # a dropout layer, present or not, shifts the blocks' keys


def _same_dataset(old: str, new: str) -> bool:
    """A dataset folder given anew on resume is the same dataset if the old folder is gone
    (moved) or both hold the same training file names (copied, or spelled another way)."""
    old_root, new_root = Path(old), Path(new)
    if not old_root.exists():
        return True

    def names(root: Path) -> tuple[list[str], ...]:
        return tuple(
            sorted(os.listdir(root / part)) if (root / part).is_dir() else []
            for part in ("trainA", "trainB")
        )

    return names(old_root) == names(new_root)


def _patch_discriminator(config: Config) -> bool:
    return config.model.discriminator != "seed"


def _distributed(config: Config) -> bool:
    return config.run.world_size > 1


def _evaluated(config: Config) -> bool:
    return config.eval.eval_every > 0


def _fid_measured(config: Config) -> bool:
    return config.eval.eval_every > 0 and config.eval.fid


def _by_epochs(config: Config) -> bool:
    return not config.optim.minutes


def _cycle_model(config: Config) -> bool:
    return config.model.model == "cyclegan"


def _contrastive_model(config: Config) -> bool:
    return config.model.model in ("cut", "fastcut")


def _distill_model(config: Config) -> bool:
    return config.model.model == "distill"


def _adversarial(config: Config) -> bool:
    return config.model.model != "distill"


BY_EPOCHS = Applies(_by_epochs, "with --minutes (the time sets the schedule)")
ONLY_PATCH = Applies(_patch_discriminator, "with --discriminator seed (its depth is fixed)")
ONLY_DISTRIBUTED = Applies(_distributed, "without torchrun (the run is one process)")
ONLY_EVALUATED = Applies(_evaluated, "without --eval-every (no metrics are measured)")
ONLY_FID = Applies(_fid_measured, "without --eval-every and --fid (FID is not measured)")
ONLY_CYCLEGAN = Applies(_cycle_model, "with --model cut, fastcut or distill (no cycle)")
ONLY_CUT = Applies(_contrastive_model, "without --model cut or fastcut (no PatchNCE term)")
ONLY_DISTILL = Applies(_distill_model, "outside a distillation (cyclegan distill)")
ONLY_ADVERSARIAL = Applies(_adversarial, "in a distillation (no discriminator)")


@dataclass(frozen=True)
class ModelConfig:
    """The networks: CycleGAN's four, CUT's generator, discriminator and projection heads, or a
    distillation's students."""

    model: ModelFamily = option("cyclegan", Role.ARCHITECTURE)
    """what is trained: cyclegan (two generators, two discriminators, cycle-consistency; both
    directions), cut (Contrastive Unpaired Translation, Park et al. 2020: one generator A->B, one
    discriminator, a PatchNCE loss tying each output patch to the input patch at its place,
    plus the same loss on B as an identity term) or fastcut (CUT without the identity term,
    PatchNCE weight 10, flip-equivariance: faster, lighter); cut and fastcut start from their
    paper's settings (README, "CUT and FastCUT"), which options given with them override;
    distill is a run of `cyclegan distill` (small generators that learn to reproduce a trained
    run's)"""
    generator: GeneratorName = option("resnet_9blocks", Role.ARCHITECTURE)
    """generator architecture: resnet_9blocks (256px), resnet_6blocks (128px), resnet_3blocks
    (small crops, CPU budgets), seed"""
    discriminator: DiscriminatorName = option("patch", Role.ARCHITECTURE, applies=ONLY_ADVERSARIAL)
    """discriminator: patch (70x70 PatchGAN), seed (one score per image) or patch_pixel (a
    PatchGAN plus a per-pixel colour discriminator, their losses averaged)"""
    ngf: int = option(64, Role.ARCHITECTURE)
    """generator width: channels of its first convolution"""
    ndf: int = option(64, Role.ARCHITECTURE, applies=ONLY_ADVERSARIAL)
    """discriminator width: channels of its first convolution"""
    d_layers: int = option(3, Role.ARCHITECTURE, applies=ONLY_PATCH)
    """stride-2 layers of the PatchGAN (3 gives 70x70 patches)"""
    dropout: float = option(0.0, Role.ARCHITECTURE, compatible=_dropout_layers_kept)
    """dropout probability inside the generator's residual blocks"""
    upsample: Upsample = option("transpose", Role.ARCHITECTURE)
    """generator upsampling: transpose (paper) or resize (resize-then-conv, no checkerboard)"""
    block: Block = option("standard", Role.ARCHITECTURE)
    """the generator's residual blocks: standard (two 3x3 convolutions, the paper's) or mobile
    (depthwise-separable: 8-9x fewer multiply-adds at the same width; for small, fast
    generators such as `cyclegan distill`'s students)"""
    channels_a: int = option(3, Role.ARCHITECTURE)
    """image channels of domain A (3 for RGB, 1 for grayscale)"""
    channels_b: int = option(3, Role.ARCHITECTURE)
    """image channels of domain B (3 for RGB, 1 for grayscale)"""
    init_std: float = option(0.02, Role.START)
    """standard deviation of the N(0, std) weight initialisation"""
    residual: bool = option(False, Role.ARCHITECTURE)
    """generators predict a change to their input and start as the identity (needs as many
    channels in both domains)"""
    skip: bool = option(False, Role.ARCHITECTURE)
    """the generator's first, full-resolution features are added to its last upsampling's,
    so pixel-fine detail need not pass the bottleneck"""
    colour: bool = option(False, Role.ARCHITECTURE)
    """a global colour map first in each generator (a channel-mixing matrix, a bias and a
    monotone curve per channel, the same for every pixel), fitted to the other domain's
    colours before training starts, then trained with the rest (both domains must have as
    many channels)"""
    sharpness: bool = option(False, Role.ARCHITECTURE)
    """a global sharpness filter first in each generator (one 13x13 kernel for every channel
    and place: a sharpening or a softening), fitted to the other domain's power spectrum
    before training starts where the domains' spectra differ beyond chance, then trained with
    the rest (both domains must have as many channels)"""
    detail: bool = option(False, Role.ARCHITECTURE)
    """an edge-aware detail path in each generator, after the colour map: the image's fine and
    coarser detail scaled by curves of the local edge strength (fine texture smoothed while
    outlines stay, as a cartoon does; or sharpened), fitted to the other domain's local
    statistics before training starts where they differ beyond chance, then kept as fitted
    while the network trains (both domains must have as many channels). Where it is on and
    the colour fit kept the identity (the domains differ in texture only), the colour map is
    held too, and --lambda-path keeps the translation near the paths' output"""
    g_norm: GeneratorNorm = option("instance", Role.ARCHITECTURE)
    """normalisation inside the generator: instance (the paper's: every image's features scaled
    to unit variance, so it cannot tell faint texture from strong) or none (keeps each image's
    contrast, which maps that depend on how strong an edge or texture is need, such as ink
    on steep edges; tiles of a large image then need no shared statistics)"""
    direction: Directions = option("both", Role.ARCHITECTURE, applies=ONLY_DISTILL)
    """(distill) the directions distilled, a student generator for each: both, AtoB or BtoA
    (default: every direction the teacher has)"""

    def __post_init__(self) -> None:
        _check_positive(self, "ngf", "ndf", "d_layers")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        for name in ("channels_a", "channels_b"):
            if getattr(self, name) not in (1, 3):
                raise ConfigError(f"--{_flag(name)} must be 1 or 3, got {getattr(self, name)}")
        for name, why in (
            ("residual", "adds its change to its input"),
            ("colour", "maps colours to colours"),
            ("sharpness", "filters an image into an image"),
            ("detail", "filters an image into an image"),
        ):
            if getattr(self, name) and self.channels_a != self.channels_b:
                raise ConfigError(
                    f"--{name} needs as many channels in both domains (--channels-a "
                    f"{self.channels_a}, --channels-b {self.channels_b}): a generator {why}; "
                    f"leave --{name} off"
                )

    @property
    def directions(self) -> tuple[str, ...]:
        """The translation directions the networks have: CUT's one generator maps A to B, a
        distillation has a student for each direction it distils."""
        if self.model == "distill" and self.direction != "both":
            return (self.direction,)
        return ("AtoB",) if self.model in ("cut", "fastcut") else ("AtoB", "BtoA")

    def channels(self, direction: str) -> tuple[int, int]:
        """(input, output) channels of the generator for `direction`: "AtoB" or "BtoA"."""
        if direction == "AtoB":
            return self.channels_a, self.channels_b
        if direction == "BtoA":
            return self.channels_b, self.channels_a
        raise ValueError(f"unknown direction {direction!r}; choose AtoB or BtoA")


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are prepared."""

    data: str = option("", Role.START, compatible=_same_dataset)
    """dataset folder holding trainA, trainB, testA, testB"""
    load_size: int = option(286, Role.TRAINING)
    """images are resized to this size (at least the crop size) before the random crop"""
    crop_size: int = option(256, Role.TRAINING)
    """training crop size: a multiple of the generator's stride (4; 8 for seed)"""
    resize_mode: ResizeMode = option("short_side", Role.TRAINING)
    """short_side keeps the aspect ratio; square stretches to load_size x load_size"""
    flip: bool = option(True, Role.TRAINING)
    """random horizontal flips"""
    batch_size: int = option(1, Role.TRAINING)
    """images per domain in a batch (in each process, under torchrun)"""
    workers: int = option(AUTO_WORKERS, Role.SPEED)
    """DataLoader worker processes (0 loads in the training process; -1: min(4, CPU cores
    available - 1))"""

    def __post_init__(self) -> None:
        _check_positive(self, "load_size", "crop_size", "batch_size")
        if self.workers < AUTO_WORKERS:
            raise ConfigError(f"--workers must be 0 or more (or -1: auto), got {self.workers}")
        if self.load_size < self.crop_size:
            raise ConfigError(
                f"--load-size {self.load_size} is smaller than --crop-size {self.crop_size}: "
                "images are resized to the load size, then cropped; give a load size of at "
                "least the crop size"
            )


@dataclass(frozen=True)
class LossConfig:
    """The objective: CycleGAN's (paper eq. 3 plus the identity term of sec. 5.2), or CUT's
    (adversarial plus PatchNCE, Park et al. 2020 eq. 5)."""

    gan_mode: GanMode = option("lsgan", Role.TRAINING, applies=ONLY_ADVERSARIAL)
    """adversarial loss: lsgan (least squares) or vanilla (BCE with logits)"""
    lambda_cycle: float = option(10.0, Role.TRAINING, applies=ONLY_CYCLEGAN)
    """weight of each cycle-consistency L1 term"""
    lambda_identity: float = option(0.5, Role.TRAINING, applies=ONLY_CYCLEGAN)
    """identity L1 weight, as a fraction of lambda_cycle (0 disables the identity passes)"""
    lambda_path: float = option(0.0, Role.TRAINING, applies=ONLY_CYCLEGAN)
    """L1 weight of a generator's output against its own fitted global paths' output
    (|G(x) - paths(x)|), as a fraction of lambda_cycle, for each generator whose fits found
    the domains to differ in texture only (its --detail path switched on, its colour map kept
    as the identity): the network then changes a translation only where the discriminators
    ask for more than the fitted paths do (0: off)"""
    lambda_nce: float = option(1.0, Role.TRAINING, applies=ONLY_CUT)
    """(cut, fastcut) weight of the PatchNCE loss (cut 1, fastcut 10)"""
    nce_idt: bool = option(True, Role.TRAINING, applies=ONLY_CUT)
    """(cut, fastcut) also the PatchNCE loss of G(B) against B, an identity term (cut: on,
    fastcut: off); the two PatchNCE losses are then averaged"""
    nce_patches: int = option(256, Role.TRAINING, applies=ONLY_CUT)
    """(cut, fastcut) patch locations sampled per image and encoder layer for PatchNCE; each
    is a positive for the output patch at its place and a negative for all the others"""
    nce_temperature: float = option(0.07, Role.TRAINING, applies=ONLY_CUT)
    """(cut, fastcut) temperature of the PatchNCE softmax"""
    flip_equivariance: bool = option(False, Role.TRAINING, applies=ONLY_CUT)
    """(cut, fastcut) translate a horizontally flipped batch half of the time and compare its
    flipped-back features with the input's: the translation must not depend on the side
    (fastcut: on)"""

    def __post_init__(self) -> None:
        for name in ("lambda_cycle", "lambda_identity", "lambda_path", "lambda_nce"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_flag(name)} must be 0 or more, got {getattr(self, name)}")
        _check_positive(self, "nce_patches", "nce_temperature")


@dataclass(frozen=True)
class OptimConfig:
    """Adam and the learning-rate schedule."""

    lr: float = option(2e-4, Role.SCHEDULE)
    """initial learning rate of generators and discriminators"""
    d_lr_scale: float = option(1.0, Role.SCHEDULE, applies=ONLY_ADVERSARIAL)
    """the discriminators' learning rate as a multiple of --lr (a faster discriminator, as in
    Heusel et al. 2017's two time-scale rule, tells subtle styles from the input sooner)"""
    beta1: float = option(0.5, Role.TRAINING)
    """Adam beta1"""
    beta2: float = option(0.999, Role.TRAINING)
    """Adam beta2"""
    epochs: int = option(100, Role.SCHEDULE, applies=BY_EPOCHS)
    """epochs at the initial learning rate"""
    epochs_decay: int = option(100, Role.SCHEDULE, applies=BY_EPOCHS)
    """epochs of linear decay to zero after that"""
    minutes: float = option(0.0, Role.SCHEDULE)
    """train for this many minutes instead of --epochs/--epochs-decay: the lr of each step
    follows the share of the time spent (constant for the first half, then down to zero), and
    the run ends on time whatever the machine's load, its last records included (0: off)"""
    pool_size: int = option(50, Role.TRAINING, applies=ONLY_CYCLEGAN)
    """generated images kept per domain for discriminator updates (0 turns the pool off)"""
    ema: float = option(0.0, Role.TRAINING)
    """keep an exponential moving average of the generator weights with this decay per step
    (e.g. 0.999), saved beside the raw weights; translate, export, evaluate and the web UI
    then use the averaged weights (0: off)"""

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if not 0 < self.d_lr_scale < math.inf:
            raise ConfigError(f"--d-lr-scale must be positive, got {self.d_lr_scale}")
        if self.epochs < 0 or self.epochs_decay < 0 or self.epochs + self.epochs_decay == 0:
            raise ConfigError("--epochs and --epochs-decay must be >= 0 and not both 0")
        if self.pool_size < 0:
            raise ConfigError(f"--pool-size must be 0 or more, got {self.pool_size}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"--ema must be 0 (off) or a decay below 1, got {self.ema}")
        if self.minutes < 0 or not math.isfinite(self.minutes):
            raise ConfigError(f"--minutes must be 0 (off) or more, got {self.minutes}")


@dataclass(frozen=True)
class RunConfig:
    """Where the run is written and how it is driven."""

    preset: PresetName = option("paper", Role.START)
    """what the other options start from: paper (the paper's exact settings) or fast (learns
    in CPU minutes: a small residual generator that starts as the identity, after a global
    colour map fitted to the data); options given
    with it override it"""
    name: str = option("", Role.PLACE)
    """run name, a plain folder name: the run folder is RUNS_DIR/NAME (default: the dataset
    folder's name)"""
    runs_dir: str = option("runs", Role.PLACE)
    """folder holding the run folders"""
    device: DeviceName = option("auto", Role.SPEED)
    """auto picks cuda, then mps, then cpu"""
    threads: int = option(0, Role.SPEED)
    """CPU threads of the training process's math (0: auto, the cores it may use shared by the
    processes torchrun starts on this machine)"""
    seed: int = option(0, Role.START)
    """random seed (a CPU run with the same seed is reproducible)"""
    save_every: int = option(5, Role.OUTPUT)
    """keep a numbered checkpoint every this many epochs (latest is kept every epoch)"""
    log_every: int = option(50, Role.OUTPUT)
    """steps averaged into each row of losses.csv"""
    num_samples: int = option(4, Role.OUTPUT)
    """test images per domain in the sample grids"""
    quiet: bool = option(False, Role.OUTPUT)
    """no progress bar or progress lines: only each epoch's summary line and messages"""
    progress_every: float = option(60.0, Role.OUTPUT)
    """when the output is not a terminal (a log file, nohup, CI, SLURM), a progress line every
    this many seconds instead of the bar (0: none, only each epoch's summary line)"""
    max_steps_per_epoch: int = option(0, Role.TRAINING)
    """cap the steps of an epoch (0: the whole dataset); for quick runs"""
    dist_timeout: int = option(1800, Role.TRAINING, applies=ONLY_DISTRIBUTED)
    """(torchrun) seconds a process waits for the others, also while rank 0 evaluates and
    writes an epoch's records, before it reports that it lost contact with them"""
    check_replicas: bool = option(False, Role.OUTPUT, applies=ONLY_DISTRIBUTED)
    """(torchrun) compare every process's weights after every step and stop if they differ
    (a debugging aid: it costs a little every step)"""
    world_size: int = option(1, Role.RECORDED)
    """processes the run trains on (recorded from torchrun, not an option): the effective
    batch is batch_size x world_size"""

    def __post_init__(self) -> None:
        _check_positive(self, "save_every", "log_every", "dist_timeout", "world_size")
        if self.threads < 0:
            raise ConfigError(f"--threads must be 0 (auto) or more, got {self.threads}")
        if self.num_samples < 0 or self.max_steps_per_epoch < 0:
            raise ConfigError("--num-samples and --max-steps-per-epoch must be 0 or more")
        if self.progress_every < 0 or not math.isfinite(self.progress_every):
            raise ConfigError(
                f"--progress-every must be 0 (off) or more, got {self.progress_every}"
            )
        if self.name and not _is_plain_name(self.name):
            raise ConfigError(
                f"--name {self.name!r} must be a plain folder name (no path separator, no '..'): "
                f"the run folder is {self.runs_dir}/NAME; choose another parent with --runs-dir"
            )


Precision = Literal["auto", "fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class SpeedConfig:
    """How each step is computed: none of these change what is learned beyond float rounding
    (benchmarks/train_speed.py measures each; tests compare each with the plain step)."""

    batched_passes: bool = option(False, Role.SPEED)
    """one network call where passes can share it: a generator on its real input and (identity
    loss) its own domain's image, a discriminator on real and pooled fake images (instance norm
    keeps each image's statistics apart, so the result is the same); off by default: on the
    CPU at 256 px it kept the peak memory at 0.99x and was not reliably faster"""
    split_backward: bool = option(True, Role.SPEED)
    """back-propagate each translation direction's losses, and without --batched-passes each
    identity term, as soon as they are computed, so their activations are freed before the
    next pass (same gradients; 0.63x the peak memory at 256 px on the CPU; also under
    torchrun)"""
    channels_last: bool = option(False, Role.SPEED)
    """channels-last memory format for the images and activations (refused on the CPU with
    --batch-size 1: torch's CPU instance norm computes wrong gradients for single
    channels-last images)"""
    fused_adam: bool = option(True, Role.SPEED)
    """Adam's fused implementation (one kernel for all parameters) where the device has one"""
    precision: Precision = option("auto", Role.SPEED)
    """autocast precision, the same policy as `cyclegan translate`'s: auto is bf16 on a CUDA
    GPU that supports it, else fp16 (with a gradient scaler, as fp16 always has); on a CPU bf16
    where it has bf16 instructions (AMX: 0.39x the fp32 step time; AVX-512 BF16: 0.56x; the
    same learning curve), else fp32; fp32 on MPS. Offered: fp32 and fp16 everywhere, bf16 on
    CUDA GPUs that support it and on CPUs (no faster than fp32 without bf16 instructions);
    fp16 on a CPU checks a GPU's fp16 arithmetic, it is not for speed"""
    compile: bool = option(False, Role.SPEED)
    """torch.compile the four networks (the first steps then take minutes)"""
    checkpoint_blocks: bool = option(False, Role.SPEED)
    """recompute the generators' encoder, residual blocks and decoder in the backward pass
    instead of keeping their activations: less memory for large crops on small GPUs, more time"""


@dataclass(frozen=True)
class DistillConfig:
    """What a distillation learns from (`cyclegan distill`): the teacher and its images."""

    teacher: str = option("", Role.START, applies=ONLY_DISTILL)
    """(distill) the teacher: a run folder, one of its checkpoints, or a generator file
    (.safetensors, e.g. from `cyclegan convert` or `cyclegan pretrained`); its weights are
    copied into the run's checkpoints, so the teacher may change or go afterwards"""
    images: str = option("", Role.START, applies=ONLY_DISTILL)
    """(distill) a folder of more images of the source domain to distil on, besides the
    dataset's (one direction only)"""
    lambda_ssim: float = option(1.0, Role.TRAINING, applies=ONLY_DISTILL)
    """(distill) weight of the structural term, 1 - SSIM between student and teacher outputs,
    beside their L1 distance (weight 1)"""
    lambda_feature: float = option(0.1, Role.TRAINING, applies=ONLY_DISTILL)
    """(distill) weight of the feature term: the mean squared distance between the teacher's
    features after its first residual block, its middle one and its last and the student's
    there, mapped to the teacher's width by a learned 1x1 convolution each (0.1: GAN
    Compression's ratio of 10 to 1 between the output's L1 and the features)"""
    teacher_model: str = option("", Role.RECORDED)
    """the teacher's architecture (its model options as JSON), recorded so that a resumed
    run rebuilds the teacher its checkpoints hold"""

    def __post_init__(self) -> None:
        for name in ("lambda_ssim", "lambda_feature"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_flag(name)} must be 0 or more, got {getattr(self, name)}")


@dataclass(frozen=True)
class EvalConfig:
    """Metrics measured on test images during training."""

    eval_every: int = option(0, Role.OUTPUT)
    """measure the metrics on test images every N epochs (0: never)"""
    eval_images: int = option(50, Role.OUTPUT, applies=ONLY_EVALUATED)
    """test images per domain for those metrics (0: all)"""
    best_metric: str = option("auto", Role.OUTPUT, applies=ONLY_EVALUATED)
    """metric that picks checkpoints/best.pt: auto (kid, else truth_psnr, else cycle_l1), or a
    name such as kid, fid, truth_psnr, cycle_l1 (mean of both directions) or kid_AtoB"""
    fid: bool = option(True, Role.OUTPUT, applies=ONLY_EVALUATED)
    """include FID and KID when the Inception weights can be had"""
    inception_weights: str = option("", Role.OUTPUT, applies=ONLY_FID)
    """FID Inception weights file (default: downloaded once into the cache)"""

    def __post_init__(self) -> None:
        if self.eval_every < 0 or self.eval_images < 0:
            raise ConfigError("--eval-every and --eval-images must be 0 or more")
        base = self.best_metric.removesuffix("_AtoB").removesuffix("_BtoA")
        if self.best_metric != "auto" and base not in BEST_METRICS:
            raise ConfigError(
                f"--best-metric {self.best_metric!r} is unknown; choose auto or one of "
                f"{sorted(BEST_METRICS)}, optionally with _AtoB or _BtoA"
            )


BEST_METRICS = ("fid", "kid", "cycle_l1", "cycle_psnr", "identity_l1", "truth_psnr", "truth_ssim")


@dataclass(frozen=True)
class Config:
    """A whole training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        channels_a, channels_b = self.model.channels_a, self.model.channels_b
        family = self.model.model
        if family in ("cut", "fastcut"):
            self._check_contrastive()
        elif family == "distill":
            self._check_distillation()
        elif self.loss.lambda_identity > 0 and channels_a != channels_b:
            raise ConfigError(
                f"--lambda-identity {self.loss.lambda_identity} needs as many channels in both "
                f"domains (--channels-a {channels_a}, --channels-b {channels_b}): the identity "
                "loss feeds each generator images of its own target domain; give "
                "--lambda-identity 0"
            )

    def _check_contrastive(self) -> None:
        """What CUT and FastCUT cannot do, each refused in one line."""
        family, model = self.model.model, self.model
        if self.run.preset == "fast":
            raise ConfigError(
                f"--preset fast is a CycleGAN preset (a residual generator and a colour map "
                f"fitted for both directions); --model {family} starts from its paper's "
                f"settings: leave --preset out, or train --model cyclegan --preset fast"
            )
        if model.channels_a != model.channels_b:
            raise ConfigError(
                f"--model {family} compares the generator's features of its input and its "
                f"output, so both domains need as many channels (--channels-a "
                f"{model.channels_a}, --channels-b {model.channels_b})"
            )

    def _check_distillation(self) -> None:
        """What a distillation cannot do, each refused in one line."""
        if not self.distill.teacher:
            raise ConfigError(
                "a distillation needs its teacher: use `cyclegan distill --run RUN` (or "
                "--weights FILE), which records it"
            )
        if self.distill.images and self.model.direction == "both":
            raise ConfigError(
                "--images adds images of one source domain: give --direction AtoB (images of "
                "A) or BtoA (images of B) with it"
            )

    def teacher_model(self) -> ModelConfig | None:
        """The teacher's architecture a distillation recorded (None elsewhere)."""
        if self.model.model != "distill" or not self.distill.teacher_model:
            return None
        return ModelConfig(**json.loads(self.distill.teacher_model))

    @property
    def total_epochs(self) -> int:
        return self.optim.epochs + self.optim.epochs_decay

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build from a nested dict; unknown sections or keys are an error, missing ones default."""
        sections = {f.name: f.type for f in fields(cls)}
        unknown = set(data) - set(sections)
        if unknown:
            raise ConfigError(
                f"unknown config section(s) {sorted(unknown)}; expected {sorted(sections)}"
            )
        built = {}
        for section_field in fields(cls):
            section_cls = _section_classes()[section_field.name]
            values = dict(data.get(section_field.name) or {})
            known = {f.name for f in fields(section_cls)}
            bad = set(values) - known
            if bad:
                raise ConfigError(
                    f"unknown option(s) {sorted(bad)} in config section {section_field.name!r}"
                )
            built[section_field.name] = section_cls(**values)
        return cls(**built)

    def with_overrides(self, overrides: dict[str, Any], expand_preset: bool = True) -> Config:
        """A copy with flat option values (`{"lr": 1e-4}`) put into their sections. A `preset`
        among them puts its settings in first, so the other options given override it (unless
        not `expand_preset`: a resumed run records a preset given anew, and refuses it)."""
        if "preset" in overrides and expand_preset:
            overrides = {**preset_options(overrides["preset"]), **overrides}
        if overrides.get("model") in FAMILY_SETTINGS and expand_preset:
            overrides = {**FAMILY_SETTINGS[overrides["model"]], **overrides}
        by_section: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            by_section.setdefault(section_of(key), {})[key] = value
        return replace(
            self,
            **{name: replace(getattr(self, name), **vals) for name, vals in by_section.items()},
        )

    def flat(self) -> dict[str, Any]:
        """Every option by its flat name, e.g. {"lr": 0.0002, "ngf": 64, ...}."""
        return {k: v for section in self.to_dict().values() for k, v in section.items()}


# Named starting points for the options. paper is the dataclasses' defaults (the paper's
# settings); fast was chosen on benchmarks/learn_photos.py (real photographs, known maps), see
# benchmarks/RESULTS.md: a narrow 3-block generator that predicts a change to its input (so it
# starts as the identity and keeps the input's detail) with a full-resolution shortcut (so it
# can sharpen), a global sharpness filter and colour map fitted to the data before training
# (so it finds a sharpening exactly, and colour changes far from the identity: a channel mix,
# a hue rotation), an edge-aware detail path fitted likewise (a smoothing that spares the
# edges: a cartoon; where it is on, the colour map beside it is held and the translation kept
# near the fitted paths' output, lambda_path), resize-convolution upsampling (no
# checkerboard), a 34x34 PatchGAN, batches of 4, no identity loss, and half the paper's lr
# (10 CPU-minutes are thousands of steps now, and at 2e-4 the colours drifted off after the
# first thousand).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "fast": {
        "generator": "resnet_3blocks",
        "ngf": 16,
        "ndf": 32,
        "d_layers": 2,
        "upsample": "resize",
        "residual": True,
        "skip": True,
        "colour": True,
        "sharpness": True,
        "detail": True,
        "lambda_identity": 0.0,
        "lambda_path": 1.0,
        "batch_size": 4,
        "lr": 1e-4,
    },
}


# What --model cut and --model fastcut start from: the settings of Park et al. 2020 and their
# public code for each (Adam, lr, norms and the 70x70 PatchGAN are CycleGAN's, kept): no image
# pool; cut: PatchNCE weight 1 with the identity PatchNCE on B, 200 + 200 epochs; fastcut:
# weight 10, no identity term, flip-equivariance, 150 + 50 epochs. FastCUT also recomputes
# its generator's layers in backward (--checkpoint-blocks, the same weights to float
# rounding): 0.6x CycleGAN's peak memory at 0.37x its step time, against 0.79x / 0.29x without
# (benchmarks/RESULTS.md, CUT and FastCUT); --no-checkpoint-blocks trades the memory back.
FAMILY_SETTINGS: dict[str, dict[str, Any]] = {
    "cut": {
        "lambda_nce": 1.0,
        "nce_idt": True,
        "flip_equivariance": False,
        "pool_size": 0,
        "epochs": 200,
        "epochs_decay": 200,
    },
    "fastcut": {
        "lambda_nce": 10.0,
        "nce_idt": False,
        "flip_equivariance": True,
        "pool_size": 0,
        "epochs": 150,
        "epochs_decay": 50,
        "checkpoint_blocks": True,
    },
    # a regression to the teacher's outputs learns far faster than a GAN: see README, "Distil"
    "distill": {
        "epochs": 10,
        "epochs_decay": 10,
    },
}


def preset_options(name: str) -> dict[str, Any]:
    """The options a preset sets (paper sets none: it is the defaults)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def load_config(path: Path) -> Config:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read config {path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a config mapping")
    return Config.from_dict(data)


# ---- option metadata, used to generate the command line ------------------------------------


@dataclass(frozen=True)
class Option:
    """One config field as the command line sees it, with the role its field declares (None
    for the fields of dataclasses that are not run config, such as translation options)."""

    section: str
    name: str
    type: Any
    default: Any
    help: str
    role: Role | None = None
    applies: Applies | None = None
    compatible: Callable[[Any, Any], bool] | None = None

    @property
    def flag(self) -> str:
        return "--" + _flag(self.name)

    @property
    def help_with_role(self) -> str:
        """The help text with what the role and the option's reach mean for the user."""
        notes = [self.role.note] if self.role is not None and self.role.note else []
        if self.applies is not None:
            notes.append(f"does nothing {self.applies.otherwise}")
        return self.help + "".join(f" [{note}]" for note in notes)

    def applies_to(self, config: Config) -> bool:
        return self.applies is None or self.applies.when(config)

    def value(self, config: Config) -> Any:
        return getattr(getattr(config, self.section), self.name)

    @property
    def choices(self) -> tuple[Any, ...] | None:
        """The values of a Literal type, also of an optional one (`Literal[...] | None`)."""
        kind = self.type
        if typing.get_origin(kind) is not Literal:  # Literal[...] | None: look inside
            kind = next((k for k in typing.get_args(kind) if typing.get_origin(k) is Literal), None)
        return typing.get_args(kind) if kind is not None else None


@cache
def _section_classes() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config)}


@cache
def config_fields() -> tuple[Option, ...]:
    """Every field of every section, in declaration order, the recorded ones included."""
    result = [
        option
        for section, cls in _section_classes().items()
        for option in dataclass_options(cls, section)
    ]
    names = [o.name for o in result]
    assert len(names) == len(set(names)), "option names must be unique across sections"
    missing = [o.name for o in result if o.role is None]
    assert not missing, f"config fields without a role (declare it with option()): {missing}"
    return tuple(result)


@cache
def options() -> tuple[Option, ...]:
    """The options anyone can give (every field but those the run records about itself)."""
    return tuple(o for o in config_fields() if o.role is not Role.RECORDED)


def dataclass_options(cls: type, section: str = "") -> tuple[Option, ...]:
    """The fields of a dataclass documented like the sections above (a docstring under each
    field), as options: how other commands generate their flags from a dataclass too."""
    hints = typing.get_type_hints(cls)
    docs = _field_docstrings(cls)
    return tuple(
        Option(
            section,
            f.name,
            hints[f.name],
            f.default,
            docs.get(f.name, ""),
            f.metadata.get("role"),
            f.metadata.get("applies"),
            f.metadata.get("compatible"),
        )
        for f in fields(cls)
    )


def fixed_changes(saved: Config, config: Config) -> list[tuple[Option, Any, Any]]:
    """The options of a fixed role (architecture, start) whose value `config` changes from
    `saved` in a way that matters: where the option does something, and not a compatible
    change. A resumed run refuses each."""
    changes = []
    for spec in options():
        if spec.role is None or not spec.role.fixed:
            continue
        old, new = spec.value(saved), spec.value(config)
        if old == new or not spec.applies_to(saved):
            continue
        if spec.compatible is not None and spec.compatible(old, new):
            continue
        changes.append((spec, old, new))
    return changes


def idle_options(config: Config, given: typing.Iterable[str]) -> list[str]:
    """One line for each given option that does nothing in `config` ("--d-layers does nothing
    with --discriminator seed ...")."""
    by_name = {spec.name: spec for spec in options()}
    return [
        f"{by_name[name].flag} does nothing {by_name[name].applies.otherwise}"  # type: ignore[union-attr]
        for name in given
        if name in by_name and not by_name[name].applies_to(config)
    ]


def annotated_yaml(config: Config) -> str:
    """config.yaml's text with the role of each fixed or schedule option as a comment, for
    people reading a run's config (the web UI shows it)."""
    specs = {spec.name: spec for spec in config_fields()}
    comments = {
        Role.ARCHITECTURE: "architecture: fixed",
        Role.START: "fixed when the run started",
        Role.SCHEDULE: "lr schedule",
        Role.RECORDED: "recorded by the run",
    }
    lines = []
    for line in yaml.safe_dump(config.to_dict(), sort_keys=False).splitlines():
        spec = specs.get(line.strip().split(":", 1)[0]) if line.startswith("  ") else None
        comment = None
        if spec is not None and spec.role is not None:
            comment = comments.get(spec.role)
            if spec.applies is not None and not spec.applies.when(config):
                comment = f"does nothing {spec.applies.otherwise}"
        lines.append(f"{line}  # {comment}" if comment else line)
    return "\n".join(lines) + "\n"


def section_of(name: str) -> str:
    for option in options():
        if option.name == name:
            return option.section
    raise ConfigError(f"unknown option {name!r}")


def parse_assignment(item: str) -> tuple[str, Any]:
    """`KEY=VALUE` (a flat option name, as in the benchmarks' `--set`) -> (name, the value
    converted to the option's type); a ConfigError says what is wrong."""
    key, sep, text = item.partition("=")
    key, text = key.strip().replace("-", "_"), text.strip()
    by_name = {option.name: option for option in options()}
    if not sep:
        raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
    if key not in by_name:
        raise ConfigError(f"--set: unknown option {key!r}; see cyclegan train --help")
    option = by_name[key]
    if option.choices is not None:
        if text not in option.choices:
            raise ConfigError(f"--set {key}: expected one of {option.choices}, got {text!r}")
        return key, text
    kind = typing.get_origin(option.type) or option.type
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return key, text.lower() in ("true", "1", "yes")
        if kind in (int, float):
            return key, kind(text)
    except ValueError as error:
        raise ConfigError(f"--set {key}: cannot read {text!r} as {kind.__name__}") from error
    return key, text


def _field_docstrings(cls: type) -> dict[str, str]:
    """The string literal written under each field (the convention used above)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _is_plain_name(name: str) -> bool:
    """One path component that stays inside its parent: no separators, not '.' or '..'."""
    separators = {"/", "\\", os.sep, os.altsep or "/"}
    return not any(sep in name for sep in separators) and name not in (".", "..")


def _check_positive(section: object, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value <= 0:
            raise ConfigError(f"--{_flag(name)} must be positive, got {value}")
