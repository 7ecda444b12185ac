"""The conversation service: one entry point for every chat platform.

``await service.handle(message, replier)`` checks the allowlist, routes the
message (:mod:`core.router`), waits for the session's turn (:mod:`core.gate`),
finds the user's token and session (:mod:`core.accounts`) and hands the
:class:`~core.request.Request` to the intent's handler: the chat relay
(:mod:`core.relay`), uploads (:mod:`core.uploads`), exports (:mod:`core.exports`)
the project's timeline and credits (:mod:`core.project`), or the user's history
(:mod:`core.history`). It never raises:
every failure becomes a friendly message (:mod:`core.explain`), and nothing the
user sent is lost.

Concurrency: one request per session runs at a time. A request that arrives
while its session is busy is **queued** (its place in line is shown and kept up
to date, :mod:`core.turns`) rather than refused; past the gate's limit the user
is asked to wait. Read-only requests (status, credits, help) and cancel
(:mod:`core.cancel`) never wait. Different users and chats run fully in
parallel; there is no global lock. The operator's limits (:mod:`core.limits`)
are checked before a request takes its place in line.

The collaborators are built in one place, :func:`core.app.build_service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

from core.accounts import Accounts, Identity
from core.admin import Admin
from core.cancel import Canceller
from core.config import Settings
from core.errors import ApiError, TokenRefusedError, TransportError
from core.explain import Explainer
from core.exports import Exports
from core.gate import SessionBusy, SessionGate, SessionKey
from core.history import History
from core.language import resolve as resolve_language
from core.limits import Limits
from core.logs import mask_id
from core.metrics import Metrics
from core.project import Project
from core.relay import ChatRelay
from core.renders import RenderTracker
from core.replies import quietly
from core.request import Request
from core.router import route, slash_command
from core.turns import Ticket, Turns
from core.types import ChatAdapter, IncomingMessage, Intent, Replier
from core.uploads import Uploads
from storage.base import Store, UserRecord

__all__ = ["ConversationService", "IntentHandler", "UserHandler"]

log = logging.getLogger("nemo.service")

#: What runs one intent, once the request knows who asks.
IntentHandler = Callable[[Request], Awaitable[None]]

#: What runs an intent that needs only the user (no session of this chat).
UserHandler = Callable[[Request, UserRecord], Awaitable[None]]

#: The admins' commands (NEMO_ADMIN_USERS); anyone else is told they are unknown.
_ADMIN = frozenset({Intent.STATS, Intent.BROADCAST})

#: Intents that change the session, so wait for its turn; the others only read.
_EXCLUSIVE = frozenset({Intent.CHAT, Intent.UPLOAD, Intent.EXPORT, Intent.NEW, Intent.OPEN})


class ConversationService:
    """Routes chat messages to NemoVideo and answers through the adapter."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        accounts: Accounts,
        gate: SessionGate,
        explainer: Explainer,
        project: Project,
        relay: ChatRelay,
        uploads: Uploads,
        exports: Exports,
        renders: RenderTracker,
        metrics: Metrics,
        history: History,
        admin: Admin,
        turns: Turns,
        canceller: Canceller,
        limits: Limits,
    ) -> None:
        self.settings = settings
        self._store = store
        self.accounts = accounts
        self.gate = gate
        self._explainer = explainer
        self._project = project
        self.renders = renders
        self.metrics = metrics
        self._history = history
        self.admin = admin
        self.turns = turns
        self._limits = limits
        self._adapters: dict[str, ChatAdapter] = {}
        admin.use(self._adapters)  # the same dict: adapters registered later count too
        self._adopter: asyncio.Task[None] | None = None
        self._handlers: dict[Intent, IntentHandler] = {
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

    # ----------------------------------------------------------------- lifecycle

    @property
    def store(self) -> Store:
        """Where the service keeps its state (the health check pings it)."""
        return self._store

    @property
    def shared(self) -> bool:
        """Whether other replicas share the store (turns, renders and budgets go through it)."""
        return self.renders.shared

    def register_adapter(self, adapter: ChatAdapter) -> None:
        """Let the service deliver finished renders to ``adapter``'s platform."""
        self._adapters[adapter.platform] = adapter

    async def start(self, *, adopt_every: float = 5.0) -> int:
        """Resume renders that were not delivered before the last stop; returns how many.

        When replicas share the store, keep taking over (every ``adopt_every`` s) the
        renders of replicas that died, until :meth:`aclose`.
        """
        resumed = await self.renders.resume(self._adapters)
        if self.renders.shared and self._adopter is None:
            self._adopter = asyncio.create_task(
                self.renders.keep_adopting(self._adapters, adopt_every)
            )
        await self.admin.resume()  # broadcasts a stop interrupted
        return resumed

    async def wait_idle(self) -> None:
        """Wait for every render in flight to be delivered (the one-shot CLI uses this)."""
        await self.renders.wait_idle()
        await self.admin.wait_idle()

    async def aclose(self) -> None:
        """Stop background work; undelivered renders and broadcasts resume at the next start."""
        await self.admin.aclose()
        if self._adopter is not None:
            self._adopter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._adopter
            self._adopter = None
        await self.renders.aclose()

    # ------------------------------------------------------------------ the door

    async def handle(self, msg: IncomingMessage, replier: Replier) -> None:
        """Answer one message. Never raises."""
        msg = resolve_language(msg)  # the platform's language, else the text's
        req = Request.of(msg, replier)
        try:
            await self._handle(req)
        finally:
            await self.admin.after(req)  # for /stats; never raises

    async def _handle(self, req: Request) -> None:
        msg = req.msg
        try:
            if not self.settings.is_allowed(msg.user_id, msg.chat_id):
                req.fail("refused")
                await req.say("not_allowed", private=True)
                return
            intent = msg.intent or route(msg.text, has_attachments=bool(msg.attachments))
            log.info(
                "request platform=%s user=%s intent=%s",
                msg.platform,
                mask_id(msg.user_id),
                intent.value,
            )
            self.metrics.requests.labels(platform=msg.platform, intent=intent.value).inc()
            if intent in (Intent.HELP, Intent.START):
                text = req.words("welcome" if intent is Intent.START else "help")
                if intent is Intent.HELP and self.admin.is_admin(msg):  # theirs alone
                    text += "\n\n" + req.words("help_admin")
                await req.replier.send_text(text)
                return
            if intent in _ADMIN:
                if not self.admin.is_admin(msg):  # nobody else learns these exist
                    command = slash_command(msg.text) or "/" + intent.value
                    await req.say("unknown_command", command=command)
                    return
                user = await self.accounts.user(msg.platform, msg.user_id, msg.language)
                req.lang = user.language
                await (self.admin.stats if intent is Intent.STATS else self.admin.broadcast)(req)
                return
            if intent is Intent.UNKNOWN:  # not ours: the backend would take it for a prompt
                await req.say("unknown_command", command=slash_command(msg.text) or msg.text)
                return
            if intent is Intent.CHAT and not msg.text.strip():
                await req.say("empty_message")
                return
            if intent in _EXCLUSIVE and not await self._limits.may_wait(req, self.turns):
                req.fail("limited")
                return
            if not await self._limits.admit(req, intent):
                req.fail("limited")
                return
            if intent in _EXCLUSIVE:
                await self._in_turn(req, intent)
            else:
                await self._guarded(req, intent)
        except Exception:
            log.exception("unexpected error while handling a %s message", msg.platform)
            req.fail("unexpected")
            await quietly(req.say("unexpected"))

    async def _in_turn(self, req: Request, intent: Intent) -> None:
        """Run a session-changing intent when the session's turn comes.

        It runs in a task of its own, known to :class:`~core.turns.Turns`, so a
        cancel can stop it (waiting or running) without stopping the adapter's task.
        """
        msg = req.msg
        key = SessionKey(msg.platform, msg.user_id, msg.chat_id)
        ticket = self.turns.enter(key, req, intent)
        try:
            task = ticket.task = asyncio.create_task(self._turn(ticket))
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if ticket.cancelled and current is not None and not current.cancelling():
                    return  # the user's cancel: it says what it stopped
                raise
        finally:
            self.turns.leave(ticket)

    async def _turn(self, ticket: Ticket) -> None:
        req, msg = ticket.req, ticket.req.msg
        try:
            async with self.gate.hold(
                ticket.key, msg.seq, on_wait=lambda: self.turns.waits(ticket)
            ):
                self.turns.starts(ticket)
                await self._guarded(req, ticket.intent)
        except SessionBusy:
            req.fail("busy")
            await req.say("busy", private=True)

    async def _guarded(self, req: Request, intent: Intent) -> None:
        """Run the intent's handler; turn every backend failure into a friendly message."""
        msg = req.msg
        try:
            user = await self.accounts.user(msg.platform, msg.user_id, msg.language)
            req.lang = user.language
            if intent in self._user_handlers:  # the store knows: no backend call
                await self._user_handlers[intent](req, user)
                return
            token = await self.accounts.token(user)
            if intent is Intent.CREDITS:  # credits follow the person: no project needed
                await self._project.credits(req, user, token)
                return
            # Without the renewal a stored (revoked) token would fail every request
            # until it expired by the clock.
            session_of = functools.partial(
                self.accounts.session, user, msg.chat_id, language=user.language
            )
            token, session = await self.accounts.with_token(user, token, session_of)
            req.ident = Identity(user, token, session)
            if intent is Intent.CHAT:  # the first prompt names the project
                await self._history.note_prompt(req)
            await self._handlers[intent](req)
        except ApiError as exc:
            req.fail("error", str(exc.code))
            self.metrics.error("token_refused" if isinstance(exc, TokenRefusedError) else exc.code)
            text = await self._explainer.explain(req, intent, exc)
            await req.replier.send_text(text, private=True)
        except TransportError:
            self.metrics.error("transport")
            req.fail("error", "transport")
            await req.say("network", private=True)
