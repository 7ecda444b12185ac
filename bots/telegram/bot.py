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
import hashlib
import hmac
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder
from telegram.request import HTTPXRequest

from bots.telegram.budget import OverallBudget, budget_for
from bots.telegram.handlers import PLATFORM, UpdateHandlers
from bots.telegram.logs import TokenRedactor, quiet_http_loggers
from bots.telegram.replier import Drafts, Progresses, TelegramReplier
from bots.telegram.scheduler import ChatLimits, MaybeSent, OutboundScheduler
from bots.telegram.texts import COMMANDS
from bots.telegram.webhook import StoredWebhook
from core.config import Settings
from core.rate_budget import LayeredBudget, StoreBudget
from core.transport import NemoTransport
from core.types import ConversationHandler, ConversationRef
from storage.base import BroadcastOutcome, Store

__all__ = [
    "TelegramBot",
    "run_telegram",
    "telegram_limits",
    "telegram_local_mode",
    "webhook_secret",
]

log = logging.getLogger(__name__)

PUBLIC_API = "https://api.telegram.org"
_MB = 1024 * 1024
#: Bot API caps: bots download ≤ 20 MB and upload ≤ 50 MB, or 2000 MB via a local server.
PUBLIC_DOWNLOAD_CAP = 20 * _MB
PUBLIC_UPLOAD_CAP = 50 * _MB
LOCAL_UPLOAD_CAP = 2000 * _MB
_ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]


_WEBHOOK_LABEL = b"nemo-bot/telegram-webhook-secret/v1"
#: Connections to the Bot API server (PTB's default); the outbound scheduler keeps far
#: fewer calls in flight.
_BOT_API_CONNECTIONS = 256


def _bot_api_request(*, read_timeout: float = 5.0) -> HTTPXRequest:
    """PTB's HTTP client, moving its bytes over aiohttp (:mod:`core.transport`).

    httpx's own pool (httpcore) costs CPU per call that grows with the calls in
    flight: in a crowd it was the bot's largest cost. The transport also keeps
    "could not connect" apart from "the connection broke after sending", which the
    scheduler's never-resend rule (:func:`bots.telegram.scheduler.was_not_sent`)
    reads.
    """
    limits = httpx.Limits(max_connections=_BOT_API_CONNECTIONS)
    return HTTPXRequest(
        connection_pool_size=_BOT_API_CONNECTIONS,
        read_timeout=read_timeout,
        httpx_kwargs={"transport": NemoTransport(limits=limits)},
    )


def telegram_local_mode(settings: Settings) -> bool:
    """Whether TELEGRAM_API_BASE is a local Bot API server (``TELEGRAM_LOCAL_MODE``).

    Only the explicit setting lifts the public server's caps: a custom base URL
    may just as well be a proxy in front of api.telegram.org.
    """
    return bool(settings.telegram_local_mode)


def telegram_limits(settings: Settings) -> tuple[int, int]:
    """``(download_cap, upload_cap)`` in bytes for the configured Bot API server.

    The public server lets bots download 20 MB and upload 50 MB; a local Bot API
    server (``TELEGRAM_LOCAL_MODE=true``) lifts both (uploads to its 2000 MB).
    Downloads never exceed our own upload limit either: the backend would refuse.
    """
    if telegram_local_mode(settings):
        return settings.max_upload_bytes, LOCAL_UPLOAD_CAP
    return min(PUBLIC_DOWNLOAD_CAP, settings.max_upload_bytes), PUBLIC_UPLOAD_CAP


def webhook_secret(settings: Settings) -> str:
    """The webhook's secret token: ``TELEGRAM_WEBHOOK_SECRET``, else one derived from the bot token.

    Telegram echoes the secret in the ``X-Telegram-Bot-Api-Secret-Token`` header
    of every update; without one anybody who finds the URL could post updates.
    Behind a load balancer every replica must expect the same secret (each one
    calls setWebhook at start-up), so the fallback is deterministic: the hex
    HMAC-SHA256 of a fixed label keyed with the bot token (64 characters, all in
    Telegram's ``[A-Za-z0-9_-]``). It reveals nothing about the token, and
    changes when the token does.
    """
    secret = settings.telegram_webhook_secret
    if secret is not None:
        return secret.get_secret_value()
    token = settings.telegram_bot_token
    if token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    return hmac.new(token.get_secret_value().encode(), _WEBHOOK_LABEL, hashlib.sha256).hexdigest()


