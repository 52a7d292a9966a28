"""The Translate tab: pick a model and a direction, drop images (or pick a built-in example),
compare input and output with a slider at full resolution, download the results; or drop a
short video and play (and download) its translation.

Translations run one at a time through the queue (`concurrency_limit=1`): a second user's
request waits its turn and gets its own results, and the CPU or GPU is never split between
two large images.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

from cyclegan.checkpoint import CheckpointError
from cyclegan.config import ConfigError
from cyclegan.data.synthetic import make_synthetic_dataset
from cyclegan.inference.options import OutputOptions
from cyclegan.ui.models import ModelChoice, TranslatorCache, list_models, run_directions
from cyclegan.ui.safe_paths import PathRefused
from cyclegan.ui.uploads import Limits, translate_uploads, translate_video_upload

FORMATS = ["same as input", "png", "jpg", "webp"]
VIDEO_UPLOADS = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".gif")
OWN_DIRECTION = "the file's own"
KEPT_RESULTS_SECONDS = 3600  # result folders older than this are removed by later requests
# what loading a model can fail with, each a message that says what to do
MODEL_ERRORS = (PathRefused, ConfigError, CheckpointError, OSError)


def build_translate_tab(
    runs: Path, cache: Path | None, device: str, limits: Limits, work_dir: Path
) -> gr.Dropdown:
    """The tab's components and events (inside a gr.Tabs); returns the model dropdown, which
    the page refreshes when it loads."""
    translators = TranslatorCache(runs, cache, device)
    results_dir = work_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    with gr.Tab("Translate", id="translate"):
        with gr.Row():
            with gr.Column(scale=2):
                model = gr.Dropdown(
                    label="Model", choices=model_choices(runs, cache), elem_id="model"
                )
                refresh = gr.Button(
                    "Refresh the model list", size="sm", variant="secondary", elem_id="refresh"
                )
                direction = gr.Radio(
                    ["AtoB", "BtoA"], value="AtoB", label="Direction", elem_id="direction"
                )
                files = gr.File(
                    label=f"Images (up to {limits.max_files}, "
                    f"{limits.max_upload_bytes / 1e6:g} MB and "
                    f"{limits.max_pixels / 1e6:g} megapixels each)",
                    file_count="multiple",
                    type="filepath",
                    elem_id="uploads",
                )
                examples = built_in_examples(work_dir / "examples")
                gr.Examples(
                    [[[str(path)]] for _, path in examples],
                    inputs=files,
                    example_labels=[label for label, _ in examples],
                    label="Built-in examples (the synthetic dataset)",
                )
                with gr.Accordion("Options", open=False, elem_id="options-panel"):
                    size = gr.Number(
                        0, label="Short side in pixels (0: the image's own)", precision=0, minimum=0
                    )
                    scale = gr.Radio(
                        ["native", "train"],
                        value="native",
                        label="Scale (train: at the size the model was trained at, then back)",
                    )
                    tile = gr.Number(
                        0, label="Tile size (0: the whole image at once)", precision=0, minimum=0
                    )
                    image_work_size = gr.Number(
                        0,
                        label="Work size: the short side the network translates at, its change "
                        "added to the full-size image (0: the image's own)",
                        precision=0,
                        minimum=0,
                        elem_id="image-work-size",
                    )
                    output_format = gr.Dropdown(FORMATS, value=FORMATS[0], label="Output format")
                run = gr.Button("Translate", variant="primary", elem_id="translate-button")
                with gr.Accordion("Video", open=False, elem_id="video-panel"):
                    clip = gr.File(
                        label=f"A video (up to {limits.max_video_seconds:g} s and "
                        f"{limits.max_upload_bytes / 1e6:g} MB; .mp4, .mov, .webm, .mkv, "
                        ".avi or an animated .gif)",
                        file_types=list(VIDEO_UPLOADS),
                        type="filepath",
                        elem_id="video-upload",
                    )
                    steady = gr.Checkbox(
                        True, label="Steady (less flicker between frames)", elem_id="steady"
                    )
                    work_size = gr.Number(
                        0,
                        label="Work size: the short side the network translates at, its change "
                        "added to the full-size frames (0: full size; e.g. 288 for 720p, 3x as "
                        "fast)",
                        precision=0,
                        minimum=0,
                        elem_id="work-size",
                    )
                    run_video = gr.Button(
                        "Translate the video", variant="primary", elem_id="translate-video"
                    )
            with gr.Column(scale=3):
                slider = gr.ImageSlider(
                    label="Input | output (drag to compare)",
                    type="filepath",
                    max_height=640,
                    elem_id="comparison",
                )
                # A caption rather than the gallery's own label, which Gradio floats over the
                # first thumbnails; the height follows the rows, so none is cut off either.
                gr.Markdown("**Results** (pick one to compare)", elem_id="results-caption")
                gallery = gr.Gallery(
                    label="Results",
                    show_label=False,
                    columns=6,
                    fit_columns=False,  # a few results keep the size of many
                    height="auto",
                    object_fit="contain",
                    allow_preview=False,
                    buttons=[],  # its toolbar covers a thumbnail; Download has them all
                    elem_id="results",
                )
                download = gr.File(label="Download", elem_id="download")
                status = gr.Markdown(elem_id="translate-status")
                video_result = gr.Video(
                    label="Translated video", interactive=False, elem_id="video-result"
                )
                video_status = gr.Markdown(elem_id="video-status")
        pairs = gr.State([])

        def translate(
            model_key: str | None,
            direction_value: str,
            uploaded: list[str] | None,
            short_side: float | None,
            scale_value: str,
            tile_size: float | None,
            work_size_value: float | None,
            format_value: str,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio's own idiom)
        ) -> tuple[Any, ...]:
            if not uploaded:
                raise gr.Error("Drop one or more images first, or pick a built-in example.")
            if not model_key:
                raise gr.Error(
                    "Pick a model: train a run (cyclegan train) or download a pretrained "
                    "generator (cyclegan pretrained download NAME), then refresh the model list."
                )
            options = output_options(
                short_side, scale_value, tile_size, format_value, work_size_value
            )
            choice, translator = load_model(translators, model_key, direction_value)
            progress(0, desc=f"translating with {choice.label}")
            out_dir = Path(tempfile.mkdtemp(dir=results_dir))
            remove_old_results(results_dir, keep=out_dir)
            try:
                outcome = translate_uploads(
                    [Path(path) for path in uploaded], translator, options, limits, out_dir
                )
            except ValueError as error:  # UploadRefused, ConfigError: the message says why
                raise gr.Error(str(error)) from None
            lines = [
                f"Translated {len(outcome.pairs)} of {len(uploaded)} image(s) "
                f"({translator.direction}) with {choice.label} in {outcome.seconds:.1f} s."
            ]
            lines += [f"- {reason}" for reason in outcome.refused]
            if outcome.refused:
                gr.Warning("\n".join(outcome.refused))
            shown = [(str(source), str(result)) for source, result in outcome.pairs]
            return (
                shown[0] if shown else None,
                [result for _, result in shown],
                str(outcome.download) if outcome.download else None,
                "\n".join(lines),
                shown,
            )

        def translate_clip(
            model_key: str | None,
            direction_value: str,
            uploaded: str | None,
            steady_value: bool,
            work_size_value: float | None,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio's own idiom)
        ) -> tuple[str, str]:
            if not uploaded:
                raise gr.Error("Drop a video first.")
            if not model_key:
                raise gr.Error("Pick a model first (see the model list).")
            choice, translator = load_model(translators, model_key, direction_value)
            progress(0, desc=f"translating the video with {choice.label}")
            out_dir = Path(tempfile.mkdtemp(dir=results_dir))
            remove_old_results(results_dir, keep=out_dir)

            def advance(done: int, total: int) -> None:
                progress((done, total or None), desc="frames", unit="frames")

            try:
                outcome = translate_video_upload(
                    Path(uploaded), translator, limits, out_dir, steady_value, advance,
                    int(work_size_value) if work_size_value else None,
                )  # fmt: skip
            except ValueError as error:  # UploadRefused, VideoError, ConfigError: it says why
                raise gr.Error(str(error)) from None
            return str(outcome.result), f"{outcome.summary} with {choice.label}."

        def pick(shown: list[tuple[str, str]], event: gr.SelectData) -> tuple[str, str] | None:
            return tuple(shown[event.index]) if 0 <= event.index < len(shown) else None

        def offer_directions(model_key: str | None) -> Any:
            try:
                choice = ModelChoice.from_key(model_key) if model_key is not None else None
            except PathRefused:
                choice = None  # the translation itself explains the refusal
            has = (
                run_directions(runs, choice.name)
                if choice is not None and choice.kind != "pretrained"
                else ("AtoB", "BtoA")
            )
            if len(has) == 1:  # a CUT run (A to B), or a distillation of one direction
                return gr.Radio(choices=list(has), value=has[0], interactive=False)
            if choice is None or choice.both_directions:
                return gr.Radio(choices=["AtoB", "BtoA"], value="AtoB", interactive=True)
            return gr.Radio(choices=[OWN_DIRECTION], value=OWN_DIRECTION, interactive=False)

        run.click(
            translate,
            [model, direction, files, size, scale, tile, image_work_size, output_format],
            [slider, gallery, download, status, pairs],
            concurrency_limit=1,
            concurrency_id="translate",
        )
        run_video.click(
            translate_clip,
            [model, direction, clip, steady, work_size],
            [video_result, video_status],
            concurrency_limit=1,
            concurrency_id="translate",  # one translation at a time, images or video
        )
        gallery.select(pick, [pairs], [slider])
        model.change(offer_directions, [model], [direction])
        refresh.click(lambda: refreshed_models(runs, cache), None, [model])
    return model


def model_choices(runs: Path, cache: Path | None) -> list[tuple[str, str]]:
    return [(choice.label, choice.key) for choice in list_models(runs, cache)]


def refreshed_models(runs: Path, cache: Path | None) -> Any:
    """The dropdown with today's models, the first of them picked."""
    choices = model_choices(runs, cache)
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)


