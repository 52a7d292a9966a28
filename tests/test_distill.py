"""`cyclegan distill`: small students that learn to reproduce a trained run's generators.

The pieces (mobile blocks, features of the translating pass, the frozen teacher), then real
distillations of a tiny teacher run: the student gets closer to its teacher, resumes
bit-exactly without the teacher's run, loads through every path of the tool, and every
mistake is one line with exit code 2."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from cyclegan.checkpoint import load_checkpoint
from cyclegan.cli import main
from cyclegan.commands.distill import given_options, student_config
from cyclegan.config import DistillConfig, ModelConfig, OptimConfig
from cyclegan.data.images import image_to_tensor, list_images, load_image
from cyclegan.evaluation.metrics import psnr
from cyclegan.inference.translator import Translator
from cyclegan.models.distill import DistillModel, matched_places
from cyclegan.models.generator import build_generator
from cyclegan.training.distill_step import distill_step
from cyclegan.training.loop import train
from cyclegan.training.run_log import distill_loss_names
from cyclegan.training.state import Optimizers
from tests.test_cli import tiny_flags

STUDENT = ["--workers", "0", "--log-every", "2", "--num-samples", "2", "--quiet"]


@pytest.fixture(scope="module")
def teacher_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN (ngf 16), trained for two epochs: the teacher of every distillation."""
    runs = tmp_path_factory.mktemp("teachers")
    flags = [*tiny_flags(synth_root, runs, "teacher"), "--ngf", "16", "--quiet"]
    assert main(["train", *flags, "--epochs", "2", "--epochs-decay", "0"]) == 0
    return runs / "teacher"


def copy_run(run: Path, into: Path) -> Path:
    """A private copy of a run folder (tests that write beside it must not share one)."""
    return Path(shutil.copytree(run, into / run.name))


def macs(module: torch.nn.Module, shape: tuple[int, ...]) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(shape))
    return counter.get_total_flops() / 2


def test_mobile_blocks_cost_a_fraction_of_the_standard_ones() -> None:
    blocks = {
        kind: build_generator("resnet_9blocks", 3, 3, 64, block=kind).blocks
        for kind in ("standard", "mobile")
    }
    shape = (1, 256, 16, 16)  # the blocks' input at 64 px
    ratio = macs(blocks["standard"], shape) / macs(blocks["mobile"], shape)
    assert 7 < ratio < 9.5  # 9 C^2 against C^2 + 9 C multiply-adds a pixel, C = 256
    teacher = build_generator("resnet_9blocks", 3, 3, 64)
    student = build_generator("resnet_9blocks", 3, 3, 16, block="mobile")
    assert macs(teacher, (1, 3, 64, 64)) / macs(student, (1, 3, 64, 64)) > 10


def test_features_come_from_the_pass_that_translates() -> None:
    torch.manual_seed(0)
    for kind in ("standard", "mobile"):
        generator = build_generator("resnet_6blocks", 3, 3, 8, block=kind, residual=True,
                                    skip=True)  # fmt: skip
        x = torch.rand(2, 3, 32, 32) * 2 - 1
        output, features = generator.forward_with_features(x, (0, 3, 5))
        assert torch.equal(output, generator(x))
        assert [f.shape for f in features] == [(2, 32, 8, 8)] * 3


def test_student_and_teacher_features_are_compared_at_the_same_depth() -> None:
    assert matched_places(9, 9) == ((0, 4, 8), (0, 4, 8))
    assert matched_places(3, 9) == ((0, 1, 2), (0, 4, 8))
    assert matched_places(1, 9) == ((0,), (0,))  # never one teacher block for two places


