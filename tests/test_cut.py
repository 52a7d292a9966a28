"""CUT and FastCUT (--model cut|fastcut): the PatchNCE loss against its definition and against
the authors' code, where its gradients go, the families' settings and refusals, and real runs:
trained, resumed bit-exactly, translated one way, exported and evaluated."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from cyclegan.checkpoint import CheckpointError, generator_from_checkpoint, load_checkpoint
from cyclegan.cli import main
from cyclegan.config import Config, ConfigError
from cyclegan.models import ContrastiveModel, build_model
from cyclegan.models.cut import patch_nce_loss, sample_locations
from cyclegan.training.contrastive_step import contrastive_step
from cyclegan.training.loop import train
from cyclegan.training.run_log import CONTRASTIVE_LOSS_NAMES
from cyclegan.training.state import TrainingState
from cyclegan.training.step import PLAIN
from tests.conftest import tiny_config
from tests.test_cli import tiny_flags
from tests.test_distributed import (
    SMALL_FLAGS,
    finish,
    first_batch,
    free_port,
    in_float64,
    join_as_rank,
    torchrun_train,
)

REFERENCE = Path(__file__).parent / "data" / "patchnce" / "reference.pt"


def unit_rows(rows: int, width: int, seed: int) -> torch.Tensor:
    x = torch.randn(rows, width, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True)


# ---- the loss ------------------------------------------------------------------------------


def test_patch_nce_is_the_cross_entropy_of_each_patch_against_the_others_of_its_image() -> None:
    images, patches, temperature = 2, 5, 0.07
    query, key = unit_rows(images * patches, 8, 1), unit_rows(images * patches, 8, 2)
    ours = patch_nce_loss(query, key, images, temperature)

    expected = []
    for n in range(images):
        for i in range(patches):
            q = query[n * patches + i]
            positive = float(q @ key[n * patches + i])
            # negatives: every key of the same image, the same place's replaced by -10
            negatives = [
                -10.0 if j == i else float(q @ key[n * patches + j]) for j in range(patches)
            ]
            logits = [positive / temperature] + [v / temperature for v in negatives]
            log_sum = math.log(sum(math.exp(v) for v in logits))
            expected.append(log_sum - positive / temperature)  # -log softmax of the positive
    assert ours.shape == (images * patches,)
    assert torch.allclose(ours, torch.tensor(expected), atol=1e-5)


def test_patch_nce_takes_no_negatives_from_other_images() -> None:
    images, patches = 2, 4
    query, key = unit_rows(images * patches, 6, 3), unit_rows(images * patches, 6, 4)
    before = patch_nce_loss(query, key, images, 0.1)
    changed = key.clone()
    changed[patches:] = unit_rows(patches, 6, 5)  # only the second image's keys
    after = patch_nce_loss(query, changed, images, 0.1)
    assert torch.equal(before[:patches], after[:patches])
    assert not torch.allclose(before[patches:], after[patches:])


def test_patch_nce_matches_the_public_implementation() -> None:
    """The authors' PatchNCELoss on saved inputs (scripts/patchnce_reference.py)."""
    reference = torch.load(REFERENCE, weights_only=True)
    assert len(reference["cases"]) == 5
    for case in reference["cases"]:
        ours = patch_nce_loss(case["query"], case["key"], case["images"], case["temperature"])
        assert torch.allclose(ours, case["losses"], atol=1e-6, rtol=0), case["images"]


def test_patches_are_sampled_at_the_same_places_in_every_image_and_without_repeats() -> None:
    maps = [torch.zeros(3, 4, 6, 6), torch.zeros(3, 8, 2, 2)]
    locations = sample_locations(maps, 10, torch.Generator().manual_seed(0))
    assert [len(where) for where in locations] == [10, 4]  # all 4 of a 2x2 map
    assert all(len(set(where.tolist())) == len(where) for where in locations)


# ---- the networks --------------------------------------------------------------------------


def small_model(**options: object) -> ContrastiveModel:
    config = Config().with_overrides(
        {"model": "cut", "generator": "resnet_6blocks", "ngf": 8, "ndf": 8, **options}
    )
    torch.manual_seed(0)
    model = build_model(config.model)
    assert isinstance(model, ContrastiveModel)
    return model


