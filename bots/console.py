"""The terminal chat: the reference adapter, implementing the same Protocol as the platforms.

``nemo-bot chat`` talks to the service from a terminal: streamed text is printed
as it arrives, exports show a progress bar, actions are listed as words to type,
and a finished video is saved to a local file as well as linked. With ``-m`` it
sends each message in order, waits for every reply and any export it started,
and exits with a status that tells a script what went wrong (:class:`ExitCode`).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import mimetypes
import os
import re
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from bots.common import ACTION_INTENTS
from bots.status import ExitCode
from core.i18n import command_word, key_of, t
from core.language import resolve as resolve_language
from core.router import route
from core.types import (
    Action,
    Attachment,
    ConversationHost,
    ConversationRef,
    IncomingMessage,
    Intent,
    TextStream,
    Video,
)

__all__ = ["ConsoleAdapter", "ConsoleReplier", "run_console", "run_terminal"]

PLATFORM = "console"
#: The largest video the terminal saves (the backend's 1080p renders are far smaller).
_SAVE_LIMIT = 4 * 1024**3


#: What the user was told -> how a one-shot run ends.
_FAILURES: dict[str, ExitCode] = {
    "network": ExitCode.UNREACHABLE,
    "stream_dropped": ExitCode.UNREACHABLE,
    "stream_timeout": ExitCode.UNREACHABLE,
    "unsupported_file": ExitCode.ATTACHMENT_REFUSED,
    "file_too_large": ExitCode.ATTACHMENT_REFUSED,
    "empty_file": ExitCode.ATTACHMENT_REFUSED,
    "download_failed": ExitCode.ATTACHMENT_REFUSED,
    "export_failed": ExitCode.EXPORT_FAILED,
    "export_blocked": ExitCode.EXPORT_FAILED,
    "nothing_to_export": ExitCode.EXPORT_FAILED,
    "out_of_credits": ExitCode.REFUSED,
    "out_of_credits_anon": ExitCode.REFUSED,
    "rate_limited": ExitCode.REFUSED,
    "auth_failed": ExitCode.REFUSED,
    "service_error": ExitCode.REFUSED,
    "stream_error": ExitCode.REFUSED,
    "not_allowed": ExitCode.REFUSED,
    "busy": ExitCode.REFUSED,
    "limit_requests": ExitCode.REFUSED,
    "limit_exports": ExitCode.REFUSED,
    "limit_queue": ExitCode.REFUSED,
    "token_refused": ExitCode.REFUSED,
    "unexpected": ExitCode.FAILED,
    "unknown_command": ExitCode.USAGE,
    "message_too_long": ExitCode.USAGE,
    "upload_none": ExitCode.USAGE,
}
_FAILURE_WORDS = {
    ExitCode.USAGE: "a message was not sent (unknown command, too long, or no file to attach)",
    ExitCode.FAILED: "something went wrong",
    ExitCode.UNREACHABLE: "the video service could not be reached",
    ExitCode.ATTACHMENT_REFUSED: "an attachment was refused",
    ExitCode.EXPORT_FAILED: "the export failed or could not start",
    ExitCode.REFUSED: (
        "a request was refused (by the video service, a limit of this bot, or its allowlist)"
    ),
}


class _ConsoleStream:
    """Prints streamed text as it comes."""

    def __init__(self, replier: ConsoleReplier) -> None:
        self._replier = replier
        self._started = False
        self._writes = 0  # the replier's count of writes after this stream's last one

    async def append(self, text: str) -> None:
        replier = self._replier
        if not self._started or replier.writes != self._writes:
            # (Or going on after something else was printed: a Ctrl-C's "Cancelling" line.)
            replier.end_line()
            replier.write("🤖 ")
            text = text.lstrip() if self._started else text
            self._started = True
        replier.write(text)
        self._writes = replier.writes

    async def finish(self, actions: Sequence[Action] = ()) -> None:
        if self._started:
            self._replier.end_line()  # (a Ctrl-C may have ended the line already)
            if actions:
                self._replier.write(_actions_line(actions, self._replier.language) + "\n")


def _actions_line(actions: Sequence[Action], language: str | None) -> str:
    """What the buttons would do, as words to type in the user's language."""
    return "   → " + " · ".join(command_word(ACTION_INTENTS[a][0], language) for a in actions)


