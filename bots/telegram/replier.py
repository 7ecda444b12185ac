"""The Telegram side of :class:`core.types.Replier`: streamed replies, progress, videos.

Every call that puts something in a chat goes through the bot's one
:class:`~bots.telegram.scheduler.OutboundScheduler`, which keeps Telegram's
limits and spends the overall budget by priority. Nothing the core awaits here
waits for Telegram while backend work could go on: chat actions and progress
updates are queued and forgotten, streamed text is coalesced
(:mod:`bots.telegram.live`); only whole messages and videos are awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import TelegramError

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
from bots.telegram.live import LiveMessage, TelegramTextStream
from bots.telegram.running import RunningNote
from bots.telegram.scheduler import Job, MaybeSent, OutboundScheduler, Priority
from core.types import Action, Video

__all__ = ["Drafts", "Progresses", "TelegramReplier", "TelegramTextStream"]

log = logging.getLogger(__name__)

#: Telegram shows a chat action for ~5 s; refreshing it more often is noise.
_CHAT_ACTION_EVERY = 4.0
#: Uploading a large MP4 takes longer than PTB's default 20 s write time-out.
_VIDEO_WRITE_TIMEOUT = 600.0
_VIDEO_NAME = "nemo-video.mp4"


class Drafts:
    """Whether streamed replies in private chats are shown as native drafts.

    One per bot; switched off for good when the server says it has no such method.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled


class Progresses:
    """The export progress messages showing Cancel, by conversation and owner; one per bot.

    A cancel is answered by a replier of its own, not the one following the export: this
    is how it finds the progress message whose Cancel button has nothing left to stop.
    """

    def __init__(self) -> None:
        self._shown: dict[tuple[int, int | None, str], LiveMessage] = {}

    def add(self, key: tuple[int, int | None, str], progress: LiveMessage) -> None:
        """``progress`` shows Cancel for the owner in ``key`` (chat, topic, user)."""
        self._shown[key] = progress

    def discard(self, key: tuple[int, int | None, str], progress: LiveMessage) -> None:
        """``progress`` no longer shows Cancel (its export ended)."""
        if self._shown.get(key) is progress:
            del self._shown[key]

    def take(self, key: tuple[int, int | None, str]) -> LiveMessage | None:
        """The progress message showing Cancel for ``key``, forgotten here."""
        return self._shown.pop(key, None)


def _progress_text(text: str, percent: int | None) -> str:
    if percent is None:
        return text
    percent = max(0, min(100, int(percent)))
    filled = percent // 10
    bar = "▰" * filled + "▱" * (10 - filled)
    return f"{text}\n{bar}" if f"{percent}%" in text else f"{text}\n{bar} {percent}%"


