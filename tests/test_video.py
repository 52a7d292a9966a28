"""Videos: clips the tests make (a real photo panned across the frame, with a sine tone)
go through the real decoder, a generator and the real encoder. Frame count, timing, size,
rotation, sound and the first frame's content survive; --steady lowers the warping error;
every mistake is one line and leaves nothing under the output's name."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import ConfigError, ModelConfig
from cyclegan.inference.steady import Steadier, WarpingError
from cyclegan.inference.translator import Translator
from cyclegan.inference.video import partial_path
from cyclegan.models.artifact import save_generator
from cyclegan.models.cyclegan import make_generator

av = pytest.importorskip("av")
pytest.importorskip("cv2")

PHOTO = Path(__file__).parent / "data" / "seed_photos" / "A_type" / "7.jpg"
SIZE = (64, 48)  # width, height of the test clips
TONE_HZ, SAMPLE_RATE = 440.0, 16000


def panned_frames(count: int, noise: float = 0.0, seed: int = 0) -> list[np.ndarray]:
    """A window of SIZE moving right and down across a real photo, 2 px a frame; with
    `noise`, Gaussian noise of that many 8-bit levels on each frame (a sensor's)."""
    photo = np.asarray(Image.open(PHOTO).convert("RGB").resize((160, 120)))
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        top, left = index, 2 * index
        frame = photo[top : top + SIZE[1], left : left + SIZE[0]].astype(np.float32)
        if noise:
            frame = frame + rng.normal(0, noise, frame.shape)
        frames.append(frame.clip(0, 255).astype(np.uint8))
    return frames


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: int = 25,
    times_ms: list[int] | None = None,
    audio_seconds: float = 0.0,
    rotation: int = 0,
    codec: str = "libx264",
) -> Path:
    """A clip through PyAV: `frames` at `fps` (or at `times_ms`), a sine tone, a rotation."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv444p"  # exact colours: the test compares content
        stream.options = {"crf": "0"} if codec == "libx264" else {}
        if times_ms is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=SAMPLE_RATE) if audio_seconds else None
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[index], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            t = np.arange(int(audio_seconds * SAMPLE_RATE)) / SAMPLE_RATE
            wave = (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)[None]
            samples = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            samples.sample_rate, samples.pts = SAMPLE_RATE, 0
            container.mux(sound.encode(samples))
            container.mux(sound.encode(None))
    return path


def read_clip(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        frames, times, rotation = [], [], None
        for frame in container.decode(stream):
            if rotation is None:
                rotation = frame.rotation
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * frame.time_base))
    sound = None
    with av.open(str(path)) as container:
        audio = container.streams.audio
        if audio:  # its length by the samples it decodes to (webm records no stream duration)
            samples = sum(frame.samples for frame in container.decode(audio[0]))
            sound = {"codec": audio[0].codec_context.name,
                     "seconds": samples / audio[0].codec_context.sample_rate}  # fmt: skip
    return {"frames": frames, "times": times, "rotation": rotation, "audio": sound,
            "rate": rate}  # fmt: skip


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generator (untrained, but a real network that changes colours and texture)."""
    torch.manual_seed(0)
    model = ModelConfig(generator="resnet_3blocks", ngf=8)
    generator = make_generator(model, "AtoB")
    path = tmp_path_factory.mktemp("gen") / "AtoB.safetensors"
    save_generator(path, generator, model, "AtoB")
    return path


@pytest.fixture(scope="module")
def colour_swap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generator that swaps red and blue and keeps everything else (a residual one at its
    identity start, with its colour map set): a smooth translation, which a video codec keeps
    as well as the input's own colours, so frames can be compared after encoding."""
    model = ModelConfig(generator="resnet_3blocks", ngf=8, residual=True, colour=True)
    generator = make_generator(model, "AtoB")
    generator.start_as_identity()
    with torch.no_grad():
        generator.colour.matrix.copy_(torch.eye(3)[[2, 1, 0]])
    path = tmp_path_factory.mktemp("swap") / "AtoB.safetensors"
    save_generator(path, generator, model, "AtoB")
    return path


def translator(path: Path) -> Translator:
    return Translator.from_file(path, device="cpu", precision="fp32")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0**2 / mse) if mse else float("inf")


