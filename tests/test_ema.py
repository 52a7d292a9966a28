"""--ema: an exponential moving average of the generators' weights, kept beside the raw ones in
every checkpoint, continued exactly on resume, and what translation and evaluation use."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cyclegan.checkpoint import AVERAGED_KEY, generator_from_checkpoint, load_checkpoint
from cyclegan.config import ConfigError, OptimConfig
from cyclegan.inference.translator import Translator
from cyclegan.models import CycleGAN
from cyclegan.models.artifact import load_generator
from cyclegan.training.ema import AveragedGenerators
from cyclegan.training.loop import train
from tests.conftest import tiny_config

EMA = {"ema": 0.9, "seed": 4, "batch_size": 2, "epochs": 2, "epochs_decay": 0}


def test_the_average_moves_by_one_minus_the_decay_and_follows_closely_at_first() -> None:
    model = CycleGAN(tiny_config(Path("."), Path(".")).model)
    average = AveragedGenerators(model, decay=0.99)
    assert average.decay_at(0) == pytest.approx(0.1) and average.decay_at(10_000) == 0.99
    before = {k: v.clone() for k, v in average.gen_ab.state_dict().items()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    average.update(model, step=10_000)
    after, current = average.gen_ab.state_dict(), model.gen_ab.state_dict()
    for key, old in before.items():
        expected = 0.99 * old + 0.01 * current[key]
        assert torch.allclose(after[key], expected, atol=1e-6), key
    assert not any(p.requires_grad for p in average.parameters())


def test_a_decay_of_one_or_more_is_refused() -> None:
    with pytest.raises(ConfigError, match="--ema must be 0 \\(off\\) or a decay below 1"):
        OptimConfig(ema=1.0)


def test_a_run_with_ema_saves_the_average_and_translates_with_it(
    synth_root: Path, tmp_path: Path
) -> None:
    run_dir = train(tiny_config(synth_root, tmp_path, **EMA))
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    averaged, raw = checkpoint[AVERAGED_KEY], checkpoint["models"]
    assert set(averaged) == {"gen_ab", "gen_ba"}
    assert any(not torch.equal(averaged["gen_ab"][k], raw["gen_ab"][k]) for k in raw["gen_ab"])

    image = torch.rand(1, 3, 32, 32) * 2 - 1
    source = run_dir / "checkpoints" / "latest.pt"
    with torch.no_grad():
        by_average = generator_from_checkpoint(checkpoint, "AtoB", source)(image)
        by_raw = generator_from_checkpoint(checkpoint, "AtoB", source, averaged=False)(image)
        translator = Translator.from_run(run_dir, "AtoB", "cpu", precision="fp32")
        translated = translator.generator(image)
    assert not torch.allclose(by_average, by_raw)
    assert torch.allclose(translated, by_average, atol=1e-6)
    _, metadata = load_generator(run_dir / "generators" / "AtoB.safetensors")
    assert metadata["weights"] == "averaged (--ema 0.9)"


def test_a_run_without_ema_saves_no_average(synth_root: Path, tmp_path: Path) -> None:
    run_dir = train(tiny_config(synth_root, tmp_path, **{**EMA, "ema": 0.0}))
    assert AVERAGED_KEY not in load_checkpoint(run_dir / "checkpoints" / "latest.pt")


def test_resume_continues_the_average_exactly(synth_root: Path, tmp_path: Path) -> None:
    straight = train(tiny_config(synth_root, tmp_path / "straight", **EMA))
    config = tiny_config(synth_root, tmp_path / "resumed", **EMA)
    run_dir = train(config, should_stop=lambda step: step == 4)
    train(config, resume=run_dir / "checkpoints" / "latest.pt")
    ends = [load_checkpoint(d / "checkpoints" / "latest.pt") for d in (straight, run_dir)]
    assert ends[0]["step"] == ends[1]["step"] == 6
    for key, state in ends[0][AVERAGED_KEY].items():
        for name, value in state.items():
            assert torch.equal(value, ends[1][AVERAGED_KEY][key][name]), (key, name)


def test_ema_given_on_resume_starts_from_the_checkpoint(synth_root: Path, tmp_path: Path) -> None:
    config = tiny_config(synth_root, tmp_path, **{**EMA, "ema": 0.0})
    run_dir = train(config, should_stop=lambda step: step == 2)
    lines: list[str] = []
    resumed = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["config"]
    train(
        resumed.with_overrides({"ema": 0.5}),
        resume=run_dir / "checkpoints" / "latest.pt",
        given=("ema",),
        log=lines.append,
    )
    assert any("average of the generator weights starts" in line for line in lines), lines
    assert AVERAGED_KEY in load_checkpoint(run_dir / "checkpoints" / "latest.pt")
