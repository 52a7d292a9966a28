"""History of generated images for the discriminators (Shrivastava et al., 2017).

Updating a discriminator with older fakes as well as the newest ones damps oscillation
(CycleGAN sec. 4): with probability 1/2 an incoming fake is swapped for a stored one.
"""

from __future__ import annotations

import torch


class ImagePool:
    """Keeps up to `size` fakes; `query` returns a batch mixing new and stored ones."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        # an own generator keeps the pool's choices reproducible and resumable
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) fresh fakes, detached. Returns (N, C, H, W)."""
        if self.size == 0:
            return images
        result = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                result.append(image)
            elif torch.rand(1, generator=self.generator).item() < 0.5:
                index = int(torch.randint(self.size, (1,), generator=self.generator))
                result.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                result.append(image)
        return torch.stack(result)

    def state_dict(self) -> dict[str, object]:
        stored = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": stored, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        """Restore the stored images and random state; the pool keeps its own size (a resumed
        run may give another --pool-size), so images beyond it are dropped."""
        stored = state["images"]
        images = [image.to(device) for image in stored] if stored.numel() else []
        self.images = images[: self.size]
        self.generator.set_state(state["generator"])
