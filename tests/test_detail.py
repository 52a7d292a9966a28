"""The edge-aware detail path (`--detail`, models/detail.py) and its fit before training
(training/detail_fit.py): the identity at the start and whenever it is off, the switch saved
with the weights, a fit that finds an edge-preserving smoothing from unpaired real photos and
stays off where two samples differ by chance, training and translation through it, and its
ONNX and int8 exports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cyclegan.checkpoint import load_checkpoint
from cyclegan.cli import main
from cyclegan.config import ConfigError, LossConfig, ModelConfig, SpeedConfig
from cyclegan.inference.translator import Translator
from cyclegan.losses import identity_loss
from cyclegan.models import build_discriminator, build_generator
from cyclegan.models.detail import KNOTS, SIGMAS, EdgeDetail, blur, gaussian_taps
from cyclegan.training.detail_fit import fit_detail
from cyclegan.training.loop import train
from cyclegan.training.step import path_anchor, through_detail_path, translate_and_cycle
from tests.conftest import tiny_config
from tests.test_sharpness import (
    assert_the_switch_travels,
    assert_translation_is_the_generators,
    photo_crops,
    psnr,
    run_with_a_global_path,
    unpaired_root,
)


def abstraction_gains() -> torch.Tensor:
    """A cartoon-like smoothing: the detail of weakly textured places (edge strength below
    about 0.05) removed, that of strong edges kept."""
    ramp = torch.linspace(0.0, 0.4, KNOTS)
    fine = (ramp / 0.08).clamp(0.0, 1.0)
    coarse = (ramp / 0.05).clamp(0.0, 1.0)
    return torch.stack([fine, coarse])


def abstracted(images: torch.Tensor) -> torch.Tensor:
    """The images through a detail path set to abstraction_gains()."""
    path = EdgeDetail()
    path.load_gains(abstraction_gains())
    with torch.no_grad():
        return path(images).clamp(-1.0, 1.0)


def test_a_new_path_is_off_and_unit_gains_are_the_identity_at_any_size_and_layout() -> None:
    path = EdgeDetail()
    assert not path.on and list(path.parameters()) == []  # fitted, never trained
    images = torch.rand(2, 3, 20, 24) * 2 - 1
    assert path(images) is images
    path.load_gains(torch.ones(len(SIGMAS), KNOTS))  # on, computing
    assert path.on and list(path.parameters()) == []
    for shape in ((2, 3, 20, 24), (1, 1, 5, 4), (1, 3, 2, 3)):  # tiny sides: edges repeated
        images = torch.rand(shape) * 2 - 1
        assert torch.allclose(path(images), images, atol=1e-5)
    images = (torch.rand(1, 3, 16, 16) * 2 - 1).contiguous(memory_format=torch.channels_last)
    assert path(images).is_contiguous(memory_format=torch.channels_last)


def test_zero_gains_leave_the_base_and_the_gains_follow_the_edges() -> None:
    path = EdgeDetail()
    path.load_gains(torch.zeros(len(SIGMAS), KNOTS))
    images = photo_crops(4, seed=5)
    with torch.no_grad():  # every band removed: the image's coarsest blur is left
        assert torch.allclose(path(images), blur(images, gaussian_taps(SIGMAS[1])), atol=1e-5)
    # abstraction: flat places lose their texture, strong edges keep their contrast
    smoothed = abstracted(images)
    step = torch.zeros(1, 3, 32, 32) - 0.8
    step[..., 16:] = 0.8
    noisy_step = step + 0.02 * torch.randn_like(step)
    result = abstracted(noisy_step)
    assert float(result[..., 4:12].std()) < 0.5 * float(noisy_step[..., 4:12].std())
    assert float((result[..., 15] - result[..., 16]).abs().mean()) > 0.8  # the edge stays steep
    assert psnr(smoothed, images) < 40.0  # and photos do change


def test_the_switch_travels_with_the_weights() -> None:
    fitted = EdgeDetail()
    fitted.load_gains(abstraction_gains())
    assert_the_switch_travels(fitted, EdgeDetail)
    assert set(fitted.state_dict()) == {"gains", "active"}  # the blurs are rebuilt, not saved


def test_the_fit_finds_an_edge_preserving_smoothing_from_unpaired_photos() -> None:
    # the target is the abstraction of *other* crops: unpaired, as training data are
    source, target = photo_crops(160, seed=1), abstracted(photo_crops(160, seed=2))
    path = EdgeDetail()
    fit = fit_detail(path, source, target, torch.Generator().manual_seed(0), "AtoB")
    assert fit.applied and path.on, fit
    assert fit.distance < 0.5 * fit.identity_distance, fit
    assert fit.describe().startswith("detail path AtoB: fitted to the other domain's local")
    # the fine detail of weak edges goes, that of strong ones stays
    assert fit.gains[0][0] < 0.4 and fit.gains[0][-1] > 0.6, fit.gains
    held_out = photo_crops(32, seed=3)
    truth = abstracted(held_out)
    with torch.no_grad():
        result = path(held_out).clamp(-1, 1)
    untouched = psnr(held_out, truth)
    assert psnr(result, truth) > untouched + 3.0, (psnr(result, truth), untouched)


def test_the_path_stays_off_when_the_domains_differ_by_chance() -> None:
    source, target = photo_crops(160, seed=1), photo_crops(160, seed=2)
    path = EdgeDetail()
    fit = fit_detail(path, source, target, torch.Generator().manual_seed(0), "AtoB")
    assert not fit.applied and not fit.fitted and not path.on, fit
    assert torch.equal(path.gains, EdgeDetail().gains)
    assert fit.describe().startswith("detail path AtoB: kept the identity (the domains' local")
    # a single image a side is no evidence either
    assert not fit_detail(EdgeDetail(), source[:1], target[:1], torch.Generator()).applied


def test_the_cycle_asks_back_only_what_the_forward_path_keeps() -> None:
    generator = build_generator("resnet_3blocks", 3, 3, 8, residual=True, detail=True)
    photos = photo_crops(4, seed=6)
    textured = photos + 0.05 * torch.randn_like(photos)  # faint texture the path smooths away
    real, back = through_detail_path(generator, textured, photos)
    assert real is textured and back is photos  # off: the plain cycle
    generator.detail.load_gains(abstraction_gains())
    with torch.no_grad():
        real, back = through_detail_path(generator, textured, photos)
    plain = float((textured - photos).abs().mean())
    assert float((real - back).abs().mean()) < 0.5 * plain


def test_the_colour_map_is_held_where_the_domains_differ_in_texture_only() -> None:
    generator = build_generator("resnet_3blocks", 3, 3, 8, colour=True, detail=True)
    generator.settle_fitted_paths()  # the path off: the colour map trains
    assert all(parameter.requires_grad for parameter in generator.colour.parameters())
    generator.detail.load_gains(abstraction_gains())
    generator.settle_fitted_paths()
    assert not any(parameter.requires_grad for parameter in generator.colour.parameters())
    assert all(parameter.requires_grad for parameter in generator.encoder.parameters())
    # a load follows the loaded switch, both ways
    loaded = build_generator("resnet_3blocks", 3, 3, 8, colour=True, detail=True)
    loaded.load_state_dict(generator.state_dict())
    assert not any(parameter.requires_grad for parameter in loaded.colour.parameters())
    loaded.load_state_dict(
        build_generator("resnet_3blocks", 3, 3, 8, colour=True, detail=True).state_dict()
    )
    assert all(parameter.requires_grad for parameter in loaded.colour.parameters())
    # a colour map the fit moved beside it: the domains differ in colour too, so it trains
    fitted = build_generator("resnet_3blocks", 3, 3, 8, colour=True, detail=True)
    fitted.detail.load_gains(abstraction_gains())
    with torch.no_grad():
        fitted.colour.bias.fill_(0.1)
    fitted.settle_fitted_paths()
    assert not fitted.texture_only
    assert all(parameter.requires_grad for parameter in fitted.colour.parameters())
    assert generator.texture_only
    # the gradient still passes through a held map to the image (the cycle's way back)
    photos = photo_crops(2, seed=7).requires_grad_(True)
    generator(photos).sum().backward()
    assert photos.grad is not None and float(photos.grad.abs().sum()) > 0
    assert generator.colour.matrix.grad is None


def test_the_anchor_is_the_distance_to_the_fitted_paths_and_moves_only_the_network() -> None:
    generator = build_generator("resnet_3blocks", 3, 3, 8, residual=True, colour=True, detail=True)
    with torch.no_grad():  # a network that changes its input
        generator.decoder[-1].weight.normal_(0.0, 0.05)
    photos = photo_crops(4, seed=6)
    off = path_anchor(generator, photos, generator(photos))
    assert float(off) == 0.0 and not off.requires_grad  # no path: no term, no pass
    generator.detail.load_gains(abstraction_gains())
    generator.settle_fitted_paths()
    fake = generator(photos)
    anchor = path_anchor(generator, photos, fake)
    with torch.no_grad():
        expected = (fake - generator.global_paths(photos)).abs().mean()
    assert float(expected) > 1e-3 and torch.allclose(anchor, expected)
    anchor.backward()
    assert float(generator.decoder[-1].weight.grad.abs().sum()) > 0
    assert generator.colour.matrix.grad is None


@pytest.mark.parametrize("identity", [0.0, 0.5])
def test_the_anchor_joins_the_generators_objective(identity: float) -> None:
    forward, backward = (
        build_generator("resnet_3blocks", 3, 3, 8, residual=True, colour=True, detail=True)
        for _ in range(2)
    )
    judge = build_discriminator("patch", 3, 8, 2)
    with torch.no_grad():
        forward.decoder[-1].weight.normal_(0.0, 0.05)
    forward.detail.load_gains(abstraction_gains())
    forward.settle_fitted_paths()
    real, other = photo_crops(2, seed=9), photo_crops(2, seed=10)
    totals = []
    for weight in (0.0, 0.5):
        loss = LossConfig(lambda_identity=identity, lambda_path=weight)
        for split in (False, True):  # the identity term back-propagated apart, or not
            done = identity_loss(other, forward(other)) if split and identity else None
            direction = translate_and_cycle(
                forward, backward, judge, real, other, loss, SpeedConfig(), done
            )
            # the identity term back-propagated apart is not in the total
            apart = 0.0 if done is None else identity * 10 * float(done.detach())
            totals.append(float(direction.total.detach()) + apart)
    with torch.no_grad():
        anchor = float((forward(real) - forward.global_paths(real)).abs().mean())
    assert anchor > 1e-3
    for without, with_anchor in zip(totals[:2], totals[2:]):
        assert with_anchor - without == pytest.approx(10 * 0.5 * anchor, rel=1e-4)


def test_a_detail_path_needs_as_many_channels_in_both_domains() -> None:
    with pytest.raises(ConfigError, match="--detail needs as many channels in both domains"):
        ModelConfig(detail=True, channels_b=1)
    with pytest.raises(ValueError, match="as many output as input channels"):
        build_generator("resnet_3blocks", 3, 1, detail=True)


@pytest.fixture(scope="module")
def abstracted_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """trainA: crops of the seed's photos; trainB: other crops, abstracted; test sets alike."""
    return unpaired_root(tmp_path_factory.mktemp("abstracted"), abstracted)


