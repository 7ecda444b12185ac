"""The user's project: reading its timeline, starting a new one, and their credits.

Every read of the backend's state also remembers the draft in the store, so the
next chat turn can tell the user what changed.
"""

from __future__ import annotations

import json

from core.accounts import Accounts
from core.calls import BackendCalls
from core.client import NemoClient
from core.draft import Draft
from core.request import Request
from core.types import DEFAULT_ACTIONS
from core.wire import SessionState
from storage.base import Store, UserRecord

__all__ = ["Project"]


class Project:
    """Timeline, new project and credits: the intents that read or reset the project."""

    def __init__(
        self, *, accounts: Accounts, client: NemoClient, store: Store, calls: BackendCalls
    ) -> None:
        self._accounts = accounts
        self._client = client
        self._store = store
        self._calls = calls

    def stored_draft(self, req: Request) -> Draft:
        """The draft as the last read left it (to diff against after a turn)."""
        return Draft.from_json(_loads(req.ident.session.draft_json))

    async def state(self, req: Request) -> SessionState:
        """The session's state on the backend; its draft is remembered in the store."""
        state = await self._calls.call(
            req, lambda i: self._client.state(i.token, i.session.session_id)
        )
        raw = state.raw_draft
        encoded = json.dumps(raw, separators=(",", ":"), ensure_ascii=False) if raw else None
        session = req.ident.session
        session.draft_json = encoded or ""  # "" = known empty; None = never read
        await self._store.save_draft(
            session.platform, session.user_id, session.chat_id, encoded or ""
        )
        return state

    def knows_draft(self, req: Request) -> bool:
        """Whether the session's draft was ever read (so a turn has a state to compare with)."""
        return req.ident.session.draft_json is not None

    async def status(self, req: Request) -> None:
        """Show the timeline (or say it is empty)."""
        draft = (await self.state(req)).draft
        if not draft.is_exportable and not draft.tracks:
            await req.say("empty_timeline")
            return
        await req.replier.send_text(draft.summary(req.lang), actions=DEFAULT_ACTIONS)

    async def new(self, req: Request) -> None:
        """Start a fresh project in this chat."""
        chat_id, lang = req.msg.chat_id, req.lang
        req.ident.session = await self._calls.call(
            req, lambda i: self._accounts.new_session(i.user, chat_id, i.token, lang)
        )
        await req.say("new_project")

    async def credits(self, req: Request, user: UserRecord, token: str) -> None:
        """The user's balance; credits follow the person, so no session is needed."""
        _, c = await self._accounts.with_token(user, token, self._client.credits)
        await req.say(
            "credits", private=True, available=c.available, frozen=c.frozen, total=c.total
        )


def _loads(raw: str | None) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
