"""The Telegram side of :class:`core.types.Replier`: streamed edits, progress, videos.

Telegram allows about one message or edit per second in a chat (fewer in
groups), so every message-producing call to a chat waits its turn on that
chat's :class:`ChatPacer`, and a growing reply is shown through a
:class:`LiveMessage` that batches whatever arrived since its last edit into one
edit and never sends an edit that changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Sequence
from datetime import timedelta

from telegram import Bot, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError

from bots.common import with_link, without_link
from bots.telegram.format import (
    CAPTION_LIMIT,
    MESSAGE_LIMIT,
    action_keyboard,
    escape,
    split_text,
    truncate,
    utf16_len,
)
from bots.telegram.texts import text as adapter_text
from core.types import Action, Video

__all__ = ["ChatPacer", "LiveMessage", "PacerPool", "TelegramReplier", "TelegramTextStream"]

log = logging.getLogger(__name__)

#: Telegram shows a chat action for ~5 s; refreshing it more often is noise.
_CHAT_ACTION_EVERY = 4.0
#: Uploading a large MP4 takes longer than PTB's default 20 s write time-out.
_VIDEO_WRITE_TIMEOUT = 600.0
_VIDEO_NAME = "nemo-video.mp4"


class ChatPacer:
    """Keeps message-producing calls to one chat at least ``interval`` seconds apart."""

    __slots__ = ("__weakref__", "_lock", "_next", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Wait for this chat's next slot (FIFO) and take it."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = loop.time() + self.interval

    @property
    def idle(self) -> bool:
        """True when no slot is reserved in the future (safe to forget)."""
        return not self._lock.locked() and self._next <= asyncio.get_running_loop().time()


class PacerPool:
    """One :class:`ChatPacer` per chat, shared by every replier talking to it.

    Pacers are kept (so that the next request to a chat still keeps its distance)
    until there are more than ``max_pacers``; then idle ones are forgotten. A pacer
    a replier still holds is found again through a weak map, so that a chat never
    gets two pacers at once (which would double its rate).
    """

    def __init__(
        self, *, private_interval: float, group_interval: float, max_pacers: int = 4096
    ) -> None:
        self.private_interval = private_interval
        self.group_interval = group_interval
        self.max_pacers = max_pacers
        self._pacers: dict[int, ChatPacer] = {}
        self._in_use: weakref.WeakValueDictionary[int, ChatPacer] = weakref.WeakValueDictionary()

    def get(self, chat_id: int) -> ChatPacer:
        """The pacer of ``chat_id`` (negative ids are groups and channels)."""
        pacer = self._pacers.get(chat_id)
        if pacer is None:
            pacer = self._in_use.get(chat_id)  # forgotten while a replier still held it
        if pacer is None:
            if len(self._pacers) >= self.max_pacers:
                self._pacers = {k: v for k, v in self._pacers.items() if not v.idle}
            interval = self.group_interval if chat_id < 0 else self.private_interval
            pacer = self._in_use[chat_id] = ChatPacer(interval)
        self._pacers[chat_id] = pacer
        return pacer


def _seconds(value: float | timedelta) -> float:
    # PTB 22 gives int seconds, later versions a timedelta.
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _markup_key(markup: InlineKeyboardMarkup | None) -> str | None:
    return markup.to_json() if markup is not None else None


class LiveMessage:
    """One bot message shown and then edited in place, throttled by the chat's pacer."""

    def __init__(self, replier: TelegramReplier) -> None:
        self._replier = replier
        self.message_id: int | None = None
        self._wanted: tuple[str, InlineKeyboardMarkup | None] | None = None
        self._shown: tuple[str, str | None] | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        """The content last asked for."""
        return self._wanted[0] if self._wanted else ""

    def show(self, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        """Ask for ``text`` to appear soon; content asked for later replaces it."""
        self._wanted = (text, markup)
        if self._task is None or self._task.done():
            self._task = self._replier.track(asyncio.create_task(self._flush_in_background()))

    async def settle(
        self, text: str | None = None, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """Show the final content (still paced) and return once it is on screen."""
        if text is not None:
            self._wanted = (text, markup)
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self._flush()

    def _key(self) -> tuple[str, str | None] | None:
        if self._wanted is None:
            return None
        return self._wanted[0].strip(), _markup_key(self._wanted[1])

    async def _flush_in_background(self) -> None:
        try:
            while (key := self._key()) is not None and key[0] and key != self._shown:
                await self._flush()
        except TelegramError as exc:
            # settle() retries; a streamed intermediate edit is not worth a crash.
            log.warning("telegram: edit failed (%s); will retry on the final update", exc)

    async def _flush(self) -> None:
        async with self._lock:
            key = self._key()
            if key is None or key == self._shown or not key[0]:
                return
            await self._replier.pacer.wait()
            # More text may have arrived while we waited for the slot: show all of it.
            key = self._key()
            assert self._wanted is not None and key is not None
            text, markup = self._wanted
            if key == self._shown:
                return
            if self.message_id is None:
                sent = await self._replier.send_html(escape(text), markup)
                self.message_id = sent.message_id
            else:
                await self._edit(escape(text), markup)
            self._shown = key

    async def _edit(self, html_text: str, markup: InlineKeyboardMarkup | None) -> None:
        assert self.message_id is not None
        for _ in range(3):
            try:
                await self._replier.bot.edit_message_text(
                    html_text,
                    chat_id=self._replier.chat_id,
                    message_id=self.message_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=markup,
                )
                return
            except RetryAfter as exc:  # the rate limiter gave up retrying: keep trying
                await asyncio.sleep(_seconds(exc.retry_after) + 0.1)
            except BadRequest as exc:
                reason = str(exc).lower()
                if "not modified" in reason:
                    return
                if "not found" in reason or "can't be edited" in reason:
                    # The user deleted it, or it is too old: continue in a new message.
                    sent = await self._replier.send_html(html_text, markup)
                    self.message_id = sent.message_id
                    return
                raise
        raise TelegramError("edit kept hitting the flood limit")


class TelegramTextStream:
    """A streamed reply: one message edited as text grows, continued past 4096 chars."""

    def __init__(self, replier: TelegramReplier) -> None:
        self._replier = replier
        self._buffer = ""
        self._live: LiveMessage | None = None
        self._last: LiveMessage | None = None

    def _current(self) -> LiveMessage:
        if self._live is None:
            self._live = self._last = LiveMessage(self._replier)
        return self._live

    async def append(self, text: str) -> None:
        """Add text; it shows up with the next throttled edit."""
        if not text:
            return
        self._buffer += text
        pieces = split_text(self._buffer)
        for piece in pieces[:-1]:
            if piece.strip():
                await self._current().settle(piece)
                self._live = None
        self._buffer = pieces[-1]
        if self._buffer.strip():
            self._current().show(self._buffer)

    async def finish(self, actions: Sequence[Action] = ()) -> None:
        """Show whatever is left, with the action buttons under the last message."""
        markup = self._replier.keyboard(actions)
        if self._buffer.strip():
            await self._current().settle(self._buffer, markup)
        elif self._last is not None and self._last.message_id is not None:
            if markup is not None:
                await self._last.settle(self._last.text, markup)
        elif markup is not None:
            await self._replier.send_text(
                adapter_text("done", self._replier.language), actions=actions
            )
        self._buffer = ""
        self._live = None


def _progress_text(text: str, percent: int | None) -> str:
    if percent is None:
        return text
    percent = max(0, min(100, int(percent)))
    filled = percent // 10
    bar = "▰" * filled + "▱" * (10 - filled)
    return f"{text}\n{bar}" if f"{percent}%" in text else f"{text}\n{bar} {percent}%"


class TelegramReplier:
    """Answers one Telegram conversation (a chat, maybe a forum topic) for one user.

    ``tasks`` is the bot's set of background edits (see :meth:`track`).
    """

    def __init__(
        self,
        bot: Bot,
        *,
        chat_id: int,
        user_id: str,
        pacer: ChatPacer,
        upload_cap: int,
        thread_id: int | None = None,
        reply_to: int | None = None,
        language: str | None = None,
        tasks: set[asyncio.Task[None]] | None = None,
    ) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.user_id = user_id
        self.pacer = pacer
        self.upload_cap = upload_cap
        self.thread_id = thread_id
        self.reply_to = reply_to
        self.language = language
        self._progress: LiveMessage | None = None
        self._last_action: tuple[str, float] | None = None
        self._replied = False
        self._tasks = tasks

    def track(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        """Register a background task with the bot, which cancels what is left on stop()."""
        if self._tasks is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return task

    @property
    def is_group(self) -> bool:
        """Negative chat ids are groups, supergroups and channels."""
        return self.chat_id < 0

    def keyboard(self, actions: Sequence[Action]) -> InlineKeyboardMarkup | None:
        """The inline keyboard for ``actions``, owned by this replier's user."""
        return action_keyboard(actions, self.user_id, self.language)

    def _reply_parameters(self, *, always: bool = False) -> ReplyParameters | None:
        # In a busy group, answer the request so people see whose it is; once is enough.
        if not self.is_group or self.reply_to is None or (self._replied and not always):
            return None
        self._replied = True
        return ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True)

    async def send_html(self, html_text: str, markup: InlineKeyboardMarkup | None) -> Message:
        """Send one new message (already escaped) to this conversation; no pacing here."""
        return await self.bot.send_message(
            self.chat_id,
            html_text,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            message_thread_id=self.thread_id,
            reply_parameters=self._reply_parameters(),
        )

    async def send_text(
        self, text: str, *, actions: Sequence[Action] = (), private: bool = False
    ) -> None:
        """Send a whole message, split at 4096 chars; buttons go under the last part.

        Telegram has no ephemeral messages and a bot may only DM users who started
        it, so ``private`` answers stay in the conversation.
        """
        pieces = [piece for piece in split_text(text) if piece.strip()]
        markup = self.keyboard(actions)
        for index, piece in enumerate(pieces):
            await self.pacer.wait()
            await self.send_html(escape(piece), markup if index == len(pieces) - 1 else None)

    def stream(self) -> TelegramTextStream:
        """Start a streamed reply."""
        return TelegramTextStream(self)

    async def progress(self, text: str, percent: int | None = None) -> None:
        """Show or update this conversation's single progress message."""
        if self._progress is None:
            self._progress = LiveMessage(self)
        self._progress.show(_progress_text(text, percent))
        await self.working(ChatAction.UPLOAD_VIDEO)

    async def send_video(self, video: Video) -> None:
        """Upload the MP4 if it fits the Bot API cap, else post the link.

        The video's caption stays within Telegram's 1024 characters: a link too
        long to share it with the text follows in a message of its own.
        """
        if self._progress is not None:
            with contextlib.suppress(TelegramError):
                await self._progress.settle()
        data = await self._fetch(video)
        body = "\n\n".join(part for part in (video.caption, video.summary or "") if part.strip())
        if data:
            caption = with_link(body, video.url, CAPTION_LIMIT, measure=utf16_len, cut=truncate)
            link_apart = caption is None
            if caption is None:
                caption = truncate(without_link(body, video.url), CAPTION_LIMIT)
            await self.working(ChatAction.UPLOAD_VIDEO)
            await self.pacer.wait()
            try:
                await self.bot.send_video(
                    self.chat_id,
                    data,
                    caption=escape(caption) if caption.strip() else None,
                    parse_mode=ParseMode.HTML,
                    filename=_VIDEO_NAME,
                    supports_streaming=True,
                    message_thread_id=self.thread_id,
                    reply_parameters=self._reply_parameters(always=True),
                    write_timeout=_VIDEO_WRITE_TIMEOUT,
                    read_timeout=_VIDEO_WRITE_TIMEOUT,
                )
            except RetryAfter:
                raise
            except TelegramError as exc:
                # Too big for this server after all, or a time-out: the link still works.
                log.warning("telegram: video upload failed (%s); sending the link", exc)
            else:
                if link_apart:
                    await self.send_text(video.url)
                return
        text = with_link(body, video.url, MESSAGE_LIMIT, measure=utf16_len, cut=truncate)
        if text is None:  # a link of thousands of characters: the text, then the link alone
            await self.send_text(truncate(without_link(body, video.url), MESSAGE_LIMIT))
            text = video.url
        await self.send_text(text)

    async def _fetch(self, video: Video) -> bytes | None:
        """The MP4 bytes if they fit the upload cap; None (send the link) on any failure."""
        if video.fetch is None:
            return None
        try:
            data = await video.fetch(self.upload_cap)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a CDN error or time-out: degrade to the link, don't fail
            log.warning(
                "telegram: video download failed (%s); sending the link", type(exc).__name__
            )
            return None
        return data if data and len(data) <= self.upload_cap else None

    async def working(self, kind: str = "typing") -> None:
        """Show "typing…" or "sending video…"; at most every few seconds, never raises."""
        now = asyncio.get_running_loop().time()
        last = self._last_action
        if last and last[0] == kind and now - last[1] < _CHAT_ACTION_EVERY:
            return
        self._last_action = (kind, now)
        action = ChatAction.UPLOAD_VIDEO if kind == "upload_video" else ChatAction.TYPING
        try:
            await self.bot.send_chat_action(self.chat_id, action, message_thread_id=self.thread_id)
        except TelegramError as exc:
            log.debug("telegram: chat action failed (%s)", exc)
