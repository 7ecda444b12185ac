"""The Cancel button of a running reply in a private chat: a small note of its own.

A private chat's reply grows as a native draft (``sendMessageDraft``), and a
draft carries no buttons. So when a request is still running a few seconds
after it started (most edits take longer; quick answers never see it), one
small real message is sent under it — "⏳ Working on it…" with the Cancel
button, in the user's language — and removed when the request ends.

Why a note that is deleted, rather than a message the answer is edited into:
the answer keeps what drafts give (its final text in one ``sendMessage`` per
4096-character part, in order, and the notification a new message brings; an
edit notifies nobody), and a reply cut at 4096 characters would otherwise have
to edit its first part into a message that was sent before the parts it
follows. The note costs one ``sendMessage`` and one ``deleteMessage``, and only
for slow requests.

The note goes at the scheduler's intermediate-update priority (after every
final and first message of every chat), and one still waiting for its turn
after :data:`STALE_AFTER` seconds (the budget is short: a crowd) is dropped;
typed cancel works either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from telegram import InlineKeyboardMarkup, Message
from telegram.error import TelegramError

from bots.telegram.format import escape
from bots.telegram.scheduler import Job, Priority
from bots.telegram.texts import text as adapter_text

if TYPE_CHECKING:
    from bots.telegram.replier import TelegramReplier

__all__ = ["SHOW_AFTER", "STALE_AFTER", "RunningNote"]

log = logging.getLogger(__name__)

#: A request still running this many seconds after its reply started gets the note.
SHOW_AFTER = 3.0
#: A note not sent this many seconds after it was queued is not sent at all.
STALE_AFTER = 3.0


class RunningNote:
    """One request's "Working on it… [Cancel]" note: shown late, removed at the end.

    :meth:`end` may be called any number of times, from anywhere (also while the
    request's task is being cancelled): it never waits, and the removal runs as
    the bot's background work.
    """

    def __init__(
        self,
        replier: TelegramReplier,
        markup: InlineKeyboardMarkup,
        *,
        after: float = SHOW_AFTER,
        stale: float = STALE_AFTER,
    ) -> None:
        self._replier = replier
        self._markup = markup
        self._stale = stale
        self._job: Job | None = None
        self._started = False  # the sendMessage was made (its answer may still be on its way)
        self.ended = False
        loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = loop.call_later(after, self._queue)

    def _queue(self) -> None:
        self._timer = None
        if self.ended or self._replier.closed:
            return
        self._job = self._replier.submit(self._send, priority=Priority.UPDATE, creates=True)
        # Consumed here, so an unsent or failed note never logs "exception never retrieved".
        self._job.future.add_done_callback(_consume)
        self._timer = asyncio.get_running_loop().call_later(self._stale, self._drop_if_waiting)

    def _drop_if_waiting(self) -> None:
        self._timer = None
        if self._job is not None and not self._started and not self._job.future.done():
            log.info("telegram: the running note waited too long; not sending it")
            self._replier.outbox.withdraw(self._job)
            self._job = None

    async def _send(self) -> Message:
        self._started = True
        words = adapter_text("running", self._replier.language)
        return await self._replier.send_html(escape(words), self._markup)

    def end(self) -> None:
        """The request is over: the note is not sent, or is deleted once it is."""
        if self.ended:
            return
        self.ended = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        job, self._job = self._job, None
        if job is None:
            return
        if not self._started:
            self._replier.outbox.withdraw(job)  # still waiting: it never reaches the chat
            return
        self._replier.track(asyncio.ensure_future(self._delete(job)))

    async def _delete(self, job: Job) -> None:
        try:
            sent = await asyncio.shield(job.future)
        except (TelegramError, asyncio.CancelledError) as exc:
            # Refused (nothing to delete), or its answer was unreadable: then it may be in
            # the chat with an id we never learnt, and nothing can take it away.
            log.info("telegram: the running note was not confirmed (%s)", type(exc).__name__)
            return
        if not isinstance(sent, Message):
            return
        replier = self._replier
        delete = replier.submit(
            lambda: replier.bot.delete_message(replier.chat_id, sent.message_id),
            priority=Priority.UPDATE,
            creates=False,
            repeatable=True,
        )
        with contextlib.suppress(TelegramError, asyncio.CancelledError):
            # (A refusal: the user deleted it already, or it is gone for another reason.)
            await delete


def _consume(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()
