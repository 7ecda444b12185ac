"""The Store protocol and the rows it keeps.

Everything the bot remembers goes through :class:`Store`; nothing outside
``storage/`` writes SQL. A PostgreSQL store can slot in behind the same protocol.
Times are Unix seconds (float). Rows are plain dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class UserRecord:
    """A chat user (platform, user id) and their NemoVideo identity."""

    platform: str
    user_id: str
    client_id: str
    token: str | None = field(default=None, repr=False)
    backend_user_id: str | None = None
    token_expires_at: float | None = None
    language: str | None = None
    token_minted_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class SessionRecord:
    """One project: a (platform, user, chat) and its backend session."""

    platform: str
    user_id: str
    chat_id: str
    session_id: str
    task_id: str | None = None
    draft_json: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class RenderRecord:
    """An export job and where to deliver it."""

    render_id: str
    session_id: str
    platform: str
    user_id: str
    chat_id: str
    thread_id: str | None = None
    reply_to: str | None = None
    ref_extra: str | None = None
    status: str = "pending"
    progress: int = 0
    output_url: str | None = None
    error: str | None = None
    attempts: int = 0
    summary: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    completed_at: float | None = None
    delivered_at: float | None = None
    claimed_at: float | None = None
    claimed_by: str | None = None


class Store(Protocol):
    """Async persistence for users, sessions and renders. Safe for many concurrent tasks."""

    async def open(self) -> None:
        """Connect and migrate."""

    async def close(self) -> None:
        """Flush and close."""

    async def get_user(self, platform: str, user_id: str) -> UserRecord | None:
        """The user, or None."""

    async def save_user(self, user: UserRecord) -> None:
        """Insert or update (by platform + user_id); sets timestamps."""

    async def get_session(self, platform: str, user_id: str, chat_id: str) -> SessionRecord | None:
        """The session of this user in this chat, or None."""

    async def save_session(self, session: SessionRecord) -> None:
        """Insert or replace (by platform + user_id + chat_id); sets timestamps."""

    async def delete_session(self, platform: str, user_id: str, chat_id: str) -> None:
        """Forget the session (a new project)."""

    async def save_draft(self, platform: str, user_id: str, chat_id: str, draft_json: str) -> None:
        """Remember the last draft seen for this session."""

    async def add_render(self, render: RenderRecord) -> None:
        """Persist a new render job."""

    async def delete_render(self, render_id: str) -> None:
        """Forget a render that never started (its submission failed)."""

    async def get_render(self, render_id: str) -> RenderRecord | None:
        """The render, or None."""

    async def update_render(
        self,
        render_id: str,
        *,
        status: str | None = None,
        progress: int | None = None,
        output_url: str | None = None,
        error: str | None = None,
        attempts: int | None = None,
    ) -> None:
        """Update the given fields (None leaves a field as it is).

        A status of completed or failed sets completed_at.
        """

    async def claim_delivery(self, render_id: str, *, owner: str, lease: float = 300.0) -> bool:
        """Claim the right to deliver a render for ``lease`` seconds; True for one owner.

        The owner may claim again to renew its lease (while a long upload runs). A
        claim nobody renewed expires, so a process that died mid-send does not keep
        the video from its user forever.
        """

    async def mark_delivered(self, render_id: str, *, owner: str) -> None:
        """The owner's video reached the chat: never deliver this render again."""

    async def release_delivery(self, render_id: str, *, owner: str) -> None:
        """The owner gives its claim back (delivery failed or was stopped)."""

    async def undelivered_renders(self) -> list[RenderRecord]:
        """Renders not yet delivered (any status), oldest first."""
