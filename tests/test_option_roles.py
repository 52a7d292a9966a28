"""Each option declares its role on its config field, and every rule that depends on it is
derived from there: a resumed run refuses a change to a fixed option (architecture, start),
applies the others, and an option that does nothing where it is given says so."""

from __future__ import annotations

import re
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest

from cyclegan.checkpoint import load_checkpoint
from cyclegan.cli import main
from cyclegan.commands.train import description, resumed_config
from cyclegan.config import (
    Config,
    ConfigError,
    ModelConfig,
    Role,
    annotated_yaml,
    config_fields,
    idle_options,
    options,
)
from cyclegan.training.loop import train
from tests.conftest import tiny_config
from tests.test_cli import tiny_flags


def another_value(spec_type: Any, value: Any) -> Any:
    """A valid value other than `value` for a field of this type, whatever the field."""
    choices = typing.get_args(spec_type) if typing.get_origin(spec_type) is typing.Literal else ()
    if choices:
        return next(choice for choice in choices if choice != value)
    if spec_type is bool:
        return not value
    if spec_type is int:
        return 1 if value == 3 else 3  # 1 or 3: also a valid channel count
    if spec_type is float:
        return 0.3 if value != 0.3 else 0.1
    raise AssertionError(f"no other value known for a {spec_type} field: extend another_value")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Path:
    """A tiny run of two steps; no identity loss, so a channel count may change alone."""
    runs = tmp_path_factory.mktemp("runs")
    config = tiny_config(synth_root, runs, lambda_identity=0.0, max_steps_per_epoch=1)
    return train(config)


def test_every_config_field_declares_its_role() -> None:
    declared = {spec.name: spec.role for spec in config_fields()}
    assert None not in declared.values()
    assert declared["world_size"] is Role.RECORDED
    assert "world_size" not in {spec.name for spec in options()}  # recorded, no flag


@pytest.mark.parametrize("name", [f.name for f in __import__("dataclasses").fields(ModelConfig)])
def test_a_resumed_run_refuses_a_change_to_any_model_field(finished_run: Path, name: str) -> None:
    """Walks every field of the model config, so a new option cannot be forgotten: changing it
    on resume is refused, unless its field says the change keeps the run what it was."""
    spec = next(spec for spec in options() if spec.name == name)
    assert spec.role in (Role.ARCHITECTURE, Role.START), f"{name}: a model option is fixed"
    latest = finished_run / "checkpoints" / "latest.pt"
    saved = load_checkpoint(latest)["config"]
    new = another_value(spec.type, spec.value(saved))
    before = latest.read_bytes()
    config, checkpoint = resumed_config(finished_run, {name: new})
    if not spec.applies_to(saved):  # e.g. a distillation's --direction on a CycleGAN run
        assert idle_options(config, (name,)) == [
            f"{spec.flag} does nothing {spec.applies.otherwise}"
        ]
        return
    with pytest.raises(
        ConfigError, match=re.escape(name.replace("_", "-") if spec.role is Role.START else name)
    ):
        train(config, resume=checkpoint, given=(name,), log=lambda message: None)
    assert latest.read_bytes() == before


def test_a_change_that_keeps_the_network_is_accepted(finished_run: Path, tmp_path: Path) -> None:
    # dropout 0.2 -> 0.4 keeps the dropout layers (0 -> 0.2 would add them: refused above)
    shutil.copytree(finished_run, tmp_path / "copy")
    config, _ = resumed_config(tmp_path / "copy", {})
    assert config.model.dropout == 0.0
    with_dropout = tiny_config(
        Path(config.data.data), tmp_path / "r", dropout=0.2, max_steps_per_epoch=1
    )
    run = train(with_dropout)
    again, checkpoint = resumed_config(run, {"dropout": 0.4, "epochs": 1})
    messages: list[str] = []
    train(again, resume=checkpoint, given=("dropout", "epochs"), log=messages.append)
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["config"].model.dropout == 0.4
    assert any("--dropout 0.2 -> 0.4" in message for message in messages)


def test_an_option_that_does_nothing_is_neither_refused_nor_silent(
    synth_root: Path, tmp_path: Path
) -> None:
    # the seed discriminator has a fixed depth: --d-layers does nothing there
    config = tiny_config(
        synth_root, tmp_path, discriminator="seed", crop_size=32, max_steps_per_epoch=1
    )
    messages: list[str] = []
    run = train(config.with_overrides({"d_layers": 2}), given=("d_layers",), log=messages.append)
    note = "note: --d-layers does nothing with --discriminator seed (its depth is fixed)"
    assert note in messages
    resumed, checkpoint = resumed_config(run, {"d_layers": 4, "epochs": 1})
    messages.clear()
    train(resumed, resume=checkpoint, given=("d_layers", "epochs"), log=messages.append)
    assert note in messages  # accepted, and said to do nothing
    assert idle_options(resumed, ["dist_timeout", "lr"]) == [
        "--dist-timeout does nothing without torchrun (the run is one process)"
    ]


def test_a_preset_given_on_resume_is_refused_and_nothing_recorded(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    flags = [*tiny_flags(synth_root, runs), "--max-steps-per-epoch", "1"]
    assert main(["train", *flags, "--preset", "fast", "--crop-size", "32"]) == 0
    run = runs / "tiny"
    recorded = (run / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--preset", "paper"]) == 2
    error = capsys.readouterr().err
    assert "--preset paper cannot change on --resume (the run started with 'fast')" in error
    assert error.count("\n") == 1
    assert (run / "config.yaml").read_text() == recorded


def test_another_dataset_on_resume_is_refused_a_moved_one_accepted(
    finished_run: Path, tmp_path: Path
) -> None:
    saved = load_checkpoint(finished_run / "checkpoints" / "latest.pt")["config"]
    other = tmp_path / "other"
    for part in ("trainA", "trainB"):
        (other / part).mkdir(parents=True)
        shutil.copy(next(iter(sorted((Path(saved.data.data) / part).iterdir()))), other / part)
    config, checkpoint = resumed_config(finished_run, {"data": str(other)})
    with pytest.raises(ConfigError, match=r"--data .* cannot change on --resume"):
        train(config, resume=checkpoint, given=("data",), log=lambda message: None)
    # the same dataset in another place (copied, or moved away) continues
    copy = tmp_path / "copy"
    shutil.copytree(saved.data.data, copy)
    run_copy = tmp_path / "run_copy"
    shutil.copytree(finished_run, run_copy)
    config, checkpoint = resumed_config(run_copy, {"data": str(copy), "epochs": 1})
    train(config, resume=checkpoint, given=("data", "epochs"), log=lambda message: None)
    assert load_checkpoint(run_copy / "checkpoints" / "latest.pt")["config"].data.data == str(copy)


def test_help_and_the_config_view_show_each_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert (
        "--ngf NGF generator width: channels of its first convolution [architecture: fixed"
        in help_text
    )
    schedule = (
        "Giving --lr, --d-lr-scale, --epochs, --epochs-decay or --minutes starts a new schedule"
    )
    assert schedule in description()
    text = annotated_yaml(Config().with_overrides({"discriminator": "seed"}))
    assert "  ngf: 64  # architecture: fixed" in text
    assert "  lr: 0.0002  # lr schedule" in text
    assert "  d_layers: 3  # does nothing with --discriminator seed (its depth is fixed)" in text
    assert "  beta1: 0.5\n" in text
