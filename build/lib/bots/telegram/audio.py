"""Voice notes to M4A: Telegram records OGG/Opus, which the backend does not accept.

:func:`to_m4a` runs the ffmpeg that ships with imageio-ffmpeg as a subprocess
(never blocking the event loop), feeds it the OGG on stdin and reads an AAC
``.m4a`` back from a temporary file: the MP4 container needs a seekable output
to write its index. A run that takes longer than ``time_limit`` is killed, and at
most :data:`MAX_PARALLEL` run at once (a burst of voice notes queues instead of
starting one ffmpeg each).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import weakref
from pathlib import Path

__all__ = ["MAX_PARALLEL", "TRANSCODED_EXTENSIONS", "TranscodeError", "to_m4a"]

#: Extensions we transcode instead of refusing (Telegram voice notes are OGG/Opus).
TRANSCODED_EXTENSIONS = frozenset({"ogg", "oga", "opus"})
_TIME_LIMIT = 60.0
#: ffmpeg processes running at once (per event loop); the others wait their turn.
MAX_PARALLEL = 4
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _slot() -> asyncio.Semaphore:
    """The semaphore of the running loop (a semaphore must not outlive its loop)."""
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(MAX_PARALLEL)
    return slot


class TranscodeError(Exception):
    """ffmpeg could not turn the audio into M4A (bad input, missing binary, too slow)."""


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as exc:  # the wheel ships a binary, but a platform may lack one
        raise TranscodeError(f"no ffmpeg available ({type(exc).__name__})") from None


async def to_m4a(data: bytes, *, time_limit: float = _TIME_LIMIT) -> bytes:
    """``data`` (any audio ffmpeg reads, e.g. OGG/Opus) as AAC in an M4A container.

    ``time_limit`` counts from when ffmpeg starts, not while waiting for a slot.
    """
    if not data:
        raise TranscodeError("empty input")
    ffmpeg = _ffmpeg()
    async with _slot():
        return await _transcode(ffmpeg, data, time_limit)


async def _transcode(ffmpeg: str, data: bytes, time_limit: float) -> bytes:
    with tempfile.TemporaryDirectory(prefix="nemo-voice-") as folder:
        out = Path(folder) / "voice.m4a"
        try:
            proc = await asyncio.create_subprocess_exec(
                ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                "-i", "pipe:0", "-vn", "-map_metadata", "-1",
                "-c:a", "aac", "-b:a", "96k", "-f", "ipod", str(out),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        except OSError as exc:
            raise TranscodeError(f"could not start ffmpeg ({exc.strerror})") from None
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(data), time_limit)
        except TimeoutError:
            await _kill(proc)
            raise TranscodeError(f"ffmpeg took longer than {time_limit:.0f} s") from None
        except BaseException:  # cancelled: don't leave ffmpeg running
            await _kill(proc)
            raise
        if proc.returncode != 0:
            reason = stderr.decode(errors="replace").strip().splitlines()
            raise TranscodeError(f"ffmpeg failed: {reason[-1] if reason else proc.returncode}")
        result = await asyncio.to_thread(out.read_bytes) if out.exists() else b""
    if not result:
        raise TranscodeError("ffmpeg produced nothing")
    return result


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill ffmpeg and reap it; a cancellation meanwhile still propagates (the reaping
    goes on, shielded, in the background)."""
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await asyncio.shield(proc.wait())
