"""The CANCEL intent: stop what the bot is doing for this user in this chat.

"cancel", "stop", ``/cancel``, 取消, 停止 (every language's phrases, see
``core/locales``) or the Cancel button under a running reply:

1. the session's **waiting** requests are dropped (their queue notices say so);
2. its **running** chat request (or upload) is stopped: its task is cancelled,
   which closes the backend's stream; the reply shown so far ends cut;
3. an **export** still being followed is stopped: it will not be delivered (in any
   replica: the render is marked done in the store) and the backend is asked to
   cancel the render.

The backend may already have applied part of a stopped edit, so the timeline is
read again and the user is told what changed, if anything. Nothing to cancel
is said plainly. A cancel never waits for the session's turn.
"""

from __future__ import annotations

import asyncio
import logging

from core.accounts import Identity
from core.calls import BackendCalls
from core.client import NemoClient
from core.draft import Draft, diff_drafts, unchanged
from core.errors import ApiError, TransportError
from core.gate import SessionKey
from core.metrics import Metrics
from core.project import Project
from core.renders import RenderTracker
from core.request import Request
from core.turns import TicketState, Turns, stop_all
from core.types import DEFAULT_ACTIONS, Intent
from core.wire import RenderState
from storage.base import Store

__all__ = ["CANCELLED_BY_USER", "Canceller"]

log = logging.getLogger("nemo.cancel")

#: The error stored on a render the user cancelled (for operators; never shown).
CANCELLED_BY_USER = "cancelled by the user"
#: The delivery owner a cancel claims a render as, so no replica delivers it.
_CANCEL_OWNER = "cancel"
#: What a cancel stops when it runs: a chat turn (an upload ends in one too).
_STOPPABLE = frozenset({Intent.CHAT, Intent.UPLOAD})


class Canceller:
    """Stops a session's running and waiting requests and the export it follows."""

    def __init__(
        self,
        *,
        turns: Turns,
        store: Store,
        client: NemoClient,
        calls: BackendCalls,
        project: Project,
        renders: RenderTracker,
        metrics: Metrics,
    ) -> None:
        self._turns = turns
        self._store = store
        self._client = client
        self._calls = calls
        self._project = project
        self._renders = renders
        self._metrics = metrics

    async def cancel(self, req: Request) -> None:
        """The CANCEL intent (see the module docstring)."""
        msg = req.msg
        line = self._turns.line(SessionKey(msg.platform, msg.user_id, msg.chat_id))
        # The waiting ones first: stopping the running one would let the next one start.
        dropped = stop_all(line, when=lambda t: t.state is TicketState.WAITING)
        stopped = stop_all(
            line, when=lambda t: t.state is TicketState.RUNNING and t.intent in _STOPPABLE
        )
        tasks = [t.task for t in dropped + stopped if t.task is not None]
        if tasks:
            await asyncio.wait(tasks)
        export = await self._stop_export(req)
        parts: list[str] = []
        if stopped:
            parts.append(req.words("cancel_chat", outcome=await self._outcome(req)))
        if dropped:
            one = len(dropped) == 1
            parts.append(
                req.words("cancel_queued_one")
                if one
                else req.words("cancel_queued", count=len(dropped))
            )
        if export:
            parts.append(req.words("cancel_export"))
        for what, done in (("chat", stopped), ("queued", dropped), ("export", export)):
            if done:
                self._metrics.cancels.labels(what=what).inc()
        if not parts:
            await req.say("cancel_nothing")
            return
        log.info("cancelled: running=%d waiting=%d export=%s", len(stopped), len(dropped), export)
        await req.replier.send_text("\n".join(parts), actions=DEFAULT_ACTIONS if stopped else ())

    async def _outcome(self, req: Request) -> str:
        """What the stopped turn left in the timeline, as read now."""
        before: Draft | None = (
            self._project.stored_draft(req) if self._project.knows_draft(req) else None
        )
        try:
            after = (await self._project.state(req)).draft
        except (ApiError, TransportError) as exc:
            log.warning("could not read the state after a cancel (%s)", type(exc).__name__)
            return req.words("outcome_unknown")
        changes = diff_drafts(before, after, req.lang) if before is not None else []
        if changes:
            return req.words("outcome_changed", changes="\n".join(changes))
        if before is None:
            return req.words("timeline_now", summary=after.summary(req.lang))
        if not unchanged(before, after):
            return req.words("changes_hidden")
        return req.words("outcome_pending")

    async def _stop_export(self, req: Request) -> bool:
        """Stop following this session's undelivered export; True if there was one."""
        session_id = req.ident.session.session_id
        found = False
        for render in await self._store.undelivered_renders():
            if render.session_id != session_id:
                continue
            # Claimed and marked delivered: no replica (nor the next start) delivers it.
            if not await self._store.claim_delivery(render.render_id, owner=_CANCEL_OWNER):
                continue  # being delivered right now: too late to take it back
            await self._store.update_render(
                render.render_id, status=RenderState.FAILED, error=CANCELLED_BY_USER
            )
            await self._store.mark_delivered(render.render_id, owner=_CANCEL_OWNER)
            self._renders.stop(render.render_id)
            found = True
            if render.status in (RenderState.COMPLETED, RenderState.FAILED):
                continue  # the backend is done with it: nothing to cancel there
            try:
                await self._cancel_render(req, render.render_id)
            except (ApiError, TransportError) as exc:
                # Not delivered either way; the backend may still finish it (credits spent).
                log.warning("render %s: backend cancel failed (%s)", render.render_id, exc)
        return found

    async def _cancel_render(self, req: Request, render_id: str) -> None:
        async def cancel(ident: Identity) -> None:
            await self._client.cancel_render(ident.token, render_id)

        await self._calls.call(req, cancel)
