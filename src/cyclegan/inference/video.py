"""Videos through a generator: a clip in, a translated clip out, its sound kept.

Decoding and encoding use PyAV, whose wheels carry FFmpeg. Every frame is translated at its
full size (or as --size / --scale say, as images are), in batches, with the translator's
backend, precision and tiling. The output keeps the input's frame timestamps (so a variable
frame rate survives), its rotation (display matrix) and its audio stream, copied packet by
packet where the output container takes the codec, else re-encoded (AAC, or Opus for WebM).
What can be written: .mp4, .mov, .m4v, .mkv (H.264), .webm (VP9), an animated .gif, or a
folder of numbered PNG frames; a folder of frames can also be the input (at --fps).

Nothing half-written is left under the output's name: the output is written under a
temporary name beside it and renamed at the end; a failure, a full disk or Ctrl-C removes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cyclegan.config import ConfigError
from cyclegan.data.images import list_images
from cyclegan.inference.options import OutputOptions, VideoOptions

if TYPE_CHECKING:
    from cyclegan.inference.translator import Translator

# what FFmpeg reads that we call a video (a .gif is one when it has more than one frame)
VIDEO_INPUTS = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv",
                ".flv", ".3gp", ".ts", ".mts")  # fmt: skip
# output suffix -> (container format, video codec, the audio codec when copying cannot be)
VIDEO_OUTPUTS = {
    ".mp4": ("mp4", "libx264", "aac"),
    ".m4v": ("mp4", "libx264", "aac"),
    ".mov": ("mov", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "aac"),
    ".webm": ("webm", "libvpx-vp9", "libopus"),
}
GIF = ".gif"
FRAME_NAME = "frame_{:06d}.png"


class VideoError(ConfigError):
    """A video that cannot be read or written as asked; the message says which and why."""


def is_video(path: Path) -> bool:
    """Whether `path` is a video file (by its suffix), or an animated GIF."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_INPUTS:
        return True
    if suffix == GIF and path.is_file():
        try:
            with Image.open(path) as image:
                return getattr(image, "n_frames", 1) > 1
        except OSError:
            return False
    return False


def output_kind(out: Path) -> str:
    """ "video", "gif" or "frames" (a folder: no suffix); VideoError for another suffix."""
    suffix = out.suffix.lower()
    if suffix in VIDEO_OUTPUTS:
        return "video"
    if suffix == GIF:
        return "gif"
    if not suffix:
        return "frames"
    raise VideoError(
        f"--out {out}: no video encoder writes {suffix!r} files; give "
        f"{', '.join(VIDEO_OUTPUTS)}, {GIF} or a folder (numbered PNG frames)"
    )


def import_av() -> Any:
    try:
        import av
    except ImportError as error:
        raise VideoError(
            f"video translation needs PyAV ({error}): pip install 'cyclegan[video]'"
        ) from None
    return av


# ---- reading ----------------------------------------------------------------------------------


@dataclass
class Frame:
    """One decoded frame: (H, W, 3) uint8 RGB and its timestamp in `time_base` seconds."""

    pixels: np.ndarray
    pts: int
    time_base: Fraction


@dataclass
class SourceInfo:
    """What the output keeps of its input."""

    width: int
    height: int
    rate: Fraction  # average frames per second
    time_base: Fraction
    frames: int  # an estimate for the progress bar (0: unknown)
    rotation: int = 0  # degrees, from the display matrix
    audio: Any = None  # the input's first audio stream (PyAV), if any