def _video_name(url: str) -> str:
    name = Path(urlsplit(url).path).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    if not name:
        name = "nemo-video"
    return name if name.lower().endswith(".mp4") else f"{name}.mp4"


class ConsoleReplier:
    """Answers in the terminal, and remembers the first failure it told the user about."""

    def __init__(self, out: TextIO | None = None, *, save_dir: Path | None = None) -> None:
        self._out = out or sys.stdout
        self._save_dir = save_dir
        self._last_percent: int | None = None
        self._column_zero = True
        #: The first failure shown (None while everything went fine).
        self.failure: ExitCode | None = None
        #: The language the user last wrote in (see :meth:`heard`).
        self.language: str | None = None
        #: Where finished videos were saved, in order.
        self.saved: list[Path] = []
        #: How many times something was printed (a stream tells its own lines apart).
        self.writes = 0

    def heard(self, msg: IncomingMessage) -> IncomingMessage:
        """Note the language of what the user typed (the core answers in it too); ``msg``."""
        self.language = msg.language or self.language
        return msg

    @property
    def _tty(self) -> bool:
        return self._out.isatty()

    def write(self, text: str) -> None:
        """Print ``text`` now (and remember whether the cursor is at a line's start)."""
        if not text:
            return
        self._out.write(text)
        self._out.flush()
        self._column_zero = text.endswith("\n")
        self.writes += 1

    def end_line(self) -> None:
        """Finish whatever line is open (a progress bar, a half-streamed reply, a prompt)."""
        if not self._column_zero:
            self.write("\n")
        self._last_percent = None

    def prompt_shown(self) -> None:
        """The prompt is on screen: the cursor is mid-line until the user presses Enter."""
        self._column_zero = False

    def line_entered(self) -> None:
        """The user pressed Enter (the terminal echoed the newline)."""
        self._column_zero = True

    def _note(self, text: str) -> None:
        if self.failure is None:
            key = key_of(text, _FAILURES)
            if key is not None:
                self.failure = _FAILURES[key]

    async def send_text(
        self, text: str, *, actions: Sequence[Action] = (), private: bool = False
    ) -> None:
        """Print a whole message."""
        self._note(text)
        self._end_progress()
        self.write(f"🤖 {text}\n")
        if actions:
            self.write(_actions_line(actions, self.language) + "\n")

    def stream(self, running: Sequence[Action] = ()) -> TextStream:
        """Start a streamed reply (a terminal has no buttons to show while it runs)."""
        self._end_progress()
        return _ConsoleStream(self)

    async def notice(self, text: str, *, actions: Sequence[Action] = ()) -> None:
        """A request's notice (its place in line): a line of its own, a terminal can't edit."""
        self._end_progress()
        self.write(f"🤖 {text}\n")

    async def progress(self, text: str, percent: int | None = None) -> None:
        """A progress bar that redraws in place on a terminal, a line per tenth otherwise."""
        if percent is not None and percent == self._last_percent:
            return
        if percent is None:
            self._end_progress()
            self.write(f"🤖 {text}\n")
        elif self._tty:
            filled = percent // 5
            bar = "█" * filled + "░" * (20 - filled)
            self.write(f"\r🎬 [{bar}] {percent:3d}%")
        else:
            # A line per tenth: the bar moves every second or so, a log needn't.
            last = self._last_percent
            if last is not None and percent // 10 == last // 10 and percent < 100:
                return
            self.write(f"🎬 rendering {percent}%\n")
        self._last_percent = percent

    def _end_progress(self) -> None:
        if self._last_percent is not None:
            self.end_line()

    async def send_video(self, video: Video) -> None:
        """Print the link and the timeline, and save the MP4 (a terminal can't play it)."""
        self._end_progress()
        self.write(f"🤖 {video.caption}\n")
        if video.summary:
            self.write(f"   {video.summary}\n")
        if self._save_dir is not None:
            await self._save(video)

    async def _save(self, video: Video) -> None:
        assert self._save_dir is not None
        try:
            data = await video.fetch(_SAVE_LIMIT) if video.fetch is not None else None
            if data is None:
                raise OSError("the video service did not hand over the file")
            path = await asyncio.to_thread(_write_new_file, self._save_dir, video.url, data)
        except Exception as exc:  # the link above still works: say so, don't fail the chat
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.write(f"   ⚠️ Couldn't save a copy ({reason or type(exc).__name__}).\n")
            return
        self.saved.append(path)
        self.write(f"   💾 Saved to {path}\n")

    async def working(self, kind: str = "typing") -> None:
        """Nothing to show in a terminal."""


