"""One message being handled: who asks, where to answer, and in which language.

A :class:`Request` speaks in the user's language, so a reply is one call at its
call site (``await req.say("uploaded", files=...)``) instead of translating and
sending by hand each time. Its language is the platform's guess until the user
is known, then the language stored for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.accounts import Identity
from core.i18n import t
from core.types import Action, IncomingMessage, Replier

__all__ = ["Request"]


@dataclass(slots=True)
class Request:
    """One incoming message, the replier to answer it with, and (once known) the identity."""

    msg: IncomingMessage
    replier: Replier
    lang: str | None = None
    _ident: Identity | None = None
    outcome: str = "ok"
    """How the request ended, for /stats: ok, refused, limited, busy, error or unexpected."""
    error: str | None = None
    """The backend's error code (or ``transport``) when it failed."""

    @classmethod
    def of(cls, msg: IncomingMessage, replier: Replier) -> Request:
        """A request that speaks the language the platform reported."""
        return cls(msg, replier, msg.language)

    @property
    def ident(self) -> Identity:
        """The user's token and this chat's session (set by the service before any intent)."""
        if self._ident is None:
            raise RuntimeError("the request has no identity yet")
        return self._ident

    @ident.setter
    def ident(self, ident: Identity) -> None:
        self._ident = ident
        self.lang = ident.user.language or self.lang

    def fail(self, outcome: str, error: str | None = None) -> None:
        """Record that the request did not get what it asked for (see :attr:`outcome`)."""
        self.outcome, self.error = outcome, error

    def words(self, key: str, **values: object) -> str:
        """The text ``key`` in the user's language (see :mod:`core.i18n`)."""
        return t(key, self.lang, **values)

    async def say(
        self,
        key: str,
        *,
        actions: Sequence[Action] = (),
        private: bool = False,
        **values: object,
    ) -> None:
        """Send the text ``key`` in the user's language."""
        await self.replier.send_text(self.words(key, **values), actions=actions, private=private)

    async def progress(self, percent: int) -> None:
        """Show the export's progress message at ``percent``."""
        await self.replier.progress(self.words("export_started", percent=percent), percent)