def test_a_step_trains_the_student_and_adapters_never_the_teacher(tmp_path: Path) -> None:
    student = ModelConfig(model="distill", generator="resnet_6blocks", ngf=8, block="mobile")
    teacher = ModelConfig(generator="resnet_6blocks", ngf=16)
    torch.manual_seed(0)
    model = DistillModel(student, teacher)
    model.train()
    assert not model.teacher("AtoB").training and model.student("AtoB").training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizers = Optimizers.for_model(model, OptimConfig())
    assert optimizers.disc is None
    batch = torch.rand(1, 3, 32, 32) * 2 - 1
    losses = distill_step(model, optimizers, batch, batch.flip(3), DistillConfig(teacher="x"))
    assert set(losses) == set(distill_loss_names(("AtoB", "BtoA")))
    after = model.state_dict()
    for key, value in before.items():
        changed = not torch.equal(value, after[key])
        if key.startswith("teacher_"):
            assert not changed, key
        elif key.endswith(".weight") and ("gen_" in key or "adapters_" in key):
            assert changed, key
    assert all(p.grad is None for p in model.teacher("AtoB").parameters())


def student_psnr(run: Path, teacher: Path, folder: Path, direction: str = "AtoB") -> float:
    """Mean PSNR of the student's translations of `folder` against the teacher's."""
    students = Translator.from_run(run, direction, device="cpu", precision="fp32")
    teachers = Translator.from_run(teacher, direction, device="cpu", precision="fp32")
    scores = []
    for path in list_images(folder):
        image = load_image(path)
        mine, theirs = students(image), teachers(image)
        scores.append(psnr(image_to_tensor(mine), image_to_tensor(theirs)))
    return sum(scores) / len(scores)


