"""The EXPORT intent: submit a render and hand it to the render tracker.

The render is recorded in the store before it is sent, so a crash right after
the backend accepts it cannot lose the export; a submit whose outcome is unknown
(the connection broke after sending) is followed like an accepted one.
"""

from __future__ import annotations

import logging

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
        # Recorded before it is sent: a crash right after the backend accepts it must
        # not lose the export (the next start finds the record and follows it).
        await self._store.add_render(render)
        try:
            accepted = await self._calls.call(
                req,
                lambda i: self._client.submit_render(
                    i.token, i.session.session_id, state.raw_draft, render_id=render.render_id
                ),
            )
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
        if accepted != render.render_id:  # the backend chose the id (or ours was taken)
            old_id, render.render_id = render.render_id, accepted
            await self._store.add_render(render)
            await self._store.delete_render(old_id)
        render.status = RenderState.PENDING
        await self._store.update_render(render.render_id, status=RenderState.PENDING)
        await quietly(req.progress(0))
        nudge(req.replier.working("upload_video"))
        self._renders.follow(render, req.replier, req.lang)
