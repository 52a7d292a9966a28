"""Turning two folders of images (say Forest Fire's `nofire` and `fire`) into a CycleGAN dataset,
ROOT/{trainA,trainB,testA,testB}. Files are deduplicated by content (SHA-256 of the bytes), so
the same photo saved twice counts once and can never land in both train and test; an image
present in both domains is dropped from both, since it cannot be an example of either. The
split is a seeded shuffle of the file names, so the same folders and seed give the same dataset.
The output is built in a temporary sibling folder and renamed into place: it is complete or
absent.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .images import _EXTENSIONS, is_image_file
from .staging import make_staging_folder

__all__ = ["PrepareError", "PrepareReport", "prepare_dataset"]


class PrepareError(ValueError):
    """Inputs `prepare_dataset` cannot build a dataset from; the message says why."""


@dataclass
class PrepareReport:
    """What `prepare_dataset` wrote and what it left out, with the reason for each."""

    root: Path
    counts: dict[str, int] = field(default_factory=dict)  # trainA, trainB, testA, testB
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # not usable as an image
    duplicates: list[tuple[Path, Path]] = field(default_factory=list)  # (dropped, kept)
    test_overlaps: list[tuple[Path, Path]] = field(default_factory=list)  # (test file, train)
    both_domains: list[tuple[Path, Path]] = field(default_factory=list)  # (A file, B file)
    linked: int = 0
    copied: int = 0


@dataclass(frozen=True)
class _Image:
    path: Path
    digest: str


def prepare_dataset(
    a: Path | str,
    b: Path | str,
    out: Path | str,
    *,
    a_test: Path | str | None = None,
    b_test: Path | str | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    link: bool = False,
) -> PrepareReport:
    """Build OUT/{trainA,trainB,testA,testB} from the images directly inside `a` and `b`.

    Without `a_test`/`b_test`, a seeded `test_fraction` of each domain's distinct images (at
    least one) goes to test; with them, those folders are the test sets, minus any image that
    is also in train. Files are copied, or hard-linked with `link` (a copy where a link is not
    possible, e.g. across file systems). OUT must not exist or be empty.
    """
    if (a_test is None) != (b_test is None):
        raise PrepareError("give both --a-test and --b-test, or neither (to split --a and --b)")
    split = a_test is None
    if split and not 0.0 < test_fraction < 1.0:
        raise PrepareError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not empty; pick another --out")
    report = PrepareReport(root=out)
    sources = {"A": Path(a), "B": Path(b)}
    tests = {"A": a_test, "B": b_test}
    flags = {"A": "--a", "B": "--b"}
    given = {"--a": a, "--b": b, "--a-test": a_test, "--b-test": b_test}
    _refuse_one_folder_twice({flag: Path(path) for flag, path in given.items() if path})

    chosen: dict[str, list[_Image]] = {}
    for domain, source in sources.items():
        train = _distinct(_usable_images(source, flags[domain], report), report)
        test_source = tests[domain]
        if test_source is None:
            test: list[_Image] = []
        else:
            test_flag = f"{flags[domain]}-test"
            test = _distinct(_usable_images(Path(test_source), test_flag, report), report)
            in_train = {image.digest: image.path for image in train}
            report.test_overlaps += [
                (image.path, in_train[image.digest]) for image in test if image.digest in in_train
            ]
            test = [image for image in test if image.digest not in in_train]
        chosen[f"train{domain}"], chosen[f"test{domain}"] = train, test

    _drop_shared(chosen, report)
    rng = random.Random(seed)
    for domain in "AB":
        train, test = chosen[f"train{domain}"], chosen[f"test{domain}"]
        if split:
            if len(train) < 2:
                raise PrepareError(
                    f"{sources[domain]} holds {len(train)} usable distinct image(s); at least 2 "
                    "are needed to split into train and test"
                )
            shuffled = train[:]
            rng.shuffle(shuffled)
            count = min(len(train) - 1, max(1, round(len(train) * test_fraction)))
            test = sorted(shuffled[:count], key=lambda image: image.path.name)
            train = sorted(shuffled[count:], key=lambda image: image.path.name)
            chosen[f"train{domain}"], chosen[f"test{domain}"] = train, test
        for name, images in ((f"train{domain}", train), (f"test{domain}", test)):
            if not images:
                raise PrepareError(
                    f"no image left for {name} once duplicates, images also in train and images "
                    "in both domains are dropped"
                )

    _write(out, chosen, link, report)
    report.counts = {name: len(chosen[name]) for name in ("trainA", "trainB", "testA", "testB")}
    return report


def _refuse_one_folder_twice(folders: dict[str, Path]) -> None:
    """Two options naming one folder, also by another path (./X and X, a link): every image
    would be in both domains (or in train and test) and be dropped, leaving none."""
    existing = [(flag, path) for flag, path in folders.items() if path.is_dir()]
    for index, (flag, path) in enumerate(existing):
        for other_flag, other in existing[index + 1 :]:
            if os.path.samefile(path, other):
                need = (
                    "the test images need a folder apart from the train images"
                    if flag[:3] == other_flag[:3]  # --a and --a-test
                    else "give a folder of domain A images and another of domain B images"
                )
                raise PrepareError(
                    f"{flag} {path} and {other_flag} {other} are the same folder; {need}"
                )


def _usable_images(folder: Path, flag: str, report: PrepareReport) -> list[_Image]:
    """Image files directly in `folder` (sorted) with their digests; the rest go to `skipped`."""
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise PrepareError(f"{flag} {folder} {what}")
    entries = sorted(path for path in folder.iterdir() if not path.name.startswith("."))
    images = []
    for path in entries:
        why = _unusable(path)
        if why is not None:
            report.skipped.append((path, why))
            continue
        try:
            images.append(_Image(path, hashlib.sha256(path.read_bytes()).hexdigest()))
        except OSError as exc:
            report.skipped.append((path, f"cannot read it ({exc.strerror or exc})"))
    if not images:
        folders = [path.name for path in entries if path.is_dir()]
        hint = f"; it has sub-folders ({', '.join(folders[:5])}): pass one" if folders else ""
        raise PrepareError(f"{flag} {folder} holds no usable image{hint}")
    return images


def _unusable(path: Path) -> str | None:
    """Why `path` cannot be a dataset image, or None if it can."""
    if path.is_dir():
        return "a folder (only files directly inside are used)"
    if not is_image_file(path):
        return f"not an image extension ({' '.join(_EXTENSIONS)})"
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        # Reads only the header: enough to drop text files named .jpg; `data check` decodes.
        with Image.open(path):
            return None
    except OSError as exc:
        if isinstance(exc, UnidentifiedImageError):
            return "not an image Pillow can read"
        return f"cannot read it ({exc.strerror or exc})"
    except Exception as exc:  # Pillow's parsers also raise SyntaxError, ValueError, ...
        return f"not an image Pillow can read ({type(exc).__name__})"


def _distinct(images: list[_Image], report: PrepareReport) -> list[_Image]:
    """The first of each set of identical files, in name order; the others are reported."""
    kept: dict[str, _Image] = {}
    for image in images:
        original = kept.setdefault(image.digest, image)
        if original is not image:
            report.duplicates.append((image.path, original.path))
    return list(kept.values())


def _drop_shared(chosen: dict[str, list[_Image]], report: PrepareReport) -> None:
    """Remove images present in both domains from both (any phase)."""
    in_a = {image.digest: image.path for name in ("trainA", "testA") for image in chosen[name]}
    in_b = {image.digest: image.path for name in ("trainB", "testB") for image in chosen[name]}
    shared = in_a.keys() & in_b.keys()
    report.both_domains += sorted((in_a[digest], in_b[digest]) for digest in shared)
    for name, images in chosen.items():
        chosen[name] = [image for image in images if image.digest not in shared]


def _write(out: Path, chosen: dict[str, list[_Image]], link: bool, report: PrepareReport) -> None:
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_folder(parent, out.name, ".preparing")
    try:
        for name, images in chosen.items():
            folder = staging / name
            folder.mkdir()
            for image in images:
                # Names are unique within a folder: each comes from one flat source folder.
                target = folder / image.path.name
                if link:
                    try:
                        os.link(image.path, target)
                        report.linked += 1
                        continue
                    except OSError:
                        pass  # another file system, or links not supported: copy instead
                shutil.copy2(image.path, target)
                report.copied += 1
        if out.is_dir():
            out.rmdir()  # the empty folder checked at the start
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
