"""The `cyclegan` command: train, translate, data, demo, ui (one module each in `commands/`).

The training options are generated from the config dataclasses (`cyclegan.config.options`),
so each flag, its type, choices, default and help are written once. User mistakes end in
one line on stderr and exit code 2, never a traceback. Under torchrun that line (or a bug's
traceback) also goes into the error file torchrun reads, so its summary of a failed run
names the rank that failed first and why.

Building the parser imports no torch (the command modules import their machinery when they
run), so `--help` and light commands such as `cyclegan data list` start in a fraction of a
second instead of seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path

from cyclegan import __version__
from cyclegan.commands.common import EXIT_USAGE, CommandParser, UserError
from cyclegan.commands.convert import add_convert_command
from cyclegan.commands.data import add_data_command
from cyclegan.commands.demo import add_demo_command
from cyclegan.commands.distill import add_distill_command
from cyclegan.commands.evaluate import add_evaluate_command
from cyclegan.commands.export import add_export_command
from cyclegan.commands.pretrained import add_pretrained_command
from cyclegan.commands.train import add_train_command
from cyclegan.commands.translate import add_translate_command
from cyclegan.commands.ui import add_ui_command
from cyclegan.config import ConfigError

OPENMP_SPINS = 1000  # how long a waiting OpenMP thread spins before it sleeps (see below)

# Errors of the library's layers, by module and name: caught without importing their modules
# (most load torch) before a command needs them. Mistakes the user can fix exit with 2:
USAGE_ERRORS = (
    "cyclegan.checkpoint.CheckpointError",
    "cyclegan.data.dataset.DatasetLayoutError",
    "cyclegan.data.images.UnreadableImageError",
)
# ... runs that failed exit with 1 (or the error's exit_code):
RUN_FAILURES = (
    "cyclegan.training.loop.TrainingDiverged",
    "cyclegan.training.distributed.PeerFailure",
    "cyclegan.training.distributed.ReplicasDiverged",
    "cyclegan.downloads.DownloadError",
)
# set by torchrun in every process it starts: where that process records why it failed
TORCHRUN_ERROR_FILE = "TORCHELASTIC_ERROR_FILE"


def main(argv: Sequence[str] | None = None) -> int:
    exit_code = run_command(argv)
    distributed = sys.modules.get("cyclegan.training.distributed")
    if distributed is not None and distributed.GROUP_BROKE.is_set():
        distributed.end_process(exit_code)  # torchrun: a broken group cannot be torn down
    return exit_code


def run_command(argv: Sequence[str] | None) -> int:
    """The command's exit code; a user's mistake or a failed run is said in one line."""
    share_cores_gracefully()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except (UserError, ConfigError, FileExistsError) as error:
        return report_error(str(error), EXIT_USAGE)
    except KeyboardInterrupt:
        print("cyclegan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0
    except Exception as error:
        if isinstance(error, loaded_classes(USAGE_ERRORS)):
            return report_error(str(error), EXIT_USAGE)
        if isinstance(error, loaded_classes(RUN_FAILURES)):
            return report_error(f"{error}{mirror_hint(error)}", getattr(error, "exit_code", 1))
        # a bug, or the system failing: Python prints the traceback, torchrun's summary a line
        lines = str(error).strip().splitlines() or [""]
        record_for_torchrun(f"{type(error).__name__}: {lines[0]} (the traceback is in its output)")
        raise


def share_cores_gracefully() -> None:
    """OpenMP threads that wait for work spin only briefly before they sleep (unless the user
    set how they wait).

    torch's OpenMP spins a waiting thread 300,000 times before it sleeps; two trainings (or a
    training and the test suite) on the same cores then spend their time in each other's
    spins: each ran 3.6-7.5x slower than alone on 2 cores (20x with OMP_WAIT_POLICY=ACTIVE)
    instead of 2x. 1,000 spins keep a run alone as fast (0.20-0.24 s a step against 0.21-0.23)
    and two side by side at 2.1-2.7x; sleeping at once (PASSIVE) shares better (1.3-1.5x) but
    made a run alone 1.4x slower (benchmarks/shared_machine.py, RESULTS.md). OpenMP reads the
    variable when torch loads it, so this runs before anything imports torch.
    """
    chosen = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    if "torch" not in sys.modules and not chosen:
        os.environ["GOMP_SPINCOUNT"] = str(OPENMP_SPINS)


def report_error(message: str, exit_code: int) -> int:
    """Say in one line on stderr why the command failed (and under torchrun in its summary)."""
    print(f"cyclegan: error: {message}", file=sys.stderr)
    record_for_torchrun(message)
    return exit_code


def record_for_torchrun(message: str) -> None:
    """Under torchrun, write `message` into the error file it gave this process, so its summary
    of a failed run names the rank that failed first with this line. The file is torch's
    elastic error record; with no "py_callstack" the summary shows the message itself."""
    path = os.environ.get(TORCHRUN_ERROR_FILE)
    if not path:
        return
    timestamp = str(int(time.time()))  # torchrun takes the earliest as the first failure
    record = {"message": {"message": message, "extraInfo": {"timestamp": timestamp}}}
    with suppress(OSError):  # the error is said on stderr either way
        Path(path).write_text(json.dumps(record))


def mirror_hint(error: BaseException) -> str:
    """For a failed download: every downloading command takes --base-url, and the variable
    that sets the server is the command's own (DownloadError.base_url_variable)."""
    variable = getattr(error, "base_url_variable", None)
    return f"; for a mirror, pass --base-url URL or set ${variable}" if variable else ""


def loaded_classes(names: Iterable[str]) -> tuple[type[BaseException], ...]:
    """The named classes ("package.module.Class") whose modules are already imported. A class
    whose module was never imported cannot have been raised, so none needs importing here."""
    classes = []
    for name in names:
        module, _, attribute = name.rpartition(".")
        if module in sys.modules:
            classes.append(getattr(sys.modules[module], attribute))
    return tuple(classes)


def build_parser() -> CommandParser:
    parser = CommandParser(  # its commands' parsers are CommandParsers too
        prog="cyclegan",
        description="Unpaired image-to-image translation with CycleGAN.",
    )
    parser.add_argument("--version", action="version", version=f"cyclegan {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_train_command(commands)
    add_distill_command(commands)
    add_translate_command(commands)
    add_export_command(commands)
    add_convert_command(commands)
    add_pretrained_command(commands)
    add_data_command(commands)
    add_evaluate_command(commands)
    add_demo_command(commands)
    add_ui_command(commands)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
