"""The Telegram webhook of one replica: store the update, then answer, then handle it.

PTB's own webhook server puts updates on an in-memory queue and answers at once,
so an update answered by a replica that then dies is lost, and a re-delivered
one is handled twice. This server (aiohttp, which discord.py brings along)
checks the secret token, stores the update in the shared database
(:class:`core.inbox.Inbox`: unique by ``update_id``, so Telegram's re-deliveries
are answered and ignored) and only then answers 200. The PTB application (built
with no updater) handles each stored update with ``process_update``; another
replica's sweep takes over the updates of a replica that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from core.inbox import Inbox
from storage.base import InboundUpdate, Store

__all__ = ["SECRET_HEADER", "StoredWebhook"]

log = logging.getLogger(__name__)

#: Telegram echoes the webhook's secret token in this header of every update.
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: Telegram's updates are small; a bigger body is not an update.
_MAX_BODY = 1024 * 1024


class StoredWebhook:
    """An aiohttp webhook endpoint that stores every update before answering it."""

    def __init__(
        self,
        app: Application[Any, Any, Any, Any, Any, Any],
        store: Store,
        *,
        replica: str,
        listen: str,
        port: int,
        path: str,
        secret: str,
        lease: float = 30.0,
        sweep_every: float = 2.0,
    ) -> None:
        self._app = app
        self._secret = secret.encode()
        self._listen = listen
        self._port = port
        self._path = "/" + path.lstrip("/")
        self.inbox = Inbox(
            store,
            platform="telegram",
            owner=replica,
            handler=self._process,
            lease=lease,
            sweep_every=sweep_every,
        )
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the chosen one when started with port 0)."""
        return self._port

    async def start(self) -> None:
        """Listen for updates and start taking over orphaned ones."""
        server = web.Application(client_max_size=_MAX_BODY)
        server.router.add_post(self._path, self._receive)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._listen, self._port)
        await site.start()
        if self._port == 0 and self._runner.addresses:
            self._port = int(self._runner.addresses[0][1])
        self._sweeper = asyncio.create_task(self.inbox.run())

    async def stop_receiving(self) -> None:
        """Answer no more updates (Telegram re-sends them to another replica)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def finish(self, grace: float) -> None:
        """Wait for the updates being handled (``grace`` s), then hand back the rest."""
        await self.inbox.aclose(grace)

    async def _receive(self, request: web.Request) -> web.Response:
        """One POST from Telegram: check, store, answer."""
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            return web.Response(status=403)
        try:
            body = await request.text()
            data = json.loads(body)
            update_id = int(data["update_id"])
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text="not a Telegram update")
        try:
            await self.inbox.accept(update_id, body)
        except Exception:
            # Not stored: no 200, so Telegram delivers it again (here or elsewhere).
            log.warning("telegram: could not store update %d; not answered", update_id)
            return web.Response(status=503)
        return web.Response(status=200)

    async def _process(self, stored: InboundUpdate) -> None:
        """Hand one stored update to the PTB application's handlers."""
        update = Update.de_json(json.loads(stored.payload), self._app.bot)
        await self._app.process_update(update)
