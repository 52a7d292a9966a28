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
DEFAULT_MAX_VIDEO_SECONDS = 20.0  # a short clip: the page waits for the whole translation


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
        "--runs-dir",
        type=Path,
        metavar="DIR",
        help="the runs folder, as in `cyclegan train --runs-dir` (default: runs)",
    )
    # the option's old name, kept so that scripts using it still work; not in --help
    ui.add_argument("--runs", type=Path, dest="old_runs_dir", help=argparse.SUPPRESS)
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
    ui.add_argument(
        "--max-video-seconds",
        type=float,
        default=DEFAULT_MAX_VIDEO_SECONDS,
        help=f"longest video the Translate tab takes (default: {DEFAULT_MAX_VIDEO_SECONDS:g})",
    )
    ui.set_defaults(handler=run_ui)


def run_ui(args: argparse.Namespace) -> int:
    runs = runs_folder(args)
    if not runs.is_dir():
        raise UserError(
            f"runs folder {runs} does not exist: give the folder `cyclegan train` writes "
            "runs into with --runs-dir DIR"
        )
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} must be between 1 and 65535")
    if args.max_upload_mb <= 0 or args.max_pixels <= 0 or args.max_video_seconds <= 0:
        raise UserError("--max-upload-mb, --max-pixels and --max-video-seconds must be positive")
    try:
        from cyclegan.ui.app import Settings, build_app, serve, wait_until_stopped
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
    limits = Limits(
        max_upload_bytes=int(args.max_upload_mb * 1e6),
        max_pixels=args.max_pixels,
        max_video_seconds=args.max_video_seconds,
    )
    with tempfile.TemporaryDirectory(prefix="cyclegan-ui-") as work_dir:
        settings = Settings(runs, Path(work_dir), limits, args.cache_dir, args.device)
        app = build_app(settings)
        try:
            serve(app, settings, args.host, args.port)
        except OSError as error:
            if "Cannot find empty port" not in str(error):  # Gradio's words for a taken port
                raise
            raise UserError(f"port {args.port} is in use: pick another with --port") from None
        print(where_served(args.host, args.port), flush=True)
        wait_until_stopped(app)
    print("cyclegan ui: stopped")
    return 0


def runs_folder(args: argparse.Namespace) -> Path:
    """--runs-dir, or --runs, its old name (with a note), or the default."""
    if args.old_runs_dir is None:
        return args.runs_dir or Path("runs")
    if args.runs_dir is not None:
        raise UserError("give the runs folder once, with --runs-dir (--runs is its old name)")
    print("cyclegan ui: note: --runs is now --runs-dir, as in cyclegan train", file=sys.stderr)
    return args.old_runs_dir


def where_served(host: str, port: int) -> str:
    """Where the page is, and how another machine reaches it: there is no share link (the page
    talks to nobody but its own visitors), so an SSH tunnel or --host."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # what a browser here opens
    shown = f"[{shown}]" if ":" in shown else shown  # an IPv6 address in a URL
    where = f"cyclegan ui: serving on http://{shown}:{port}/ (Ctrl-C stops it)"
    if not is_local(host):
        return where
    return (
        f"{where}; this machine only: from another, tunnel with ssh -L {port}:{host}:{port} "
        "THIS_MACHINE and open the same address there, or serve the network with "
        "--host 0.0.0.0 (no login)"
    )


def is_local(host: str) -> bool:
    """Whether serving on `host` reaches this machine only."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def exposure_warning(host: str) -> str | None:
    """What serving on `host` exposes, when it is more than this machine."""
    if is_local(host):
        return None
    return (
        f"serving on {host}: anyone who can reach this machine can use the page, its models "
        "and the runs in it, with no login; use --host 127.0.0.1 to keep it to this machine"
    )
