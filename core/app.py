"""Assembling the core: store + NemoVideo client + conversation service, as one lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.client import NemoClient
from core.config import Settings
from core.renders import PollPolicy
from core.service import ConversationService
from storage.sqlite import SQLiteStore

__all__ = ["open_core"]


@asynccontextmanager
async def open_core(
    settings: Settings, *, poll_policy: PollPolicy | None = None
) -> AsyncIterator[ConversationService]:
    """Open the SQLite store and the NemoVideo client; yield a ready service.

    Register adapters on the service, then call ``await service.start()`` to
    resume renders that were not delivered before the last stop.
    """
    async with (
        SQLiteStore(settings.nemo_bot_db) as store,
        NemoClient.from_settings(settings) as client,
    ):
        service = ConversationService(
            settings=settings, store=store, client=client, poll_policy=poll_policy
        )
        try:
            yield service
        finally:
            await service.aclose()
