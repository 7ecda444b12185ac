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
import logging

from core.accounts import Accounts
from core.admin import Admin
from core.config import Settings
from core.dispatch import Dispatcher
from core.gate import SessionBusy, SessionGate, SessionKey
from core.language import resolve as resolve_language
from core.lease_gate import QueueFull
from core.limits import Limits
from core.logs import mask_id
from core.metrics import Metrics
from core.renders import RenderTracker
from core.replies import quietly
from core.request import Request
from core.router import route, slash_command
from core.turns import Ticket, Turns
from core.types import ChatAdapter, IncomingMessage, Intent, Replier
from storage.base import Store

__all__ = ["ConversationService"]

log = logging.getLogger("nemo.service")

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
        dispatch: Dispatcher,
        renders: RenderTracker,
        metrics: Metrics,
        admin: Admin,
        turns: Turns,
        limits: Limits,
    ) -> None:
        self.settings = settings
        self._store = store
        self.accounts = accounts
        self.gate = gate
        self._dispatch = dispatch
        self.renders = renders
        self.metrics = metrics
        self.admin = admin
        self.turns = turns
        self._limits = limits
        self._adapters: dict[str, ChatAdapter] = {}
        admin.use(self._adapters)  # the same dict: adapters registered later count too

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
        resumed = await self.renders.start(self._adapters, adopt_every=adopt_every)
        await self.admin.resume()  # broadcasts a stop interrupted
        return resumed

    async def wait_idle(self) -> None:
        """Wait for every render in flight to be delivered (the one-shot CLI uses this)."""
        await self.renders.wait_idle()
        await self.admin.wait_idle()

    async def aclose(self) -> None:
        """Stop background work; undelivered renders and broadcasts resume at the next start."""
        await self.admin.aclose()
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
            if not await self._limits.admit(req, intent):
                req.fail("limited")
                return
            # The line's check comes last: from it to the turn's entry nothing awaits,
            # so requests arriving together in this process cannot all pass it.
            if intent in _EXCLUSIVE and not await self._limits.may_wait(req, self.turns, intent):
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
                ticket.key,
                msg.seq,
                on_wait=lambda: self.turns.waits(ticket),
                on_place=lambda ahead: self.turns.placed(ticket, ahead),
            ):
                self.turns.starts(ticket)
                await self._guarded(req, ticket.intent)
        except QueueFull:  # NEMO_LIMIT_QUEUE, counted across replicas by the store gate
            req.fail("limited")
            await self._limits.queue_full(req, ticket.intent)
        except SessionBusy:
            req.fail("busy")
            await req.say("busy", private=True)

    async def _guarded(self, req: Request, intent: Intent) -> None:
        """Run the intent's handler (:mod:`core.dispatch`); never raises a backend failure."""
        await self._dispatch.run(req, intent)
