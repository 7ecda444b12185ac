"""A user's history: their recent projects, switching back to one, sending a video again.

Every backend session a user gets is remembered by the store as a project
(:meth:`storage.base.Store.save_session`); the first prompt the user writes in it
becomes its title (:meth:`History.note_prompt`). ``my projects`` lists them, most
recently used first, numbered; ``open N`` makes project N this chat's current
project again (the next prompt edits it); ``send it again`` re-sends the current
project's last finished video without rendering it again (the file where it fits
the platform, else the link, exactly as a fresh export is delivered).

The backend's links to finished videos expire. Before re-sending, the stored link
is tried; when the file host refuses it (403, 404, 410...) or cannot be reached,
a fresh link is read from the render's status (the same call that follows an
export) and stored. When the backend has none either, the user is told plainly and
offered an export instead: never a dead link.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from core.calls import BackendCalls
from core.client import NemoClient
from core.errors import NemoError
from core.request import Request
from core.types import Action, Video
from core.wire import RenderState
from storage.base import ProjectRecord, SessionRecord, Store, UserRecord

__all__ = ["History", "title_of"]

log = logging.getLogger("nemo.history")

#: How many projects ``my projects`` lists (``open N`` counts in the same list).
LIST_LIMIT = 10
#: A title is the start of the first prompt, cut to this many characters.
TITLE_CHARS = 60

_NUMBER = re.compile(r"(\d{1,4})\s*$")


def title_of(prompt: str) -> str:
    """The project title a prompt gives: its first line, whitespace tidied, cut short."""
    line = " ".join(prompt.strip().splitlines()[0].split()) if prompt.strip() else ""
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def _date(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


class History:
    """The ``my projects``, ``open N`` and ``send it again`` intents."""

    def __init__(
        self,
        *,
        store: Store,
        client: NemoClient,
        calls: BackendCalls,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._client = client
        self._calls = calls
        self._clock = clock

    async def note_prompt(self, req: Request) -> None:
        """Name the current project after this prompt if it has no name yet."""
        title = title_of(req.msg.text)
        if title:
            s = req.ident.session
            await self._store.title_project(s.platform, s.user_id, s.session_id, title)

    async def projects(self, req: Request, user: UserRecord) -> None:
        """List the user's recent projects, numbered, the current one marked."""
        found = await self._store.list_projects(user.platform, user.user_id, limit=LIST_LIMIT)
        if not found:
            await req.say("projects_none")
            return
        current = await self._current(req, user)
        lines = [self._line(req, n, p, current) for n, p in enumerate(found, start=1)]
        await req.say("projects_list", items="\n".join(lines))

    async def open(self, req: Request, user: UserRecord) -> None:
        """Make project N (from ``my projects``) this chat's current project."""
        match = _NUMBER.search(req.msg.text)
        if match is None:
            await req.say("open_which")
            return
        number = int(match[1])
        found = await self._store.list_projects(user.platform, user.user_id, limit=LIST_LIMIT)
        if not 1 <= number <= len(found):
            await req.say("open_missing", number=number)
            return
        chosen = found[number - 1]
        title = chosen.title or req.words("project_untitled")
        if chosen.session_id == await self._current(req, user):
            await req.say("project_already", number=number, title=title)
            return
        # draft_json None: the next turn reads the project's timeline afresh before diffing.
        await self._store.save_session(
            SessionRecord(
                platform=user.platform,
                user_id=user.user_id,
                chat_id=req.msg.chat_id,
                session_id=chosen.session_id,
                task_id=chosen.task_id,
            )
        )
        await req.say("project_opened", number=number, title=title)

    async def resend(self, req: Request) -> None:
        """Send the current project's last finished video again, without rendering."""
        render = await self._store.last_video(req.ident.session.session_id)
        if render is None or not render.output_url:
            await req.say("resend_none")
            return
        url, client = render.output_url, self._client
        if not await self._link_works(url):
            fresh = await self._fresh_link(req, render.render_id)
            if fresh is None:
                await req.say("resend_expired", actions=(Action.EXPORT,))
                return
            url = fresh
            await self._store.update_render(render.render_id, output_url=fresh)
        await req.replier.send_video(
            Video(
                url=url,
                caption=req.words("export_done", url=url),
                summary=render.summary,
                fetch=lambda limit: client.download(url, limit=limit),
            )
        )

    async def _link_works(self, url: str) -> bool:
        """Whether the file host still serves ``url`` (its headers are enough)."""
        try:
            await self._client.download(url, limit=0)  # 0: stop at the announced size
        except NemoError as exc:
            log.info("resend: the stored video link no longer works (%s)", type(exc).__name__)
            return False
        return True

    async def _fresh_link(self, req: Request, render_id: str) -> str | None:
        """A new link to the render's video from its status, or None if there is none."""
        try:
            # Through the calls: a token that expired since the export is renewed first
            # (else the user would hear that the backend has no link).
            status = await self._calls.call(
                req, lambda i: self._client.render_status(i.token, render_id)
            )
        except NemoError as exc:
            log.info("resend: no fresh link for the video (%s)", exc)
            return None
        if status.status is not RenderState.COMPLETED or not status.output_url:
            return None
        if not await self._link_works(status.output_url):
            return None
        return status.output_url

    async def _current(self, req: Request, user: UserRecord) -> str | None:
        session = await self._store.get_session(user.platform, user.user_id, req.msg.chat_id)
        return session.session_id if session else None

    @staticmethod
    def _line(req: Request, number: int, project: ProjectRecord, current: str | None) -> str:
        marks = ""
        if project.has_video:
            marks += req.words("project_has_video")
        if project.session_id == current:
            marks += req.words("project_current")
        return req.words(
            "project_line",
            number=number,
            title=project.title or req.words("project_untitled"),
            date=_date(project.updated_at),
            marks=marks,
        )
