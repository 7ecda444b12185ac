"""The EXPORT intent: submit a render and hand it to the render tracker.

The render is recorded in the store before it is sent, so a crash right after
the backend accepts it cannot lose the export; a submit whose outcome is unknown
(the connection broke after sending) is followed like an accepted one.

On a webhook replica the render's id is written on the stored update before the
render is recorded and sent (:meth:`core.inbox.Ticket.mark_sent`). If the replica
dies mid-submit, the one taking the update over never submits a second render (a
second charge): it follows the recorded one, which the backend either has (it is
delivered once) or answers "not found" for (the user is told the export never
reached it); a record that is gone was refused or never sent, so it exports anew.
"""

from __future__ import annotations

import logging

from core import inbox
from core.calls import BackendCalls
from core.client import NemoClient, new_render_id
from core.errors import ApiError, TransportError
from core.project import Project
from core.renders import RenderTracker
from core.replies import nudge, quietly
from core.request import Request
from core.wire import RenderState
from storage.base import RenderRecord, Store

__all__ = ["Exports"]

log = logging.getLogger("nemo.exports")


class Exports:
    """Starts exports; :class:`core.renders.RenderTracker` follows and delivers them."""

    def __init__(
        self,
        *,
        client: NemoClient,
        store: Store,
        calls: BackendCalls,
        project: Project,
        renders: RenderTracker,
    ) -> None:
        self._client = client
        self._store = store
        self._calls = calls
        self._project = project
        self._renders = renders

    async def export(self, req: Request) -> None:
        """The EXPORT intent."""
        ticket = inbox.current()
        cut = ticket.earlier(inbox.EXPORT) if ticket is not None else None
        if cut and await self._follow_cut(req, cut):
            return
        if self._renders.active_for(req.ident.session.session_id):
            await req.say("export_already")
            return
        state = await self._project.state(req)
        if not state.draft.is_exportable:
            await req.say("nothing_to_export")
            return
        ref = req.msg.ref()
        render = RenderRecord(
            render_id=new_render_id(),
            session_id=req.ident.session.session_id,
            platform=ref.platform,
            user_id=ref.user_id,
            chat_id=ref.chat_id,
            thread_id=ref.thread_id,
            reply_to=ref.reply_to,
            status=RenderState.SUBMITTING,
            summary=state.draft.summary(req.lang),
        )
        if ticket is not None:  # a replica taking this update over follows this render
            await ticket.mark_sent(inbox.EXPORT, render.render_id)
        try:
            # Recorded before it is sent: a crash right after the backend accepts it
            # must not lose the export (the next start finds the record and follows it).
            async with self._renders.submitting(render):
                accepted = await self._calls.call(
                    req,
                    lambda i: self._client.submit_render(
                        i.token, i.session.session_id, state.raw_draft, render_id=render.render_id
                    ),
                )
                if accepted != render.render_id:  # the backend chose the id (or ours was taken)
                    old_id, render.render_id = render.render_id, accepted
                    await self._store.add_render(render)
                    if ticket is not None:
                        await ticket.mark_sent(inbox.EXPORT, accepted)
                    await self._store.delete_render(old_id)
        except ApiError:
            await self._store.delete_render(render.render_id)  # refused: nothing started
            raise
        except TransportError as exc:
            if not exc.maybe_sent:
                await self._store.delete_render(render.render_id)
                raise
            # The backend may have accepted it: follow the record. A render it never
            # received answers 404, and the user is told to try again.
            log.warning("render submit outcome unknown; following %s", render.render_id)
            await quietly(req.progress(0))
            self._renders.follow(render, req.replier, req.lang)
            return
        render.status = RenderState.PENDING
        await self._store.update_render(render.render_id, status=RenderState.PENDING)
        await quietly(req.progress(0))
        nudge(req.replier.working("upload_video"))
        self._renders.follow(render, req.replier, req.lang)

    async def _follow_cut(self, req: Request, render_id: str) -> bool:
        """A replica died submitting ``render_id``: follow it; False if it was never sent."""
        render = await self._store.get_render(render_id)
        if render is None:  # refused, or the replica died before recording it
            log.info("an export cut by a lost replica had not started; exporting anew")
            return False
        log.info("an export cut by a lost replica: following %s instead of resubmitting", render_id)
        if render.delivered_at is None:
            # Whichever replica claims it follows and delivers it (once); the progress
            # message comes from that follower.
            self._renders.follow(render, req.replier, req.lang)
        return True
