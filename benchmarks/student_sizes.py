"""Size and CPU speed of distillation students against the paper generator (no training).

    python benchmarks/student_sizes.py
    python benchmarks/student_sizes.py --side 512 --repeats 5

Parameters, multiply-adds at 256x256 (torch.utils.flop_counter, as `cyclegan evaluate`'s
distillation report counts them) and the median seconds of fp32 eager PyTorch on one
`--side` image, for the paper's resnet_9blocks (ngf 64, the teacher) and candidate students:
the same layout narrower, with standard or depthwise-separable ("mobile") residual blocks,
and fewer blocks. Untrained weights: size and speed do not depend on them.
"""

from __future__ import annotations

import argparse

import torch

from cyclegan.evaluation.distillation import multiply_adds, parameters
from cyclegan.inference.quantize import time_interleaved
from cyclegan.models.generator import build_generator

# name -> (generator, ngf, block)
CANDIDATES = {
    "teacher (paper)": ("resnet_9blocks", 64, "standard"),
    "narrow 16 (default)": ("resnet_9blocks", 16, "standard"),
    "mobile 16": ("resnet_9blocks", 16, "mobile"),
    "mobile 24": ("resnet_9blocks", 24, "mobile"),
    "mobile 32": ("resnet_9blocks", 32, "mobile"),
    "narrow 24, 6 blocks": ("resnet_6blocks", 24, "standard"),
    "mobile 16, 6 blocks": ("resnet_6blocks", 16, "mobile"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = torch.rand(1, 3, args.side, args.side) * 2 - 1
    networks = {
        name: build_generator(generator, 3, 3, ngf, block=block).eval()
        for name, (generator, ngf, block) in CANDIDATES.items()
    }
    with torch.no_grad():
        seconds = time_interleaved(
            {name: (lambda net=net: net(image)) for name, net in networks.items()}, args.repeats
        )
    teacher = next(iter(networks))
    teacher_macs = multiply_adds(networks[teacher], 3)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.side} px")
    print(f"| generator | parameters (M) | GMACs at 256 px | x fewer | fp32 s at {args.side} px "
          "| x faster |\n| --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for name, network in networks.items():
        macs = multiply_adds(network, 3)
        print(
            f"| {name} | {parameters(network) / 1e6:.2f} | {macs / 1e9:.2f} | "
            f"{teacher_macs / macs:.1f}x | {seconds[name]:.3f} | "
            f"{seconds[teacher] / seconds[name]:.1f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