class VideoReader:
    """A video file's frames in display order, and its audio packets as they come:
    iterate to get Frame objects and ("audio", packet) pairs."""

    def __init__(self, path: Path) -> None:
        av = import_av()
        self.path = path
        try:
            self.container = av.open(str(path))
        except FileNotFoundError:
            raise VideoError(f"{path} does not exist") from None
        except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as error:
            raise VideoError(f"{path} is not a video FFmpeg can read ({error})") from None
        if not self.container.streams.video:
            found = self._streams()
            self.container.close()
            raise VideoError(f"{path} holds no video stream ({found})")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        if self.stream.codec_context is None:
            self.container.close()
            raise VideoError(f"{path}: its video codec cannot be decoded by this FFmpeg build")
        audio = self.container.streams.audio
        self.audio = audio[0] if audio else None
        self.rotation = 0  # degrees, read from the first frame's display matrix

    def _streams(self) -> str:
        kinds = [stream.type for stream in self.container.streams]
        return f"only {', '.join(kinds)}" if kinds else "no streams at all"

    def info(self) -> SourceInfo:
        stream = self.stream
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        frames = stream.frames
        if not frames and stream.duration and stream.time_base:
            frames = int(stream.duration * stream.time_base * rate)
        return SourceInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            rate=Fraction(rate),
            time_base=Fraction(stream.time_base or Fraction(1, 1000)),
            frames=int(frames or 0),
            audio=self.audio,
        )

    def __iter__(self) -> Iterator[Frame | tuple[str, Any]]:
        av = import_av()
        streams = [self.stream] + ([self.audio] if self.audio is not None else [])
        counted = 0
        try:
            for packet in self.container.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None:  # not a demuxer's flush packet
                        yield ("audio", packet)
                    continue
                for frame in packet.decode():
                    if counted == 0:
                        self.rotation = round(frame.rotation or 0)
                    pts = frame.pts if frame.pts is not None else counted
                    counted += 1
                    yield Frame(frame.to_ndarray(format="rgb24"), pts,
                                Fraction(frame.time_base or self.stream.time_base))  # fmt: skip
        except av.error.FFmpegError as error:
            raise VideoError(
                f"{self.path}: decoding failed after {counted} frame(s) ({error})"
            ) from None

    def close(self) -> None:
        self.container.close()


class FrameFolderReader:
    """A folder of numbered frames (sorted by name) as a video at `fps`."""

    def __init__(self, folder: Path, fps: float) -> None:
        self.path = folder
        self.paths = list_images(folder)
        if not self.paths:
            raise VideoError(f"{folder} holds no image frames (.png, .jpg, ...)")
        self.fps = Fraction(fps).limit_denominator(1001)
        self.audio = None
        self.rotation = 0

    def info(self) -> SourceInfo:
        with Image.open(self.paths[0]) as first:
            width, height = first.size
        return SourceInfo(width, height, self.fps, 1 / self.fps, len(self.paths))

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            yield Frame(pixels, index, 1 / self.fps)

    def close(self) -> None:
        pass


# ---- writing ----------------------------------------------------------------------------------


def partial_path(out: Path) -> Path:
    """The temporary name beside `out` (its suffix kept: FFmpeg picks the format by it)."""
    return out.with_name(f".{out.stem}.partial{out.suffix}")


class VideoWriter:
    """An H.264 (VP9 for .webm) file at a temporary name, with the input's timestamps,
    rotation and (copied or re-encoded) audio."""

    def __init__(self, path: Path, info: SourceInfo, crf: int, audio: bool) -> None:
        av = import_av()
        self.av = av
        container_format, codec, self.fallback_audio = VIDEO_OUTPUTS[path.suffix.lower()]
        self.container = av.open(str(path), "w", format=container_format)
        self.info = info
        self.crf = crf
        self.codec = codec
        self.stream: Any = None
        self.audio_in = info.audio if audio else None
        self.audio_out: Any = None
        self.audio_note = "none in the input" if info.audio is None else "left out (--no-audio)"
        self.transcoder: Any = None
        self._pending_audio: list[Any] = []

    def _open_video(self, height: int, width: int) -> None:
        stream = self.container.add_stream(self.codec, rate=self.info.rate)
        stream.width, stream.height = width, height
        # 4:2:0 halves the colour planes: odd sides need full-resolution colour (4:4:4)
        even = width % 2 == 0 and height % 2 == 0
        stream.pix_fmt = "yuv420p" if even else "yuv444p"
        stream.time_base = self.info.time_base
        stream.codec_context.time_base = self.info.time_base
        options = {"crf": str(self.crf)}
        if self.codec == "libvpx-vp9":
            options["b"] = "0"  # constant quality
        stream.options = options
        if self.info.rotation:
            stream.set_display_rotation(self.info.rotation)
        self.stream = stream
        if self.audio_in is not None:
            self._open_audio()
        for packet in self._pending_audio:
            self.audio(packet)
        self._pending_audio.clear()

    def _open_audio(self) -> None:
        source = self.audio_in
        name = source.codec_context.name
        if name in self.container.supported_codecs and self._copyable(name):
            self.audio_out = self.container.add_stream_from_template(source)
            self.audio_note = f"copied ({name})"
            return
        self.audio_out = self.container.add_stream(self.fallback_audio, rate=source.rate)
        self.transcoder = source.codec_context
        self.audio_note = f"re-encoded from {name} to {self.fallback_audio.removeprefix('lib')}"

    def _copyable(self, name: str) -> bool:
        # what the mp4/mov/webm muxers accept as they are; matroska takes anything
        fmt = self.container.format.name
        if "matroska" in fmt:
            return True
        if "webm" in fmt:
            return name in ("opus", "vorbis")
        return name in ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")

    def audio(self, packet: Any) -> None:
        if self.audio_in is None:
            return
        if self.stream is None:  # the streams are added with the first video frame
            self._pending_audio.append(packet)
            return
        if self.transcoder is None:
            packet.stream = self.audio_out
            self.container.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the encoder counts samples itself
            self.container.mux(self.audio_out.encode(frame))

    def write(self, pixels: np.ndarray, pts: int) -> None:
        if self.stream is None:
            self._open_video(*pixels.shape[:2])
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        frame.pts = pts
        frame.time_base = self.info.time_base
        self.container.mux(self.stream.encode(frame))

    def abort(self) -> None:
        """Let go of the file without finishing it (the caller removes it)."""
        with contextlib.suppress(self.av.error.FFmpegError, OSError):
            self.container.close()

    def close(self) -> None:
        if self.stream is None:  # no frame came: nothing to finish (the caller says so)
            self.abort()
            return
        self.container.mux(self.stream.encode(None))
        if self.transcoder is not None:
            self.container.mux(self.audio_out.encode(None))
        self.container.close()