def test_training_fits_the_path_once_and_translation_applies_it(
    abstracted_root: Path, tmp_path: Path
) -> None:
    options = {"preset": "fast", "detail": True, "ngf": 8, "batch_size": 2, "load_size": 32}
    config = tiny_config(abstracted_root, tmp_path, **options, seed=3)
    lines: list[str] = []
    run_dir = train(config, should_stop=lambda step: step == 2, log=lines.append)
    fitted = [line for line in lines if line.startswith("detail path ")]
    assert len(fitted) == 2 and fitted[0].startswith("detail path AtoB: fitted"), fitted
    checkpoint = run_dir / "checkpoints" / "latest.pt"
    models = load_checkpoint(checkpoint)["models"]
    assert float(models["gen_ab"]["detail.active"]) == 1.0
    assert float(models["gen_ab"]["detail.gains"][0, 0]) < 0.5  # weak texture smoothed

    lines.clear()  # a resumed run has its path in the checkpoint: no second fit
    train(config, resume=checkpoint, should_stop=lambda step: step == 4, log=lines.append)
    assert not any(line.startswith("detail path ") for line in lines)
    resumed = load_checkpoint(checkpoint)["models"]  # and training left the curves as fitted
    before, after = models["gen_ab"], resumed["gen_ab"]
    assert any(not torch.equal(after[key], value) for key, value in before.items())  # trained
    assert torch.equal(resumed["gen_ab"]["detail.gains"], models["gen_ab"]["detail.gains"])
    for key in ("colour.matrix", "colour.bias", "colour.slopes"):  # held beside the path
        assert torch.equal(resumed["gen_ab"][key], models["gen_ab"][key]), key

    # the run's translation goes through the path
    assert_translation_is_the_generators(run_dir, config, abstracted_root / "testA" / "000.png")