def load_model(
    translators: TranslatorCache, model_key: str, direction: str
) -> tuple[ModelChoice, Any]:
    """The chosen Translator; any failure becomes a message in the page."""
    try:
        choice = ModelChoice.from_key(model_key)
        return choice, translators.get(choice, None if direction == OWN_DIRECTION else direction)
    except MODEL_ERRORS as error:
        raise gr.Error(str(error)) from None


def output_options(
    short_side: float | None,
    scale: str,
    tile: float | None,
    format_value: str,
    work_size: float | None = None,
) -> OutputOptions:
    try:
        return OutputOptions(
            size=int(short_side) if short_side else None,
            scale=scale,  # type: ignore[arg-type]
            tile=int(tile) if tile else None,
            work_size=int(work_size) if work_size else None,
            format=None if format_value == FORMATS[0] else format_value,  # type: ignore[arg-type]
        )
    except ConfigError as error:
        message = str(error).replace("--size", "short side").replace("--work-size", "work size")
        raise gr.Error(message.replace("--scale train", "scale train")) from None


def built_in_examples(folder: Path) -> list[tuple[str, Path]]:
    """Two images of each domain of the built-in synthetic dataset, made once per start."""
    root = make_synthetic_dataset(folder, size=128, train=1, test=2, seed=0)
    return [
        (f"domain {domain} #{index + 1}", path)
        for domain in ("A", "B")
        for index, path in enumerate(sorted((root / f"test{domain}").glob("*.png")))
    ]


def remove_old_results(results_dir: Path, keep: Path) -> None:
    """Result folders of requests more than an hour old: their pages have long fetched them
    (Gradio keeps its own copies in its cache)."""
    cutoff = time.time() - KEPT_RESULTS_SECONDS
    for folder in results_dir.iterdir():
        if folder != keep and folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
