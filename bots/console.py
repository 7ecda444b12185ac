"""The terminal chat: the reference adapter, implementing the same Protocol as the platforms.

``nemo-bot chat`` talks to the service from a terminal: streamed text is printed
as it arrives, exports show a progress bar, actions are listed as words to type.
With ``-m`` it sends each message in order, waits for every reply and any export
it started, and exits.
"""

from __future__ import annotations

import asyncio
import getpass
import mimetypes
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from core.service import ConversationService
from core.types import Action, Attachment, ConversationRef, IncomingMessage, TextStream, Video

__all__ = ["ConsoleAdapter", "ConsoleReplier", "run_console"]

PLATFORM = "console"
_ACTION_WORDS = {Action.EXPORT: "export", Action.TIMELINE: "status", Action.CREDITS: "credits"}


class _ConsoleStream:
    """Prints streamed text as it comes."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._started = False

    async def append(self, text: str) -> None:
        if not self._started:
            self._out.write("🤖 ")
            self._started = True
        self._out.write(text)
        self._out.flush()

    async def finish(self, actions: Sequence[Action] = ()) -> None:
        if self._started:
            self._out.write("\n")
            if actions:
                self._out.write(_actions_line(actions) + "\n")
            self._out.flush()


def _actions_line(actions: Sequence[Action]) -> str:
    return "   → " + " · ".join(_ACTION_WORDS[a] for a in actions)


class ConsoleReplier:
    """Answers in the terminal."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._last_percent: int | None = None

    @property
    def _tty(self) -> bool:
        return self._out.isatty()

    async def send_text(
        self, text: str, *, actions: Sequence[Action] = (), private: bool = False
    ) -> None:
        """Print a whole message."""
        self._end_progress()
        self._out.write(f"🤖 {text}\n")
        if actions:
            self._out.write(_actions_line(actions) + "\n")
        self._out.flush()

    def stream(self) -> TextStream:
        """Start a streamed reply."""
        self._end_progress()
        return _ConsoleStream(self._out)

    async def progress(self, text: str, percent: int | None = None) -> None:
        """A progress bar that redraws in place on a terminal, one line per step otherwise."""
        if percent is not None and percent == self._last_percent:
            return
        self._last_percent = percent
        if percent is None:
            self._out.write(f"🤖 {text}\n")
        elif self._tty:
            filled = percent // 5
            bar = "█" * filled + "░" * (20 - filled)
            self._out.write(f"\r🎬 [{bar}] {percent:3d}%")
        else:
            self._out.write(f"🎬 rendering {percent}%\n")
        self._out.flush()

    def _end_progress(self) -> None:
        if self._last_percent is not None and self._tty:
            self._out.write("\n")
        self._last_percent = None

    async def send_video(self, video: Video) -> None:
        """Print the link (a terminal can't play the MP4) and the timeline."""
        self._end_progress()
        self._out.write(f"🤖 {video.caption}\n")
        if video.summary:
            self._out.write(f"   {video.summary}\n")
        self._out.flush()

    async def working(self, kind: str = "typing") -> None:
        """Nothing to show in a terminal."""


class ConsoleAdapter:
    """The terminal as a chat platform."""

    platform = PLATFORM

    def __init__(self, out: TextIO | None = None) -> None:
        self._replier = ConsoleReplier(out)

    def replier_for(self, ref: ConversationRef) -> ConsoleReplier:
        """There is one terminal: every conversation answers here."""
        return self._replier


def _attachment(path: Path) -> Attachment:
    async def read() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    mime, _ = mimetypes.guess_type(path.name)
    return Attachment(filename=path.name, size=path.stat().st_size, read=read, mime_type=mime)


def _is_file(path: Path) -> bool:
    return path.is_file()


def _message(text: str, attachments: Sequence[Path] = ()) -> IncomingMessage:
    return IncomingMessage(
        platform=PLATFORM,
        user_id=getpass.getuser() or "local",
        chat_id="terminal",
        text=text,
        attachments=tuple(_attachment(p) for p in attachments),
        language=None,
    )


async def run_console(
    service: ConversationService,
    *,
    messages: Sequence[str] = (),
    attach: Sequence[Path] = (),
    out: TextIO | None = None,
) -> int:
    """Run the terminal chat (one-shot when ``messages`` or ``attach`` are given); the exit code."""
    adapter = ConsoleAdapter(out)
    service.register_adapter(adapter)
    await service.start()
    replier = adapter.replier_for(ConversationRef(PLATFORM, "terminal", "local"))
    stream = out or sys.stdout
    for path in attach:
        if not _is_file(path):
            stream.write(f"nemo-bot: no such file: {path}\n")
            return 2
    if messages or attach:
        if attach:
            await service.handle(_message("", attach), replier)
        for text in messages:
            stream.write(f"🧑 {text}\n")
            await service.handle(_message(text), replier)
        await service.wait_idle()
        return 0
    stream.write(
        "NemoVideo chat — describe a video; 'status', 'credits', 'export'; Ctrl-D to quit.\n"
    )
    stream.write("Attach a file with: /attach PATH [instruction]\n")
    while True:
        try:
            line = await asyncio.to_thread(input, "🧑 ")
        except (EOFError, KeyboardInterrupt):
            break
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line.startswith("/attach "):
            path_text, _, instruction = line.removeprefix("/attach ").strip().partition(" ")
            path = Path(path_text)
            if not _is_file(path):
                stream.write(f"🤖 No such file: {path}\n")
                continue
            await service.handle(_message(instruction, [path]), replier)
        else:
            await service.handle(_message(line), replier)
        # One terminal: let an export's progress bar finish before the next prompt.
        await service.wait_idle()
    return 0