def test_the_heads_read_the_papers_five_places_of_the_encoder() -> None:
    model = small_model()
    # the padded input, both downsampling convolutions, the first and the fifth residual block
    assert model.layers == (0, 4, 7, 10, 14)
    features = model.gen_ab.encode(torch.zeros(1, 3, 32, 32), model.layers)
    assert [f.shape[1:] for f in features] == [
        (3, 38, 38), (16, 16, 16), (32, 8, 8), (32, 8, 8), (32, 8, 8),
    ]  # fmt: skip
    assert [head[0].in_features for head in model.nce_heads.heads] == [3, 16, 32, 32, 32]
    assert all(head[2].out_features == 256 for head in model.nce_heads.heads)


def test_the_nce_term_trains_the_generator_and_the_heads_not_the_discriminator() -> None:
    model = small_model()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    model.nce_loss(x, model.gen_ab(x), patches=16, temperature=0.07).backward()
    for name, parameter in [*model.gen_ab.named_parameters(), *model.nce_heads.named_parameters()]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert all(parameter.grad is None for parameter in model.disc_b.parameters())


def test_the_nce_gradient_of_each_image_is_its_own_whatever_the_batch() -> None:
    """In a batch of two, each image's PatchNCE gradient is half its gradient alone (the loss
    is the mean over the batch's patches). Feature rows gathered the paper's way hand the
    generator a channels-last gradient, which torch's CPU instance norm gets wrong for a
    single image: this failed by as much as the gradient itself before the gather changed."""
    with in_float64():
        model = small_model()
        images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
        gradients = []
        for batch in (images[:1], images[1:], images):
            output = model.gen_ab(batch).detach().requires_grad_(True)
            torch.manual_seed(11)  # the same patch places every time
            model.nce_loss(batch, output, patches=16, temperature=0.07).backward()
            gradients.append(output.grad)
    alone = torch.cat(gradients[:2]) / 2
    assert torch.allclose(gradients[2], alone, atol=1e-12), (gradients[2] - alone).abs().max()


def test_the_keys_side_passes_no_gradient() -> None:
    """The input's features are the fixed targets (the paper's code detaches them)."""
    model = small_model()
    source = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    output = torch.rand(1, 3, 32, 32) * 2 - 1
    model.nce_loss(source, output, patches=8, temperature=0.07).backward()
    assert source.grad is None


# ---- settings and refusals -----------------------------------------------------------------


