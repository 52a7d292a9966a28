"""The reference implementation's published generators: names, hashes, cache and a resumable,
verified download.

The CycleGAN authors publish generators trained with their code (resnet_9blocks, ngf=64,
256px) as `BASE/NAME.pth`. They are downloaded once into the cache folder
(`$CYCLEGAN_CACHE`, else `$XDG_CACHE_HOME/cyclegan`, else `~/.cache/cyclegan`, under
`pretrained/`). The base URL can point at a mirror (`--base-url`, `$CYCLEGAN_PRETRAINED_URL`).

Downloads go through `cyclegan.downloads.download_file` (to `NAME.pth.part`, resumed with
HTTP Range requests after a dropped connection, also by the next command). The publisher lists
no checksums; PUBLISHED_SHA256 holds the SHA-256 of the files that public copies pin (see the
table's comment), and every download is checked against it, or against the hash the user gives
(`sha256=`, `--sha256`). A name with neither is not downloaded: an unchecked file is never
used. A verified file gets a record beside it (`NAME.pth.verified`: its hash, size and
modification time), so it is not hashed again on every use; a cached file without a valid
record is hashed before use. A verified download must also load as a reference generator.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cyclegan.config import ConfigError
from cyclegan.downloads import (
    ChecksumMismatch,
    DownloadError,
    Pinned,
    check_sha256,
    download_file,
    user_cache_dir,
)

DEFAULT_BASE_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
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
# The SHA-256 of the published files, from public copies of them. DeepMosaics redistributes
# eight of them renamed style_NAME.pth (style_summer2winter is summer2winter_yosemite); their
# hashes are listed in linxiaohui/image-service, DeepStyle/README.md. Its apple2orange hash is
# also the Git LFS object of an independent copy, huggingface.co/spaces/davidpiscasio/
# unpaired-img2img (commit 3ce13dc, checkpoints/apple2orange_pretrained/latest_net_G.pth, with
# its size). No public source was found for the other ten: they need --sha256.
PUBLISHED_SHA256: dict[str, Pinned] = {
    "apple2orange": Pinned(
        "ff989c98f3a077cd11c2623ed8742e2ef147e81d10b4e4c2ee6935796bda957a", 45575747
    ),
    "orange2apple": Pinned("b736bd3919b12e19a6dd37bdbea2097ac00fa78c8656adcbf45d0d3bab52853e"),
    "summer2winter_yosemite": Pinned(
        "600d267609742d22dee8a518f40eec9f4008400ba6abe1f3a8b957b23d4925d5"
    ),
    "winter2summer_yosemite": Pinned(
        "05824a39301a10c1501cf8dcaf43dda8ff23f0fe568a19cda6dde54d670a9071"
    ),
    "style_monet": Pinned("efdad8782a185c2c423559449a2f3e33a6eeadc7d042ada98ffa848e6b055142"),
    "style_cezanne": Pinned("c4a4f978070cbd25d556809c214e9387ef1ccadb2fde79a8a97b4931493130a9"),
    "style_ukiyoe": Pinned("2377efc6cf9afebd0053e5b540547d5cf3da651c745a86533c7f34e5076b5fa7"),
    "style_vangogh": Pinned("55c49585be54d2c9f1edd2dddf1251dff168f24a7663019fcac1dd714ef1bb89"),
}
_RECORD_SUFFIX = ".verified"


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
    sha256: str | None = None,
) -> Path:
    """The cached, verified file of `name`, downloaded first if it is not there (or `force`).

    The file must have the SHA-256 `sha256` if given (lowercase hex), else the published one
    (PUBLISHED_SHA256). Raises PretrainedError, before any download, when there is neither;
    DownloadError (with `base_url_variable` set) when the download fails or is not a reference
    generator, and its subclass ChecksumMismatch when the file (downloaded or cached) has
    another hash; such a file is removed.
    """
    path = cached_path(name, cache)
    pinned = PUBLISHED_SHA256.get(name)
    expected = sha256 or (pinned.sha256 if pinned else None)
    if expected is None and (force or not path.is_file()):  # before --force removes anything
        raise PretrainedError(unverifiable_message(name, base_url(url)))
    if force:
        path.unlink(missing_ok=True)
    if path.is_file():
        _check_cached(name, path, expected)
        return path
    _record_path(path).unlink(missing_ok=True)
    address = f"{base_url(url)}/{name}.pth"
    size = pinned.size if pinned and sha256 is None else None  # a mirror's copy may differ
    try:
        download_file(address, path, expected_size=size, sha256=expected, progress=progress)
        try:
            check_generator_file(path)
        except PretrainedError as error:
            path.unlink(missing_ok=True)
            # The hash matched (one the user gave, for a mirror's copy), the content is wrong:
            # a failed download like a dropped connection.
            raise DownloadError(
                f"{error}; it was downloaded from {address} and is removed (check the address, "
                "or try again)"
            ) from None
    except DownloadError as error:
        error.base_url_variable = BASE_URL_VARIABLE
        raise
    _record_verified(path, expected)
    return path


def is_published(name: str) -> bool:
    """Whether a download of `name` can be checked without a hash from the user."""
    return name in PUBLISHED_SHA256


def unverifiable_message(name: str, base: str) -> str:
    return (
        f"{name}.pth has no published SHA-256, so a download of it cannot be verified: give the "
        f"SHA-256 of the file you expect with --sha256 HEX, or fetch {base}/{name}.pth yourself "
        "and use it with --weights FILE"
    )


def _check_cached(name: str, path: Path, expected: str | None) -> None:
    """Raise unless the cached `path` was verified (against `expected`, when known) or its
    SHA-256 is `expected` now (then the verification is recorded)."""
    recorded = _recorded_sha256(path)
    if recorded is not None and expected in (None, recorded):
        return
    if expected is None:
        raise PretrainedError(
            f"{path} was never verified and {unverifiable_message(name, base_url())}"
        )
    try:
        check_sha256(path, expected, "in the cache")
    except ChecksumMismatch as error:
        raise ChecksumMismatch(
            f"{error}; run the command again to download it anew",
            base_url_variable=BASE_URL_VARIABLE,
        ) from None
    _record_verified(path, expected)


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + _RECORD_SUFFIX)


def _record_verified(path: Path, sha256: str) -> None:
    """Write the record that `path`, as it is now, has SHA-256 `sha256`."""
    facts = path.stat()
    record = {"sha256": sha256, "size": facts.st_size, "mtime_ns": facts.st_mtime_ns}
    temporary = _record_path(path).with_suffix(".tmp")
    temporary.write_text(json.dumps(record) + "\n")
    os.replace(temporary, _record_path(path))


def _recorded_sha256(path: Path) -> str | None:
    """The hash recorded for `path`, if the record describes the file as it is now."""
    try:
        record = json.loads(_record_path(path).read_text())
        facts = path.stat()
        if record["size"] == facts.st_size and record["mtime_ns"] == facts.st_mtime_ns:
            return str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


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
