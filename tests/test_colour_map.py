"""The global colour map (models/colour.py) and its fit before training
(training/colour_fit.py): it starts as the identity, can hold any channel mix, is found from
unpaired colour samples even when it is a channel permutation, and goes through training,
checkpoints, resume and the optimizer like the rest of the generator."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.checkpoint import load_checkpoint
from cyclegan.cli import main
from cyclegan.commands.train import resumed_config
from cyclegan.config import Config, ConfigError, ModelConfig, OptimConfig
from cyclegan.data.dataset import UnpairedDataset
from cyclegan.data.images import image_to_tensor, load_image
from cyclegan.inference.translator import Translator
from cyclegan.models import CycleGAN, build_generator
from cyclegan.models.colour import GlobalColour
from cyclegan.training.colour_fit import fit_colour_map, grey_axis_rotation, starting_matrices
from cyclegan.training.global_fit import GlobalPaths, fit_global_paths
from cyclegan.training.loop import train
from cyclegan.training.state import COLOUR_LR_SCALE, Optimizers
from tests.conftest import SEED_PHOTOS, data_of_seed_photos, tiny_config
from tests.test_translate_files import save_run

# (R, G, B) -> (B, R, G): red turns green, green blue, blue red (a hue rotation by 120 degrees)
PERMUTATION = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def clustered_colours(count: int, seed: int) -> torch.Tensor:
    """(count, 3) colours in [-1, 1] from a few lopsided clusters (grass, sky, skin, shadow):
    a colour distribution with no symmetry a wrong permutation could also match."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor(
        [[-0.3, 0.4, -0.5], [0.2, 0.5, 0.9], [0.8, 0.3, 0.1], [-0.8, -0.7, -0.6]]
    )
    weights = torch.tensor([0.45, 0.25, 0.2, 0.1])
    which = torch.multinomial(weights, count, replacement=True, generator=generator)
    spread = 0.12 * torch.randn(count, 3, generator=generator)
    return (centres[which] + spread).clamp(-1, 1)


def test_a_new_colour_map_is_the_identity_and_any_curve_is_monotone() -> None:
    colour = GlobalColour(3)
    images = torch.rand(2, 3, 8, 12) * 2 - 1
    assert torch.allclose(colour(images), images, atol=1e-6)

    with torch.no_grad():  # any parameters: each channel's curve still rises
        for parameter in colour.parameters():
            parameter.copy_(torch.randn_like(parameter))
    ramp = torch.linspace(-1, 1, 201).view(1, 1, -1, 1).expand(1, 3, 201, 1)
    curves = colour.curves(ramp.movedim(1, -1)).movedim(-1, 1)
    assert (curves.diff(dim=2) >= -1e-6).all()
    assert (curves[:, :, 0] == -1).all()  # and starts at the bottom of the range


def test_the_curves_are_the_sum_of_one_ramp_per_knot() -> None:
    # the definition, written out: from -1, each knot's segment adds its rise, in part
    # where the value lies inside it; values and gradients agree with the table lookup
    colour = GlobalColour(3)
    with torch.no_grad():
        colour.slopes.copy_(torch.randn_like(colour.slopes))
    knots = colour.slopes.shape[1]
    values = torch.cat([torch.rand(500, 3) * 2 - 1, torch.tensor([[-1.0, 0.0, 1.0]])])
    values.requires_grad_(True)
    rises = torch.nn.functional.softplus(colour.slopes).T
    position = (values + 1) * knots / 2
    expected = -1 + sum(rises[k] * (position - k).clamp(0, 1) for k in range(knots))
    looked_up = colour.curves(values)
    assert torch.allclose(looked_up, expected, atol=1e-5)
    weights = torch.randn_like(expected)
    grads = torch.autograd.grad((expected * weights).sum(), [values, colour.slopes])
    looked_up_grads = torch.autograd.grad((looked_up * weights).sum(), [values, colour.slopes])
    inside = slice(0, 500)  # at a knot the ramps' gradient is a one-sided sum: left out
    assert torch.allclose(looked_up_grads[0][inside], grads[0][inside], atol=1e-5)
    assert torch.allclose(looked_up_grads[1], grads[1], atol=1e-4)


