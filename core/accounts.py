"""Who is who on the backend: tokens per chat user, sessions per user per chat.

Each chat user (platform, user id) owns one NemoVideo client id and token, so
credits follow the person; each (platform, user, chat) owns one session. The
backend limits anonymous tokens per client id and per IP, so tokens are never
minted freely: a client id is created once and kept, and a new token is asked
for only when there is none, it has expired, or the backend said 1001 — and at
most once a minute per user. When the backend refuses to create one (its per-IP
limit), nobody's token is asked for again until its ``Retry-After`` has passed: the
user is told when to try again (:class:`~core.errors.TokenRefusedError`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from weakref import WeakValueDictionary

from core.client import NemoClient
from core.errors import RateLimitedError, TokenExpiredError, TokenRefusedError
from core.language import DEFAULT, normalize
from storage.base import RenderRecord, SessionRecord, Store, UserRecord

__all__ = ["Accounts", "Identity", "RenderOwners", "renewing"]

T = TypeVar("T")

log = logging.getLogger("nemo.accounts")

#: Renew a little before the backend's expiry time.
_EXPIRY_MARGIN_S = 300.0
#: At most this many renewals per user per hour (the backend limits tokens per IP).
_MAX_RENEWALS_PER_HOUR = 5


async def renewing(
    token: str, call: Callable[[str], Awaitable[T]], renew: Callable[[str], Awaitable[str]]
) -> tuple[str, T]:
    """``call(token)``; if the backend rejects the token (1001), renew it once and call again.

    The one place that says "renew the token once after 1001": returns the token
    that worked (the caller keeps using it) and the call's result.
    """
    try:
        return token, await call(token)
    except TokenExpiredError:
        token = await renew(token)
        return token, await call(token)


@dataclass(slots=True)
class Identity:
    """A user's backend identity for one request: their token and this chat's session."""

    user: UserRecord
    token: str
    session: SessionRecord

    def __repr__(self) -> str:
        who = f"{self.user.platform}:{self.user.user_id}"
        return f"Identity(user={who}, session={self.session.session_id})"


class Accounts:
    """Maps chat users to NemoVideo tokens and sessions, kept in the store."""

    def __init__(
        self,
        *,
        store: Store,
        client: NemoClient,
        operator_token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._client = client
        self._operator_token = operator_token
        self._clock = clock
        # Weak values: a lock lives while someone holds or awaits it, so idle users cost nothing.
        self._user_locks: WeakValueDictionary[tuple[str, str], asyncio.Lock] = WeakValueDictionary()
        self._renewals: dict[tuple[str, str], deque[float]] = {}
        # The backend limits new tokens per IP address, i.e. for the whole bot.
        self._refused_until = 0.0
        self._session_locks: WeakValueDictionary[tuple[str, str, str], asyncio.Lock] = (
            WeakValueDictionary()
        )
        # First contacts and first sessions this process made a moment ago: a request that
        # races one of them finds it here instead of reading the store again.
        self._added_users: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._made_sessions: OrderedDict[tuple[str, str, str], SessionRecord] = OrderedDict()

    def _lock(self, platform: str, user_id: str) -> asyncio.Lock:
        return self._user_locks.setdefault((platform, user_id), asyncio.Lock())

    async def user(self, platform: str, user_id: str, language: str | None = None) -> UserRecord:
        """The stored user, created (with a fresh client id) on first contact.

        Creation is one atomic step in the store (:meth:`storage.base.Store.add_user`):
        two first messages arriving together, in this process or on two replicas, must
        not give one person two client ids (and two anonymous tokens).
        """
        user = await self._store.get_user(platform, user_id)
        if user is None:
            fresh = UserRecord(
                platform=platform,
                user_id=user_id,
                client_id=str(uuid.uuid4()),
                language=normalize(language),
            )
            user = await self._store.add_user(fresh)
            if user is fresh:
                _remember(self._added_users, (platform, user_id), True)
                return user
        if normalize(language) and normalize(language) != user.language:
            user.language = normalize(language)
            await self._store.save_user(user)
        return user

    async def token(self, user: UserRecord) -> str:
        """A usable token for the user: the operator's, the stored one, or a new anonymous one."""
        if self._operator_token:
            return self._operator_token
        if self._usable(user):  # as read for this request: no second read
            assert user.token is not None
            return user.token
        # None yet, or expiring: another request may be minting one right now. A user this
        # request has just added, with nobody holding the lock, has none to find.
        key = (user.platform, user.user_id)
        lock = self._lock(*key)
        just_added = self._added_users.pop(key, False) and not lock.locked()
        async with lock:
            fresh = user if just_added else await self._store.get_user(*key) or user
            if self._usable(fresh):
                assert fresh.token is not None
                user.token, user.backend_user_id = fresh.token, fresh.backend_user_id
                return fresh.token
            return await self._mint(user)

    def _usable(self, user: UserRecord) -> bool:
        """Whether the user's token is there and not about to expire.

        (A token revoked by the backend is found out by its 1001 answer: :meth:`renew`.)
        """
        expires = user.token_expires_at
        return bool(user.token) and (expires is None or expires - _EXPIRY_MARGIN_S > self._clock())

    async def renew(self, user: UserRecord, rejected: str) -> str:
        """A new token after the backend rejected ``rejected`` (1001); rate-limited per user."""
        if self._operator_token:
            raise TokenExpiredError(1001, "the operator token (NEMO_TOKEN) was rejected")
        async with self._lock(user.platform, user.user_id):
            fresh = await self._store.get_user(user.platform, user.user_id) or user
            if fresh.token and fresh.token != rejected:
                user.token = fresh.token  # another request already renewed it
                return fresh.token
            now = self._clock()
            recent = self._renewals.setdefault((user.platform, user.user_id), deque())
            while recent and now - recent[0] > 3600:
                recent.popleft()
            if len(recent) >= _MAX_RENEWALS_PER_HOUR:
                raise TokenExpiredError(1001, "too many token renewals for this user")
            recent.append(now)
            return await self._mint(user)

    async def with_token(
        self, user: UserRecord, token: str, call: Callable[[str], Awaitable[T]]
    ) -> tuple[str, T]:
        """``call(token)``, renewing the user's token once after a 1001 (see :func:`renewing`)."""
        return await renewing(token, call, lambda rejected: self.renew(user, rejected))

    async def _mint(self, user: UserRecord) -> str:
        wait = self._refused_until - self._clock()
        if wait > 0:  # refused a moment ago: don't ask again before the backend said to
            raise TokenRefusedError(429, "new tokens refused a moment ago", retry_after=wait)
        try:
            anon = await self._client.anonymous_token(user.client_id)
        except RateLimitedError as exc:
            self._refused_until = self._clock() + exc.retry_after
            log.warning(
                "the backend refused a new anonymous token (its limit of tokens per IP "
                "address); not asking again for %.0f s. One NEMO_TOKEN with per-user limits "
                "avoids this (README, 'Accounts and limits')",
                exc.retry_after,
            )
            raise TokenRefusedError(
                exc.code, exc.message, status=exc.status, retry_after=exc.retry_after
            ) from exc
        user.token = anon.token
        user.backend_user_id = anon.user_id
        user.token_expires_at = anon.expires_at
        user.token_minted_at = self._clock()
        await self._store.save_user(user)
        log.info("anonymous token issued for %s user", user.platform)
        return anon.token

    async def session(
        self, user: UserRecord, chat_id: str, token: str, language: str | None
    ) -> SessionRecord:
        """The session of this user in this chat, created once on first use."""
        existing = await self._store.get_session(user.platform, user.user_id, chat_id)
        if existing is not None:
            return existing
        key = (user.platform, user.user_id, chat_id)
        async with self._session_locks.setdefault(key, asyncio.Lock()):
            # Made by a request that held the lock meanwhile (the store had none a moment
            # ago, and sessions are never deleted).
            made = self._made_sessions.get(key)
            if made is not None:
                return made
            return await self.new_session(user, chat_id, token, language)

    async def replace_session(
        self, user: UserRecord, chat_id: str, token: str, language: str | None, *, lost: str
    ) -> tuple[SessionRecord, bool]:
        """A new session after the backend lost ``lost``; True if this call made it.

        Several requests of one chat may notice the loss at once (status does not
        queue behind a chat turn): only the first makes a new session, the others
        get that one, so no work lands in an orphaned project.
        """
        key = (user.platform, user.user_id, chat_id)
        async with self._session_locks.setdefault(key, asyncio.Lock()):
            current = await self._store.get_session(user.platform, user.user_id, chat_id)
            if current is not None and current.session_id != lost:
                return current, False
            return await self.new_session(user, chat_id, token, language), True

    async def new_session(
        self, user: UserRecord, chat_id: str, token: str, language: str | None
    ) -> SessionRecord:
        """Start a fresh backend session (a new project) for this user in this chat.

        A new project has an empty timeline, so its draft is known (``""``, empty)
        from the start: the first turn compares with it without reading the state
        first (one backend call and one write fewer before a new user's first stream).
        """
        info = await self._client.create_session(token, language=normalize(language) or DEFAULT)
        record = SessionRecord(
            platform=user.platform,
            user_id=user.user_id,
            chat_id=chat_id,
            session_id=info.session_id,
            task_id=info.task_id,
            draft_json="",
        )
        await self._store.save_session(record)
        _remember(self._made_sessions, (user.platform, user.user_id, chat_id), record)
        return record


#: How many recent first contacts / new sessions :class:`Accounts` keeps in memory.
_RECENT = 4096


def _remember(recent: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    recent[key] = value
    recent.move_to_end(key)
    if len(recent) > _RECENT:
        recent.popitem(last=False)


class RenderOwners:
    """Who a render belongs to, for the render tracker: their token and their language."""

    def __init__(self, accounts: Accounts, store: Store) -> None:
        self._accounts = accounts
        self._store = store

    async def token(self, render: RenderRecord) -> str:
        """A usable token of the render's owner."""
        return await self._accounts.token(await self._user(render))

    async def renew(self, render: RenderRecord, rejected: str) -> str:
        """A new token after the backend rejected ``rejected`` while polling."""
        return await self._accounts.renew(await self._user(render), rejected)

    async def language(self, render: RenderRecord) -> str | None:
        """The owner's language, if they are known (a delivery after a restart uses it)."""
        user = await self._store.get_user(render.platform, render.user_id)
        return user.language if user else None

    async def _user(self, render: RenderRecord) -> UserRecord:
        return await self._accounts.user(render.platform, render.user_id)