def test_a_distilled_student_comes_closer_to_its_teacher(
    teacher_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = copy_run(teacher_run, tmp_path)
    flags = ["distill", "--run", str(teacher), *STUDENT, "--seed", "3"]
    assert main([*flags, "--epochs", "1", "--epochs-decay", "0", "--max-steps-per-epoch", "1",
                 "--name", "early"]) == 0  # fmt: skip
    assert main([*flags, "--epochs", "8", "--epochs-decay", "4", "--name", "student"]) == 0
    out = capsys.readouterr().out
    assert "cyclegan evaluate --run" in out
    early, student = tmp_path / "early", tmp_path / "student"
    for direction, folder in (("AtoB", "testA"), ("BtoA", "testB")):
        before = student_psnr(early, teacher, synth_root / folder, direction)
        after = student_psnr(student, teacher, synth_root / folder, direction)
        assert after > before + 3, (direction, before, after)

    with open(student / "losses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0])[3:9] == distill_loss_names(("AtoB", "BtoA"))
    assert float(rows[-1]["L1_AtoB"]) < float(rows[0]["L1_AtoB"])
    config = load_checkpoint(student / "checkpoints" / "latest.pt")["config"]
    assert (config.model.model, config.model.block, config.model.ngf) == ("distill", "standard", 8)
    assert config.distill.teacher == str(teacher)
    grid = Image.open(student / "samples" / "epoch_012.png")
    assert grid.height > grid.width  # six rows (input, teacher, student per direction), 2 columns


def test_a_resumed_distillation_continues_bit_exactly_without_the_teachers_run(
    teacher_run: Path, tmp_path: Path
) -> None:
    teacher = copy_run(teacher_run, tmp_path)
    args = argparse.Namespace(run=teacher, workers=0, epochs=2, epochs_decay=1, log_every=2,
                              num_samples=0, quiet=True)  # fmt: skip
    config = student_config(args, given_options(args))
    straight = train(config.with_overrides({"name": "straight"}))
    stopped = train(config.with_overrides({"name": "stopped"}), should_stop=lambda step: step == 7)
    teachers_weights = load_checkpoint(stopped / "checkpoints" / "latest.pt")["models"]
    shutil.rmtree(teacher)  # the checkpoints hold the teacher: its run may go
    resumed_config = load_checkpoint(stopped / "checkpoints" / "latest.pt")["config"]
    train(resumed_config, resume=stopped / "checkpoints" / "latest.pt")
    ends = [load_checkpoint(d / "checkpoints" / "latest.pt") for d in (straight, stopped)]
    assert ends[0]["step"] == ends[1]["step"] == 18
    assert set(ends[0]["models"]) == {
        "gen_ab", "adapters_ab", "teacher_ab", "gen_ba", "adapters_ba", "teacher_ba"
    }  # fmt: skip
    for key, state in ends[0]["models"].items():
        for name, value in state.items():
            assert torch.equal(value, ends[1]["models"][key][name]), (key, name)
            if key.startswith("teacher_"):
                assert torch.equal(value, teachers_weights[key][name])
    mine, theirs = ends[0]["optimizers"]["gen"]["state"], ends[1]["optimizers"]["gen"]["state"]
    assert mine.keys() == theirs.keys()
    for index, values in mine.items():
        assert all(torch.equal(values[k], theirs[index][k]) for k in values), index
    assert ends[0]["optimizers"]["disc"] is None


def test_the_student_translates_exports_and_evaluates_like_any_run(
    teacher_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    teacher = copy_run(teacher_run, tmp_path)
    generator_file = teacher / "generators" / "BtoA.safetensors"
    assert main(["distill", "--weights", str(generator_file), "--data", str(synth_root),
                 *STUDENT, "--epochs", "1", "--epochs-decay", "0", "--runs-dir",
                 str(tmp_path), "--eval-every", "1", "--no-fid"]) == 0  # fmt: skip
    run = tmp_path / "BtoA-student"
    with open(run / "metrics.csv", newline="") as handle:  # measured during training too
        assert float(next(csv.DictReader(handle))["truth_psnr_BtoA"]) > 0
    assert sorted(p.name for p in (run / "generators").iterdir()) == ["BtoA.safetensors"]
    with open(run / "losses.csv", newline="") as handle:
        assert tuple(next(csv.reader(handle)))[3:6] == distill_loss_names(("BtoA",))

    out = tmp_path / "a"
    assert main(["translate", str(synth_root / "testB"), "--run", str(run), "--direction",
                 "BtoA", "--out", str(out)]) == 0  # fmt: skip
    assert len(list(out.glob("*.png"))) == 3
    capsys.readouterr()
    assert main(["translate", str(synth_root / "testB"), "--run", str(run), "--out",
                 str(tmp_path / "own")]) == 0  # fmt: skip
    assert len(list((tmp_path / "own").glob("*.png"))) == 3  # the run's one direction
    code = main(["translate", str(synth_root / "testA"), "--run", str(run), "--direction",
                 "AtoB", "--out", str(tmp_path / "b")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "distillation of BtoA only" in err
    checkpoint = run / "checkpoints" / "latest.pt"
    assert Translator.from_file(checkpoint).direction == "BtoA"  # its one direction

    assert main(["export", "--run", str(run), "--quantize", "int8",  # its one direction
                 "--calibration-images", str(synth_root / "trainB")]) == 0  # fmt: skip
    int8 = run / "exported" / "BtoA.int8.onnx"
    assert main(["translate", str(synth_root / "testB"), "--weights", str(int8), "--out",
                 str(tmp_path / "int8")]) == 0  # fmt: skip
    assert len(list((tmp_path / "int8").glob("*.png"))) == 3
    report = json.loads((run / "distillation.json").read_text())  # the closing report
    assert report["gmacs_student_BtoA"] * 2 < report["gmacs_teacher_BtoA"]
    assert report["params_student_BtoA"] < report["params_teacher_BtoA"]
    for figure in ("fp32_teacher", "fp32_student", "onnx_student", "int8_student"):
        assert report[f"latency_{figure}_BtoA"] > 0
    assert 0 < report["vs_teacher_ssim_BtoA"] <= 1 and "int8_vs_teacher_psnr_BtoA" in report
    assert not [key for key in report if key.endswith("_AtoB")]

    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--no-fid", "--no-latency"]) == 0
    table = capsys.readouterr().out
    assert "student against teacher, BtoA" in table and "PSNR vs teacher" in table
    metrics = json.loads((run / "metrics.json").read_text())
    assert "truth_psnr_BtoA" in metrics["metrics"]
    assert not [key for key in metrics["metrics"] if key.endswith("_AtoB")]
    assert not [key for key in metrics["distillation"] if key.startswith("latency")]

    from cyclegan.ui.models import run_directions

    assert run_directions(tmp_path, run.name) == ("BtoA",)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "give the teacher: --run RUN"),
        (["--run", "{teacher}", "--weights", "{teacher}/generators/AtoB.safetensors"],
         "one of them"),
        (["--run", "{missing}"], "does not exist"),
        (["--run", "{empty}"], "has no checkpoint"),
        (["--weights", "{teacher}/generators/AtoB.safetensors", "--direction", "BtoA", "--data",
          "{data}"], "has no BtoA generator to distil"),
        (["--run", "{teacher}", "--ngf", "32"], "wider than the teacher's 16"),
        (["--weights", "{teacher}/generators/AtoB.safetensors"], "give the dataset with --data"),
        (["--run", "{teacher}", "--images", "{data}/testA"], "--images adds images of one"),
        (["--run", "{teacher}", "--direction", "AtoB", "--images", "{missing}"],
         "--images {missing}"),
        (["--resume", "{teacher}"], "is not a distillation"),
    ],
)  # fmt: skip
def test_each_mistake_is_one_line_and_exit_2(
    teacher_run: Path,
    synth_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    (tmp_path / "empty").mkdir()
    places = {"teacher": teacher_run, "missing": tmp_path / "missing", "empty": tmp_path / "empty",
              "data": synth_root}  # fmt: skip
    filled = [flag.format(**places) for flag in flags]
    before = sorted(teacher_run.parent.iterdir())
    code = main(["distill", *filled, "--runs-dir", str(tmp_path / "runs"), *STUDENT])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and message.format(**places) in err, err
    assert not (tmp_path / "runs").exists()  # nothing written
    assert sorted(teacher_run.parent.iterdir()) == before


def test_extra_images_widen_the_source_domain(
    teacher_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = copy_run(teacher_run, tmp_path)
    assert main(["distill", "--run", str(teacher), "--direction", "AtoB", "--images",
                 str(synth_root / "testA"), "--workers", "0", "--epochs", "1",
                 "--epochs-decay", "0", "--num-samples", "0"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "distilling on 3 more image(s) of domain A" in out
    assert "training" in out and "9 A and 6 B images" in out


def test_a_reference_generator_file_can_teach(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reference implementation's .pth (read as A -> B), as `cyclegan convert` takes it."""
    reference = Path(__file__).parent / "data" / "reference" / "reference_resnet_6blocks_ngf8.pth"
    assert main(["distill", "--weights", str(reference), "--data", str(synth_root),
                 "--runs-dir", str(tmp_path), *STUDENT, "--epochs", "1",
                 "--epochs-decay", "0"]) == 0  # fmt: skip
    run = tmp_path / "reference_resnet_6blocks_ngf8-student"
    checkpoint = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert checkpoint["config"].model.directions == ("AtoB",)
    assert checkpoint["config"].model.ngf == 8  # a quarter of 8 is below the narrowest student
    teacher = Translator.from_file(reference, device="cpu", precision="fp32").generator
    for name, value in teacher.state_dict().items():
        assert torch.equal(checkpoint["models"]["teacher_ab"][name], value), name


def test_a_distillation_resumes_from_the_command_line(
    teacher_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = copy_run(teacher_run, tmp_path)
    assert main(["distill", "--run", str(teacher), "--direction", "AtoB", *STUDENT,
                 "--epochs", "1", "--epochs-decay", "0"]) == 0  # fmt: skip
    run = tmp_path / "teacher-student"
    first = load_checkpoint(run / "checkpoints" / "latest.pt")["step"]
    capsys.readouterr()
    assert main(["distill", "--resume", str(run), "--epochs", "1", *STUDENT]) == 0
    assert "resuming" in capsys.readouterr().out
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 2 * first

    code = main(["train", "--model", "distill", "--data", str(teacher), "--teacher",
                 str(teacher)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cyclegan distill --run RUN" in err
