"""Sample grids: a fixed set of test images translated after every epoch.

Rows, labelled on the left: real A, fake B, reconstructed A, then real B, fake A,
reconstructed B (a CUT run, which has one generator A -> B: real A, fake B, real B and the
generator's output for it, B's identity); one column per image pair, the epoch on top. The
same images every epoch (the first readable test images, topped up from train), so the files
show progress at a glance; both domains show as many images, so no cell is blank.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from cyclegan.data.images import load_first_images, tensor_to_image
from cyclegan.models import DistillModel, Model
from cyclegan.training.ema import AveragedGenerators

ROW_LABELS = ("real A", "fake B", "reconstructed A", "real B", "fake A", "reconstructed B")
ONE_WAY_LABELS = ("real A", "fake B", "real B", "identity B")
DISTILL_LABELS = {
    "AtoB": ("real A", "teacher B", "student B"),
    "BtoA": ("real B", "teacher A", "student A"),
}
PADDING = 2  # pixels between cells


def fixed_samples(
    root: Path, count: int, channels_a: int, channels_b: int, size: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`count` images per domain (test first, then train), as many of A as of B; None if a
    domain has none or `count` is 0."""
    if count == 0:
        return None
    domains = []
    for domain, channels in (("A", channels_a), ("B", channels_b)):
        images, _ = load_first_images(root / f"test{domain}", count, channels, size)
        if len(images) < count:
            extra, _ = load_first_images(
                root / f"train{domain}", count - len(images), channels, size
            )
            images = torch.cat([images, extra])
        domains.append(images)
    shown = min(len(images) for images in domains)
    return (domains[0][:shown], domains[1][:shown]) if shown else None


@torch.no_grad()
def save_sample_grid(
    model: Model | AveragedGenerators,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    path: Path,
    epoch: int,
    teachers: DistillModel | None = None,
) -> None:
    """Translate both fixed batches (N images each) and write the labelled grid (PNG). A
    distillation's (`teachers`: its model) shows each input, its teacher's translation and
    the student's (`model`'s generator)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    real_a, real_b = real_a.to(device), real_b.to(device)
    if teachers is not None:
        rows, labels = [], ()
        for direction in teachers.directions:
            source = real_a if direction == "AtoB" else real_b
            student = getattr(model, "gen_ab" if direction == "AtoB" else "gen_ba")
            rows += [source, teachers.teach(direction, source)[0], student(source)]
            labels += DISTILL_LABELS[direction]
        model.train(was_training)
        path.parent.mkdir(parents=True, exist_ok=True)
        labelled_grid(rows, labels, f"epoch {epoch}").save(path)
        return
    fake_b = model.gen_ab(real_a)
    if "gen_ba" in model.generator_keys:
        fake_a = model.gen_ba(real_b)
        rows = [real_a, fake_b, model.gen_ba(fake_b), real_b, fake_a, model.gen_ab(fake_a)]
        labels = ROW_LABELS
    else:
        rows, labels = [real_a, fake_b, real_b, model.gen_ab(real_b)], ONE_WAY_LABELS
    model.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled_grid(rows, labels, f"epoch {epoch}").save(path)


def labelled_grid(rows: list[torch.Tensor], labels: tuple[str, ...], title: str) -> Image.Image:
    """Rows of (N, C, S, S) images in [-1, 1] as one white sheet: labels left, title on top."""
    columns, side = len(rows[0]), rows[0].shape[-1]
    font = ImageFont.load_default(size=max(11, side // 10))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = max(measure.textbbox((0, 0), text, font=font)[2] for text in labels) + 8
    title_height = measure.textbbox((0, 0), title, font=font)[3] + 6
    cell = side + PADDING
    sheet = Image.new(
        "RGB",
        (max(label_width + columns * cell + PADDING, int(measure.textlength(title, font=font)) + 8),
         title_height + len(rows) * cell + PADDING),
        "white",
    )  # fmt: skip
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), title, fill="black", font=font)
    for row_index, (images, label) in enumerate(zip(rows, labels)):
        top = title_height + PADDING + row_index * cell
        draw.text((4, top + side // 2), label, fill="black", font=font, anchor="lm")
        for column, image in enumerate(images.cpu()):
            left = label_width + PADDING + column * cell
            sheet.paste(tensor_to_image(image).convert("RGB"), (left, top))
    return sheet