def test_cut_and_fastcut_start_from_their_papers_settings() -> None:
    cut = Config().with_overrides({"model": "cut"})
    assert (cut.loss.lambda_nce, cut.loss.nce_idt, cut.loss.flip_equivariance) == (1, True, False)
    assert (cut.optim.pool_size, cut.optim.epochs, cut.optim.epochs_decay) == (0, 200, 200)
    fast = Config().with_overrides({"model": "fastcut"})
    loss = fast.loss
    assert (loss.lambda_nce, loss.nce_idt, loss.flip_equivariance) == (10, False, True)
    assert (fast.optim.epochs, fast.optim.epochs_decay) == (150, 50)
    assert (fast.loss.nce_patches, fast.loss.nce_temperature) == (256, 0.07)
    given = Config().with_overrides({"model": "fastcut", "lambda_nce": 3.0, "epochs": 5})
    assert given.loss.lambda_nce == 3.0 and given.optim.epochs == 5  # given options win
    assert Config().model.model == "cyclegan"  # the default is unchanged


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"preset": "fast"}, "--preset fast is a CycleGAN preset"),
        ({"channels_b": 1}, "both domains need as many channels"),
    ],
)
def test_what_cut_cannot_do_is_refused_in_one_sentence(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Config().with_overrides({"model": "cut", **overrides})


def test_cycle_options_are_said_to_do_nothing_for_cut(capsys: pytest.CaptureFixture[str]) -> None:
    from cyclegan.config import idle_options

    config = Config().with_overrides({"model": "cut"})
    lines = idle_options(config, ["lambda_cycle", "pool_size", "lambda_nce"])
    assert lines == [
        "--lambda-cycle does nothing with --model cut, fastcut or distill (no cycle)",
        "--pool-size does nothing with --model cut, fastcut or distill (no cycle)",
    ]
    assert idle_options(Config(), ["lambda_nce"]) == [
        "--lambda-nce does nothing without --model cut or fastcut (no PatchNCE term)"
    ]


# ---- real runs -----------------------------------------------------------------------------

CUT = {"batch_size": 2, "epochs": 2, "epochs_decay": 0, "seed": 3}


def counting(function: Callable[..., Any], calls: list[int]) -> Callable[..., Any]:
    def counted(*args: Any) -> Any:
        calls.append(1)
        return function(*args)

    return counted


@pytest.mark.parametrize("family", ["cut", "fastcut"])
def test_recomputing_the_blocks_changes_nothing_but_memory(
    synth_root: Path, tmp_path: Path, family: str
) -> None:
    """--checkpoint-blocks recomputes the encoder and the residual blocks of both generator
    passes (the translation and PatchNCE's over it) in backward: the same losses and weights,
    to float rounding; the stem and the blocks run again in backward."""
    results = []
    for recompute in (False, True):
        config = tiny_config(synth_root, tmp_path, model=family, **CUT, checkpoint_blocks=recompute)
        state = TrainingState.create(config, torch.device("cpu"))
        calls: list[int] = []
        # counted in forward itself (runs no hooks): recomputation. Each layer of the two is
        # counted once a pass, so the calls are twice the passes
        for layer in (state.model.gen_ab.encoder[1], state.model.gen_ab.blocks[0]):
            layer.forward = counting(layer.forward, calls)
        real_a, real_b = first_batch(synth_root, config, 0, 1)
        torch.manual_seed(DDP_SEED)
        speed = replace(PLAIN, checkpoint_blocks=recompute)
        losses = contrastive_step(
            state.model, state.optimizers, real_a.float(), real_b.float(), config.loss, speed
        )
        results.append((losses, state.model.state_dict(), len(calls)))
    (plain, plain_weights, plain_calls), (again, weights, calls) = results
    # again in backward: the translation and PatchNCE's pass over each output (cut: G(A), G(B))
    assert calls == plain_calls + 2 * {"cut": 3, "fastcut": 2}[family]
    for name, value in plain.items():
        assert again[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    for key, value in plain_weights.items():
        assert torch.allclose(weights[key], value, atol=1e-6), key


@pytest.mark.parametrize("family", ["cut", "fastcut"])
def test_a_resumed_run_continues_bit_exactly(synth_root: Path, tmp_path: Path, family: str) -> None:
    """Weights, projection heads, both optimizers and the random state (patch places, the
    flips of fastcut) all continue as if the run had not stopped."""
    options = {**CUT, "model": family}
    straight = train(tiny_config(synth_root, tmp_path / "straight", **options))
    config = tiny_config(synth_root, tmp_path / "resumed", **options)
    run_dir = train(config, should_stop=lambda step: step == 4)
    train(config, resume=run_dir / "checkpoints" / "latest.pt")
    ends = [load_checkpoint(d / "checkpoints" / "latest.pt") for d in (straight, run_dir)]
    assert ends[0]["step"] == ends[1]["step"] == 6
    assert set(ends[0]["models"]) == {"gen_ab", "disc_b", "nce_heads"}
    for key, state in ends[0]["models"].items():
        for name, value in state.items():
            assert torch.equal(value, ends[1]["models"][key][name]), (key, name)
    for part in ("gen", "disc"):
        mine, theirs = ends[0]["optimizers"][part]["state"], ends[1]["optimizers"][part]["state"]
        assert mine.keys() == theirs.keys()
        for index, values in mine.items():
            assert all(torch.equal(values[k], theirs[index][k]) for k in values), (part, index)


def test_a_cut_run_learns_translates_one_way_and_refuses_the_other(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    flags = [*tiny_flags(synth_root, runs), "--model", "cut", "--epochs", "3", "--seed", "1"]
    assert main(["train", *flags, "--epochs-decay", "0", "--batch-size", "2"]) == 0
    run_dir = runs / "tiny"
    out = capsys.readouterr().out
    assert "NCE" in out and "cycle_A" not in out

    with open(run_dir / "losses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0])[3:7] == CONTRASTIVE_LOSS_NAMES
    nce = [float(row["NCE"]) for row in rows]
    assert nce[-1] < nce[0]  # PatchNCE falls as the heads and the generator learn
    assert all(float(row["NCE_idt"]) > 0 for row in rows)  # cut has the identity term

    assert sorted(p.name for p in (run_dir / "generators").iterdir()) == ["AtoB.safetensors"]
    grid = Image.open(run_dir / "samples" / "epoch_003.png")
    assert grid.height < grid.width * 2  # four rows of two images, not CycleGAN's six

    assert main(["translate", str(synth_root / "testA"), "--run", str(run_dir), "--out",
                 str(tmp_path / "b")]) == 0  # fmt: skip
    assert len(list((tmp_path / "b").glob("*.png"))) == 3
    capsys.readouterr()
    code = main(["translate", str(synth_root / "testB"), "--run", str(run_dir), "--direction",
                 "BtoA", "--out", str(tmp_path / "a")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "is a --model cut run: it translates A to B only" in err
    assert not (tmp_path / "a").exists()

    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    with pytest.raises(CheckpointError, match="translates A to B only"):
        generator_from_checkpoint(checkpoint, "BtoA", run_dir)


def test_a_cut_run_exports_and_evaluates_one_direction(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    run_dir = train(tiny_config(synth_root, tmp_path, model="fastcut", **CUT))
    onnx_file = tmp_path / "cut.onnx"
    assert main(["export", "--run", str(run_dir), "--format", "onnx", "--out", str(onnx_file)]) == 0
    assert "ONNX Runtime matches PyTorch" in capsys.readouterr().out
    assert main(["translate", str(synth_root / "testA"), "--weights", str(onnx_file), "--out",
                 str(tmp_path / "onnx_b")]) == 0  # fmt: skip
    assert len(list((tmp_path / "onnx_b").glob("*.png"))) == 3
    assert main(["export", "--run", str(run_dir), "--quantize", "int8"]) == 0
    assert "ONNX int8, AtoB" in capsys.readouterr().out
    int8 = run_dir / "exported" / "AtoB.int8.onnx"
    out = tmp_path / "int8_b"
    assert (
        main(["translate", str(synth_root / "testA"), "--weights", str(int8), "--out", str(out)])
        == 0
    )
    assert len(list((tmp_path / "int8_b").glob("*.png"))) == 3
    assert main(["evaluate", "--run", str(run_dir), "--no-fid"]) == 0
    table = capsys.readouterr().out
    assert "PSNR vs truth (dB)" in table and "cycle" not in table.lower()


# ---- torchrun ------------------------------------------------------------------------------

DDP_SEED = 11  # every process draws the same patch places and flip, so 2 x 1 equals 1 x 2


def cut_ddp_step_process(rank: int, port: int, data: str, out: str) -> None:
    """Process `rank` of 2: for cut and fastcut, one real DDP step on its own first batch of
    1, in float64; rank 0 saves the losses and weights."""
    from cyclegan.training.distributed import StopWish, join_team

    join_as_rank(rank, port)
    results = []
    with join_team(tiny_config(Path(data), Path(out)).run) as team:
        for overrides in DDP_VARIANTS:
            config = tiny_config(Path(data), Path(out), **overrides, batch_size=1)
            state = TrainingState.create(config, team.device, rank=team.rank)
            replicas = team.wrap(state.model)
            real_a, real_b = first_batch(Path(data), config, team.rank, team.world_size)
            torch.manual_seed(DDP_SEED)
            losses = contrastive_step(
                replicas, state.optimizers, real_a, real_b, config.loss, PLAIN
            )
            results.append(
                {
                    "losses": team.share_step(losses, StopWish()).losses,
                    "models": {k: v.clone() for k, v in state.model.state_dict().items()},
                }
            )
        if team.is_main:
            torch.save(results, Path(out) / "cut_ddp.pt")


DDP_VARIANTS = [
    {"model": "cut", "pool_size": 0, "device": "cpu"},
    {"model": "fastcut", "pool_size": 0, "device": "cpu", "nce_patches": 64},
]


def one_process_cut_step(data: Path, out: Path, overrides: dict[str, object]) -> tuple[dict, dict]:
    with in_float64():
        config = tiny_config(data, out, **overrides, batch_size=2)
        state = TrainingState.create(config, torch.device("cpu"))
        real_a, real_b = first_batch(data, config, 0, 1)
        torch.manual_seed(DDP_SEED)
        losses = contrastive_step(state.model, state.optimizers, real_a, real_b, config.loss, PLAIN)
    return losses, state.model.state_dict()


@pytest.mark.slow
def test_a_ddp_step_of_2x1_gives_the_weights_of_one_step_of_the_whole_batch(
    synth_root: Path, tmp_path: Path
) -> None:
    """Two processes of one image each against one process of both images, in float64: the
    generator, its projection heads (built with the model, so alike on every rank before DDP
    wraps them) and the discriminator hold the same weights after the step."""
    torch.multiprocessing.spawn(
        cut_ddp_step_process,
        args=(free_port(), str(synth_root), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    ddp = torch.load(tmp_path / "cut_ddp.pt", weights_only=True)
    for overrides, result in zip(DDP_VARIANTS, ddp):
        losses, single = one_process_cut_step(synth_root, tmp_path, overrides)
        for name in CONTRASTIVE_LOSS_NAMES:
            assert result["losses"][name] == pytest.approx(losses[name], rel=1e-12, abs=1e-15)
        assert set(single) == set(result["models"])
        assert any(key.startswith("nce_heads.") for key in single)
        worst = max((result["models"][key] - single[key]).abs().max().item() for key in single)
        # Adam's first step moves every weight by about lr x the sign of its gradient (2e-4),
        # so a wrong gradient shows by ~1e-4; biases before an instance norm have a gradient
        # of 0 whose float64 rounding noise moves them by up to ~1e-8
        assert worst < 1e-7, overrides


@pytest.mark.slow
def test_fastcut_trains_under_torchrun(synth_root: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    flags = [*tiny_flags(synth_root, runs), *SMALL_FLAGS, "--model", "fastcut", "--epochs", "1"]
    code, output = finish(torchrun_train(*flags, "--check-replicas", "--dist-timeout", "120"))
    assert code == 0, output
    assert "on 2 processes" in output
    rows = (runs / "tiny" / "losses.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,lr,D_B,G_B,NCE,NCE_idt") and len(rows) == 4
    assert (runs / "tiny" / "generators" / "AtoB.safetensors").is_file()


def test_a_fastcut_run_keeps_its_minutes(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--minutes with a fake clock: 2 s a step, so a 1-minute budget is 30 steps whatever the
    machine, the lr decays with the time spent, and the last records are written."""
    from cyclegan.training import loop
    from cyclegan.training.contrastive_step import contrastive_step as real_step
    from tests.test_time_budget import FakeClock

    clock = FakeClock([2.0] * 100)

    def step(*args: object, **kwargs: object) -> dict[str, float]:
        losses = real_step(*args, **kwargs)  # type: ignore[arg-type]
        clock.step_took()
        return losses

    monkeypatch.setattr(loop, "contrastive_step", step)
    config = tiny_config(synth_root, tmp_path, model="fastcut", minutes=1.0, log_every=1)
    run = train(config, clock=clock)
    checkpoint = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert checkpoint["step"] == 30 and checkpoint["schedulers"]["seconds"] == pytest.approx(60)
    with open(run / "losses.csv", newline="") as handle:
        lrs = [float(row["lr"]) for row in csv.DictReader(handle)]
    assert lrs[0] == 2e-4 and lrs[-1] < 2e-5  # constant for half the time, then down to 0
    assert (run / "samples" / "epoch_005.png").is_file()  # 6 steps an epoch: ended in epoch 5


def test_a_cut_run_keeps_an_average_of_its_one_generator(synth_root: Path, tmp_path: Path) -> None:
    from cyclegan.checkpoint import AVERAGED_KEY
    from cyclegan.models.artifact import load_generator

    run_dir = train(tiny_config(synth_root, tmp_path, model="fastcut", ema=0.9, **CUT))
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert list(checkpoint[AVERAGED_KEY]) == ["gen_ab"]
    averaged, raw = checkpoint[AVERAGED_KEY]["gen_ab"], checkpoint["models"]["gen_ab"]
    assert any(not torch.equal(averaged[key], raw[key]) for key in raw)
    _, metadata = load_generator(run_dir / "generators" / "AtoB.safetensors")
    assert metadata["weights"] == "averaged (--ema 0.9)"