class TelegramReplier:
    """Answers one Telegram conversation (a chat, maybe a forum topic) for one user.

    ``outbox`` is the bot's scheduler; ``tasks`` the bot's set of background work
    (see :meth:`track`); ``drafts`` whether private chats stream as drafts.
    """

    def __init__(
        self,
        bot: Bot,
        *,
        chat_id: int,
        user_id: str,
        outbox: OutboundScheduler,
        upload_cap: int,
        thread_id: int | None = None,
        reply_to: int | None = None,
        language: str | None = None,
        tasks: set[asyncio.Future[Any]] | None = None,
        drafts: Drafts | None = None,
        progresses: Progresses | None = None,
    ) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.user_id = user_id
        self.outbox = outbox
        self.upload_cap = upload_cap
        self.thread_id = thread_id
        self.reply_to = reply_to
        self.language = language
        self.drafts = drafts or Drafts(enabled=False)
        self._progresses = progresses or Progresses()
        self._progress: LiveMessage | None = None
        self._notice: LiveMessage | None = None
        self._running: RunningNote | None = None
        self._last_action: tuple[str, float] | None = None
        self._replied = False
        self._tasks = tasks

    def track(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """Register a background task with the bot, which cancels what is left on stop()."""
        if self._tasks is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return task

    @property
    def closed(self) -> bool:
        """True once the bot stopped sending."""
        return self.outbox.closed

    @property
    def is_group(self) -> bool:
        """Negative chat ids are groups, supergroups and channels."""
        return self.chat_id < 0

    @property
    def drafts_usable(self) -> bool:
        """Whether a streamed reply here may be shown as a native draft (private chats)."""
        return self.drafts.enabled and not self.is_group

    def keyboard(self, actions: Sequence[Action]) -> InlineKeyboardMarkup | None:
        """The inline keyboard for ``actions``, owned by this replier's user."""
        return action_keyboard(actions, self.user_id, self.language)

    def _reply_parameters(self, *, always: bool = False) -> ReplyParameters | None:
        # In a busy group, answer the request so people see whose it is; once is enough.
        if not self.is_group or self.reply_to is None or (self._replied and not always):
            return None
        self._replied = True
        return ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True)

    def submit(
        self,
        call: Callable[[], Awaitable[Any]],
        *,
        priority: Priority,
        creates: bool,
        repeatable: bool = False,
    ) -> Job:
        """Queue one call to this chat on the bot's scheduler."""
        return self.outbox.submit(
            self.chat_id, call, priority=priority, creates=creates, repeatable=repeatable
        )

    async def send_html(self, html_text: str, markup: InlineKeyboardMarkup | None) -> Message:
        """Send one new message (already escaped) right now; the scheduler calls this."""
        return await self.bot.send_message(
            self.chat_id,
            html_text,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            message_thread_id=self.thread_id,
            reply_parameters=self._reply_parameters(),
        )

    def submit_html(
        self, html_text: str, markup: InlineKeyboardMarkup | None, *, priority: Priority
    ) -> Job:
        """Queue one new message (already escaped); await the job for the sent message."""
        return self.submit(
            lambda: self.send_html(html_text, markup), priority=priority, creates=True
        )

    async def send_bulk_text(self, text: str) -> None:
        """Send a broadcast message after everything users wait for (``Priority.BULK``).

        Raises the refusal (a user who blocked the bot: ``Forbidden``), or
        :class:`MaybeSent` when the answer could not be read.
        """
        for piece in split_text(text):
            if piece.strip():
                await self.submit_html(escape(piece), None, priority=Priority.BULK)

    async def send_text(
        self, text: str, *, actions: Sequence[Action] = (), private: bool = False
    ) -> None:
        """Send a whole message, split at 4096 chars; buttons go under the last part.

        Telegram has no ephemeral messages and a bot may only DM users who started
        it, so ``private`` answers stay in the conversation. A part whose answer
        could not be read may be in the chat already: it is not sent again.
        """
        self._progress_over()
        pieces = [piece for piece in split_text(text) if piece.strip()]
        markup = self.keyboard(actions)
        jobs = [
            self.submit_html(
                escape(piece), markup if index == len(pieces) - 1 else None, priority=Priority.FINAL
            )
            for index, piece in enumerate(pieces)
        ]
        for job in jobs:
            try:
                await job
            except MaybeSent:
                log.warning("telegram: a message's answer was unreadable; not sending it again")

    def stream(self, running: Sequence[Action] = ()) -> TelegramTextStream:
        """Start a streamed reply; ``running`` buttons show under it until it finishes.

        A private chat's reply grows as a draft, which has no buttons: there they
        come in a note of their own if the request runs for more than a few
        seconds (:mod:`bots.telegram.running`).
        """
        return TelegramTextStream(self, running)

    def show_running(self, markup: InlineKeyboardMarkup) -> None:
        """Give this request a "working on it" note with ``markup`` if it is still running
        in a few seconds (at most one per request; see :class:`RunningNote`)."""
        if self._running is None:
            self._running = RunningNote(self, markup)

    def end_running(self) -> None:
        """This request is over: its running note is not sent, or is deleted (never waits)."""
        if self._running is not None:
            self._running.end()

    async def notice(self, text: str, *, actions: Sequence[Action] = ()) -> None:
        """Show or edit this request's notice (its place in line), paced by the scheduler."""
        if self._notice is None:
            self._notice = LiveMessage(self)
        # Settled, not just shown: the notice's edits are in order and on screen
        # before the request's own answer starts.
        await self._notice.settle(text, self.keyboard(actions))

    async def progress(self, text: str, percent: int | None = None) -> None:
        """Show or update this conversation's single progress message (returns at once).

        Until the render is done (100 %) it carries the Cancel button, its owner's.
        """
        if self._progress is None:
            self._progress = LiveMessage(self)
        running = percent is None or percent < 100
        markup = self.keyboard((Action.CANCEL,)) if running else None
        self._progress.show(_progress_text(text, percent), markup)
        if markup is not None:
            self._progresses.add(self._owner, self._progress)
        else:
            self._progresses.discard(self._owner, self._progress)
        await self.working(ChatAction.UPLOAD_VIDEO)

    @property
    def _owner(self) -> tuple[int, int | None, str]:
        return self.chat_id, self.thread_id, self.user_id

    def _progress_over(self) -> None:
        """The export ended (delivered or failed): its progress message loses Cancel."""
        progress = self._progress
        if progress is not None and progress.markup is not None:
            self._progresses.discard(self._owner, progress)
            progress.show(progress.text, None)

    def cancelled(self) -> None:
        """A cancel of this user's here is done: their export's progress loses Cancel.

        The export was stopped, or is being delivered and can't be (then the
        delivery takes the button away anyway). Returns at once.
        """
        progress = self._progresses.take(self._owner)
        if progress is not None and progress.markup is not None:
            progress.show(progress.text, None)

    async def drop_buttons(self, message_id: int) -> None:
        """Take the buttons off one message of this chat (a pressed Cancel: its job is done).

        Never raises: a message already without them, or gone, is what was wanted.
        """
        job = self.submit(
            lambda: self.bot.edit_message_reply_markup(self.chat_id, message_id, reply_markup=None),
            priority=Priority.FINAL,
            creates=False,
            repeatable=True,
        )
        try:
            await job
        except TelegramError as exc:
            log.debug("telegram: buttons not taken off (%s)", exc)

    async def send_video(self, video: Video) -> None:
        """Upload the MP4 if it fits the Bot API cap, else post the link.

        The video's caption stays within Telegram's 1024 characters: a link too
        long to share it with the text follows in a message of its own.
        """
        if self._progress is not None:
            self._progresses.discard(self._owner, self._progress)
            with contextlib.suppress(TelegramError):
                await self._progress.settle(self._progress.text, None)
        data = await self._fetch(video)
        body = "\n\n".join(part for part in (video.caption, video.summary or "") if part.strip())
        if data:
            caption = with_link(body, video.url, CAPTION_LIMIT, measure=utf16_len, cut=truncate)
            link_apart = caption is None
            if caption is None:
                caption = truncate(without_link(body, video.url), CAPTION_LIMIT)
            await self.working(ChatAction.UPLOAD_VIDEO)
            upload = self.submit(
                lambda: self._upload(data, caption), priority=Priority.FINAL, creates=True
            )
            try:
                await upload
            except MaybeSent:
                # It may be in the chat: a second copy (or the link after it) would be noise.
                log.warning("telegram: the video upload's answer was unreadable; not resending")
                return
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

    async def _upload(self, data: bytes, caption: str) -> Message:
        return await self.bot.send_video(
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
        """Queue "typing…" or "sending video…" and return at once (never raises).

        At most one every few seconds; the scheduler sends it only when nothing more
        important is waiting, and drops it when it has gone stale.
        """
        now = asyncio.get_running_loop().time()
        last = self._last_action
        if last and last[0] == kind and now - last[1] < _CHAT_ACTION_EVERY:
            return
        self._last_action = (kind, now)
        action = ChatAction.UPLOAD_VIDEO if kind == "upload_video" else ChatAction.TYPING
        self.outbox.chat_action(
            self.chat_id,
            lambda: self.bot.send_chat_action(
                self.chat_id, action, message_thread_id=self.thread_id
            ),
        )
