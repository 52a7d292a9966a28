"""`cyclegan ui`: the web interface (Gradio, the optional extra `cyclegan[ui]`)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
import tempfile
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError

LOCAL_HOSTS = ("localhost",)
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_PIXELS = 40_000_000  # a 8000x5000 photo; the decompression-bomb guard


def add_ui_command(commands: Any) -> None:
    ui = commands.add_parser(
        "ui",
        help="a web page to translate images and watch training runs",
        description="Serve a web page (Gradio) with two tabs: Translate (pick a model of the "
        "runs folder or the pretrained cache, drop images, compare and download the results) "
        "and Runs (progress, loss and metric curves, sample grids of every run, two side by "
        "side, refreshed while they train). Needs `pip install 'cyclegan[ui]'`.",
    )
    ui.add_argument(
        "--runs", type=Path, default=Path("runs"), help="the runs folder (default: runs)"
    )
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on (default: 127.0.0.1, this machine only; 0.0.0.0 serves "
        "everyone who can reach it, with no login)",
    )
    ui.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    ui.add_argument("--cache-dir", type=Path, help="pretrained cache (default: user cache)")
    ui.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="device (default: auto)",
    )
    ui.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MB,
        help=f"largest upload in MB (default: {DEFAULT_MAX_UPLOAD_MB:g})",
    )
    ui.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"largest image in pixels, a decompression-bomb guard (default: "
        f"{DEFAULT_MAX_PIXELS:,})",
    )
    ui.set_defaults(handler=run_ui)


def run_ui(args: argparse.Namespace) -> int:
    if not args.runs.is_dir():
        raise UserError(
            f"runs folder {args.runs} does not exist: give the folder `cyclegan train` writes "
            "runs into with --runs DIR"
        )
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} must be between 1 and 65535")
    if args.max_upload_mb <= 0 or args.max_pixels <= 0:
        raise UserError("--max-upload-mb and --max-pixels must be positive")
    try:
        from cyclegan.ui.app import Settings, build_app, serve
    except ImportError as error:
        if error.name is None or error.name.split(".")[0] not in ("gradio", "pandas"):
            raise
        raise UserError(
            "cyclegan ui needs Gradio, which is not installed: pip install 'cyclegan[ui]'"
        ) from None
    from cyclegan.ui.uploads import Limits

    warning = exposure_warning(args.host)
    if warning:
        print(f"cyclegan: warning: {warning}", file=sys.stderr)
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1e6), max_pixels=args.max_pixels)
    with tempfile.TemporaryDirectory(prefix="cyclegan-ui-") as work_dir:
        settings = Settings(args.runs, Path(work_dir), limits, args.cache_dir, args.device)
        try:
            serve(build_app(settings), settings, args.host, args.port)
        except OSError as error:
            if "Cannot find empty port" not in str(error):  # Gradio's words for a taken port
                raise
            raise UserError(f"port {args.port} is in use: pick another with --port") from None
    return 0


def exposure_warning(host: str) -> str | None:
    """What serving on `host` exposes, when it is more than this machine."""
    if host in LOCAL_HOSTS:
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to any interface
    return (
        f"serving on {host}: anyone who can reach this machine can use the page, its models "
        "and the runs in it, with no login; use --host 127.0.0.1 to keep it to this machine"
    )
