"""Running one intent once its turn has come: who asks, then the intent's handler.

The :class:`Dispatcher` finds the user (and, for intents about this chat's project,
their token and session, renewing a rejected token once), hands the
:class:`~core.request.Request` to the intent's handler and turns every backend
failure into friendly words (:mod:`core.explain`). The door that decides *whether*
and *when* a request runs is :mod:`core.service`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from core.accounts import Accounts, Identity
from core.cancel import Canceller
from core.errors import ApiError, TokenRefusedError, TransportError
from core.explain import Explainer
from core.exports import Exports
from core.history import History
from core.metrics import Metrics
from core.project import Project
from core.relay import ChatRelay
from core.request import Request
from core.types import Intent
from core.uploads import Uploads
from storage.base import UserRecord

__all__ = ["Dispatcher", "IntentHandler", "UserHandler"]

#: What runs one intent, once the request knows who asks.
IntentHandler = Callable[[Request], Awaitable[None]]

#: What runs an intent that needs only the user (no session of this chat).
UserHandler = Callable[[Request, UserRecord], Awaitable[None]]


class Dispatcher:
    """Runs a request's intent with the user's identity; explains what fails."""

    def __init__(
        self,
        *,
        accounts: Accounts,
        explainer: Explainer,
        project: Project,
        relay: ChatRelay,
        uploads: Uploads,
        exports: Exports,
        history: History,
        canceller: Canceller,
        metrics: Metrics,
    ) -> None:
        self._accounts = accounts
        self._explainer = explainer
        self._project = project
        self._history = history
        self._metrics = metrics
        self.handlers: dict[Intent, IntentHandler] = {
            Intent.CHAT: relay.chat_intent,
            Intent.UPLOAD: uploads.upload,
            Intent.EXPORT: exports.export,
            Intent.STATUS: project.status,
            Intent.NEW: project.new,
            Intent.RESEND: history.resend,
            Intent.CANCEL: canceller.cancel,
        }
        # Intents about the person's projects, not this chat's: no session needed.
        self._user_handlers: dict[Intent, UserHandler] = {
            Intent.PROJECTS: history.projects,
            Intent.OPEN: history.open,
        }

    async def run(self, req: Request, intent: Intent) -> None:
        """Run ``intent``'s handler for ``req``; every backend failure becomes words."""
        """Run the intent's handler; turn every backend failure into a friendly message."""
        msg = req.msg
        try:
            user = await self._accounts.user(msg.platform, msg.user_id, msg.language)
            req.lang = user.language
            if intent in self._user_handlers:  # the store knows: no backend call
                await self._user_handlers[intent](req, user)
                return
            token = await self._accounts.token(user)
            if intent is Intent.CREDITS:  # credits follow the person: no project needed
                await self._project.credits(req, user, token)
                return
            # Without the renewal a stored (revoked) token would fail every request
            # until it expired by the clock.
            session_of = functools.partial(
                self._accounts.session, user, msg.chat_id, language=user.language
            )
            token, session = await self._accounts.with_token(user, token, session_of)
            req.ident = Identity(user, token, session)
            if intent is Intent.CHAT:  # the first prompt names the project
                await self._history.note_prompt(req)
            await self.handlers[intent](req)
        except ApiError as exc:
            req.fail("error", str(exc.code))
            self._metrics.error("token_refused" if isinstance(exc, TokenRefusedError) else exc.code)
            text = await self._explainer.explain(req, intent, exc)
            await req.replier.send_text(text, private=True)
        except TransportError:
            self._metrics.error("transport")
            req.fail("error", "transport")
            await req.say("network", private=True)
