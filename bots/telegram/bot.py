"""The Telegram adapter: a python-telegram-bot Application that feeds the core.

It is thin on purpose: every update becomes an :class:`~core.types.IncomingMessage`
and goes to ``service.handle`` with a :class:`~bots.telegram.replier.TelegramReplier`;
the adapter never talks to NemoVideo or the database. It runs inside a bigger
process (``nemo-bot telegram`` or ``nemo-bot run``), so it uses PTB's manual
lifecycle instead of ``run_polling``::

    bot = TelegramBot(settings, service)
    await bot.start()          # polling, or a webhook server with webhook_url=...
    ...
    await bot.stop()

or simply ``await run_telegram(settings, service, stop_event=event)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import traceback
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from telegram import BotCommand, Message, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bots.telegram.format import ACTION_INTENTS, parse_callback
from bots.telegram.inbound import (
    AlbumCollector,
    addressing,
    files_of,
    refusal_for,
    thread_of,
    to_attachment,
)
from bots.telegram.replier import PacerPool, TelegramReplier
from bots.telegram.texts import COMMANDS
from bots.telegram.texts import text as adapter_text
from core.config import Settings
from core.types import Attachment, ConversationRef, IncomingMessage, Intent, Replier

__all__ = ["ConversationHandler", "TelegramBot", "run_telegram", "telegram_limits"]

log = logging.getLogger(__name__)

PLATFORM = "telegram"
PUBLIC_API = "https://api.telegram.org"
_MB = 1024 * 1024
#: Bot API caps: bots download ≤ 20 MB and upload ≤ 50 MB, or 2000 MB via a local server.
PUBLIC_DOWNLOAD_CAP = 20 * _MB
PUBLIC_UPLOAD_CAP = 50 * _MB
LOCAL_UPLOAD_CAP = 2000 * _MB
_ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
_COMMAND_INTENTS = {
    "start": Intent.START,
    "help": Intent.HELP,
    "new": Intent.NEW,
    "status": Intent.STATUS,
    "credits": Intent.CREDITS,
    "export": Intent.EXPORT,
}
_MEDIA = (
    filters.PHOTO
    | filters.VIDEO
    | filters.ANIMATION
    | filters.AUDIO
    | filters.VOICE
    | filters.Document.ALL
)
_NEW_MESSAGES = filters.UpdateType.MESSAGE  # edits of old messages are not new requests

Context = ContextTypes.DEFAULT_TYPE


class ConversationHandler(Protocol):
    """The part of :class:`core.service.ConversationService` the adapter uses."""

    def register_adapter(self, adapter: Any) -> None:
        """Make ``adapter`` the deliverer for its platform's stored conversations."""

    async def handle(self, msg: IncomingMessage, replier: Replier) -> None:
        """Answer one request; never raises."""


def telegram_limits(settings: Settings) -> tuple[int, int]:
    """``(download_cap, upload_cap)`` in bytes for the configured Bot API server.

    The public server lets bots download 20 MB and upload 50 MB; a local Bot API
    server lifts both (we then cap downloads at our own upload limit).
    """
    if settings.telegram_api_base.startswith(PUBLIC_API):
        return PUBLIC_DOWNLOAD_CAP, PUBLIC_UPLOAD_CAP
    return settings.max_upload_bytes, LOCAL_UPLOAD_CAP


#: Loggers that may see Bot API URLs (PTB logs them at DEBUG when building the bot).
_URL_LOGGERS = (
    "telegram",
    "telegram.Bot",
    "telegram.ext",
    "telegram.ext.ExtBot",
    "telegram.ext.Application",
    "telegram.ext.Updater",
    "telegram.ext.AIORateLimiter",
    "telegram.request",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
    "httpx",
    "httpcore",
    __name__,
)


