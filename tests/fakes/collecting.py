"""A collecting fake adapter for core tests: it records everything the core says."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.types import Action, ConversationRef, Video


@dataclass
class Said:
    """One thing the core did through the replier."""

    kind: str  # "text" | "stream" | "progress" | "notice" | "video" | "working"
    text: str = ""
    actions: tuple[Action, ...] = ()
    private: bool = False
    percent: int | None = None
    video: Video | None = None


class CollectingStream:
    """Collects streamed chunks; on finish, records the whole text once."""

    def __init__(self, owner: CollectingReplier) -> None:
        self.owner = owner
        self.chunks: list[str] = []
        self.finished = False

    async def append(self, text: str) -> None:
        self.chunks.append(text)

    async def finish(self, actions: Sequence[Action] = ()) -> None:
        self.finished = True
        if self.chunks:
            self.owner.record(Said("stream", "".join(self.chunks), tuple(actions)))


@dataclass
class CollectingReplier:
    """Implements core.types.Replier by recording every call."""

    said: list[Said] = field(default_factory=list)
    videos: asyncio.Queue[Video] = field(default_factory=asyncio.Queue)
    fetch_limit: int = 50 * 1024 * 1024
    fetched: list[bytes | None] = field(default_factory=list)

    def record(self, item: Said) -> None:
        self.said.append(item)

    async def send_text(
        self, text: str, *, actions: Sequence[Action] = (), private: bool = False
    ) -> None:
        self.record(Said("text", text, tuple(actions), private))

    def stream(self, running: Sequence[Action] = ()) -> CollectingStream:
        return CollectingStream(self)

    async def notice(self, text: str, *, actions: Sequence[Action] = ()) -> None:
        self.record(Said("notice", text, tuple(actions)))

    async def progress(self, text: str, percent: int | None = None) -> None:
        self.record(Said("progress", text, percent=percent))

    async def send_video(self, video: Video) -> None:
        if video.fetch is not None:
            self.fetched.append(await video.fetch(self.fetch_limit))
        self.record(Said("video", video.caption, video=video))
        await self.videos.put(video)

    async def working(self, kind: str = "typing") -> None:
        self.record(Said("working", kind))

    # helpers for assertions
    def texts(self) -> list[str]:
        """Every user-visible text, in order."""
        return [s.text for s in self.said if s.kind in ("text", "stream", "video")]

    def all_text(self) -> str:
        return "\n".join(self.texts())

    def clear(self) -> None:
        self.said.clear()


class CollectingAdapter:
    """A ChatAdapter whose repliers all collect into one place per conversation."""

    def __init__(self, platform: str = "test") -> None:
        self.platform = platform
        self.repliers: dict[tuple[str, str | None], CollectingReplier] = {}
        self.refs: list[ConversationRef] = []

    def replier_for(self, ref: ConversationRef) -> CollectingReplier:
        self.refs.append(ref)
        return self.repliers.setdefault((ref.chat_id, ref.thread_id), CollectingReplier())
