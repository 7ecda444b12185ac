"""The terminal replier's bookkeeping: which failure a message means, and saved videos."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bots.console import _FAILURES, ConsoleReplier, parse_attach
from bots.status import ExitCode
from core.i18n import t
from core.types import Video

VALUES = {
    "name": "clip.mov",
    "limit": 200,
    "reason": "boom",
    "url": "https://x/y",
    "detail": "d",
    "suggestion": "Try again.",
    "command": "/foo",
    "length": 22000,
    "outcome": "The timeline did change: Added a title.",
    "resets": "15:00",
    "minutes": 60,
}


@pytest.mark.parametrize("key", sorted(_FAILURES))
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_every_failure_message_sets_its_exit_status(key: str, lang: str) -> None:
    replier = ConsoleReplier(io.StringIO())
    await replier.send_text(t("changes", lang, changes="Added a title"))
    assert replier.failure is None
    await replier.send_text(t(key, lang, **VALUES))
    assert replier.failure == _FAILURES[key]
    await replier.send_text(t("network", lang))  # the first failure decides
    assert replier.failure == _FAILURES[key]


async def test_ordinary_replies_are_no_failure() -> None:
    replier = ConsoleReplier(io.StringIO())
    for key in ("welcome", "help", "uploaded", "credits", "export_done", "changes_hidden"):
        await replier.send_text(
            t(key, None, files="a.png", available=1, frozen=0, total=1, **VALUES)
        )
    assert replier.failure is None
    assert ExitCode.UNREACHABLE == 3 and ExitCode.EXPORT_FAILED == 5


async def test_a_saved_video_never_overwrites_one_already_there(tmp_path: Path) -> None:
    async def fetch(limit: int) -> bytes:
        return b"\x00\x00\x00\x18ftypmp42"

    out = io.StringIO()
    replier = ConsoleReplier(out, save_dir=tmp_path)
    video = Video(url="http://h/media/render_1.mp4?sig=abc", caption="ready", fetch=fetch)
    await replier.send_video(video)
    await replier.send_video(video)
    assert [p.name for p in replier.saved] == ["render_1.mp4", "render_1-1.mp4"]
    assert all(p.read_bytes() == b"\x00\x00\x00\x18ftypmp42" for p in replier.saved)
    assert out.getvalue().count("💾 Saved to") == 2


async def test_a_video_that_cannot_be_saved_is_said_plainly(tmp_path: Path) -> None:
    async def fetch(limit: int) -> bytes | None:
        return None  # larger than the limit

    out = io.StringIO()
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    replier = ConsoleReplier(out, save_dir=blocked)
    await replier.send_video(Video(url="http://h/r.mp4", caption="ready", fetch=fetch))
    assert replier.saved == []
    assert "Couldn't save a copy" in out.getvalue() and "Saved to" not in out.getvalue()


def test_attach_arguments(tmp_path: Path) -> None:
    home = Path.home()
    spaced = tmp_path / "My Pictures" / "red balloon.png"
    spaced.parent.mkdir()
    spaced.write_bytes(b"png")
    # Typed without quotes: the longest run of words that names a file is the path.
    assert parse_attach(f" {spaced} make it pop") == (spaced, "make it pop")
    assert parse_attach(f" {spaced}") == (spaced, "")
    assert parse_attach(f" {tmp_path}/nope here") == (tmp_path / "nope", "here")
    assert parse_attach(' "a b/c d.png" make it pop') == (Path("a b/c d.png"), "make it pop")
    assert parse_attach(" ~/x.png") == (home / "x.png", "")
    assert parse_attach(" 'unclosed")[0] is None
    assert parse_attach("") == (None, "Say which file: /attach PATH [instruction]")


async def test_progress_off_a_terminal_is_a_line_per_tenth() -> None:
    """Estimates move the bar every second; a log (no terminal) gets a line per tenth."""
    out = io.StringIO()
    replier = ConsoleReplier(out)
    for percent in [0, *range(3, 100, 3), 100]:
        await replier.progress(t("export_started", None, percent=percent), percent)
    lines = out.getvalue().splitlines()
    assert lines[0] == "🎬 rendering 0%" and lines[-1] == "🎬 rendering 100%"
    shown = [int(line.split()[-1].rstrip("%")) for line in lines]
    assert shown == [0, 12, 21, 30, 42, 51, 60, 72, 81, 90, 100]


async def test_a_stream_cut_by_a_line_of_its_own_goes_on_on_a_fresh_line() -> None:
    out = io.StringIO()
    replier = ConsoleReplier(out)
    stream = replier.stream()
    await stream.append("First line.\n")
    await stream.append("Second, ")  # its own line break: no new 🤖
    await stream.append("same line.")
    replier.end_line()  # Ctrl-C: the "Cancelling" line comes in between
    replier.write("🤖 ⏹ Cancelling…\n")
    await stream.append(" Open …")  # the cut reply's rest
    await stream.finish()
    assert out.getvalue() == ("🤖 First line.\nSecond, same line.\n🤖 ⏹ Cancelling…\n🤖 Open …\n")