def test_a_run_whose_path_stays_off_trains_as_one_without_it(tmp_path: Path) -> None:
    # both domains the same kind of photos: the guard keeps the path off, and the run is
    # the run without the path, weight for weight (the fit draws from a stream of its own)
    root = unpaired_root(tmp_path / "same", lambda images: images, count=48)
    weights = {}
    for detail in (True, False):
        options = {"preset": "fast", "detail": detail, "ngf": 8, "batch_size": 2, "seed": 5}
        config = tiny_config(root, tmp_path / f"runs-{detail}", **options, load_size=32)
        lines: list[str] = []
        run_dir = train(config, should_stop=lambda step: step == 2, log=lines.append)
        if detail:
            kept = [line for line in lines if line.startswith("detail path ")]
            assert len(kept) == 2 and all("kept the identity" in line for line in kept), kept
        weights[detail] = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["models"]
    for network, without in weights[False].items():
        with_path = weights[True][network]
        assert set(with_path) - set(without) <= {"detail.gains", "detail.active"}
        for key, value in without.items():
            assert torch.equal(with_path[key], value), (network, key)


def test_the_onnx_and_int8_exports_keep_the_path(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from cyclegan.inference.quantize import psnr as export_psnr

    run, image, expected = run_with_a_global_path(
        tmp_path,
        {"detail": True},
        lambda generator: generator.detail.load_gains(abstraction_gains()),
    )
    assert (expected - image).abs().mean() > 0.01  # the path is at work

    assert main(["export", "--run", str(run), "--format", "onnx"]) == 0
    fp32 = Translator.from_file(run / "exported" / "AtoB.onnx", device="cpu")
    assert export_psnr(fp32.translate_tensor(image), expected) >= 45.0

    assert main(["export", "--run", str(run), "--quantize", "int8"]) == 0
    path = run / "exported" / "AtoB.int8.onnx"
    graph = onnx.load(str(path)).graph
    assert any(
        n.op_type in ("QLinearConv", "ConvInteger") or "Quantize" in n.op_type for n in graph.node
    )
    int8 = Translator.from_file(path, device="cpu")
    assert export_psnr(int8.translate_tensor(image), expected) >= 30.0
