"""`cyclegan pretrained`: list and download the reference implementation's generators."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cyclegan.commands.common import EXIT_USAGE, UserError, parse_sha256_option


def add_pretrained_command(commands: Any) -> None:
    pretrained = commands.add_parser(
        "pretrained",
        help="list and download published pretrained generators",
        description="The generators published with the reference implementation (resnet_9blocks, "
        "ngf=64, trained at 256px). `cyclegan translate --pretrained NAME` downloads on first "
        "use; `download` fetches ahead of time. Every download is checked against the file's "
        "SHA-256; the names marked * in `list` have no published one and need --sha256 HEX.",
    )
    pretrained.set_defaults(handler=lambda args: _print_help(pretrained))
    actions = pretrained.add_subparsers(title="pretrained commands", metavar="ACTION")
    listing = actions.add_parser("list", help="names, what they do, and which are cached")
    _add_location_arguments(listing)
    listing.set_defaults(handler=run_list)
    download = actions.add_parser(
        "download", help="download generators into the cache (resumes interrupted downloads)"
    )
    download.add_argument("names", nargs="+", metavar="NAME", help="pretrained names")
    download.add_argument("--force", action="store_true", help="download again if cached")
    download.add_argument(
        "--sha256",
        metavar="HEX",
        help="the SHA-256 the file must have (one NAME): for a generator with no published hash, "
        "or a mirror's own copy",
    )
    _add_location_arguments(download)
    download.set_defaults(handler=run_download)


def _add_location_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where generators are kept (default: $CYCLEGAN_CACHE/pretrained or "
        "~/.cache/cyclegan/pretrained)",
    )
    parser.add_argument(
        "--base-url",
        help="download address, e.g. a mirror (default: $CYCLEGAN_PRETRAINED_URL "
        "or the authors' server)",
    )


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def run_list(args: argparse.Namespace) -> int:
    from cyclegan.inference.pretrained import (
        PRETRAINED,
        base_url,
        cache_dir,
        cached_path,
        is_published,
    )

    width = max(map(len, PRETRAINED)) + 1
    for name, description in PRETRAINED.items():
        path = cached_path(name, args.cache_dir)
        state = f"cached, {path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "-"
        shown = name if is_published(name) else f"{name}*"
        print(f"{shown:<{width}}  {description:<58}  {state}")
    print(
        "\n* no published SHA-256: download with --sha256 HEX, the hash of the file you expect"
        f"\ncache: {cache_dir(args.cache_dir)}\nfrom:  {base_url(args.base_url)}"
    )
    return 0


def run_download(args: argparse.Namespace) -> int:
    from cyclegan.inference.pretrained import check_name, fetch_pretrained

    for name in args.names:
        check_name(name)  # all names are checked before anything is downloaded
    sha256 = parse_sha256_option(args.sha256)
    if sha256 is not None and len(args.names) > 1:
        raise UserError("--sha256 is the hash of one file: give one NAME with it")
    for name in args.names:
        path = fetch_pretrained(
            name, args.cache_dir, args.base_url, force=args.force, sha256=sha256
        )
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