class TelegramBot:
    """The Telegram adapter (a :class:`core.types.ChatAdapter`) and its PTB application.

    Every call that puts something in a chat goes through one
    :class:`~bots.telegram.scheduler.OutboundScheduler` (``self.outbox``), whose
    overall budget is ``TELEGRAM_OVERALL_RATE`` (or ``budget``, e.g. one shared by
    several replicas). ``edit_interval`` keeps calls to one chat apart,
    ``group_edit_interval`` intermediate updates in a group (Telegram's flood
    limits); ``album_delay`` is how long an album may take to arrive; ``drafts``
    streams private replies as native drafts. Tests shrink the intervals.
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
        shutdown_grace: float = 10.0,
        drafts: bool = True,
        budget: OverallBudget | None = None,
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
        self.local_mode = telegram_local_mode(settings)
        self.download_cap, self.upload_cap = telegram_limits(settings)
        self._token = settings.telegram_bot_token.get_secret_value()
        self._redactor = TokenRedactor(self._token)
        self._redactor.install()  # before build(): PTB logs its URLs while building
        # A service with a store (the real one) gets the stored-update webhook and, when
        # replicas share the store, an overall budget shared through it.
        store: Store | None = getattr(service, "store", None)
        shared = bool(getattr(service, "shared", False))
        if budget is None and shared and store is not None and settings.telegram_overall_rate:
            rate = settings.telegram_overall_rate
            shared_budget = StoreBudget(store, scope="telegram:overall", rate=rate)
            budget = LayeredBudget(budget_for(rate), shared_budget)
        limits = ChatLimits(
            private_interval=edit_interval,
            group_interval=edit_interval,
            group_update_interval=group_edit_interval,
        )
        self.outbox = OutboundScheduler(
            budget=budget or budget_for(settings.telegram_overall_rate), limits=limits
        )
        self._drafts = Drafts(enabled=drafts)
        self._progresses = Progresses()
        self._handlers = UpdateHandlers(
            service,
            make_replier=self._replier,
            download_cap=self.download_cap,
            album_delay=album_delay,
            redact=self._redact,
            is_allowed=settings.is_allowed,
        )
        self._started = False
        self._live_tasks: set[asyncio.Future[Any]] = set()  # background edits of repliers
        base = settings.telegram_api_base
        self._requests = (_bot_api_request(), _bot_api_request(read_timeout=poll_timeout + 10))
        builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
            ApplicationBuilder()
            .token(self._token)
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .request(self._requests[0])
            .get_updates_request(self._requests[1])
            .local_mode(self.local_mode)
        )
        self.webhook: StoredWebhook | None = None
        if webhook_url and store is not None:
            builder.updater(None)
        self.app: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self._handlers.install(self.app)
        if webhook_url and store is not None:
            self.webhook = StoredWebhook(
                self.app,
                store,
                replica=f"{settings.replica_name}/{uuid.uuid4().hex[:8]}",
                listen=webhook_listen,
                port=webhook_port,
                path=urlsplit(webhook_url).path,
                secret=webhook_secret(settings),
                lease=settings.replica_lease,
            )

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect (getMe), set the command menus, register with the core, start updates."""
        quiet_http_loggers()
        self._redactor.install()  # again: handlers may have been added since __init__
        try:
            await self.app.initialize()
        except BaseException:
            # PTB shuts down only what it initialized: a failed getMe leaves our HTTP
            # clients (and their aiohttp sessions) open.
            for request in self._requests:
                with contextlib.suppress(Exception):
                    await request.shutdown()
            raise
        self.outbox.start()
        try:
            await self._set_commands()
            self.service.register_adapter(self)
            await self.app.start()
            if self.webhook is not None:
                await self._start_stored_webhook(self.webhook)
            elif self.webhook_url:
                assert self.app.updater is not None
                await self.app.updater.start_webhook(
                    listen=self.webhook_listen,
                    port=self.webhook_port,
                    url_path=urlsplit(self.webhook_url).path.lstrip("/"),
                    webhook_url=self.webhook_url,
                    secret_token=self._webhook_secret(),
                    allowed_updates=_ALLOWED_UPDATES,
                )
            else:
                assert self.app.updater is not None
                await self.app.updater.start_polling(
                    timeout=int(self.poll_timeout), allowed_updates=_ALLOWED_UPDATES
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await self.outbox.aclose()
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
        if self.webhook is not None:
            await self.webhook.stop_receiving()
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()  # handles the updates already fetched; then no more come
        await self._handlers.drain(self.shutdown_grace)
        if self.webhook is not None:
            await self.webhook.finish(self.shutdown_grace)
        await self._cancel_live_tasks()
        await self.outbox.aclose()
        await self._shutdown_app()
        log.info("telegram: stopped")
        self._redactor.uninstall()

    async def _start_stored_webhook(self, webhook: StoredWebhook) -> None:
        """Tell Telegram where to post, then listen (updates are stored, then answered)."""
        assert self.webhook_url is not None
        await self.app.bot.set_webhook(
            url=self.webhook_url,
            secret_token=self._webhook_secret(),
            allowed_updates=_ALLOWED_UPDATES,
        )
        await webhook.start()

    async def _cancel_live_tasks(self) -> None:
        """Background edits still waiting for their slot are pointless once we stop."""
        pending = list(self._live_tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

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
        if self.settings.telegram_webhook_secret is None:
            log.info("telegram: TELEGRAM_WEBHOOK_SECRET unset; using one derived from the token")
        return webhook_secret(self.settings)

    async def _set_commands(self) -> None:
        for language, commands in COMMANDS.items():
            menu = [BotCommand(name, description) for name, description in commands]
            try:
                await self.app.bot.set_my_commands(
                    menu, language_code=None if language == "en" else language
                )
            except TelegramError as exc:  # a menu is nice to have, not worth failing over
                log.warning("telegram: setMyCommands(%s) failed: %s", language, exc)

    def _redact(self, text: str) -> str:
        return self._redactor.scrub(text)

    # -- ChatAdapter -----------------------------------------------------------------

    def replier_for(self, ref: ConversationRef) -> TelegramReplier:
        """A replier for a stored conversation (delivering a render after a restart)."""
        return self._replier(
            chat_id=int(ref.chat_id),
            user_id=ref.user_id,
            thread_id=int(ref.thread_id) if ref.thread_id else None,
            reply_to=int(ref.reply_to) if ref.reply_to and ref.reply_to.isdigit() else None,
            language=ref.language,
        )

    async def send_bulk(self, chat_id: str, text: str) -> BroadcastOutcome:
        """A broadcast message to ``chat_id`` at the lowest priority (``core.admin.BulkSender``).

        ``failed`` when Telegram refused it (the user blocked the bot, the chat is
        gone); ``unconfirmed`` when its answer could not be read: it may be in the
        chat, so it is not sent again.
        """
        replier = self._replier(
            chat_id=int(chat_id), user_id=chat_id, thread_id=None, reply_to=None, language=None
        )
        try:
            await replier.send_bulk_text(text)
        except MaybeSent:
            return "unconfirmed"
        except TelegramError as exc:
            log.info("telegram: a broadcast message was refused (%s)", type(exc).__name__)
            return "failed"
        return "sent"

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
            outbox=self.outbox,
            upload_cap=self.upload_cap,
            thread_id=thread_id,
            reply_to=reply_to,
            language=language,
            tasks=self._live_tasks,
            drafts=self._drafts,
            progresses=self._progresses,
        )


async def run_telegram(
    settings: Settings,
    service: ConversationHandler,
    *,
    webhook_url: str | None = None,
    stop_event: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    **options: Any,
) -> None:
    """Run the Telegram adapter until ``stop_event`` is set (or the task is cancelled).

    ``ready`` is set once the bot is connected and registered with the service:
    then is the time for ``await service.start()`` (resuming undelivered renders).
    ``options`` go to :class:`TelegramBot` (``webhook_listen``, ``webhook_port``, ...).
    """
    bot = TelegramBot(settings, service, webhook_url=webhook_url, **options)
    await bot.start()
    if ready is not None:
        ready.set()
    try:
        await (stop_event or asyncio.Event()).wait()
    finally:
        await bot.stop()