def _write_new_file(directory: Path, url: str, data: bytes) -> Path:
    """Write ``data`` to a new file in ``directory`` named after ``url`` (never overwrites)."""
    directory = directory.expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    name = _video_name(url)
    stem, suffix = name[: -len(".mp4")], name[-len(".mp4") :]
    for n in range(1000):
        path = directory / (name if n == 0 else f"{stem}-{n}{suffix}")
        try:
            with path.open("xb") as f:
                f.write(data)
        except FileExistsError:
            continue
        return path.resolve()
    raise OSError(f"too many videos named {name} in {directory}")


class ConsoleAdapter:
    """The terminal as a chat platform."""

    platform = PLATFORM

    def __init__(self, out: TextIO | None = None, *, save_dir: Path | None = None) -> None:
        self.replier = ConsoleReplier(out, save_dir=save_dir)

    def replier_for(self, ref: ConversationRef) -> ConsoleReplier:
        """There is one terminal: every conversation answers here."""
        return self.replier


def _attachment(path: Path) -> Attachment:
    async def read() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    mime, _ = mimetypes.guess_type(path.name)
    return Attachment(filename=path.name, size=path.stat().st_size, read=read, mime_type=mime)


def _file_problem(path: Path) -> str | None:
    """Why ``path`` can't be attached, in words for the user; None if it can."""
    if path.is_dir():
        return f"{path} is a folder; attach the files in it one by one"
    if not path.exists():
        return f"No such file: {path}"
    if not path.is_file():
        return f"{path} is not a regular file"
    if not os.access(path, os.R_OK):
        return f"{path} can't be read (permission denied)"
    return None


def parse_attach(argument: str) -> tuple[Path | None, str]:
    """``/attach``'s argument: a path (shell-quoted if it has spaces; ``~`` expanded), then
    the instruction. ``(None, message)`` when it can't be read that way."""
    try:
        words = shlex.split(argument)
    except ValueError as exc:  # an unclosed quote
        return None, f"Couldn't read that path ({exc}); put quotes around the whole path."
    if not words:
        return None, "Say which file: /attach PATH [instruction]"
    first = Path(words[0]).expanduser()
    if not first.exists():
        # A path with spaces typed without quotes: the longest run of words naming something.
        for n in range(len(words), 1, -1):
            candidate = Path(" ".join(words[:n])).expanduser()
            if candidate.exists():
                return candidate, " ".join(words[n:])
    return first, " ".join(words[1:])


def _message(text: str, attachments: Sequence[Path] = ()) -> IncomingMessage:
    # The terminal gives no language: the words typed tell (core.language).
    return resolve_language(
        IncomingMessage(
            platform=PLATFORM,
            user_id=getpass.getuser() or "local",
            chat_id="terminal",
            text=text,
            attachments=tuple(_attachment(p) for p in attachments),
            language=None,
        )
    )