def test_a_colour_map_holds_a_channel_permutation_exactly() -> None:
    colour = GlobalColour(3)
    with torch.no_grad():
        colour.matrix.copy_(PERMUTATION)
    images = torch.rand(1, 3, 5, 5) * 2 - 1
    assert torch.allclose(colour(images), images[:, [2, 0, 1]], atol=1e-6)


def test_a_third_of_a_turn_about_the_grey_axis_is_that_permutation() -> None:
    rotation = grey_axis_rotation(2 * math.pi / 3)
    assert torch.allclose(rotation, PERMUTATION, atol=1e-6)
    assert torch.allclose(rotation @ rotation.T, torch.eye(3), atol=1e-6)
    names = [name for name, _ in starting_matrices(3)]
    assert names[0] == "the identity" and len(names) == len(set(names)) == 24
    assert "the negative of hue +120 degrees, red and blue swapped" in names
    assert [name for name, _ in starting_matrices(1)] == ["the identity", "the negative"]


@pytest.mark.parametrize(
    "matrix",
    [
        PERMUTATION,
        PERMUTATION.T,
        -PERMUTATION,
        torch.tensor([[0.5, 0.4, 0.1], [0.2, 0.6, 0.2], [0.1, 0.4, 0.5]]),
    ],
    ids=["hue+120", "hue-120", "inverted-hue+120", "desaturating-mix"],
)
def test_the_fit_finds_a_global_map_from_unpaired_samples(matrix: torch.Tensor) -> None:
    # two different samples of the scene: the target is the map of the *other* sample
    source, other = clustered_colours(20000, seed=1), clustered_colours(20000, seed=2)
    target = other @ matrix.T
    colour = GlobalColour(3)
    fit = fit_colour_map(colour, source, target, torch.Generator().manual_seed(0))

    check = clustered_colours(2000, seed=3)
    with torch.no_grad():
        error = (colour.map_colours(check) - check @ matrix.T).abs().mean()
    untouched = (check - check @ matrix.T).abs().mean()
    assert error < 0.05 < untouched, (fit, error, untouched)
    assert fit.distance < fit.identity_distance / 10


def test_the_identity_start_wins_when_the_colours_do_not_change() -> None:
    source, target = clustered_colours(20000, seed=1), clustered_colours(20000, seed=2)
    colour = GlobalColour(3)
    fit = fit_colour_map(colour, source, target, torch.Generator().manual_seed(0))
    check = clustered_colours(2000, seed=3)
    with torch.no_grad():
        assert (colour.map_colours(check) - check).abs().mean() < 0.05, fit


