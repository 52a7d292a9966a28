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
import inspect
import itertools
import math
import os
import typing
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

GeneratorName = Literal["resnet_9blocks", "resnet_6blocks", "resnet_3blocks", "seed"]
PresetName = Literal["paper", "fast"]
DiscriminatorName = Literal["patch", "seed", "patch_pixel"]
Upsample = Literal["transpose", "resize"]
GanMode = Literal["lsgan", "vanilla"]
ResizeMode = Literal["short_side", "square"]
DeviceName = Literal["auto", "cpu", "cuda", "mps"]
AUTO_WORKERS = -1  # --workers -1: as many DataLoader workers as the machine can spare


class ConfigError(ValueError):
    """A config value or combination that cannot work; the message speaks to the user."""


@dataclass(frozen=True)
class ModelConfig:
    """The four networks."""

    generator: GeneratorName = "resnet_9blocks"
    """generator architecture: resnet_9blocks (256px), resnet_6blocks (128px), resnet_3blocks
    (small crops, CPU budgets), seed"""
    discriminator: DiscriminatorName = "patch"
    """discriminator: patch (70x70 PatchGAN), seed (one score per image) or patch_pixel (a
    PatchGAN plus a per-pixel colour discriminator, their losses averaged)"""
    ngf: int = 64
    """generator width: channels of its first convolution"""
    ndf: int = 64
    """discriminator width: channels of its first convolution"""
    d_layers: int = 3
    """stride-2 layers of the PatchGAN (3 gives 70x70 patches)"""
    dropout: float = 0.0
    """dropout probability inside the generator's residual blocks"""
    upsample: Upsample = "transpose"
    """generator upsampling: transpose (paper) or resize (resize-then-conv, no checkerboard)"""
    channels_a: int = 3
    """image channels of domain A (3 for RGB, 1 for grayscale)"""
    channels_b: int = 3
    """image channels of domain B (3 for RGB, 1 for grayscale)"""
    init_std: float = 0.02
    """standard deviation of the N(0, std) weight initialisation"""
    residual: bool = False
    """generators predict a change to their input and start as the identity (needs as many
    channels in both domains)"""
    skip: bool = False
    """the generator's first, full-resolution features are added to its last upsampling's,
    so pixel-fine detail need not pass the bottleneck"""

    def __post_init__(self) -> None:
        _check_positive(self, "ngf", "ndf", "d_layers")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        for name in ("channels_a", "channels_b"):
            if getattr(self, name) not in (1, 3):
                raise ConfigError(f"--{_flag(name)} must be 1 or 3, got {getattr(self, name)}")
        if self.residual and self.channels_a != self.channels_b:
            raise ConfigError(
                f"--residual needs as many channels in both domains (--channels-a "
                f"{self.channels_a}, --channels-b {self.channels_b}): a generator adds its "
                "change to its input; leave --residual off"
            )

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

    data: str = ""
    """dataset folder holding trainA, trainB, testA, testB"""
    load_size: int = 286
    """images are resized to this size (at least the crop size) before the random crop"""
    crop_size: int = 256
    """training crop size: a multiple of the generator's stride (4; 8 for seed)"""
    resize_mode: ResizeMode = "short_side"
    """short_side keeps the aspect ratio; square stretches to load_size x load_size"""
    flip: bool = True
    """random horizontal flips"""
    batch_size: int = 1
    """images per domain in a batch (in each process, under torchrun)"""
    workers: int = AUTO_WORKERS
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
    """The CycleGAN objective (paper eq. 3 plus the identity term of sec. 5.2)."""

    gan_mode: GanMode = "lsgan"
    """adversarial loss: lsgan (least squares) or vanilla (BCE with logits)"""
    lambda_cycle: float = 10.0
    """weight of each cycle-consistency L1 term"""
    lambda_identity: float = 0.5
    """identity L1 weight, as a fraction of lambda_cycle (0 disables the identity passes)"""

    def __post_init__(self) -> None:
        for name in ("lambda_cycle", "lambda_identity"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_flag(name)} must be 0 or more, got {getattr(self, name)}")


@dataclass(frozen=True)
class OptimConfig:
    """Adam and the learning-rate schedule."""

    lr: float = 2e-4
    """initial learning rate of generators and discriminators"""
    beta1: float = 0.5
    """Adam beta1"""
    beta2: float = 0.999
    """Adam beta2"""
    epochs: int = 100
    """epochs at the initial learning rate"""
    epochs_decay: int = 100
    """epochs of linear decay to zero after that"""
    minutes: float = 0.0
    """train for about this many minutes instead: after ~25 steps the speed is measured and
    --epochs/--epochs-decay (and --max-steps-per-epoch if epochs are long) are fitted so the
    lr decays to zero as the time runs out; config.yaml records the fitted values (0: off)"""
    pool_size: int = 50
    """generated images kept per domain for discriminator updates (0 turns the pool off)"""

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.epochs < 0 or self.epochs_decay < 0 or self.epochs + self.epochs_decay == 0:
            raise ConfigError("--epochs and --epochs-decay must be >= 0 and not both 0")
        if self.pool_size < 0:
            raise ConfigError(f"--pool-size must be 0 or more, got {self.pool_size}")
        if self.minutes < 0 or not math.isfinite(self.minutes):
            raise ConfigError(f"--minutes must be 0 (off) or more, got {self.minutes}")


