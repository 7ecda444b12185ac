"""From PTB updates to core requests: one typed handler per update kind.

Every handler is quick: it decides whether the update is for us, builds an
:class:`~core.types.IncomingMessage` and starts ``service.handle`` in a task of
its own, so a long stream for one user never holds up anybody else's updates.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NamedTuple, Protocol

from telegram import Bot, Message, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bots.common import ACTION_INTENTS
from bots.telegram.audio import TranscodeError
from bots.telegram.format import parse_callback
from bots.telegram.inbound import (
    AlbumCollector,
    DownloadError,
    FileInfo,
    addressing,
    files_of,
    needs_transcoding,
    refusal_for,
    thread_of,
    to_attachment,
    transcoded_attachment,
)
from bots.telegram.replier import TelegramReplier
from bots.telegram.texts import text as adapter_text
from bots.tracker import Notice, RequestTracker
from core.language import choose
from core.language import resolve as resolve_language
from core.router import route
from core.types import Attachment, ConversationHandler, IncomingMessage, Intent

__all__ = ["ReplierFactory", "UpdateHandlers"]

log = logging.getLogger(__name__)

PLATFORM = "telegram"
_MEDIA = (
    filters.PHOTO
    | filters.VIDEO
    | filters.ANIMATION
    | filters.AUDIO
    | filters.VOICE
    | filters.VIDEO_NOTE
    | filters.Document.ALL
)
#: Anything else a person sends in a private chat (stickers, locations, contacts, polls...).
_OTHER_PRIVATE = filters.ChatType.PRIVATE & ~filters.StatusUpdate.ALL
_NEW_MESSAGES = filters.UpdateType.MESSAGE  # edits of old messages are not new requests

Context = ContextTypes.DEFAULT_TYPE


class ReplierFactory(Protocol):
    """Builds the replier of one conversation (the bot's ``_replier``)."""

    def __call__(
        self,
        *,
        chat_id: int,
        user_id: str,
        thread_id: int | None,
        reply_to: int | None,
        language: str | None,
    ) -> TelegramReplier:
        """A replier for ``chat_id`` (and forum topic ``thread_id``) owned by ``user_id``."""


class UpdateHandlers:
    """The PTB handlers of the adapter and the tasks they start."""

    def __init__(
        self,
        service: ConversationHandler,
        *,
        make_replier: ReplierFactory,
        download_cap: int,
        album_delay: float,
        redact: Callable[[str], str],
        is_allowed: Callable[[str, str], bool] = lambda user_id, chat_id: True,
    ) -> None:
        self._service = service
        self._is_allowed = is_allowed
        self._make_replier = make_replier
        self._download_cap = download_cap
        self._redact = redact
        self._albums = AlbumCollector(album_delay, self._on_album)
        self._requests = RequestTracker("telegram", log, redact=redact)
        self._app: Application[Any, Any, Any, Any, Any, Any] | None = None

    async def drain(self, grace: float) -> None:
        """Hand on albums still being collected, refuse new work, give the running requests
        ``grace`` s, then cancel them.

        Call it once no more updates arrive (the bot stops its updater and its
        application first); a request arriving after this point is refused with the
        ``stopping`` notice, and so is one cancelled when ``grace`` runs out
        (:class:`bots.tracker.RequestTracker`).
        """
        await self._albums.flush()
        await self._requests.drain(grace)

    def install(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Add the handlers and the error handler to ``app``."""
        self._app = app
        app.add_handler(CommandHandler("start", self.on_start, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("help", self.on_help, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("new", self.on_new, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("status", self.on_status, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("credits", self.on_credits, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("export", self.on_export, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("projects", self.on_projects, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("open", self.on_open, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("resend", self.on_resend, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("cancel", self.on_cancel, filters=_NEW_MESSAGES))
        app.add_handler(MessageHandler(_NEW_MESSAGES & _MEDIA, self.on_media))
        app.add_handler(MessageHandler(_NEW_MESSAGES & filters.TEXT, self.on_text))
        app.add_handler(MessageHandler(_NEW_MESSAGES & _OTHER_PRIVATE, self.on_other))
        app.add_handler(CallbackQueryHandler(self.on_button, pattern=r"^a:"))
        app.add_error_handler(self.on_error)

    async def on_start(self, update: Update, context: Context) -> None:
        """/start: the welcome text."""
        await self._command(update, context, Intent.START)

    async def on_help(self, update: Update, context: Context) -> None:
        """/help: how to use the bot."""
        await self._command(update, context, Intent.HELP)

    async def on_new(self, update: Update, context: Context) -> None:
        """/new: start a fresh project."""
        await self._command(update, context, Intent.NEW)

    async def on_status(self, update: Update, context: Context) -> None:
        """/status: show the timeline."""
        await self._command(update, context, Intent.STATUS)

    async def on_credits(self, update: Update, context: Context) -> None:
        """/credits: show the credit balance."""
        await self._command(update, context, Intent.CREDITS)

    async def on_export(self, update: Update, context: Context) -> None:
        """/export: render and deliver the MP4."""
        await self._command(update, context, Intent.EXPORT)

    async def on_projects(self, update: Update, context: Context) -> None:
        """/projects: the user's recent projects."""
        await self._command(update, context, Intent.PROJECTS)

    async def on_open(self, update: Update, context: Context) -> None:
        """/open N: go back to project N of the list."""
        await self._command(update, context, Intent.OPEN)

    async def on_resend(self, update: Update, context: Context) -> None:
        """/resend: send the current project's last video again."""
        await self._command(update, context, Intent.RESEND)

    async def on_cancel(self, update: Update, context: Context) -> None:
        """/cancel: stop the running request, the waiting ones and an export."""
        await self._command(update, context, Intent.CANCEL)

    async def on_text(self, update: Update, context: Context) -> None:
        """A text message: a request in private chats; in groups only when addressed to us."""
        message = update.message
        if message is None or sender_of(message) is None:
            return
        addressed, text = self._addressing(message)
        if not addressed:
            return
        self._dispatch(self._incoming(message, text=text, seq=update.update_id))

    async def on_media(self, update: Update, context: Context) -> None:
        """A photo, clip, audio or document: checked before download; albums are batched."""
        message = update.message
        if message is None or sender_of(message) is None:
            return
        if message.media_group_id:
            self._albums.add(message)
            return
        self._spawn(self._media_request([message], seq=update.update_id), message)

    async def on_other(self, update: Update, context: Context) -> None:
        """A sticker, location, contact, poll... in a private chat: say what we can use."""
        message = update.message
        sender = sender_of(message) if message is not None else None
        if message is None or sender is None:
            return
        if not self._is_allowed(sender.user_id, str(message.chat.id)):
            refusal = self._incoming(message, text="", seq=update.update_id)
            self._dispatch(refusal)  # the core's refusal
            return
        replier = self._replier_from(message)
        self._spawn(replier.send_text(adapter_text("not_media", sender.language)), message)

    async def on_button(self, update: Update, context: Context) -> None:
        """An action button: only its owner may press it; then it's a request like any other."""
        query = update.callback_query
        if query is None:
            return
        parsed = parse_callback(query.data)
        if parsed is None or query.message is None:
            await query.answer()
            return
        action, owner = parsed
        language = query.from_user.language_code
        if owner.startswith("-"):
            # Owned by a channel or an anonymous admin (a chat id): a press comes from a
            # person, and nothing proves that person speaks for that identity.
            await query.answer(adapter_text("post_as_yourself", language), show_alert=True)
            return
        if str(query.from_user.id) != owner:
            await query.answer(adapter_text("not_owner", language), show_alert=True)
            return
        await query.answer()
        intent, phrase = ACTION_INTENTS[action]
        message = query.message
        chat = message.chat
        thread = getattr(message, "message_thread_id", None)
        is_topic = getattr(message, "is_topic_message", False)
        msg = IncomingMessage(
            platform=PLATFORM,
            user_id=owner,
            chat_id=str(chat.id),
            text=phrase,
            thread_id=str(thread) if thread is not None and is_topic else None,
            language=language,
            is_group=chat.type != ChatType.PRIVATE,
            intent=intent,
            message_id=str(message.message_id),
            user_display=query.from_user.full_name,
            seq=update.update_id,
        )
        # Once a cancel is done, the pressed button has nothing left to stop: it goes
        # (a running reply and a queue notice lose it anyway; an export's progress does not).
        done_with = message.message_id if intent is Intent.CANCEL else None
        self._dispatch(msg, then_unbutton=done_with)

    async def on_error(self, update: object, context: Context) -> None:
        """Log the error (token redacted) and apologise to the user if there is one."""
        error = context.error
        log.error(
            "telegram: error while handling an update: %s",
            self._redact(f"{type(error).__name__}: {error}"),
            exc_info=error if isinstance(error, BaseException) else None,
        )
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        language = update.effective_user.language_code if update.effective_user else None
        with contextlib.suppress(TelegramError):
            if update.callback_query is not None:
                await update.callback_query.answer(adapter_text("error", language))
            else:
                notice = self._notice(update.effective_chat.id, thread_of_update(update), language)
                await notice("error")

    # -- plumbing --------------------------------------------------------------------

    async def _command(self, update: Update, context: Context, intent: Intent) -> None:
        message = update.message
        if message is None or sender_of(message) is None:
            return
        text = " ".join(context.args or ())
        self._dispatch(self._incoming(message, text=text, intent=intent, seq=update.update_id))

    def _addressing(self, message: Message) -> tuple[bool, str]:
        text = message.text or message.caption or ""
        if message.chat.type == ChatType.PRIVATE:
            return True, text
        return addressing(message, self._bot.username, self._bot.id)

    def _on_album(self, messages: Sequence[Message]) -> None:
        self._spawn(self._media_request(messages), messages[0])

    async def _media_request(self, messages: Sequence[Message], seq: int | None = None) -> None:
        """Files (one message or an album) and their caption, as one request.

        Every file is checked before anything is downloaded; the refused ones are
        named in a reply and the rest (with the caption) still go to the core.
        """
        first = messages[0]
        addressed, text = False, ""
        for message in messages:
            is_addressed, caption = self._addressing(message)
            addressed = addressed or is_addressed
            text = text or caption
        if not addressed:
            return
        sender = sender_of(first)
        assert sender is not None
        if not self._is_allowed(sender.user_id, str(first.chat.id)):
            # The core refuses (and downloads nothing): no file talk with strangers.
            msg = self._incoming(first, text=text, seq=seq)
            await self._service.handle(msg, self._replier_for(msg))
            return
        language = choose(sender.language, text) or sender.language  # the caption's, if none
        accepted: list[FileInfo] = []
        refusals: list[str] = []
        for message in messages:
            for info in files_of(message):
                refusal = refusal_for(info, self._download_cap, language)
                if refusal:
                    refusals.append(refusal)
                else:
                    accepted.append(info)
        attachments: list[Attachment] = []
        for info in accepted:
            if not needs_transcoding(info):
                attachments.append(to_attachment(self._bot, info))
                continue
            try:
                attachments.append(await transcoded_attachment(self._bot, info))
            except (DownloadError, TranscodeError) as exc:
                log.warning("telegram: could not convert %s: %s", info.kind, self._redact(str(exc)))
                key = "voice_failed" if info.kind == "voice" else "audio_failed"
                refusals.append(adapter_text(key, language, name=info.filename))
        if refusals:
            # Nothing refused was downloaded; the user resends those, the rest goes on.
            replier = self._replier_from(first)
            await replier.send_text("\n".join(dict.fromkeys(refusals)))
        if attachments:
            msg = self._incoming(first, text=text, attachments=tuple(attachments), seq=seq)
            await self._answer(msg, self._replier_for(msg))

    def _incoming(
        self,
        message: Message,
        *,
        text: str,
        intent: Intent | None = None,
        attachments: tuple[Attachment, ...] = (),
        seq: int | None = None,
    ) -> IncomingMessage:
        """The core's view of ``message``; ``seq`` is its update's ``update_id``, if known
        (an album arrives as several updates and goes without: the gate then orders it by
        arrival)."""
        sender = sender_of(message)
        assert sender is not None
        thread = thread_of(message)
        # Resolved here, not only in the core, so the replier's own words (buttons)
        # speak the language the text is in when Telegram gives none.
        return resolve_language(
            IncomingMessage(
                platform=PLATFORM,
                user_id=sender.user_id,
                chat_id=str(message.chat.id),
                text=text,
                thread_id=str(thread) if thread is not None else None,
                attachments=attachments,
                language=sender.language,
                is_group=message.chat.type != ChatType.PRIVATE,
                intent=intent,
                message_id=str(message.message_id),
                user_display=sender.display,
                seq=seq,
            )
        )

    def _replier_from(self, message: Message) -> TelegramReplier:
        sender = sender_of(message)
        return self._make_replier(
            chat_id=message.chat.id,
            user_id=sender.user_id if sender else "",
            thread_id=thread_of(message),
            reply_to=message.message_id,
            language=sender.language if sender else None,
        )

    def _dispatch(self, msg: IncomingMessage, *, then_unbutton: int | None = None) -> None:
        """Hand ``msg`` to the core in its own task, so PTB keeps reading updates.

        A request can stream for minutes; different users must not wait for each
        other. The core serialises requests of one session itself. ``then_unbutton``:
        see :meth:`_answer`.
        """
        replier = self._replier_for(msg)
        notice = self._notice(replier.chat_id, replier.thread_id, msg.language)
        self._requests.spawn(self._answer(msg, replier, then_unbutton=then_unbutton), notice)

    async def _answer(
        self, msg: IncomingMessage, replier: TelegramReplier, *, then_unbutton: int | None = None
    ) -> None:
        """The core answers ``msg``; whatever way the request ends, its running note goes.

        ``then_unbutton``: a message whose buttons are taken off once it is answered.
        """
        try:
            await self._service.handle(msg, replier)
        finally:
            replier.end_running()
        if (msg.intent or route(msg.text, has_attachments=bool(msg.attachments))) is Intent.CANCEL:
            replier.cancelled()  # typed or pressed: the export's Cancel button goes too
        if then_unbutton is not None:
            await replier.drop_buttons(then_unbutton)

    def _replier_for(self, msg: IncomingMessage) -> TelegramReplier:
        return self._make_replier(
            chat_id=int(msg.chat_id),
            user_id=msg.user_id,
            thread_id=int(msg.thread_id) if msg.thread_id else None,
            reply_to=int(msg.message_id) if msg.message_id else None,
            language=msg.language,
        )

    def _spawn(self, work: Coroutine[Any, Any, None], message: Message) -> None:
        """Run ``work`` for ``message`` as a tracked request of its own."""
        sender = sender_of(message)
        language = sender.language if sender else None
        notice = self._notice(message.chat.id, thread_of(message), language)
        self._requests.spawn(work, notice)

    def _notice(self, chat_id: int, thread_id: int | None, language: str | None) -> Notice:
        """Sends an adapter notice ("stopping", "error") to a chat, in the user's language."""

        async def notice(key: str) -> None:
            replier = self._make_replier(
                chat_id=chat_id, user_id="", thread_id=thread_id, reply_to=None, language=language
            )
            await replier.send_text(adapter_text(key, language))

        return notice

    @property
    def _bot(self) -> Bot:
        assert self._app is not None, "install() first"
        return self._app.bot


class Sender(NamedTuple):
    """Who a message is from, as the core sees it."""

    user_id: str
    display: str
    language: str | None


def sender_of(message: Message) -> Sender | None:
    """The sender of ``message``: its ``sender_chat`` when it was sent on behalf of a chat.

    Posts "as a channel" come from Telegram's shared Channel_Bot and anonymous admins
    from GroupAnonymousBot; their ``from_user`` is the same for everybody, so the chat
    they speak for (a channel, or the group itself for anonymous admins) is the user:
    each gets a project of its own. Such ids are negative, as chat ids are, which is
    how a button owned by one is told apart (see ``UpdateHandlers.on_button``).
    """
    user = message.from_user
    chat = message.sender_chat
    if chat is not None:
        display = chat.title or chat.username or str(chat.id)
        return Sender(str(chat.id), display, user.language_code if user else None)
    if user is None:
        return None
    return Sender(str(user.id), user.full_name, user.language_code)


def thread_of_update(update: Update) -> int | None:
    """The forum topic an update came from, if any."""
    message = update.effective_message
    return thread_of(message) if isinstance(message, Message) else None
