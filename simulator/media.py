"""Real media files for the simulator, made with imageio-ffmpeg's bundled ffmpeg.

Outputs are made once and cached twice: in this process (a dict) and on disk under the
system temp dir, keyed by their parameters, so later processes (``python -m simulator``
in subprocess tests) reuse them too. Every file is written to a temporary name and
renamed into place, so concurrent processes never see half a file.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import mimetypes
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

_CACHE_VERSION = "1"
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/System/Library/Fonts/Supplemental/Arial Bold.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:/Windows/Fonts/arial.ttf",
)
_lock = threading.Lock()
_memo: dict[str, Path] = {}

#: Upload extensions the backend accepts, by kind.
VIDEO_EXTS = frozenset({"mp4", "mov", "avi", "webm", "mkv"})
IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "gif", "webp"})
AUDIO_EXTS = frozenset({"mp3", "wav", "m4a", "aac"})
ACCEPTED_EXTS = VIDEO_EXTS | IMAGE_EXTS | AUDIO_EXTS


def cache_dir() -> Path:
    """Directory holding cached media (created on demand)."""
    path = Path(tempfile.gettempdir()) / f"nemo-sim-media-v{_CACHE_VERSION}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def ffmpeg_exe() -> str:
    """Path of the bundled ffmpeg binary."""
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def _font() -> str | None:
    """A TrueType font for drawtext: a usual path, else whatever fontconfig offers."""
    for cand in _FONT_CANDIDATES:
        if os.path.exists(cand):
            return cand
    try:
        found = subprocess.run(
            ["fc-match", "--format=%{file}", "sans-serif:bold"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return found if found and os.path.exists(found) else None


def _filter_value(value: str) -> str:
    """``value`` escaped for a filter option inside a filtergraph (two levels of
    quoting: the option parser's, then the graph parser's)."""
    for ch in "\\':":
        value = value.replace(ch, "\\" + ch)
    for ch in "\\'[],;":
        value = value.replace(ch, "\\" + ch)
    return value


def _run(args: list[str], out: Path) -> None:
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp{out.suffix}")
    try:
        subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args, str(tmp)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _cached(key: str, suffix: str, build: list[list[str]]) -> Path:
    """Return the cached file for ``key``, building it with the first working arg list."""
    digest = hashlib.sha256(f"{_CACHE_VERSION}:{key}".encode()).hexdigest()[:16]
    with _lock:
        hit = _memo.get(digest)
        if hit is not None and hit.exists():
            return hit
        out = cache_dir() / f"{digest}{suffix}"
        if not out.exists() or out.stat().st_size == 0:
            last: Exception | None = None
            for args in build:
                try:
                    _run(args, out)
                    break
                except (subprocess.SubprocessError, OSError) as exc:
                    last = exc
            else:
                raise RuntimeError(f"ffmpeg could not make {key}") from last
        _memo[digest] = out
        return out


def output_video(
    title: str = "NemoVideo simulator",
    *,
    width: int = 1920,
    height: int = 1080,
    seconds: float = 2.0,
) -> Path:
    """A short real H.264/AAC MP4 (faststart) with ``title`` drawn on it for its whole length.

    Blocking (runs ffmpeg on a cache miss); call via ``asyncio.to_thread``.
    """
    title = _one_line(title) or "NemoVideo simulator"
    spec = VideoSpec(width, height, seconds, texts=(Overlay(title, 0.0, seconds),), music=True)
    return render_video(spec)


@dataclass(frozen=True)
class Overlay:
    """Text shown from ``start`` to ``end`` seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class VideoSpec:
    """What an output MP4 shows: its size and length, the draft's text tracks (large, in
    the middle, one row per overlapping segment), the video segments' titles (small, at
    the bottom) and a tone when the draft has music. A bar along the bottom edge grows
    with time, so a player shows the length at a glance."""

    width: int
    height: int
    seconds: float
    texts: tuple[Overlay, ...] = ()
    labels: tuple[Overlay, ...] = ()
    music: bool = False


#: Frames per second of output MP4s: enough to play smoothly, cheap to encode.
OUTPUT_FPS = 10
_BACKGROUND = "0x1b2a41"
_BAR = "0x4f8cc9"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:80]


def _text_file(text: str) -> Path:
    # drawtext reads the text from a file: no escaping of quotes, colons or percent signs.
    path = cache_dir() / f"text-{hashlib.sha256(text.encode()).hexdigest()[:16]}.txt"
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path


def _drawtext(font: str, item: Overlay, size: int, y: str, *, box: bool) -> str:
    parts = [
        f"drawtext=fontfile={_filter_value(font)}"
        f":textfile={_filter_value(str(_text_file(item.text)))}:expansion=none",
        f"fontsize={size}:fontcolor=white:x=(w-tw)/2:y={y}",
        f"enable=between(t\\,{item.start:.3f}\\,{item.end:.3f})",
    ]
    if box:
        parts.append(f"box=1:boxcolor=black@0.6:boxborderw={max(4, size // 4)}")
    return ":".join(parts)