@dataclass(frozen=True)
class RunConfig:
    """Where the run is written and how it is driven."""

    preset: PresetName = "paper"
    """what the other options start from: paper (the paper's exact settings) or fast (learns
    in CPU minutes: a small residual generator that starts as the identity); options given
    with it override it"""
    name: str = ""
    """run name, a plain folder name: the run folder is RUNS_DIR/NAME (default: the dataset
    folder's name)"""
    runs_dir: str = "runs"
    """folder holding the run folders"""
    device: DeviceName = "auto"
    """auto picks cuda, then mps, then cpu"""
    seed: int = 0
    """random seed (a CPU run with the same seed is reproducible)"""
    save_every: int = 5
    """keep a numbered checkpoint every this many epochs (latest is kept every epoch)"""
    log_every: int = 50
    """steps averaged into each row of losses.csv"""
    num_samples: int = 4
    """test images per domain in the sample grids"""
    max_steps_per_epoch: int = 0
    """cap the steps of an epoch (0: the whole dataset); for quick runs"""
    dist_timeout: int = 1800
    """(torchrun) seconds a process waits for the others, also while rank 0 evaluates and
    writes an epoch's records, before it stops with an error naming the missing rank"""
    check_replicas: bool = False
    """(torchrun) compare every process's weights after every step and stop if they differ
    (a debugging aid: it costs a little every step)"""
    world_size: int = 1
    """processes the run trains on (recorded from torchrun, not an option): the effective
    batch is batch_size x world_size"""

    def __post_init__(self) -> None:
        _check_positive(self, "save_every", "log_every", "dist_timeout", "world_size")
        if self.num_samples < 0 or self.max_steps_per_epoch < 0:
            raise ConfigError("--num-samples and --max-steps-per-epoch must be 0 or more")
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

    batched_passes: bool = False
    """one network call where passes can share it: a generator on its real input and (identity
    loss) its own domain's image, a discriminator on real and pooled fake images (instance norm
    keeps each image's statistics apart, so the result is the same); off by default: on the
    CPU at 256 px it kept the peak memory at 0.99x and was not reliably faster"""
    split_backward: bool = True
    """back-propagate each translation direction's losses, and without --batched-passes each
    identity term, as soon as they are computed, so their activations are freed before the
    next pass (same gradients; 0.63x the peak memory at 256 px on the CPU)"""
    channels_last: bool = False
    """channels-last memory format for the images and activations"""
    fused_adam: bool = True
    """Adam's fused implementation (one kernel for all parameters) where the device has one"""
    precision: Precision = "auto"
    """autocast precision, the same policy as `cyclegan translate`'s: auto is bf16 on a CUDA
    GPU that supports it, else fp16 (with a gradient scaler, as fp16 always has); on a CPU bf16
    where it has AMX (0.39x the fp32 step time, the same learning curve), else fp32; fp32 on
    MPS. Offered: fp32 and fp16 everywhere, bf16 on CUDA GPUs that support it and on
    CPUs (no faster than fp32 without AMX); fp16 on a CPU checks a GPU's fp16 arithmetic, it
    is not for speed"""
    compile: bool = False
    """torch.compile the four networks (the first steps then take minutes)"""
    checkpoint_blocks: bool = False
    """recompute the generators' residual blocks in the backward pass instead of keeping their
    activations: less memory for large crops on small GPUs, more time"""


@dataclass(frozen=True)
class EvalConfig:
    """Metrics measured on test images during training."""

    eval_every: int = 0
    """measure the metrics on test images every N epochs (0: never)"""
    eval_images: int = 50
    """test images per domain for those metrics (0: all)"""
    best_metric: str = "auto"
    """metric that picks checkpoints/best.pt: auto (kid, else truth_psnr, else cycle_l1), or a
    name such as kid, fid, truth_psnr, cycle_l1 (mean of both directions) or kid_AtoB"""
    fid: bool = True
    """include FID and KID when the Inception weights can be had"""
    inception_weights: str = ""
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

    def __post_init__(self) -> None:
        channels_a, channels_b = self.model.channels_a, self.model.channels_b
        if self.loss.lambda_identity > 0 and channels_a != channels_b:
            raise ConfigError(
                f"--lambda-identity {self.loss.lambda_identity} needs as many channels in both "
                f"domains (--channels-a {channels_a}, --channels-b {channels_b}): the identity "
                "loss feeds each generator images of its own target domain; give "
                "--lambda-identity 0"
            )

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

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """A copy with flat option values (`{"lr": 1e-4}`) put into their sections. A `preset`
        among them puts its settings in first, so the other options given override it."""
        if "preset" in overrides:
            overrides = {**preset_options(overrides["preset"]), **overrides}
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
# can sharpen), resize-convolution upsampling (no checkerboard), a 34x34 PatchGAN, batches of
# 4, no identity loss, and half the paper's lr (10 CPU-minutes are thousands of steps now, and
# at 2e-4 the colours drifted off after the first thousand).
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
        "lambda_identity": 0.0,
        "batch_size": 4,
        "lr": 1e-4,
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
    """One config field as the command line sees it."""

    section: str
    name: str
    type: Any
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + _flag(self.name)

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


# fields the run records about itself rather than options anyone gives: no flag, no --set
RECORDED = ("world_size",)


@cache
def options() -> tuple[Option, ...]:
    """All options of all sections, in declaration order."""
    result = [
        option
        for section, cls in _section_classes().items()
        for option in dataclass_options(cls, section)
        if option.name not in RECORDED
    ]
    names = [o.name for o in result]
    assert len(names) == len(set(names)), "option names must be unique across sections"
    return tuple(result)


def dataclass_options(cls: type, section: str = "") -> tuple[Option, ...]:
    """The fields of a dataclass documented like the sections above (a docstring under each
    field), as options: how other commands generate their flags from a dataclass too."""
    hints = typing.get_type_hints(cls)
    docs = _field_docstrings(cls)
    return tuple(
        Option(section, f.name, hints[f.name], f.default, docs.get(f.name, "")) for f in fields(cls)
    )


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