class _LineReader:
    """Reads lines from standard input in a daemon thread.

    The event loop stays free to stop: Ctrl-C (or SIGTERM, or the terminal closing)
    ends the chat at once, where a thread of the default executor blocked in
    ``input()`` would keep the process waiting for Enter.
    """

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None

    async def readline(self, prompt: str) -> str:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def settle(result: str | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result or "")

        def work() -> None:
            try:
                line = input(prompt)
            except BaseException as exc:  # EOFError (Ctrl-D) and the like go to the loop
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    loop.call_soon_threadsafe(settle, None, exc)
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(settle, line, None)

        self.thread = threading.Thread(target=work, name="terminal-input", daemon=True)
        self.thread.start()
        return await future

    @property
    def waiting(self) -> bool:
        """A read is still blocked on standard input."""
        return self.thread is not None and self.thread.is_alive()


_reader = _LineReader()


async def run_console(
    service: ConversationHost,
    *,
    messages: Sequence[str] = (),
    attach: Sequence[Path] = (),
    out: TextIO | None = None,
    save_dir: Path | None = None,
    log_file: Path | None = None,
    demo: bool = False,
) -> int:
    """Run the terminal chat (one-shot when ``messages`` or ``attach`` are given); the exit code."""
    adapter = ConsoleAdapter(out, save_dir=save_dir)
    service.register_adapter(adapter)
    await service.start()
    replier = adapter.replier
    stream = out or sys.stdout
    try:
        if messages or attach:
            return await _one_shot(service, replier, messages, attach)
        replier.write(
            "NemoVideo chat — describe a video; 'status', 'credits', 'export', 'help'.\n"
            "Attach a file with: /attach PATH [instruction]. Quit with Ctrl-D or Ctrl-C.\n"
        )
        where = f"saved in {save_dir}" if save_dir is not None else "linked"
        note = " (the demo's links stop working when it exits)" if demo else ""
        replier.write(f"Finished videos are {where}{note}.\n")
        if log_file is not None:
            replier.write(f"Log lines go to {log_file} (--verbose prints them here).\n")
        await _interactive(service, replier)
        return ExitCode.OK
    except asyncio.CancelledError:
        # Stopped (Ctrl-C, SIGTERM, the terminal closing): never leave the shell's
        # prompt on the progress bar's line or after ours.
        with contextlib.suppress(OSError, ValueError):
            replier.end_line()
            stream.flush()
        raise


async def _one_shot(
    service: ConversationHost,
    replier: ConsoleReplier,
    messages: Sequence[str],
    attach: Sequence[Path],
) -> int:
    paths = [path.expanduser() for path in attach]
    for path in paths:
        problem = _file_problem(path)
        if problem:
            print(f"nemo-bot: {problem}", file=sys.stderr)
            return ExitCode.USAGE
    if paths:
        await service.handle(replier.heard(_message("", paths)), replier)
    for text in messages:
        replier.write(f"🧑 {text}\n")
        await service.handle(replier.heard(_message(text)), replier)
    await service.wait_idle()
    if replier.failure is not None:
        code = replier.failure
        print(f"nemo-bot: {_FAILURE_WORDS[code]} (exit status {int(code)})", file=sys.stderr)
        return code
    return ExitCode.OK


async def _interactive(service: ConversationHost, replier: ConsoleReplier) -> None:
    while True:
        replier.prompt_shown()
        try:
            line = await _reader.readline("🧑 ")
        except EOFError:  # Ctrl-D: end the prompt's line so the shell's starts afresh
            replier.end_line()
            return
        replier.line_entered()
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return
        if line == "/attach" or line.startswith("/attach "):
            path, instruction = parse_attach(line.removeprefix("/attach"))
            problem = instruction if path is None else _file_problem(path)
            if problem or path is None:
                # A path cut at a space reads as path + instruction: suggest quotes, unless
                # the user already quoted it (then the file really is not there).
                quoted = any(q in line for q in "\"'")
                if path is not None and not path.exists() and instruction and not quoted:
                    problem = f"{problem} (put quotes around a path with spaces)"
                replier.write(f"🤖 {problem}\n")
                continue
            msg = _message(instruction, [path])
        else:
            msg = _message(line)
        await _cancellable(service, replier, replier.heard(msg))
        if route(line) is Intent.HELP:
            replier.write(f"   {t('console.help', replier.language)}\n")


