"""Presets and the residual generator: `--preset fast` expands into its options (which the
user's own override), its generators start as the identity, and a residual generator goes
through checkpoints, run folders and ONNX like any other."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from cyclegan.cli import main
from cyclegan.config import PRESETS, Config, ConfigError, ModelConfig
from cyclegan.inference.translator import Translator
from cyclegan.models import CycleGAN, build_generator
from tests.test_cli import tiny_flags
from tests.test_translate_files import save_run


def fast_model(**overrides: object) -> CycleGAN:
    config = Config().with_overrides({"preset": "fast", **overrides})
    torch.manual_seed(0)
    return CycleGAN(config.model)


def test_paper_preset_is_the_defaults_and_fast_sets_what_it_says() -> None:
    assert Config().with_overrides({"preset": "paper"}) == Config()
    fast = Config().with_overrides({"preset": "fast"}).flat()
    assert {key: fast[key] for key in PRESETS["fast"]} == PRESETS["fast"]
    assert fast["preset"] == "fast" and fast["residual"] is True


def test_options_given_with_a_preset_override_it() -> None:
    config = Config().with_overrides({"ngf": 8, "preset": "fast", "batch_size": 2})
    assert config.model.ngf == 8 and config.data.batch_size == 2
    assert config.model.generator == "resnet_3blocks"  # the rest of the preset stays


def test_unknown_preset_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'quick'; choose one of \['fast'"):
        Config().with_overrides({"preset": "quick"})


def test_fast_generators_start_as_the_identity_and_learn_from_the_first_step() -> None:
    model = fast_model()
    images = torch.rand(2, 3, 32, 48) * 2 - 1
    for generator in (model.gen_ab, model.gen_ba):
        # within the clamp that keeps atanh finite: 1e-3 of the range, under 1/8 grey level
        assert (generator(images) - images).abs().max() < 1.1e-3
        generator(images).sub(images.flip(-1)).abs().mean().backward()
        last = generator.decoder[-1]
        assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0


def test_paper_generators_do_not_start_as_the_identity() -> None:
    torch.manual_seed(0)
    model = CycleGAN(ModelConfig(generator="resnet_6blocks", ngf=8, ndf=8))
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    assert (model.gen_ab(images) - images).abs().mean() > 0.1


def test_residual_needs_as_many_channels_in_both_domains() -> None:
    with pytest.raises(ConfigError, match="--residual needs as many channels"):
        ModelConfig(residual=True, channels_a=1)
    with pytest.raises(ValueError, match="as many output as input channels"):
        build_generator("resnet_3blocks", 1, 3, residual=True)
    with pytest.raises(ValueError, match="only a residual generator"):
        build_generator("resnet_3blocks").start_as_identity()


def test_train_with_the_fast_preset_records_it(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    flags = [*tiny_flags(synth_root, runs), "--preset", "fast", "--ngf", "8", "--batch-size", "2"]
    assert main(["train", *flags, "--max-steps-per-epoch", "2", "--epochs-decay", "0"]) == 0
    saved = yaml.safe_load((runs / "tiny" / "config.yaml").read_text())
    assert saved["run"]["preset"] == "fast"
    assert saved["model"]["residual"] is True and saved["model"]["ngf"] == 8
    # the tiny flags name their generator, which wins over the preset's; the rest is the preset's
    assert saved["model"]["generator"] == "resnet_6blocks" and saved["model"]["d_layers"] == 2
    assert saved["data"]["batch_size"] == 2 and saved["loss"]["lambda_identity"] == 0
    translator = Translator.from_run(runs / "tiny", "AtoB", device="cpu")
    image = torch.rand(1, 3, 20, 28) * 2 - 1
    assert translator.translate_tensor(image).shape == image.shape


def test_residual_generator_exports_to_onnx_that_matches_pytorch(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    config = Config().with_overrides({"preset": "fast", "ngf": 8, "load_size": 36, "crop_size": 32})
    model = fast_model(ngf=8)
    with torch.no_grad():  # move away from the identity so the export has something to show
        model.gen_ab.decoder[-1].weight.normal_(0.0, 0.02)
    run = save_run(tmp_path / "run", config, model)
    assert main(["export", "--run", str(run), "--direction", "AtoB", "--format", "onnx"]) == 0
    images = torch.rand(2, 3, 37, 53) * 2 - 1
    pytorch = Translator.from_run(run, "AtoB", device="cpu", precision="fp32")
    expected = pytorch.translate_tensor(images)
    assert (expected - images).abs().mean() > 1e-3  # not the identity any more
    exported = Translator.from_file(run / "exported" / "AtoB.onnx", device="cpu")
    assert (exported.translate_tensor(images) - expected).abs().max() < 1e-3


def test_options_parse_from_key_value_text() -> None:
    from cyclegan.config import parse_assignment

    assert parse_assignment("ngf=8") == ("ngf", 8)
    assert parse_assignment("lambda-identity = 0.25") == ("lambda_identity", 0.25)
    assert parse_assignment("residual=yes") == ("residual", True)
    assert parse_assignment("preset=fast") == ("preset", "fast")
    for bad, message in [
        ("ngf", "expects KEY=VALUE"),
        ("width=3", "unknown option 'width'"),
        ("upsample=bilinear", "expected one of"),
        ("ngf=eight", "cannot read 'eight' as int"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_assignment(bad)
