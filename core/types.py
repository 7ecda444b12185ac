"""The platform-neutral vocabulary shared by the core and every chat adapter.

Data flows one way: an adapter turns a platform update into an
:class:`IncomingMessage`, hands it to :class:`core.service.ConversationService`,
and the service answers through the :class:`Replier` the adapter passed along.
Nothing here knows about Telegram or Discord.

A render finishes later, maybe after a restart, so every request carries a
:class:`ConversationRef`: enough to find the chat again. The service stores it
with each render and asks the adapter (:meth:`ChatAdapter.replier_for`) for a
fresh :class:`Replier` when there is no live one any more.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class Action(enum.Enum):
    """A follow-up the user can take with one tap (a button, or text where buttons don't exist)."""

    EXPORT = "export"
    TIMELINE = "timeline"
    CREDITS = "credits"
    CANCEL = "cancel"


DEFAULT_ACTIONS: tuple[Action, ...] = (Action.EXPORT, Action.TIMELINE, Action.CREDITS)


class Intent(enum.Enum):
    """What the router decided a message asks for."""

    EXPORT = "export"
    CREDITS = "credits"
    STATUS = "status"
    UPLOAD = "upload"
    HELP = "help"
    START = "start"
    NEW = "new"
    PROJECTS = "projects"  # the user's recent projects
    OPEN = "open"  # switch back to project N of that list
    RESEND = "resend"  # send the current project's last video again
    STATS = "stats"  # admins only: /stats
    BROADCAST = "broadcast"  # admins only: /broadcast TEXT
    CANCEL = "cancel"
    CHAT = "chat"
    UNKNOWN = "unknown"  # a /command that is none of ours: never sent to the backend


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Where to answer: enough to reach the chat again after a restart.

    ``thread_id`` is a Telegram forum topic or a Discord thread; ``reply_to`` an
    optional platform message id to answer; ``language`` the user's language, for
    the adapter's own words (button labels) when it answers later.
    """

    platform: str
    chat_id: str
    user_id: str
    thread_id: str | None = None
    reply_to: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file the user sent. ``read`` downloads it; the core checks size and name first."""

    filename: str
    size: int | None
    read: Callable[[], Awaitable[bytes]] = field(repr=False, compare=False)
    mime_type: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One user request, already stripped of platform details.

    ``intent`` lets an adapter force the route (a slash command or a button);
    otherwise the router reads ``text``. ``seq`` is the platform's ordering number
    for the message when it has one (Telegram's ``update_id``): a session gate
    shared by several processes uses it to serve a chat's messages in order.
    """

    platform: str
    user_id: str
    chat_id: str
    text: str = ""
    thread_id: str | None = None
    attachments: tuple[Attachment, ...] = ()
    language: str | None = None
    is_group: bool = False
    intent: Intent | None = None
    message_id: str | None = None
    user_display: str | None = None
    seq: int | None = None

    def ref(self) -> ConversationRef:
        """The conversation reference a later delivery goes to."""
        return ConversationRef(
            platform=self.platform,
            chat_id=self.chat_id,
            user_id=self.user_id,
            thread_id=self.thread_id,
            reply_to=self.message_id,
            language=self.language,
        )


@dataclass(frozen=True, slots=True)
class Video:
    """A finished render, ready to deliver.

    ``fetch(limit)`` downloads the MP4 bytes if it is at most ``limit`` bytes and
    returns ``None`` otherwise (then the adapter posts ``url`` as a link).
    """

    url: str
    caption: str
    summary: str | None = None
    fetch: Callable[[int], Awaitable[bytes | None]] | None = field(
        default=None, repr=False, compare=False
    )


@runtime_checkable
class TextStream(Protocol):
    """One reply that grows as backend text streams in."""

    async def append(self, text: str) -> None:
        """Add text; the adapter decides when to show it (edits are throttled)."""

    async def finish(self, actions: Sequence[Action] = ()) -> None:
        """Show whatever is left, with optional action buttons."""


@runtime_checkable
class Replier(Protocol):
    """How the core answers one conversation. Adapters implement it.

    Fallbacks are expected: a platform without buttons lists actions as text, one
    without message edits sends a new message for progress.
    """

    async def send_text(
        self, text: str, *, actions: Sequence[Action] = (), private: bool = False
    ) -> None:
        """Send a whole message. ``private`` asks for an ephemeral/DM answer where possible."""

    def stream(self, running: Sequence[Action] = ()) -> TextStream:
        """Start a streamed reply; ``running`` buttons show under it until it finishes."""

    async def progress(self, text: str, percent: int | None = None) -> None:
        """Show or update the single progress message of this conversation."""

    async def notice(self, text: str, *, actions: Sequence[Action] = ()) -> None:
        """Show or update this request's own notice (its place in the queue) in place.

        A platform without edits sends each update as a new message.
        """

    async def send_video(self, video: Video) -> None:
        """Deliver a finished render: the file if it fits the platform's cap, else the link."""

    async def working(self, kind: str = "typing") -> None:
        """Show a chat action ("typing" or "upload_video"); may do nothing."""


@runtime_checkable
class ChatAdapter(Protocol):
    """A chat platform, as the core sees it."""

    platform: str

    def replier_for(self, ref: ConversationRef) -> Replier:
        """A replier for a stored conversation (render delivery after a restart)."""


class ConversationHandler(Protocol):
    """What a chat adapter hands its requests to: the adapter contract, seen from the adapter.

    :class:`core.service.ConversationService` is the real one; tests stand in
    with scripted ones.
    """

    def register_adapter(self, adapter: ChatAdapter) -> None:
        """Make ``adapter`` the deliverer for its platform's stored conversations."""

    async def handle(self, msg: IncomingMessage, replier: Replier) -> None:
        """Answer one request; never raises."""


class ConversationHost(ConversationHandler, Protocol):
    """A conversation handler whose background work (renders) can be resumed and awaited."""

    async def start(self) -> int:
        """Resume the work left from the last run; returns how many items resumed."""

    async def wait_idle(self) -> None:
        """Wait until the background work in flight is done."""