def _filters(spec: VideoSpec, font: str | None) -> str:
    w, h = spec.width, spec.height
    bar_h = max(2, h // 60)
    chain = [
        f"color=c={_BACKGROUND}:size={w}x{h}:rate={OUTPUT_FPS}:duration={spec.seconds:.3f}[bg]",
        f"color=c={_BAR}:size={w}x{bar_h}:rate={OUTPUT_FPS}:duration={spec.seconds:.3f}[bar]",
        f"[bg][bar]overlay=x=-W+W*t/{spec.seconds:.3f}:y=H-h:shortest=1[v0]",
    ]
    draws: list[str] = []
    if font:
        big = max(12, h // 10)
        for i, item in enumerate(spec.texts):
            # Overlapping text segments each get their own row, from the middle down.
            row = sum(
                1 for other in spec.texts[:i] if other.start < item.end and item.start < other.end
            )
            y = f"(h-th)/2+{row * big * 3 // 2}"
            draws.append(_drawtext(font, item, big, y, box=True))
        small = max(10, h // 24)
        for item in spec.labels:
            draws.append(_drawtext(font, item, small, f"h-th-{bar_h + small}", box=False))
    chain.append(f"[v0]{','.join(draws) or 'null'}[v]")
    return ";".join(chain)


def render_video(spec: VideoSpec) -> Path:
    """The MP4 for ``spec``, made once per content (cached in memory and on disk).

    Text needs a TrueType font (DejaVu, found in the usual places); without one the
    video still has the right size, length and bar, and no text. Blocking: call via
    ``asyncio.to_thread`` (about 0.5 s per 10 s of 1080p on a busy machine).
    """
    seconds = round(min(max(spec.seconds, 0.5), 600.0), 3)
    spec = VideoSpec(
        spec.width,
        spec.height,
        seconds,
        tuple(Overlay(_one_line(o.text), o.start, o.end) for o in spec.texts if o.text.strip()),
        tuple(Overlay(_one_line(o.text), o.start, o.end) for o in spec.labels if o.text.strip()),
        spec.music,
    )
    font = _font()
    audio = f"sine=frequency=440:duration={seconds}" if spec.music else "anullsrc=r=44100:cl=mono"
    args = [
        *("-f", "lavfi", "-t", f"{seconds}", "-i", audio),
        *("-filter_complex", _filters(spec, font), "-map", "[v]", "-map", "0:a"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-b:a", "48k", "-t", f"{seconds}", "-movflags", "+faststart"),
    ]
    return _cached(f"video:{spec!r}:{font}", ".mp4", [args])


def sample_image(width: int = 640, height: int = 360) -> Path:
    """A small real PNG (for upload tests and demos)."""
    return _cached(
        f"png:{width}x{height}",
        ".png",
        [["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=1", "-frames:v", "1"]],
    )


def sample_audio(seconds: float = 1.0) -> Path:
    """A small real WAV file (for upload tests and demos)."""
    return _cached(
        f"wav:{seconds}",
        ".wav",
        [["-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}"]],
    )


def sample_video(seconds: float = 1.0) -> Path:
    """A small real 320x240 H.264 MP4 (for upload tests and demos)."""
    return _cached(
        f"smallvideo:{seconds}",
        ".mp4",
        [
            [
                *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}"),
                *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            ]
        ],
    )


def content_type(name: str) -> str:
    """MIME type for a served file name."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    extra = {
        "m4a": "audio/mp4",
        "aac": "audio/aac",
        "mkv": "video/x-matroska",
        "webp": "image/webp",
    }
    if ext in extra:
        return extra[ext]
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def file_kind(ext: str) -> str | None:
    """``"video"``, ``"image"``, ``"audio"`` or None (unsupported) for an extension."""
    ext = ext.lower().lstrip(".")
    if ext in VIDEO_EXTS:
        return "video"
    if ext in IMAGE_EXTS:
        return "image"
    if ext in AUDIO_EXTS:
        return "audio"
    return None


@dataclass
class ProbeResult:
    """What ffmpeg tells about a media file (zeros when unknown)."""

    duration: float = 0.0
    width: int = 0
    height: int = 0
    fps: float = 0.0


_DUR = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_SIZE = re.compile(r"Video: .*?(\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")


async def probe(path: Path, limit: float = 5.0) -> ProbeResult:
    """Read duration, size and fps of ``path`` from ``ffmpeg -i`` (never raises)."""
    result = ProbeResult()
    try:
        proc = await asyncio.create_subprocess_exec(
            ffmpeg_exe(),
            "-hide_banner",
            "-i",
            str(path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return result
    except OSError:
        return result
    text = err.decode("utf-8", "replace")
    if m := _DUR.search(text):
        result.duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    if m := _SIZE.search(text):
        result.width, result.height = int(m[1]), int(m[2])
    if m := _FPS.search(text):
        result.fps = float(m[1])
    return result