def test_a_clip_keeps_its_frames_timing_size_and_sound(
    colour_swap: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = panned_frames(24)
    clip = write_clip(tmp_path / "clip.mp4", frames, audio_seconds=1.0)
    out = tmp_path / "out.mp4"
    assert main(["translate", str(clip), "--weights", str(colour_swap), "--out", str(out),
                 "--precision", "fp32", "--batch-size", "5"]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert "translated 24 frame(s) of 64x48" in said and "audio: copied (aac)" in said
    result = read_clip(out)
    assert len(result["frames"]) == 24 and result["rate"] == 25
    assert result["frames"][0].shape == (48, 64, 3)
    assert result["times"] == pytest.approx([i / 25 for i in range(24)], abs=1e-3)
    assert result["audio"]["codec"] == "aac"
    assert result["audio"]["seconds"] == pytest.approx(1.0, abs=0.05)
    source = read_clip(clip)["frames"][0]
    expected = translator(colour_swap)(source)
    assert psnr(expected, source[..., ::-1]) > 40  # red and blue swapped: the translation
    assert psnr(result["frames"][0], expected) > 30  # the first frame's translation, encoded
    assert not partial_path(out).exists()


def test_variable_timing_rotation_and_every_output_kind(
    generator_file: Path, tmp_path: Path
) -> None:
    times = [0, 40, 120, 160, 300, 340]  # a variable frame rate, in ms
    clip = write_clip(tmp_path / "vfr.mkv", panned_frames(6), times_ms=times, rotation=90)
    gen = translator(generator_file)
    report = gen.translate_video(clip, tmp_path / "vfr_out.mkv", progress=False)
    assert report.frames == 6 and report.audio == "none in the input"
    result = read_clip(tmp_path / "vfr_out.mkv")
    assert result["times"] == pytest.approx([t / 1000 for t in times], abs=1e-3)
    assert result["rotation"] == 90

    gif = gen.translate_video(clip, tmp_path / "out.gif", progress=False).out
    with Image.open(gif) as image:
        assert image.n_frames == 6 and image.size == SIZE
        assert image.info["duration"] == 40  # the first frame shows until the second's time
    frames = tmp_path / "frames"
    gen.translate_video(gif, frames, progress=False)  # an animated GIF is a video too
    assert sorted(p.name for p in frames.iterdir()) == [f"frame_{i:06d}.png" for i in range(1, 7)]
    again = gen.translate_video(frames, tmp_path / "from_frames.mp4", fps=10, progress=False)
    assert again.frames == 6 and read_clip(again.out)["rate"] == 10
    wide = gen.translate_video(clip, tmp_path / "pairs.mp4", side_by_side=True, progress=False)
    assert wide.size == (2 * SIZE[0], SIZE[1])


def test_webm_takes_the_sound_re_encoded(generator_file: Path, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", panned_frames(10), audio_seconds=0.5)
    report = translator(generator_file).translate_video(clip, tmp_path / "out.webm", progress=False)
    assert report.audio == "re-encoded from aac to opus"
    result = read_clip(report.out)
    assert len(result["frames"]) == 10 and result["audio"]["codec"] == "opus"


def test_steadying_lowers_the_warping_error_and_keeps_untracked_pixels(
    generator_file: Path, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "noisy.mp4", panned_frames(20, noise=6.0))
    gen = translator(generator_file)
    plain = gen.translate_video(clip, tmp_path / "plain.mp4", flicker=True, progress=False)
    steady = gen.translate_video(clip, tmp_path / "steady.mp4", flicker=True, steady=True,
                                 progress=False)  # fmt: skip
    assert steady.input_warping_error == pytest.approx(plain.input_warping_error)
    assert steady.warping_error < 0.8 * plain.warping_error, (steady, plain)

    # a cut: nothing of the first frame can be tracked into the second, which keeps its own
    first, second = panned_frames(1)[0], np.ascontiguousarray(panned_frames(30)[29][::-1])
    for blend in ("change", "output"):
        steadier = Steadier(blend=blend)
        steadier.steady(first, gen(first))
        own = gen(second)
        _, reliable = steadier.flows.backward_flow(second, first)
        steadied = steadier.steady(second, own)
        assert (~reliable).mean() > 0.5 and np.array_equal(steadied[~reliable], own[~reliable])


def test_blending_outputs_smooths_the_inputs_own_noise_too(colour_swap: Path) -> None:
    """--steady-blend output carries the output itself along the flow: on a still scene under
    sensor noise it smooths the noise, which blending the change keeps (each output is its
    frame plus a steadied change, so its noise is the frame's)."""
    rng = np.random.default_rng(0)
    still = panned_frames(1)[0].astype(np.float64)
    frames = [(still + rng.normal(0, 4, still.shape)).clip(0, 255).astype(np.uint8)
              for _ in range(10)]  # fmt: skip
    gen = translator(colour_swap)
    errors = {}
    for blend in ("change", "output"):
        steadier, error = Steadier(blend=blend), WarpingError()
        for frame in frames:
            error.add(frame, steadier.steady(frame, gen(frame)))
        errors[blend] = error.output
    assert errors["change"] > 0.8 * error.input  # the input's own noise, kept
    assert errors["output"] < 0.6 * errors["change"]
    with pytest.raises(ConfigError, match="unknown steadying blend 'mean'"):
        Steadier(blend="mean")  # type: ignore[arg-type]


def test_the_warping_error_of_a_still_video_is_zero() -> None:
    errors = WarpingError()
    frame = panned_frames(1)[0]
    for _ in range(3):
        errors.add(frame, frame)
    assert errors.output == 0 and errors.input == 0 and errors.pairs == 2


@pytest.mark.parametrize(
    ("make", "out", "message"),
    [
        ("text", "out.mp4", "is not a video FFmpeg can read"),
        ("audio_only", "out.mp4", "holds no video stream (only audio)"),
        ("empty", "out.mp4", "is not a video FFmpeg can read"),
        ("tiny", "out.mp4", "its frames are too small (4x4; at least 5 px on each side)"),
        ("clip", "out.avi", "no video encoder writes '.avi'"),
        ("clip", "afile", "exists; give a new folder"),  # frames go to a new folder
        ("clip", "clip.mp4", "is the input"),
    ],
)
def test_each_mistake_is_one_line_and_leaves_nothing(
    generator_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: str,
    out: str,
    message: str,
) -> None:
    source = tmp_path / "clip.mp4"
    if make == "text":
        source.write_text("not a video\n")
    elif make == "audio_only":
        with av.open(str(source), "w") as container:
            sound = container.add_stream("aac", rate=SAMPLE_RATE)
            wave = np.zeros((1, SAMPLE_RATE // 2), np.float32)
            samples = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            samples.sample_rate, samples.pts = SAMPLE_RATE, 0
            container.mux(sound.encode(samples))
            container.mux(sound.encode(None))
    elif make == "empty":
        source.write_bytes(b"")
    elif make == "tiny":
        write_clip(source, [frame[:4, :4] for frame in panned_frames(3)])
    else:
        write_clip(source, panned_frames(4))
    (tmp_path / "afile").write_text("mine\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["translate", str(source), "--weights", str(generator_file), "--out",
                 str(tmp_path / out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "afile").read_text() == "mine\n"


def test_an_interrupted_translation_leaves_no_partial_file(
    generator_file: Path, tmp_path: Path
) -> None:
    from cyclegan.inference.video import translate_video

    clip = write_clip(tmp_path / "clip.mp4", panned_frames(12))
    out = tmp_path / "out.mp4"

    def interrupt(done: int, total: int) -> None:
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        translate_video(translator(generator_file), clip, out, progress=False, on_frames=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_a_full_disk_is_one_line_and_leaves_nothing(
    generator_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", panned_frames(30, noise=20.0))
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        code = main(["translate", str(clip), "--weights", str(generator_file), "--out",
                     str(disk / "out.mp4"), "--crf", "0"])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "the disk is full" in err, err
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_video_options_for_images_are_refused(
    generator_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "a.png"
    Image.fromarray(panned_frames(1)[0]).save(image)
    code = main(["translate", str(image), "--weights", str(generator_file), "--out",
                 str(tmp_path / "o"), "--steady"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--steady is for videos" in err
    # on a video, the blending's own options without --steady are said, not ignored
    clip = write_clip(tmp_path / "clip.mp4", panned_frames(3))
    code = main(["translate", str(clip), "--weights", str(generator_file), "--out",
                 str(tmp_path / "o.mp4"), "--steady-blend", "output"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--steady is off, so --steady-blend would change nothing" in err
    assert not (tmp_path / "o.mp4").exists()


def test_an_onnx_export_translates_a_clip(colour_swap: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    onnx_file = tmp_path / "gen.onnx"
    assert main(["export", "--weights", str(colour_swap), "--format", "onnx", "--out",
                 str(onnx_file)]) == 0  # fmt: skip
    clip = write_clip(tmp_path / "clip.mp4", panned_frames(6))
    gen = Translator.from_file(onnx_file)
    report = gen.translate_video(clip, tmp_path / "out.mp4", progress=False)
    expected = translator(colour_swap)(read_clip(clip)["frames"][0])
    assert report.frames == 6 and psnr(read_clip(report.out)["frames"][0], expected) > 30


def test_the_command_runs_in_a_fresh_process(generator_file: Path, tmp_path: Path) -> None:
    """What users type, end to end: progress goes to stderr, the summary to stdout."""
    clip = write_clip(tmp_path / "clip.mp4", panned_frames(8), audio_seconds=0.4)
    (tmp_path / "outs").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "cyclegan", "translate", str(clip), "--weights",
         str(generator_file), "--out", str(tmp_path / "outs"), "--steady"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "translated 8 frame(s)" in done.stdout and "steadied" in done.stdout
    assert len(read_clip(tmp_path / "outs" / "clip.mp4")["frames"]) == 8  # into the folder


def test_a_resized_clip_keeps_odd_sides_and_tiles_agree(colour_swap: Path, tmp_path: Path) -> None:
    """--size resizes the frames first (64x48 -> 43x32: an odd width, kept with 4:4:4
    colour); --tile gives what the whole frame gives, as for images."""
    clip = write_clip(tmp_path / "clip.mp4", panned_frames(5))
    gen = translator(colour_swap)
    small = gen.translate_video(clip, tmp_path / "small.mp4", size=32, progress=False)
    assert small.size == (43, 32)
    frames = read_clip(small.out)["frames"]
    assert len(frames) == 5 and frames[0].shape == (32, 43, 3)
    whole = read_clip(gen.translate_video(clip, tmp_path / "whole.mp4", progress=False).out)
    tiled = read_clip(gen.translate_video(clip, tmp_path / "tiled.mp4", tile=32, overlap=8,
                                          progress=False).out)  # fmt: skip
    for a, b in zip(whole["frames"], tiled["frames"], strict=True):
        assert psnr(a, b) > 35


def test_a_clip_at_a_work_size_keeps_its_size(colour_swap: Path, tmp_path: Path) -> None:
    """--work-size translates each frame smaller and carries the change to full size: the
    output keeps the frames' size, and a translation done by the colour map alone (this
    generator's) comes out as the full-size translation does."""
    clip = write_clip(tmp_path / "clip.mp4", panned_frames(5))
    gen = translator(colour_swap)
    small = gen.translate_video(clip, tmp_path / "small.mp4", work_size=24, progress=False)
    assert small.size == (64, 48)
    whole = read_clip(gen.translate_video(clip, tmp_path / "whole.mp4", progress=False).out)
    frames = read_clip(small.out)["frames"]
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
    for a, b in zip(whole["frames"], frames, strict=True):
        assert psnr(a, b) > 40


def moving_square(count: int, seed: int = 1) -> list[np.ndarray]:
    """A red square crossing a grey, lightly noisy background, 3 px a frame."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        frame = np.full((SIZE[1], SIZE[0], 3), 128.0) + rng.normal(0, 3, (SIZE[1], SIZE[0], 3))
        left = 6 + 3 * index
        frame[18:32, left : left + 14] = (220, 40, 40)
        frames.append(frame.clip(0, 255).astype(np.uint8))
    return frames


@pytest.mark.parametrize("blend", ["change", "output"])
def test_steadied_motion_follows_the_object_and_leaves_no_trail(
    colour_swap: Path, blend: str
) -> None:
    """Red and blue swapped: the square turns blue, the grey background stays. Where the
    square is, the steadied frame shows it blue; where it was two frames before, grey: the
    change is carried along with the square, not left behind (a blend of frames without the
    motion would leave a blue trail and a half-red leading edge)."""
    frames = moving_square(12)
    gen = translator(colour_swap)
    steadier = Steadier(blend=blend)  # type: ignore[arg-type]
    for frame in frames:
        own = gen(frame)
        steadied = steadier.steady(frame, own)
    last = 6 + 3 * 11
    square = (slice(20, 30), slice(last + 2, last + 12))  # inside the square now
    trail = (slice(20, 30), slice(last - 6, last - 1))  # inside it two frames ago, not now
    assert psnr(steadied[square], own[square]) > 30
    assert psnr(steadied[trail], own[trail]) > 30
    assert steadied[square][..., 2].mean() > 180 and steadied[trail][..., 2].mean() < 150
