"""Relaying one chat turn: the backend's stream, sentence by sentence, into the chat.

Text is shown as whole sentences (:class:`core.gui.SentenceBuffer`), tool
activity shows as "typing", a long silence with only heartbeats earns a "still
working" notice, and a stream that drops or times out says so. After the turn
the reply closes with the actions that make sense now, or, when the backend
showed no text, with what changed in the timeline.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from core.calls import BackendCalls
from core.config import Settings
from core.draft import diff_drafts
from core.errors import StreamTimeoutError, TransportError
from core.events import HeartbeatEvent, StreamErrorEvent, TextEvent, ToolCallEvent, ToolResultEvent
from core.gui import SentenceBuffer
from core.metrics import Metrics
from core.project import Project
from core.replies import plain_reason, quietly
from core.request import Request
from core.types import DEFAULT_ACTIONS, Action, TextStream

__all__ = ["ChatRelay"]

log = logging.getLogger("nemo.relay")


class ChatRelay:
    """Streams a chat turn through the backend and relays what comes back."""

    def __init__(
        self,
        *,
        settings: Settings,
        calls: BackendCalls,
        project: Project,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._calls = calls
        self._project = project
        self._metrics = metrics
        self._clock = clock

    async def chat_intent(self, req: Request) -> None:
        """The CHAT intent: the message's text is the prompt."""
        await self.chat(req, req.msg.text.strip())

    async def chat(self, req: Request, text: str) -> None:
        """Stream one message through the backend and relay what comes back."""
        stream = req.replier.stream()
        buffer = SentenceBuffer()
        shown = False
        error: str | None = None
        dropped = False
        last_news = self._clock()
        notices = 0
        await quietly(req.replier.working("typing"))
        self._metrics.active_streams.inc()
        try:
            async with contextlib.aclosing(self._calls.events(req, text)) as events:
                async for event in events:
                    now = self._clock()
                    if isinstance(event, HeartbeatEvent):
                        # (The client ends a heartbeat-only stream after its
                        # heartbeat_timeout with StreamTimeoutError.)
                        notice_at = self._settings.heartbeat_notice_s * (notices + 1)
                        if now - last_news >= notice_at:
                            notices += 1
                            await req.say("still_working")
                        continue
                    last_news, notices = now, 0
                    if isinstance(event, TextEvent):
                        out = buffer.feed(event.text)
                        if out.strip():
                            shown = True
                            await stream.append(out)
                    elif isinstance(event, StreamErrorEvent):
                        error = event.message
                        self._metrics.error("stream_error")
                    elif isinstance(event, (ToolCallEvent, ToolResultEvent)):
                        await quietly(req.replier.working("typing"))
        except StreamTimeoutError:
            self._metrics.error("stream_timeout")
            if await _flush(stream, buffer, shown):
                await stream.finish()
            await req.say("stream_timeout")
            return
        except TransportError:
            dropped = True
            self._metrics.error("stream_dropped")
            log.warning("chat stream dropped for a %s user", req.msg.platform)
        finally:
            self._metrics.active_streams.dec()
        shown = await _flush(stream, buffer, shown)
        if dropped:
            if shown:
                await stream.finish()
            await req.say("stream_dropped")
        await self.after_turn(
            req,
            stream if shown and not dropped else None,
            error=error,
            show_timeline=buffer.hints.show_timeline,
        )

    async def after_turn(
        self,
        req: Request,
        stream: TextStream | None,
        *,
        error: str | None = None,
        show_timeline: bool = False,
        note: str | None = None,
    ) -> None:
        """Read the state after a turn; close the reply with the actions that make sense now.

        ``stream`` is the reply that showed the backend's text, if any; without one
        the user hears what changed in the timeline (or ``note``).
        """
        before = self._project.stored_draft(req)
        draft = (await self._project.state(req)).draft
        actions = DEFAULT_ACTIONS if draft.is_exportable else (Action.CREDITS,)
        if stream is not None:
            await stream.finish(() if show_timeline else actions)
            if show_timeline:
                await req.replier.send_text(draft.summary(), actions=actions)
            return
        changes = diff_drafts(before, draft)
        if note:
            text = note
        elif error and not changes:
            detail = plain_reason(error, "please try again in a moment")
            text = req.words("stream_error", detail=detail)
        elif changes:
            text = req.words("changes", changes="\n".join(changes))
        else:
            text = req.words("no_changes")
        await req.replier.send_text(text, actions=actions)


async def _flush(stream: TextStream, buffer: SentenceBuffer, shown: bool) -> bool:
    """Send what the buffer still holds; whether any text was shown at all."""
    rest = buffer.flush()
    if rest.strip():
        await stream.append(rest)
        return True
    return shown
