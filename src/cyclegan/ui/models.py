"""The generators the interface offers and how each becomes a `Translator`.

Every run in the runs folder (its latest generators, each numbered checkpoint, best.pt and
the files `cyclegan export` wrote into RUN/exported/), and every pretrained generator already
in the cache. Each is loaded through the same `Translator` constructors `cyclegan translate`
uses (`from_run`, `from_file`, `from_pretrained`), with every path confined to the runs folder
or the cache first (`cyclegan.ui.safe_paths`). TorchScript exports load as on the command line,
by their NAME.torchscript.pt name, and their label says that loading runs the file's code.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cyclegan.config import ConfigError, load_config
from cyclegan.inference.options import EXPORT_SUFFIXES
from cyclegan.inference.pretrained import PRETRAINED, cache_dir, check_name
from cyclegan.ui.safe_paths import PathRefused, inside, plain_name, run_folder

if TYPE_CHECKING:  # torch loads when the first model does, not when the page is built
    from cyclegan.inference.translator import Translator

Kind = Literal["run", "epoch", "file", "pretrained"]
KINDS: tuple[Kind, ...] = ("run", "epoch", "file", "pretrained")
KEPT_TRANSLATORS = 4  # loaded generators kept for the next request (a 9-block one is 45 MB)
# what `cyclegan export` writes, and .pt: TorchScript by an older export, listed so that
# choosing it says how to load it (translation refuses TorchScript not named as such)
EXPORTED_ENDINGS = (*EXPORT_SUFFIXES.values(), ".pt")
TORCHSCRIPT_NOTE = " (TorchScript: loading runs the code in the file)"


@dataclass(frozen=True)
class ModelChoice:
    """One generator source: a run's latest generators, a run's checkpoint of an epoch, a file
    inside a run folder, or a cached pretrained generator."""

    kind: Kind
    name: str  # the run's folder name, or the pretrained generator's name
    detail: str = ""  # the epoch, or the file's path inside the run folder

    @property
    def key(self) -> str:
        """The dropdown value: the choice as a JSON list (what the browser sends back)."""
        return json.dumps([self.kind, self.name, self.detail])

    @classmethod
    def from_key(cls, key: str) -> ModelChoice:
        """The choice a dropdown value names; PathRefused for anything not of that shape."""
        try:
            kind, name, detail = json.loads(key)
        except (TypeError, ValueError):
            raise PathRefused(f"model {key!r} is refused: pick one from the list") from None
        if kind not in KINDS or not isinstance(name, str) or not isinstance(detail, str):
            raise PathRefused(f"model {key!r} is refused: pick one from the list")
        return cls(kind, name, detail)

    @property
    def label(self) -> str:
        if self.kind == "run":
            return f"{self.name}: latest"
        if self.kind == "epoch":
            return f"{self.name}: epoch {self.detail}"
        if self.kind == "file":
            torchscript = self.detail.lower().endswith(EXPORT_SUFFIXES["torchscript"])
            return f"{self.name}: {self.detail}{TORCHSCRIPT_NOTE if torchscript else ''}"
        return f"pretrained: {self.name} ({PRETRAINED.get(self.name, '?')})"

    @property
    def both_directions(self) -> bool:
        """Whether it holds both generators (runs and checkpoints do; exports and pretrained
        generators hold one)."""
        if self.kind == "file":
            return self.detail.startswith("checkpoints/")
        return self.kind != "pretrained"


def run_directions(runs: Path, name: str) -> tuple[str, ...]:
    """The directions the run `name` has generators for (a CUT run: A -> B only; a
    distillation: those it distils); a run whose config cannot be read counts as two-way,
    and translating says what is wrong."""
    try:
        config = load_config(run_folder(runs, name) / "config.yaml")
    except (PathRefused, ConfigError, OSError):
        return ("AtoB", "BtoA")
    return config.model.directions


def list_runs(runs: Path) -> list[str]:
    """Names of the run folders in `runs` (those holding config.yaml), the last started or
    resumed first (training writes config.yaml then); folders that lead outside `runs` (links)
    are left out."""
    if not runs.is_dir():
        return []
    found = []
    for entry in runs.iterdir():
        try:
            folder = run_folder(runs, entry.name)
        except (PathRefused, ConfigError):
            continue
        config = folder / "config.yaml"
        if config.is_file():
            found.append((config.stat().st_mtime, entry.name))
    return [name for _, name in sorted(found, reverse=True)]


def list_models(runs: Path, cache: Path | None = None) -> list[ModelChoice]:
    """Every generator the interface can load: per run its latest, its numbered checkpoints,
    best.pt and its exports; then the cached pretrained generators. Files that lead outside
    their folder (links) are left out."""
    choices: list[ModelChoice] = []
    for name in list_runs(runs):
        folder = run_folder(runs, name)
        if (folder / "generators").is_dir() or _confined_file(folder, "checkpoints/latest.pt"):
            choices.append(ModelChoice("run", name))
        for path in sorted((folder / "checkpoints").glob("epoch_*.pt"), reverse=True):
            epoch = path.stem.removeprefix("epoch_")
            if epoch.isdigit() and _confined_file(folder, f"checkpoints/{path.name}"):
                choices.append(ModelChoice("epoch", name, str(int(epoch))))
        files = ["checkpoints/best.pt"]
        files += sorted(
            f"exported/{path.name}"
            for path in (folder / "exported").glob("*")
            if path.name.lower().endswith(EXPORTED_ENDINGS)
        )
        choices += [
            ModelChoice("file", name, file) for file in files if _confined_file(folder, file)
        ]
    pretrained = cache_dir(cache)
    for name in PRETRAINED:
        if _confined_file(pretrained, f"{name}.pth") is not None:
            choices.append(ModelChoice("pretrained", name))
    return choices


def _confined_file(root: Path, relative: str) -> Path | None:
    try:
        path = inside(root, relative)
    except PathRefused:
        return None
    return path if path.is_file() else None


def load_translator(
    choice: ModelChoice,
    direction: str | None,
    runs: Path,
    cache: Path | None = None,
    device: str = "auto",
) -> Translator:
    """The Translator of `choice` for `direction` (None: a file's own, AtoB for runs), as
    `cyclegan translate` would load it.

    PathRefused for a choice whose paths lead outside `runs` or the cache; ConfigError (and
    the loaders' own errors) for what cannot be loaded, with what to do.
    """
    from cyclegan.inference.translator import DIRECTIONS, Translator

    if direction is not None and direction not in DIRECTIONS:
        raise ConfigError(f"unknown direction {direction!r}; choose one of {list(DIRECTIONS)}")
    if choice.kind == "pretrained":
        check_name(choice.name)
        if direction == "BtoA":
            raise ConfigError(
                f"the pretrained {choice.name} translates one way only; for the other way "
                "pick the opposite name (cyclegan pretrained list)"
            )
        if _confined_file(cache_dir(cache), f"{choice.name}.pth") is None:
            raise ConfigError(
                f"the pretrained {choice.name} is not in the cache: "
                f"cyclegan pretrained download {choice.name}"
            )
        return Translator.from_pretrained(choice.name, device, cache_dir=cache, progress=False)
    folder = run_folder(runs, plain_name(choice.name))
    if choice.kind != "file":
        direction = direction or "AtoB"
    if choice.kind == "run":
        # the file from_run reads, confined like any other (a link in the run could lead out)
        exported = f"generators/{direction}.safetensors"
        inside(folder, exported if (folder / exported).exists() else "checkpoints/latest.pt")
        return Translator.from_run(folder, direction, device)
    if choice.kind == "epoch":
        if not choice.detail.isdigit():
            raise PathRefused(f"epoch {choice.detail!r} is refused: it must be a number")
        epoch = int(choice.detail)
        inside(folder, f"checkpoints/epoch_{epoch:03d}.pt")
        return Translator.from_run(folder, direction, device, epoch=epoch)
    path = inside(folder, choice.detail, "file name")
    return Translator.from_file(path, direction, device)


class TranslatorCache:
    """The last few loaded translators, reloaded when their file changes (a run that is still
    training writes new generators every epoch). Safe to share between request threads."""

    def __init__(self, runs: Path, cache: Path | None, device: str) -> None:
        self.runs, self.cache, self.device = runs, cache, device
        self._kept: OrderedDict[tuple[str, str], tuple[Translator, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, choice: ModelChoice, direction: str | None) -> Translator:
        key = (choice.key, str(direction))
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[1] == _modified(kept[0]):
                self._kept.move_to_end(key)
                return kept[0]
            translator = load_translator(choice, direction, self.runs, self.cache, self.device)
            self._kept[key] = (translator, _modified(translator))
            while len(self._kept) > KEPT_TRANSLATORS:
                self._kept.popitem(last=False)
            return translator


def _modified(translator: Translator) -> int:
    try:
        return Path(translator.source).stat().st_mtime_ns
    except OSError:
        return -1