def write_domain(folder: Path, seed: int, channels: list[int]) -> None:
    """16 images of 32 px, each a patchwork of 8x8 cells whose colours are drawn from
    `clustered_colours` (channels reordered by `channels`), with a little noise."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    cells = clustered_colours(16 * 64, seed)[:, channels].reshape(16, 8, 8, 3).numpy()
    for number in range(16):
        noise = rng.normal(0, 4, size=(32, 32, 3))
        pixels = np.kron((cells[number] + 1) * 127.5, np.ones((4, 4, 1))) + noise
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{number}.png")


@pytest.fixture(scope="module")
def permuted_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """trainA of lopsided colours, trainB other images of the same kind with (R, G, B) ->
    (B, R, G), and testA/testB alike, as a dataset folder."""
    root = tmp_path_factory.mktemp("permuted")
    for split, seed in (("train", 1), ("test", 3)):
        write_domain(root / f"{split}A", seed, [0, 1, 2])
        write_domain(root / f"{split}B", seed + 1, [2, 0, 1])
    return root


def test_the_maps_of_a_training_set_are_fitted_alike_for_a_seed(permuted_root: Path) -> None:
    dataset = UnpairedDataset(permuted_root, "train", load_size=32, crop_size=32)
    results = []
    for _ in range(2):
        maps = {"AtoB": GlobalColour(3), "BtoA": GlobalColour(3)}
        lines: list[str] = []
        paths = {direction: GlobalPaths(colour=colour) for direction, colour in maps.items()}
        fits = fit_global_paths(paths, dataset, seed=5, log=lines.append)
        results.append({d: m.state_dict() for d, m in maps.items()})
        assert [fit.direction for fit in fits] == ["AtoB", "BtoA"]
        assert lines[0].startswith("colour map AtoB: fitted from ")
        assert lines[1].startswith("colour map BtoA: fitted from ")
    for direction in ("AtoB", "BtoA"):
        for key, value in results[0][direction].items():
            assert torch.equal(value, results[1][direction][key]), (direction, key)
    # each map moved most of the way to the permutation of its direction (wherever its fit
    # started; 1024 cell colours a side are a coarse sample: the fits on 20000 colours
    # above hold them to 0.05)
    colours = clustered_colours(2000, seed=9)
    with torch.no_grad():
        for direction, order in (("AtoB", [2, 0, 1]), ("BtoA", [1, 2, 0])):
            colour = GlobalColour(3)
            colour.load_state_dict(results[0][direction])
            error = (colour.map_colours(colours) - colours[:, order]).abs().mean()
            untouched = (colours - colours[:, order]).abs().mean()
            assert error < 0.5 * untouched, (direction, error, untouched)


def test_training_fits_the_maps_once_and_resume_continues_them(
    permuted_root: Path, tmp_path: Path
) -> None:
    options = {"preset": "fast", "ngf": 8, "batch_size": 2, "load_size": 32, "seed": 3}
    straight = train(tiny_config(permuted_root, tmp_path / "straight", **options))
    config = tiny_config(permuted_root, tmp_path / "resumed", **options)
    lines: list[str] = []
    run_dir = train(config, should_stop=lambda step: step == 5, log=lines.append)
    assert sum(line.startswith("colour map ") for line in lines) == 2
    stopped = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    matrix = stopped["models"]["gen_ab"]["colour.matrix"]
    assert (matrix - torch.eye(3)).abs().max() > 0.5  # the permutation, not the identity

    lines.clear()
    train(config, resume=run_dir / "checkpoints" / "latest.pt", log=lines.append)
    assert not any(line.startswith("colour map ") for line in lines)  # no second fit
    ends = [load_checkpoint(d / "checkpoints" / "latest.pt")["models"] for d in (straight, run_dir)]
    for network, state in ends[0].items():
        for key, value in state.items():
            assert torch.equal(value, ends[1][network][key]), (network, key)


def test_the_colour_maps_learn_faster_than_the_networks() -> None:
    model = CycleGAN(ModelConfig(generator="resnet_3blocks", ngf=8, ndf=8, colour=True))
    optimizers = Optimizers.for_model(model, OptimConfig(lr=1e-4))
    network, colour = optimizers.gen.param_groups
    assert len(colour["params"]) == 6  # matrix, bias, slopes of each generator
    assert colour["lr"] == pytest.approx(1e-4 * COLOUR_LR_SCALE) and network["lr"] == 1e-4
    optimizers.set_lr(5e-5)  # the schedule keeps the ratio
    assert colour["lr"] == pytest.approx(5e-5 * COLOUR_LR_SCALE) and network["lr"] == 5e-5
    assert optimizers.lr == 5e-5
    assert optimizers.disc.param_groups[0]["lr"] == 5e-5


def test_a_colour_map_needs_as_many_channels_in_both_domains() -> None:
    with pytest.raises(ConfigError, match="--colour needs as many channels in both domains"):
        ModelConfig(colour=True, channels_b=1)
    with pytest.raises(ValueError, match="as many output as input channels"):
        build_generator("resnet_3blocks", 3, 1, colour=True)


def run_with_a_colour_map(root: Path) -> Path:
    """A run folder of a fast-preset generator whose colour map is far from the identity (a
    channel permutation, a bias, bent curves), its dataset's testA the seed's real photos."""
    data = data_of_seed_photos(root)
    options = {"preset": "fast", "ngf": 8, "load_size": 36, "crop_size": 32, "data": str(data)}
    config = Config().with_overrides(options)
    torch.manual_seed(0)
    model = CycleGAN(config.model)
    with torch.no_grad():
        for generator in (model.gen_ab, model.gen_ba):
            generator.colour.matrix.copy_(0.9 * PERMUTATION)
            generator.colour.bias.fill_(0.05)
            generator.colour.slopes.add_(0.5 * torch.randn_like(generator.colour.slopes))
            generator.decoder[-1].weight.normal_(0.0, 0.02)
    return save_run(root / "run", config, model)


def test_a_colour_map_exports_to_onnx_and_int8_with_the_map_in_float(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from cyclegan.inference.quantize import psnr

    run = run_with_a_colour_map(tmp_path)
    image = image_to_tensor(load_image(SEED_PHOTOS / "A_type" / "1.jpg"))[None]
    expected = Translator.from_run(run, "AtoB", device="cpu", precision="fp32").translate_tensor(
        image
    )
    assert (expected - image).abs().mean() > 0.1  # far from the identity

    assert main(["export", "--run", str(run), "--format", "onnx"]) == 0
    exported = Translator.from_file(run / "exported" / "AtoB.onnx", device="cpu")
    assert (exported.translate_tensor(image) - expected).abs().max() < 1e-3

    assert main(["export", "--run", str(run), "--quantize", "int8"]) == 0
    path = run / "exported" / "AtoB.int8.onnx"
    graph = onnx.load(str(path)).graph
    weights = {tensor.name: list(tensor.dims) for tensor in graph.initializer}
    nodes = [  # the network's: the sharpness filter (fast has one) is a one-channel Conv
        node.op_type
        for node in graph.node
        if not (node.op_type == "Conv" and weights.get(node.input[1], [])[:2] == [1, 1])
    ]
    first_convolution = next(i for i, op in enumerate(nodes) if "Conv" in op)
    before = set(nodes[:first_convolution])
    assert "MatMul" in before and not any(op.startswith("QLinear") for op in before), before
    int8 = Translator.from_file(path, device="cpu")
    assert psnr(int8.translate_tensor(image), expected) >= 30.0


def test_the_discriminators_lr_scale_holds_through_the_schedule_and_a_resume(
    synth_root: Path, tmp_path: Path
) -> None:
    """--d-lr-scale: the discriminators learn at a multiple of --lr at every step of the
    schedule; a resumed run takes the scale it is given, not the one its optimizer saved."""
    model = CycleGAN(ModelConfig(generator="resnet_3blocks", ngf=8, ndf=8))
    optimizers = Optimizers.for_model(model, OptimConfig(lr=1e-4, d_lr_scale=4.0))
    assert optimizers.disc.param_groups[0]["lr"] == pytest.approx(4e-4)
    optimizers.set_lr(5e-5)
    assert optimizers.lr == 5e-5 and optimizers.disc.param_groups[0]["lr"] == pytest.approx(2e-4)

    config = tiny_config(synth_root, tmp_path, d_lr_scale=4.0, epochs=1, epochs_decay=1)
    run = train(config, log=lambda line: None)
    latest = run / "checkpoints" / "latest.pt"

    def saved_lrs() -> tuple[float, float]:
        groups = load_checkpoint(latest)["optimizers"]
        return groups["gen"]["param_groups"][0]["lr"], groups["disc"]["param_groups"][0]["lr"]

    gen_lr, disc_lr = saved_lrs()
    assert gen_lr > 0 and disc_lr == pytest.approx(4.0 * gen_lr)
    resumed, checkpoint = resumed_config(run, {"d_lr_scale": 2.0, "epochs_decay": 2})
    train(resumed, resume=checkpoint, given=("d_lr_scale", "epochs_decay"), log=lambda line: None)
    gen_lr, disc_lr = saved_lrs()
    assert gen_lr > 0 and disc_lr == pytest.approx(2.0 * gen_lr)