async def _cancellable(
    service: ConversationHost, replier: ConsoleReplier, msg: IncomingMessage
) -> None:
    """Answer ``msg`` and wait for an export it starts; Ctrl-C meanwhile cancels them.

    The cancel is the core's (:mod:`core.cancel`), as the word "cancel" on any
    platform: the stream is closed, the export is not delivered and the backend
    is asked to stop it, and the answer says what changed. A second Ctrl-C while
    that runs quits, as Ctrl-C at the idle prompt does. (Typing "cancel" while a
    request runs is not read: the terminal reads the next line once it is done.)
    """
    loop = asyncio.get_running_loop()
    cancels: list[asyncio.Task[None]] = []

    def interrupted() -> None:
        _stop_catching_ctrl_c(loop, saved)  # the next Ctrl-C quits
        replier.end_line()  # after the terminal's own ^C, on the line being printed
        replier.write(f"🤖 {t('console.cancelling', replier.language)}\n")
        cancel = IncomingMessage(
            platform=PLATFORM,
            user_id=msg.user_id,
            chat_id=msg.chat_id,
            text="cancel",
            language=replier.language,
            intent=Intent.CANCEL,
        )
        cancels.append(loop.create_task(service.handle(cancel, replier)))

    saved = _catch_ctrl_c(loop, interrupted)
    try:
        await service.handle(msg, replier)
        # One terminal: let an export's progress bar finish before the next prompt.
        await service.wait_idle()
        for cancel in cancels:
            await cancel  # its answer comes before the next prompt
    finally:
        _stop_catching_ctrl_c(loop, saved)
        for cancel in cancels:
            cancel.cancel()  # (only when the chat itself is being stopped)


def _catch_ctrl_c(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> object:
    """Make SIGINT call ``handler`` in the loop; returns what to restore (None: nothing).

    ``asyncio.run`` turns SIGINT into a cancel of the whole chat (exit 130); while a
    request runs it means "stop that" instead.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    saved = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # no signals here: Ctrl-C quits
        return None
    return saved


def _stop_catching_ctrl_c(loop: asyncio.AbstractEventLoop, saved: object) -> None:
    """Give SIGINT back to whoever had it before :func:`_catch_ctrl_c` (idempotent)."""
    if saved is None:
        return
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        if loop.remove_signal_handler(signal.SIGINT):
            # remove_signal_handler leaves Python's default, not asyncio.run's own.
            signal.signal(signal.SIGINT, saved)  # type: ignore[arg-type]


def run_terminal(chat: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run ``chat()`` (the terminal chat or the demo) until it ends or is stopped.

    Ctrl-C, SIGTERM and SIGHUP (the terminal closing) cancel it, so every ``with``
    block unwinds: the store is closed and the demo's temporary database removed.
    Returns the exit status (128 + the signal's number when stopped by one).
    """
    stopped_by: list[int] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(sig: int) -> None:
            if sig == signal.SIGHUP:
                _detach_from_terminal()
            stopped_by.append(sig)
            task.cancel()

        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, AttributeError):
                loop.add_signal_handler(sig, stop, sig)
        return await chat()

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except asyncio.CancelledError:
        code = 128 + (stopped_by[0] if stopped_by else signal.SIGTERM)
    if _reader.waiting:
        # A thread still blocked in input() would keep the interpreter from exiting
        # (and may hold stdin's lock at shut-down): everything is closed, so leave now.
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        logging.shutdown()
        os._exit(int(code))
    return int(code)


def _detach_from_terminal() -> None:
    """The terminal is gone: point stdout/stderr at /dev/null so no write fails."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
