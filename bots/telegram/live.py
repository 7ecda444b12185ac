"""Growing replies on Telegram: a message edited in place, a native draft, a streamed text.

Nothing here waits on Telegram while text arrives: :meth:`LiveMessage.show` and
:meth:`TelegramTextStream.append` queue at most one job per message on the
bot's :class:`~bots.telegram.scheduler.OutboundScheduler` and return; when the
job's turn comes it sends the newest text (edits coalesce). Only the final
text is awaited (:meth:`LiveMessage.settle`, :meth:`TelegramTextStream.finish`).

In private chats a growing reply is shown as a Bot API draft
(``sendMessageDraft``: no edits, no message until the end); the final text then
goes out with one ``sendMessage``, and its Cancel button, which a draft cannot
carry, comes in a note of its own (:mod:`bots.telegram.running`). When the
server refuses drafts, and in groups, the reply is one message edited as it grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from telegram import InlineKeyboardMarkup, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, EndPointNotFound, InvalidToken, TelegramError

from bots.telegram.format import escape, split_text
from bots.telegram.scheduler import Job, MaybeSent, Priority
from bots.telegram.texts import text as adapter_text
from core.types import Action

if TYPE_CHECKING:
    from bots.telegram.replier import TelegramReplier

__all__ = ["DraftPreview", "LiveMessage", "TelegramTextStream"]

log = logging.getLogger(__name__)

_draft_ids = itertools.count(1)


def _markup_key(markup: InlineKeyboardMarkup | None) -> str | None:
    return markup.to_json() if markup is not None else None


class LiveMessage:
    """One bot message shown and then edited in place, paced by the scheduler.

    At most one job of this message waits in the scheduler; it sends the newest
    text when it runs. If the first send's answer could not be read the message
    may exist without our knowing its id: it is then never sent again (no
    duplicates), and later updates are dropped.
    """

    def __init__(self, replier: TelegramReplier) -> None:
        self._replier = replier
        self.message_id: int | None = None
        self._wanted: tuple[str, InlineKeyboardMarkup | None] | None = None
        self._shown: tuple[str, str | None] | None = None
        self._job: Job | None = None
        self.lost = False  # sent, perhaps, but its answer was unreadable

    @property
    def text(self) -> str:
        """The content last asked for."""
        return self._wanted[0] if self._wanted else ""

    @property
    def markup(self) -> InlineKeyboardMarkup | None:
        """The buttons last asked for."""
        return self._wanted[1] if self._wanted else None

    def show(self, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        """Ask for ``text`` to appear soon; content asked for later replaces it."""
        self._wanted = (text, markup)
        if self._job is None and self._pending():
            self._submit(Priority.UPDATE if self.message_id else Priority.FIRST)

    async def settle(
        self, text: str | None = None, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """Show the final content (ahead of intermediate updates) and return once it is shown.

        A message whose first send may have arrived unseen (:attr:`lost`) is left alone.
        """
        if text is not None:
            self._wanted = (text, markup)
        for attempt in range(3):
            if not self._pending():
                return
            job = self._job or self._submit(Priority.FINAL)
            self._replier.outbox.hurry(job, Priority.FINAL)
            try:
                await asyncio.shield(job.future)
            except MaybeSent:
                return
            except TelegramError:
                if attempt == 2:
                    raise
            await asyncio.sleep(0)  # the job's done-callback may queue the next one

    def _key(self) -> tuple[str, str | None] | None:
        if self._wanted is None:
            return None
        return self._wanted[0].strip(), _markup_key(self._wanted[1])

    def _pending(self) -> bool:
        key = self._key()
        return not self.lost and key is not None and bool(key[0]) and key != self._shown

    def _submit(self, priority: Priority) -> Job:
        creates = self.message_id is None
        job = self._replier.outbox.submit(
            self._replier.chat_id,
            self._push,
            priority=priority,
            creates=creates,
            repeatable=not creates,
        )
        self._job = job
        job.future.add_done_callback(lambda _: self._after(job))
        return job

    def _after(self, job: Job) -> None:
        if self._job is job:
            self._job = None
        if job.future.cancelled():
            return
        exc = job.future.exception()
        if isinstance(exc, MaybeSent):
            self.lost = True
            log.warning("telegram: a message's answer was unreadable; it is not sent again")
        elif exc is not None:
            log.warning("telegram: update failed (%s); the final text is tried again", exc)
        elif self._pending() and not self._replier.closed:
            self._submit(Priority.UPDATE)  # more text arrived while this one was sent

    async def _push(self) -> None:
        """The scheduled call: send or edit to the newest content."""
        key = self._key()
        if key is None or key == self._shown or not key[0]:
            return
        assert self._wanted is not None
        text, markup = self._wanted
        if self.message_id is None:
            sent = await self._replier.send_html(escape(text), markup)
            self.message_id = sent.message_id
        else:
            await self._edit(escape(text), markup)
        self._shown = key

    async def _edit(self, html_text: str, markup: InlineKeyboardMarkup | None) -> None:
        assert self.message_id is not None
        try:
            await self._replier.bot.edit_message_text(
                html_text,
                chat_id=self._replier.chat_id,
                message_id=self.message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
            )
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


class DraftPreview:
    """A reply growing as a native draft (``sendMessageDraft``) in a private chat.

    Drafts are previews: nothing stays in the chat until the final ``sendMessage``.
    ``refused`` is set when the server will not show drafts (the stream then edits).
    """

    def __init__(
        self, replier: TelegramReplier, on_refused: Callable[[DraftPreview], None]
    ) -> None:
        self._replier = replier
        self._on_refused = on_refused
        self.draft_id = next(_draft_ids)
        self._wanted = ""
        self._shown = ""
        self._job: Job | None = None
        self.refused = False
        self.closed = False

    def show(self, text: str) -> None:
        """Show ``text`` in the draft soon (the newest text wins)."""
        self._wanted = text
        if self._job is None and not self.refused and not self.closed:
            self._submit(Priority.UPDATE if self._shown else Priority.FIRST)

    def close(self) -> None:
        """The final text is on its way: an update still queued is pointless."""
        self.closed = True
        if self._job is not None:
            self._replier.outbox.withdraw(self._job)

    def _submit(self, priority: Priority) -> None:
        job = self._replier.outbox.submit(
            self._replier.chat_id, self._push, priority=priority, creates=False, repeatable=True
        )
        self._job = job
        job.future.add_done_callback(lambda _: self._after(job))

    def _after(self, job: Job) -> None:
        if self._job is job:
            self._job = None
        if job.future.cancelled():
            return
        exc = job.future.exception()
        if exc is not None:
            if isinstance(exc, BadRequest | EndPointNotFound | InvalidToken):
                log.info("telegram: drafts refused (%s); editing a message instead", exc)
                self.refused = True
                if not isinstance(exc, BadRequest):  # 404: this server has no such method
                    self._replier.drafts.enabled = False  # for every chat from now on
                self._on_refused(self)
            return
        if self._wanted.strip() != self._shown and not self.closed and not self._replier.closed:
            self._submit(Priority.UPDATE)

    async def _push(self) -> None:
        text = self._wanted.strip()
        if self.closed or not text or text == self._shown:
            return
        await self._replier.bot.send_message_draft(
            self._replier.chat_id,
            self.draft_id,
            escape(text),
            message_thread_id=self._replier.thread_id,
            parse_mode=ParseMode.HTML,
        )
        self._shown = text


class TelegramTextStream:
    """A streamed reply: a draft or an edited message, continued past 4096 chars.

    ``append`` never waits for Telegram; ``finish`` waits until every part of the
    reply is in the chat, in order, with the buttons under the last one.
    """

    def __init__(self, replier: TelegramReplier, running: Sequence[Action] = ()) -> None:
        self._replier = replier
        # Buttons under the growing message (Cancel) until it finishes; a draft has none.
        self._running = replier.keyboard(running)
        self._buffer = ""
        self._use_drafts = replier.drafts_usable
        self._draft: DraftPreview | None = None
        self._live: LiveMessage | None = None
        self._last: LiveMessage | None = None
        self._last_sent: Job | None = None
        self._finals: list[asyncio.Future[Any]] = []
        if self._use_drafts and self._running is not None:
            # A draft can't carry them: a running request gets them in a note of its own.
            replier.show_running(self._running)

    def _current(self) -> LiveMessage:
        if self._live is None:
            self._live = self._last = LiveMessage(self._replier)
        return self._live

    async def append(self, text: str) -> None:
        """Add text; it shows up with the next paced update."""
        if not text:
            return
        self._buffer += text
        pieces = split_text(self._buffer)
        for piece in pieces[:-1]:
            if piece.strip():
                self._close_piece(piece, None)
        self._buffer = pieces[-1]
        if self._buffer.strip():
            self._preview(self._buffer)

    def on_draft_refused(self, draft: DraftPreview) -> None:
        """The server refused the draft: show the same text by editing a message."""
        if draft is self._draft:
            self._use_drafts = False
            self._draft = None
            self._replier.end_running()  # the edited message carries the buttons now
            if self._buffer.strip():
                self._current().show(self._buffer, self._running)

    def _preview(self, text: str) -> None:
        if self._use_drafts:
            if self._draft is None:
                self._draft = DraftPreview(self._replier, self.on_draft_refused)
            self._draft.show(text)
        else:
            self._current().show(text, self._running)

    def _close_piece(self, piece: str, markup: InlineKeyboardMarkup | None) -> None:
        """Queue the final form of one part of the reply (awaited in :meth:`finish`)."""
        if self._draft is not None:
            self._draft.close()
            self._draft = None
        if self._live is not None:  # a message being edited: its last edit
            live, self._live = self._live, None
            self._last, self._last_sent = live, None
            settle = asyncio.ensure_future(live.settle(piece, markup))
            self._finals.append(self._replier.track(settle))
            return
        # A draft, or nothing shown yet: the whole part in one sendMessage.
        job = self._replier.submit_html(escape(piece), markup, priority=Priority.FINAL)
        self._last, self._last_sent = None, job
        self._finals.append(job.future)

    async def finish(self, actions: Sequence[Action] = ()) -> None:
        """Show whatever is left, with the action buttons under the last message."""
        markup = self._replier.keyboard(actions)
        self._replier.end_running()
        if self._buffer.strip():
            self._close_piece(self._buffer, markup)
        elif self._draft is not None:
            self._draft.close()
        if not self._buffer.strip() and markup is not None:
            await self._buttons_on_last(markup, actions)
        elif not self._buffer.strip() and self._running is not None and self._last is not None:
            await self._last.settle(self._last.text, None)  # the running buttons go
        self._buffer = ""
        self._live = None
        self._draft = None
        finals, self._finals = self._finals, []
        for future in finals:  # in order; a reply that may have arrived is not resent
            with contextlib.suppress(MaybeSent):
                await future

    async def _buttons_on_last(
        self, markup: InlineKeyboardMarkup, actions: Sequence[Action]
    ) -> None:
        """The text ended exactly at a split: put the buttons under the last message."""
        if self._last is not None and (self._last.message_id is not None or self._last.text):
            await self._last.settle(self._last.text, markup)
            return
        if self._last_sent is not None:
            with contextlib.suppress(MaybeSent):
                sent = await self._last_sent
                if isinstance(sent, Message):
                    await self._replier.submit(
                        lambda: self._replier.bot.edit_message_reply_markup(
                            self._replier.chat_id, sent.message_id, reply_markup=markup
                        ),
                        priority=Priority.FINAL,
                        creates=False,
                        repeatable=True,
                    )
                    return
        await self._replier.send_text(adapter_text("done", self._replier.language), actions=actions)
