"""`cyclegan data`: list and download the classic datasets, prepare your own two folders, check
a dataset for bad files, or make the built-in synthetic dataset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cyclegan.commands.common import EXIT_USAGE, UserError, parse_sha256_option
from cyclegan.wording import counted

if TYPE_CHECKING:
    from cyclegan.data.check import Problem

# cyclegan.data.synthetic.DOMAIN_MAPS, spelled out so `--help` needs no numpy import
DOMAIN_MAP_CHOICES = ("invert", "dusk")


def add_data_command(commands: Any) -> None:
    data = commands.add_parser(
        "data",
        help="download, prepare, check or make datasets",
        description="Get a dataset into the ROOT/trainA, trainB, testA, testB layout and check it.",
    )
    data.set_defaults(handler=lambda args: _print_help(data))
    actions = data.add_subparsers(title="data commands", metavar="ACTION")
    _add_list(actions)
    _add_download(actions)
    _add_prepare(actions)
    _add_check(actions)
    _add_synth(actions)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


# ------------------------------------------------------------------------------ list, download


def _add_list(actions: Any) -> None:
    listing = actions.add_parser(
        "list",
        help="the classic CycleGAN datasets and their sizes",
        description="List the datasets `cyclegan data download` knows, with the sizes of their "
        "zips (each download is checked against its size and SHA-256).",
    )
    listing.add_argument(
        "--root", type=Path, default=Path("datasets"), help="where to look for downloaded ones"
    )
    listing.set_defaults(handler=run_list)


def run_list(args: argparse.Namespace) -> int:
    from cyclegan.data.download import DATASETS, dataset_url, missing_folders
    from cyclegan.downloads import format_size

    print(f"{'dataset':<24}{'zip':>9}   in {args.root}")
    for name, pinned in DATASETS.items():
        folder = args.root / name
        here = "yes" if folder.is_dir() and not missing_folders(folder) else "-"
        size = format_size(pinned.size) if pinned.size else "?"
        print(f"{name:<24}{size:>9}   {here}")
    print(f"\nfrom {dataset_url('NAME')}; `cyclegan data download NAME` fetches one")
    return 0


def _add_download(actions: Any) -> None:
    # No imports from cyclegan.data here: building the parser must not load torch.
    download = actions.add_parser(
        "download",
        help="download and extract a classic dataset into ROOT/NAME",
        description="Download NAME.zip over https (resuming a partial download), check its size "
        "and SHA-256 against the published ones (a zip that differs is removed), extract it "
        "safely and leave a complete ROOT/NAME/{trainA,trainB,testA,testB}, or nothing. Running "
        "it again on a complete dataset does nothing; a second download of the same dataset "
        "waits for the first to finish.",
    )
    download.add_argument("name", help="dataset name (see `cyclegan data list`)")
    download.add_argument(
        "--root", type=Path, default=Path("datasets"), help="parent folder (default: datasets)"
    )
    download.add_argument(
        "--base-url",
        help="mirror holding NAME.zip (default: $CYCLEGAN_DATASETS_URL, else the authors' server)",
    )
    download.add_argument(
        "--sha256",
        metavar="HEX",
        help="check the zip against this SHA-256 instead of the published one (a mirror's own "
        "copy)",
    )
    download.add_argument(
        "--max-extracted-gb",
        type=float,
        help="refuse archives that unpack to more than this many GB (default: 20)",
    )
    download.add_argument("--no-progress", action="store_true", help="no progress bar")
    download.set_defaults(handler=run_download)


def run_download(args: argparse.Namespace) -> int:
    from cyclegan.data.download import DATASETS, MAX_EXTRACTED_BYTES, download_dataset

    if args.name not in DATASETS:
        raise UserError(f"unknown dataset {args.name!r}; choose one of {', '.join(DATASETS)}")
    if args.max_extracted_gb is not None and args.max_extracted_gb <= 0:
        raise UserError("--max-extracted-gb must be positive")
    limit = MAX_EXTRACTED_BYTES
    if args.max_extracted_gb is not None:
        limit = int(args.max_extracted_gb * 1000**3)
    if args.base_url is not None and not args.base_url.startswith(("http://", "https://")):
        raise UserError(f"--base-url must start with http:// or https://, got {args.base_url!r}")
    sha256 = parse_sha256_option(args.sha256)
    try:
        download_dataset(
            args.name,
            args.root,
            base_url=args.base_url,
            progress=not args.no_progress,
            max_extracted_bytes=limit,
            sha256=sha256,
        )
    except ValueError as error:  # a --base-url / $CYCLEGAN_DATASETS_URL that is no http URL
        raise UserError(str(error)) from None
    return 0


# ------------------------------------------------------------------------------------- prepare


def _add_prepare(actions: Any) -> None:
    prepare = actions.add_parser(
        "prepare",
        help="build ROOT/NAME/{trainA,trainB,testA,testB} from two folders of images",
        description="Lay out two folders of images (A and B) as a CycleGAN dataset: exact "
        "duplicates are dropped, no image ends up in both train and test, the split is fixed by "
        "--seed. Give --a-test and --b-test to keep an existing train/test split.",
    )
    prepare.add_argument("--a", type=Path, required=True, help="folder of domain A images")
    prepare.add_argument("--b", type=Path, required=True, help="folder of domain B images")
    prepare.add_argument(
        "--out", type=Path, required=True, help="dataset folder to create (e.g. datasets/NAME)"
    )
    prepare.add_argument("--a-test", type=Path, help="folder of domain A test images")
    prepare.add_argument("--b-test", type=Path, help="folder of domain B test images")
    prepare.add_argument(
        "--test-fraction",
        type=float,
        default=0.1,
        help="share of each domain held out for test when splitting (default: 0.1)",
    )
    prepare.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    prepare.add_argument(
        "--link",
        action="store_true",
        help="hard-link instead of copying (copies where links are impossible)",
    )
    prepare.set_defaults(handler=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from cyclegan.data.prepare import PrepareError, prepare_dataset

    try:
        report = prepare_dataset(
            args.a,
            args.b,
            args.out,
            a_test=args.a_test,
            b_test=args.b_test,
            test_fraction=args.test_fraction,
            seed=args.seed,
            link=args.link,
        )
    except PrepareError as error:
        raise UserError(str(error)) from None
    counts = ", ".join(f"{name} {count}" for name, count in report.counts.items())
    print(f"prepared {report.root}: {counts}")
    for path, why in report.skipped:
        print(f"  skipped {path}: {why}")
    for dropped, kept in report.duplicates:
        print(f"  duplicate {dropped}: same content as {kept}; dropped")
    for test_file, train_file in report.test_overlaps:
        print(f"  {test_file} is also in train ({train_file}); left out of test")
    for path_a, path_b in report.both_domains:
        print(f"  {path_a} and {path_b} are the same image in both domains; dropped from both")
    left_out = len(report.skipped) + len(report.duplicates) + len(report.test_overlaps)
    summary = f"{left_out + 2 * len(report.both_domains)} file(s) left out"
    how = f"{report.copied} copied" + (f", {report.linked} hard-linked" if args.link else "")
    print(f"{summary}; {how}. Check the images with: cyclegan data check {report.root}")
    return 0


# --------------------------------------------------------------------------------------- check


def _add_check(actions: Any) -> None:
    check = actions.add_parser(
        "check",
        help="decode every image of a dataset and report bad files",
        description="Fully decode every file of ROOT/{trainA,trainB,testA,testB} and report, per "
        "folder: unreadable, truncated and zero-byte files, non-image files, tiny images, "
        "unusual modes, extensions that do not match the content, duplicates, and images in both "
        "train and test. Exit code 1 if anything is reported.",
    )
    check.add_argument("root", type=Path, help="dataset folder (e.g. datasets/horse2zebra)")
    check.add_argument(
        "--fix",
        action="store_true",
        help="move unusable files and duplicates to ROOT/_quarantine/ (never deletes; "
        "readable images with an odd mode or extension stay)",
    )
    check.add_argument(
        "--min-size",
        type=int,
        default=32,
        help="report images whose short side is smaller (default: 32)",
    )
    check.add_argument(
        "--ignore",
        default="",
        metavar="KIND,...",
        help="comma-separated problem kinds to leave out, as named in the report (e.g. mode)",
    )
    check.add_argument("--workers", type=int, default=0, help="decoding threads (default: auto)")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    from cyclegan.data.check import KINDS, QUARANTINE_DIR, check_dataset, quarantine

    ignore = [kind.strip() for kind in args.ignore.split(",") if kind.strip()]
    unknown = sorted(set(ignore) - set(KINDS))
    if unknown:
        raise UserError(
            f"--ignore: unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}"
        )
    if args.min_size < 1:
        raise UserError("--min-size must be positive")
    if args.workers < 0:
        raise UserError("--workers must be >= 0")
    workers = args.workers or None
    report = check_dataset(
        args.root,
        min_size=args.min_size,
        ignore=ignore,
        workers=workers,
        progress=sys.stderr.isatty(),
    )
    print(report.table())
    if report.problems:
        print()
        for problem in report.problems:
            print(f"{problem.kind:<11} {problem.path}: {problem.detail}")
    if args.fix:
        moved = quarantine(report)
        if moved:
            print(
                f"\nmoved {counted(len(moved), 'file')} to {args.root / '_quarantine'} "
                f"(listed in {args.root / '_quarantine' / 'moved.tsv'})"
            )
    remaining = report.remaining()
    if not remaining:
        print("\nno problems left" if report.problems else "\nno problems found")
        return 0
    print(f"\n{counted(len(remaining), 'problem')} left:")
    for line in what_to_do(remaining, args.root / QUARANTINE_DIR):
        print(f"  {line}")
    return 1


def what_to_do(problems: list[Problem], quarantine_dir: Path) -> list[str]:
    """A line per remedy: --fix for the problems it fixes (there are none after --fix), what
    to do instead for each of the others."""
    from cyclegan.data.check import KEPT_KINDS, KINDS

    movable = [problem for problem in problems if problem.kind not in KEPT_KINDS]
    lines = []
    if movable:
        kinds = ", ".join(kind for kind in KINDS if any(p.kind == kind for p in movable))
        lines.append(
            f"{len(movable)} ({kinds}): --fix moves their files to {quarantine_dir}, "
            "deleting nothing"
        )
    for kind, advice in KEPT_KINDS.items():
        count = sum(problem.kind == kind for problem in problems)
        if count:
            lines.append(f"{count} {kind}: {advice}")
    return lines


# --------------------------------------------------------------------------------------- synth


def _add_synth(actions: Any) -> None:
    synth = actions.add_parser(
        "synth",
        help="generate the built-in synthetic dataset (no download)",
        description="Write a small two-domain dataset: A = bright warm drawings, B = a fixed "
        "colour transform of other such drawings, plus testA_truth/ holding the true "
        "B image of every testA image.",
    )
    synth.add_argument("root", type=Path, help="folder to create (e.g. datasets/synth)")
    synth.add_argument("--size", type=int, default=64, help="image side in pixels (default: 64)")
    synth.add_argument(
        "--train", type=int, default=200, help="train images per domain (default: 200)"
    )
    synth.add_argument("--test", type=int, default=20, help="test images per domain (default: 20)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument(
        "--map",
        choices=DOMAIN_MAP_CHOICES,
        default="invert",
        help="the A -> B colour map: invert (channels rotated and inverted, the default) or "
        "dusk (a cooler, darker colour grade that keeps every edge; what cyclegan demo uses)",
    )
    synth.set_defaults(handler=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from cyclegan.data.synthetic import make_synthetic_dataset

    for name in ("size", "train", "test"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name} must be positive")
    root = make_synthetic_dataset(
        args.root,
        size=args.size,
        train=args.train,
        test=args.test,
        seed=args.seed,
        domain_map=args.map,
    )
    print(f"synthetic dataset ready in {root}")
    return 0