class TokenRedactor(logging.Filter):
    """Replaces the bot token in log records (PTB and httpx can put URLs in messages).

    Logger filters only see records created by their own logger, so :meth:`install`
    puts it on every logger that may see a Bot API URL and on the root handlers.
    """

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def install(self) -> None:
        """Filter the URL-bearing loggers and whatever handlers the root logger has now."""
        for name in _URL_LOGGERS:
            logging.getLogger(name).addFilter(self)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self)

    def uninstall(self) -> None:
        """Undo :meth:`install`."""
        for name in _URL_LOGGERS:
            logging.getLogger(name).removeFilter(self)
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record if the token shows up anywhere in it."""
        message = record.getMessage()
        if self._token in message:
            record.msg, record.args = message.replace(self._token, "<bot-token>"), None
        if record.exc_info and not record.exc_text:
            text = "".join(traceback.format_exception(*record.exc_info))
            if self._token in text:
                record.exc_text = text.replace(self._token, "<bot-token>").rstrip("\n")
        return True


class TelegramBot:
    """The Telegram adapter (a :class:`core.types.ChatAdapter`) and its PTB application.

    ``edit_interval``/``group_edit_interval`` keep edits to a chat apart (Telegram's
    flood limits); ``album_delay`` is how long an album may take to arrive. Tests
    shrink all three.
    """

    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        service: ConversationHandler,
        *,
        webhook_url: str | None = None,
        webhook_listen: str = "127.0.0.1",
        webhook_port: int = 8443,
        edit_interval: float = 1.0,
        group_edit_interval: float = 3.0,
        album_delay: float = 1.0,
        poll_timeout: float = 30.0,
        max_retries: int = 5,
        shutdown_grace: float = 10.0,
        rate_limiter: BaseRateLimiter[Any] | None = None,
    ) -> None:
        if settings.telegram_bot_token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        self.settings = settings
        self.service = service
        self.webhook_url = webhook_url
        self.webhook_listen = webhook_listen
        self.webhook_port = webhook_port
        self.poll_timeout = poll_timeout
        self.shutdown_grace = shutdown_grace
        self.download_cap, self.upload_cap = telegram_limits(settings)
        self._token = settings.telegram_bot_token.get_secret_value()
        self._redactor = TokenRedactor(self._token)
        self._redactor.install()  # before build(): PTB logs its URLs while building
        self._pacers = PacerPool(private_interval=edit_interval, group_interval=group_edit_interval)
        self._albums = AlbumCollector(album_delay, self._on_album)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        base = settings.telegram_api_base
        builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
            ApplicationBuilder()
            .token(self._token)
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .rate_limiter(rate_limiter or AIORateLimiter(max_retries=max_retries))
            .get_updates_read_timeout(poll_timeout + 10)
        )
        self.app: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self._add_handlers()

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect (getMe), set the command menus, register with the core, start updates."""
        _quiet_http_loggers()
        self._redactor.install()  # again: handlers may have been added since __init__
        await self.app.initialize()
        try:
            await self._set_commands()
            self.service.register_adapter(self)
            await self.app.start()
            assert self.app.updater is not None
            if self.webhook_url:
                await self.app.updater.start_webhook(
                    listen=self.webhook_listen,
                    port=self.webhook_port,
                    url_path=urlsplit(self.webhook_url).path.lstrip("/"),
                    webhook_url=self.webhook_url,
                    secret_token=self._webhook_secret(),
                    allowed_updates=_ALLOWED_UPDATES,
                )
            else:
                await self.app.updater.start_polling(
                    timeout=int(self.poll_timeout), allowed_updates=_ALLOWED_UPDATES
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await self._shutdown_app()
            raise
        self._started = True
        log.info(
            "telegram: @%s is up (%s)",
            self.app.bot.username,
            "webhook" if self.webhook_url else "polling",
        )

    async def stop(self) -> None:
        """Stop taking updates, let running requests finish (briefly), then disconnect."""
        if not self._started:
            return
        self._started = False
        await self._albums.close()
        assert self.app.updater is not None
        if self.app.updater.running:
            await self.app.updater.stop()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.shutdown_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._shutdown_app()
        log.info("telegram: stopped")
        self._redactor.uninstall()

    async def _shutdown_app(self) -> None:
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    async def __aenter__(self) -> TelegramBot:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _webhook_secret(self) -> str:
        # Telegram echoes the secret in a header; without one anybody could post updates.
        secret = self.settings.telegram_webhook_secret
        if secret is None:
            log.warning("telegram: TELEGRAM_WEBHOOK_SECRET unset; using a random one")
            return secrets.token_urlsafe(32)
        return secret.get_secret_value()

    async def _set_commands(self) -> None:
        for language, commands in COMMANDS.items():
            menu = [BotCommand(name, description) for name, description in commands]
            try:
                await self.app.bot.set_my_commands(
                    menu, language_code=None if language == "en" else language
                )
            except TelegramError as exc:  # a menu is nice to have, not worth failing over
                log.warning("telegram: setMyCommands(%s) failed: %s", language, exc)

    # -- ChatAdapter -----------------------------------------------------------------

    def replier_for(self, ref: ConversationRef) -> TelegramReplier:
        """A replier for a stored conversation (delivering a render after a restart)."""
        return self._replier(
            chat_id=int(ref.chat_id),
            user_id=ref.user_id,
            thread_id=int(ref.thread_id) if ref.thread_id else None,
            reply_to=int(ref.reply_to) if ref.reply_to and ref.reply_to.isdigit() else None,
            language=None,
        )

    def _replier(
        self,
        *,
        chat_id: int,
        user_id: str,
        thread_id: int | None,
        reply_to: int | None,
        language: str | None,
    ) -> TelegramReplier:
        return TelegramReplier(
            self.app.bot,
            chat_id=chat_id,
            user_id=user_id,
            pacer=self._pacers.get(chat_id),
            upload_cap=self.upload_cap,
            thread_id=thread_id,
            reply_to=reply_to,
            language=language,
        )

    # -- handlers --------------------------------------------------------------------

    def _add_handlers(self) -> None:
        app = self.app
        app.add_handler(CommandHandler("start", self.on_start, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("help", self.on_help, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("new", self.on_new, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("status", self.on_status, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("credits", self.on_credits, filters=_NEW_MESSAGES))
        app.add_handler(CommandHandler("export", self.on_export, filters=_NEW_MESSAGES))
        app.add_handler(MessageHandler(_NEW_MESSAGES & _MEDIA, self.on_media))
        app.add_handler(MessageHandler(_NEW_MESSAGES & filters.TEXT, self.on_text))
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

    async def on_text(self, update: Update, context: Context) -> None:
        """A text message: a request in private chats; in groups only when addressed to us."""
        message = update.message
        if message is None or message.from_user is None:
            return
        addressed, text = self._addressing(message)
        if not addressed:
            return
        self._dispatch(self._incoming(message, text=text))

    async def on_media(self, update: Update, context: Context) -> None:
        """A photo, clip, audio or document: checked before download; albums are batched."""
        message = update.message
        if message is None or message.from_user is None:
            return
        if message.media_group_id:
            self._albums.add(message)
            return
        await self._media_request([message])

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
            addressed_to_bot=True,
            intent=intent,
            message_id=str(message.message_id),
            user_display=query.from_user.full_name,
        )
        self._dispatch(msg)

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
                await self._apologise(update.effective_chat.id, thread_of_update(update), language)

    # -- plumbing --------------------------------------------------------------------

    async def _command(self, update: Update, context: Context, intent: Intent) -> None:
        message = update.message
        if message is None or message.from_user is None:
            return
        text = " ".join(context.args or ())
        self._dispatch(self._incoming(message, text=text, intent=intent))

    def _addressing(self, message: Message) -> tuple[bool, str]:
        text = message.text or message.caption or ""
        if message.chat.type == ChatType.PRIVATE:
            return True, text
        return addressing(message, self.app.bot.username, self.app.bot.id)

    async def _on_album(self, messages: Sequence[Message]) -> None:
        await self._media_request(messages)

    async def _media_request(self, messages: Sequence[Message]) -> None:
        first = messages[0]
        addressed, text = False, ""
        for message in messages:
            is_addressed, caption = self._addressing(message)
            addressed = addressed or is_addressed
            text = text or caption
        if not addressed:
            return
        assert first.from_user is not None
        language = first.from_user.language_code
        attachments: list[Attachment] = []
        refusals: list[str] = []
        for message in messages:
            for info in files_of(message):
                refusal = refusal_for(info, self.download_cap, language)
                if refusal:
                    refusals.append(refusal)
                else:
                    attachments.append(to_attachment(self.app.bot, info))
        if refusals:
            # Nothing is downloaded and nothing goes to the core: the user resends.
            replier = self._replier_from(first)
            self._spawn(replier.send_text("\n".join(dict.fromkeys(refusals))))
            return
        self._dispatch(self._incoming(first, text=text, attachments=tuple(attachments)))

    def _incoming(
        self,
        message: Message,
        *,
        text: str,
        intent: Intent | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> IncomingMessage:
        user = message.from_user
        assert user is not None
        thread = thread_of(message)
        return IncomingMessage(
            platform=PLATFORM,
            user_id=str(user.id),
            chat_id=str(message.chat.id),
            text=text,
            thread_id=str(thread) if thread is not None else None,
            attachments=attachments,
            language=user.language_code,
            is_group=message.chat.type != ChatType.PRIVATE,
            addressed_to_bot=True,
            intent=intent,
            message_id=str(message.message_id),
            user_display=user.full_name,
        )

    def _replier_from(self, message: Message) -> TelegramReplier:
        user = message.from_user
        return self._replier(
            chat_id=message.chat.id,
            user_id=str(user.id) if user else "",
            thread_id=thread_of(message),
            reply_to=message.message_id,
            language=user.language_code if user else None,
        )

    def _dispatch(self, msg: IncomingMessage) -> None:
        """Hand ``msg`` to the core in its own task, so PTB keeps reading updates.

        A request can stream for minutes; different users must not wait for each
        other. The core serialises requests of one session itself.
        """
        replier = self._replier(
            chat_id=int(msg.chat_id),
            user_id=msg.user_id,
            thread_id=int(msg.thread_id) if msg.thread_id else None,
            reply_to=int(msg.message_id) if msg.message_id else None,
            language=msg.language,
        )
        self._spawn(self._handle(msg, replier))

    async def _handle(self, msg: IncomingMessage, replier: TelegramReplier) -> None:
        try:
            await self.service.handle(msg, replier)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the core never raises, but a crash must not go unnoticed
            log.error(
                "telegram: request failed: %s",
                self._redact(f"{type(exc).__name__}: {exc}"),
                exc_info=exc,
            )
            with contextlib.suppress(TelegramError):
                await self._apologise(replier.chat_id, replier.thread_id, msg.language)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(
                "telegram: background task failed: %s",
                self._redact(f"{type(exc).__name__}: {exc}"),
                exc_info=exc,
            )

    async def _apologise(self, chat_id: int, thread_id: int | None, language: str | None) -> None:
        await self.app.bot.send_message(
            chat_id, adapter_text("error", language), message_thread_id=thread_id
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<bot-token>")


def thread_of_update(update: Update) -> int | None:
    """The forum topic an update came from, if any."""
    message = update.effective_message
    return thread_of(message) if isinstance(message, Message) else None


def _quiet_http_loggers() -> None:
    # httpx logs every request URL at INFO, and Bot API URLs contain the token.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


async def run_telegram(
    settings: Settings,
    service: ConversationHandler,
    *,
    webhook_url: str | None = None,
    stop_event: asyncio.Event | None = None,
    **options: Any,
) -> None:
    """Run the Telegram adapter until ``stop_event`` is set (or the task is cancelled).

    ``options`` go to :class:`TelegramBot` (``webhook_listen``, ``webhook_port``, ...).
    """
    bot = TelegramBot(settings, service, webhook_url=webhook_url, **options)
    await bot.start()
    try:
        await (stop_event or asyncio.Event()).wait()
    finally:
        await bot.stop()
