"""Compute the PatchNCE loss of the CUT authors' public code on fixed inputs, for the parity
test (tests/test_cut.py). Run once; its output is kept in tests/data/patchnce/.

    git clone https://github.com/taesungp/contrastive-unpaired-translation /tmp/cut
    python scripts/patchnce_reference.py /tmp/cut   # at commit b3ac297

It imports their `models/patchnce.py` (torch and `packaging` only), makes L2-normalised query
and key features with a fixed seed for a few (images, patches, features, temperature) cases,
and saves inputs and the per-patch losses their PatchNCELoss returns.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
from pathlib import Path
from types import SimpleNamespace

import torch

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "patchnce" / "reference.pt"
# (images in the batch, patches per image, feature width, temperature, how far keys are from
# their queries: small, the positive stands out and the loss is near 0; large, it is ~log P)
CASES = [
    (1, 16, 8, 0.07, 0.5),
    (2, 32, 16, 0.07, 1.5),
    (3, 7, 256, 0.2, 3.0),
    (4, 64, 32, 0.07, 1.0),
    (2, 256, 64, 0.07, 2.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a clone of the CUT repository")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location(
        "patchnce", args.checkout / "models" / "patchnce.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    commit = subprocess.run(
        ["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    generator = torch.Generator().manual_seed(2020)
    cases = []
    for images, patches, width, temperature, noise in CASES:
        query = torch.randn(images * patches, width, generator=generator, dtype=torch.float64)
        key = query + noise * torch.randn(query.shape, generator=generator, dtype=torch.float64)
        query = (query / query.norm(dim=1, keepdim=True)).float()
        key = (key / key.norm(dim=1, keepdim=True)).float()
        options = SimpleNamespace(
            nce_includes_all_negatives_from_minibatch=False, batch_size=images, nce_T=temperature
        )
        losses = module.PatchNCELoss(options)(query, key)
        cases.append(
            {"images": images, "temperature": temperature, "query": query, "key": key,
             "losses": losses.detach()}
        )  # fmt: skip
        print(f"images {images} patches {patches} width {width} T {temperature}: "
              f"mean loss {losses.mean():.6f}")  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"commit": commit, "torch": str(torch.__version__), "cases": cases}, OUT)
    print(f"wrote {OUT} (reference commit {commit})")


if __name__ == "__main__":
    main()
