"""The reference implementation's published generators: names, cache and a resumable download.

The CycleGAN authors publish generators trained with their code (resnet_9blocks, ngf=64,
256px) as `BASE/NAME.pth`. They are downloaded once into the cache folder
(`$CYCLEGAN_CACHE`, else `$XDG_CACHE_HOME/cyclegan`, else `~/.cache/cyclegan`, under
`pretrained/`). The base URL can point at a mirror (`--base-url`, `$CYCLEGAN_PRETRAINED_URL`).

Downloads go through `cyclegan.downloads.download_file` (to `NAME.pth.part`, resumed with
HTTP Range requests after a dropped connection, also by the next command; a size that
disagrees with what the server announced is removed). The publisher lists no checksums, so a
downloaded file is then checked by loading it as a reference generator, and removed if it is
not one.
"""

from __future__ import annotations

import os
from pathlib import Path

from cyclegan.config import ConfigError
from cyclegan.downloads import DownloadError, download_file, user_cache_dir

DEFAULT_BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
BASE_URL_VARIABLE = "CYCLEGAN_PRETRAINED_URL"
# name -> what it does; every one is a resnet_9blocks, ngf=64 generator (AtoB of its name)
PRETRAINED: dict[str, str] = {
    "apple2orange": "apples -> oranges",
    "orange2apple": "oranges -> apples",
    "summer2winter_yosemite": "Yosemite in summer -> in winter",
    "winter2summer_yosemite": "Yosemite in winter -> in summer",
    "horse2zebra": "horses -> zebras",
    "zebra2horse": "zebras -> horses",
    "monet2photo": "Monet paintings -> photos",
    "style_monet": "photos -> Monet's style",
    "style_cezanne": "photos -> Cezanne's style",
    "style_ukiyoe": "photos -> ukiyo-e style",
    "style_vangogh": "photos -> Van Gogh's style",
    "sat2map": "satellite images -> maps",
    "map2sat": "maps -> satellite images",
    "cityscapes_photo2label": "street photos -> label maps",
    "cityscapes_label2photo": "label maps -> street photos",
    "facades_photo2label": "facade photos -> label maps",
    "facades_label2photo": "label maps -> facade photos",
    "iphone2dslr_flower": "iPhone flower photos -> DSLR look (shallow depth of field)",
}


class PretrainedError(ConfigError):
    """A pretrained generator that cannot be had; the message says why and what to do."""


def cache_dir(override: Path | str | None = None) -> Path:
    """The folder holding downloaded generators (`pretrained/` in the cyclegan cache)."""
    if override is not None:
        return Path(override)
    return user_cache_dir() / "pretrained"


def base_url(override: str | None = None) -> str:
    return (override or os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL).rstrip("/")


def check_name(name: str) -> str:
    if name not in PRETRAINED:
        raise PretrainedError(
            f"unknown pretrained generator {name!r}; choose one of {sorted(PRETRAINED)} "
            "(cyclegan pretrained list)"
        )
    return name


def cached_path(name: str, cache: Path | str | None = None) -> Path:
    return cache_dir(cache) / f"{check_name(name)}.pth"


def fetch_pretrained(
    name: str,
    cache: Path | str | None = None,
    url: str | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """The cached file of `name`, downloaded first if it is not there (or `force`).

    Raises DownloadError (with `base_url_variable` set) when the download fails or the file
    is not a reference generator; that file is removed.
    """
    path = cached_path(name, cache)
    if path.is_file() and not force:
        return path
    if force:
        path.unlink(missing_ok=True)
    address = f"{base_url(url)}/{name}.pth"
    try:
        download_file(address, path, progress=progress)
    except DownloadError as error:
        raise DownloadError(str(error), base_url_variable=BASE_URL_VARIABLE) from None
    try:
        check_generator_file(path)
    except PretrainedError as error:
        path.unlink(missing_ok=True)
        # A wrong file from the server (a captive portal's page, a moved file) is a failed
        # download like a dropped connection, not a mistake of the user's.
        raise DownloadError(
            f"{error}; it was downloaded from {address} and is removed (check the address, or "
            "try again)",
            base_url_variable=BASE_URL_VARIABLE,
        ) from None
    return path


def check_generator_file(path: Path) -> None:
    """Raises PretrainedError unless `path` loads as a reference generator state dict."""
    # torch is needed here only: `cyclegan pretrained list` starts without it
    from cyclegan.checkpoint import CheckpointError
    from cyclegan.inference.reference import (
        infer_architecture,
        is_reference_state,
        load_state_file,
    )

    try:
        state = load_state_file(path)
        if not is_reference_state(state):
            raise ConfigError(f"{path} holds keys {list(state)[:3]}, not 'model.N...'")
        infer_architecture(state, path)
    except (ConfigError, CheckpointError) as error:
        raise PretrainedError(f"{path} is not a reference generator ({error})") from error
