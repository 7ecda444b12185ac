"""Assembling the core: store + NemoVideo client + conversation service, as one lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.client import NemoClient
from core.config import Settings
from core.renders import PollPolicy
from core.service import ConversationService
from storage.factory import make_store

__all__ = ["open_core"]


def _secret(settings: Settings) -> str | None:
    key = settings.nemo_secret_key
    return None if key is None else key.get_secret_value()


@asynccontextmanager
async def open_core(
    settings: Settings, *, poll_policy: PollPolicy | None = None
) -> AsyncIterator[ConversationService]:
    """Open the store (SQLite, or PostgreSQL for a URL) and the client; yield a ready service.

    Register adapters on the service, then call ``await service.start()`` to
    resume renders that were not delivered before the last stop.
    """
    async with (
        make_store(settings.db_target, secret_key=_secret(settings)) as store,
        NemoClient.from_settings(settings) as client,
    ):
        service = ConversationService(
            settings=settings, store=store, client=client, poll_policy=poll_policy
        )
        try:
            yield service
        finally:
            await service.aclose()
