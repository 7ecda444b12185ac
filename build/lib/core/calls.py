"""Backend calls on behalf of one request, recovering a lost token or session once.

A 1001 (token rejected) renews the user's token through
:meth:`core.accounts.Accounts.renew`; a 1002 (session lost) replaces the chat's
session and tells the user the timeline starts fresh. Either way the call is
tried exactly once more.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from core.accounts import Accounts, Identity
from core.client import NemoClient
from core.errors import NemoError, SessionNotFoundError, TokenExpiredError
from core.events import ChatEvent
from core.request import Request

__all__ = ["BackendCalls"]

T = TypeVar("T")


class BackendCalls:
    """Runs backend calls with the request's identity, repairing it once if it broke."""

    def __init__(self, *, accounts: Accounts, client: NemoClient) -> None:
        self._accounts = accounts
        self._client = client

    async def call(self, req: Request, call: Callable[[Identity], Awaitable[T]]) -> T:
        """One backend call, retried once after renewing the token or the session."""
        try:
            return await call(req.ident)
        except (TokenExpiredError, SessionNotFoundError) as exc:
            await self._recover(req, exc)
            return await call(req.ident)

    async def events(self, req: Request, text: str) -> AsyncGenerator[ChatEvent, None]:
        """The chat stream of ``text``; a 1001/1002 before the first event is recovered once."""
        for attempt in (1, 2):
            ident = req.ident
            chat = self._client.chat(ident.token, ident.session.session_id, text)
            async with contextlib.aclosing(chat) as stream:
                try:
                    first = await anext(stream)
                except StopAsyncIteration:
                    return
                except (TokenExpiredError, SessionNotFoundError) as exc:
                    if attempt == 2:
                        raise
                    await self._recover(req, exc)
                    continue
                yield first
                async for event in stream:
                    yield event
                return

    async def _recover(self, req: Request, exc: NemoError) -> None:
        """Fix what a 1001 or 1002 broke, so the call can be tried once more."""
        ident = req.ident
        if isinstance(exc, TokenExpiredError):
            ident.token = await self._accounts.renew(ident.user, ident.token)
        elif isinstance(exc, SessionNotFoundError):
            ident.session, made = await self._accounts.replace_session(
                ident.user, req.msg.chat_id, ident.token, req.lang, lost=ident.session.session_id
            )
            if made:
                await req.say("session_fresh")
        else:
            raise exc
