"""Can the discriminator see the map? Train the config's B discriminator alone (LSGAN) on
learn_photos' A crops (fake) against its B crops (real, the map applied), and score how it
ranks held-out test crops against their own maps.

    python benchmarks/discriminator_sees.py --maps cartoon --preset fast --lr 4e-4

In unpaired training the generator learns only what the discriminator can tell apart. At the
start the generator is (near) the identity, so its fakes are photos: a discriminator that
cannot rank a photo below the same photo with the map applied gives the generator nothing to
learn from. The ranking is paired (each held-out test crop against its own truth, scores
averaged over the patch map), so content cannot decide it: "ranked" is the share of pairs
scored the right way round (0.5 is chance), "gap" the mean score difference (LSGAN targets 1
for real, 0 for fake). The training loss falling faster than the ranking improves means the
discriminator learns the training crops' content first. Adam with the preset's betas, batches
of 4, one torch thread, fp32; counted in steps, so the figures do not depend on the load.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
from paired_bound import crop_arguments, cut, parsed, photos_and_plan
from photo_maps import MAPS

from cyclegan.config import Config
from cyclegan.models.cyclegan import CycleGAN


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = crop_arguments(__doc__.split("\n\n")[0], steps=2000, train_crops=200, test_crops=48)
    parser.add_argument("--lr", type=float, default=None, help="default: the config's --lr")
    return parsed(parser, argv)


@torch.no_grad()
def ranking(
    judge: torch.nn.Module, photos: torch.Tensor, truths: torch.Tensor
) -> tuple[float, float]:
    """(share of pairs whose truth scores above its photo, mean score gap truth - photo)."""
    fake = judge(photos).flatten(1).mean(1)
    real = judge(truths).flatten(1).mean(1)
    return float((real > fake).float().mean()), float((real - fake).mean())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    options = {"preset": args.preset, **args.overrides}
    config = Config().with_overrides(options)
    lr = args.lr if args.lr is not None else config.optim.lr
    photos, plan = photos_and_plan(args)
    print(
        f"{len(photos)} photos, {len(plan.train_a)} crops a domain, {len(plan.test)} test pairs "
        f"of {args.size} px; {args.steps} steps of {args.batch}, lr {lr:g}; options {options}"
    )
    for name in args.maps:
        fakes, reals = cut(plan.train_a, photos), cut(plan.train_b, photos, MAPS[name])
        test, truth = cut(plan.test, photos), cut(plan.test, photos, MAPS[name])
        torch.manual_seed(args.seed)
        judge = CycleGAN(config.model).disc_b
        optimizer = torch.optim.Adam(
            judge.parameters(), lr, betas=(config.optim.beta1, config.optim.beta2)
        )
        print(f"\n== {name}: {MAPS[name].description}")
        every = max(1, args.steps // args.curve_points)
        started, losses = time.perf_counter(), []
        for step in range(1, args.steps + 1):
            real = reals[torch.randint(0, len(reals), (args.batch,))]
            fake = fakes[torch.randint(0, len(fakes), (args.batch,))]
            loss = 0.5 * ((judge(real) - 1).square().mean() + judge(fake).square().mean())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if step % every == 0 or step == args.steps:
                ranked, gap = ranking(judge, test, truth)
                print(
                    f"  step {step:5d} ({time.perf_counter() - started:4.0f} s): training loss "
                    f"{np.mean(losses[-every:]):.3f}, held-out pairs ranked {ranked:.3f}, "
                    f"gap {gap:+.3f}",
                    flush=True,
                )
    print(
        f"\nreproduce: {shlex.join(['python', 'benchmarks/discriminator_sees.py', *sys.argv[1:]])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