class GifWriter:
    """An animated GIF (frames held until the end: GIFs are short), each frame shown for
    its own duration."""

    def __init__(self, path: Path, info: SourceInfo) -> None:
        self.path, self.info = path, info
        self.frames: list[Image.Image] = []
        self.times: list[float] = []
        self.audio_note = "none in a GIF" if info.audio is not None else "none in the input"

    def audio(self, packet: Any) -> None:
        pass

    def write(self, pixels: np.ndarray, pts: int) -> None:
        self.frames.append(Image.fromarray(pixels))
        self.times.append(float(pts * self.info.time_base))

    def abort(self) -> None:
        self.frames.clear()

    def close(self) -> None:
        if not self.frames:
            return
        gaps = [later - earlier for earlier, later in zip(self.times, self.times[1:])]
        last = gaps[-1] if gaps else float(1 / self.info.rate)
        durations = [max(20, round(1000 * gap)) for gap in [*gaps, last]]
        self.frames[0].save(self.path, save_all=True, append_images=self.frames[1:],
                            duration=durations, loop=0, format="GIF")  # fmt: skip


class FrameFolderWriter:
    """Numbered PNG frames in a folder (the temporary one, renamed at the end)."""

    def __init__(self, folder: Path, info: SourceInfo) -> None:
        self.folder = folder
        self.count = 0
        self.audio_note = "none in frames" if info.audio is not None else "none in the input"
        folder.mkdir(parents=True)

    def audio(self, packet: Any) -> None:
        pass

    def write(self, pixels: np.ndarray, pts: int) -> None:
        self.count += 1
        Image.fromarray(pixels).save(self.folder / FRAME_NAME.format(self.count))

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


# ---- translating ------------------------------------------------------------------------------


@dataclass
class VideoReport:
    """What `translate_video` did."""

    out: Path
    frames: int
    seconds: float
    size: tuple[int, int]  # the output frames' (width, height)
    audio: str  # copied, re-encoded, none...
    steady: bool
    warping_error: float = float("nan")  # of the output (8-bit levels), with --flicker
    input_warping_error: float = float("nan")  # of the input video itself

    @property
    def rate(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def translate_video(
    translator: Translator,
    source: Path,
    out: Path,
    options: OutputOptions | None = None,
    video: VideoOptions | None = None,
    *,
    progress: bool = True,
    on_frames: Callable[[int, int], None] | None = None,
) -> VideoReport:
    """Translate the video (or animated GIF, or folder of frames) `source` into `out` (a
    video file, a .gif or a folder of frames): see the module docstring. With
    video.flicker, the report has the warping error of the output and of the input.
    on_frames(done, total) is called after every batch (total 0 when unknown)."""
    options = options or OutputOptions()
    video = video or VideoOptions()
    kind = output_kind(out)
    if out.resolve() == source.resolve():
        raise VideoError(f"--out {out} is the input; give another name")
    if kind == "frames" and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VideoError(f"--out {out} exists; give a new folder for the frames")
    reader = FrameFolderReader(source, video.fps) if source.is_dir() else VideoReader(source)
    temporary = partial_path(out)
    _remove(temporary)
    started = time.perf_counter()
    writer = None
    try:
        info = reader.info()
        small = translator.too_small(
            (info.width, info.height), options.size, options.scale, options.work_size
        )
        if small is not None:
            raise VideoError(f"{source}: its frames are {small}")
        writer = _writer(kind, temporary, info, video)
        report = _translate_frames(translator, reader, writer, info, options, video, progress,
                                   on_frames)  # fmt: skip
        writer.close()
        if report.frames == 0:
            raise VideoError(f"{source} holds no video frames")
        _put_in_place(temporary, out)
    except BaseException as error:
        reader.close()
        if writer is not None:
            writer.abort()
        _remove(temporary)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise VideoError(f"writing {out}: the disk is full; nothing was written") from None
        raise
    reader.close()
    report.out, report.seconds = out, time.perf_counter() - started
    return report


def _writer(kind: str, path: Path, info: SourceInfo, video: VideoOptions) -> Any:
    if kind == "video":
        return VideoWriter(path, info, video.crf, video.audio)
    if kind == "gif":
        return GifWriter(path, info)
    return FrameFolderWriter(path, info)


def _translate_frames(
    translator: Translator,
    reader: VideoReader | FrameFolderReader,
    writer: Any,
    info: SourceInfo,
    options: OutputOptions,
    video: VideoOptions,
    progress: bool,
    on_frames: Callable[[int, int], None] | None,
) -> VideoReport:
    from tqdm import tqdm

    from cyclegan.inference.steady import Steadier, WarpingError

    steadier = Steadier(video.strength, video.steady_blend) if video.steady else None
    errors = WarpingError() if video.flicker else None
    pending: list[Frame] = []
    done, size = 0, (0, 0)
    bar = tqdm(total=info.frames or None, unit="frame", disable=not progress, leave=False,
               desc=str(reader.path.name))  # fmt: skip

    def flush() -> None:
        nonlocal done, size
        outputs = translator.translate_images(
            [frame.pixels for frame in pending], size=options.size, scale=options.scale,
            tile=options.tile, overlap=options.overlap, work_size=options.work_size,
        )  # fmt: skip
        for frame, output in zip(pending, outputs):
            output = _rgb(output)
            source = _matching(frame.pixels, output)
            if steadier is not None:
                output = steadier.steady(source, output)
            if errors is not None:
                errors.add(source, output)
            shown = np.concatenate([source, output], axis=1) if options.side_by_side else output
            writer.write(shown, frame.pts)
            size = (shown.shape[1], shown.shape[0])
        done += len(pending)
        bar.update(len(pending))
        if on_frames is not None:
            on_frames(done, info.frames)
        pending.clear()

    with bar:
        for item in reader:
            if isinstance(item, Frame):
                if not pending and done == 0:
                    info.rotation = getattr(reader, "rotation", 0)
                pending.append(item)
                if len(pending) == options.batch_size:
                    flush()
            else:
                writer.audio(item[1])
        if pending:
            flush()
    report = VideoReport(out=Path(), frames=done, seconds=0.0, size=size,
                         audio=writer.audio_note, steady=steadier is not None)  # fmt: skip
    if errors is not None:
        report.warping_error, report.input_warping_error = errors.output, errors.input
    return report


def _rgb(image: np.ndarray) -> np.ndarray:
    """A generator's output as (H, W, 3) uint8 (a gray one's repeated, alpha dropped)."""
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image[..., :3]


def _matching(source: np.ndarray, output: np.ndarray) -> np.ndarray:
    """The input frame at the output's size (--size resizes what is translated)."""
    height, width = output.shape[:2]
    if source.shape[:2] == (height, width):
        return source
    return np.asarray(Image.fromarray(source).resize((width, height), Image.Resampling.BICUBIC))


def _put_in_place(temporary: Path, out: Path) -> None:
    if temporary.is_dir() and out.is_dir():
        out.rmdir()  # empty: checked before the first frame
    os.replace(temporary, out)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
