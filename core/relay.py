"""Relaying one chat turn: the backend's stream, sentence by sentence, into the chat.

Text is shown as whole sentences (:class:`core.gui.SentenceBuffer`), tool
activity shows as "typing", a long silence with only heartbeats earns a "still
working" notice, and a stream that drops or times out says so.

After the turn the bot says only what the session's state shows. The draft is
read again and compared with the one before the turn (read first when the chat
has none stored yet, so a first turn has something to compare with too):

* an error the backend reported in the stream is always told, with what the
  timeline shows (changed, or not);
* a dropped stream shows the cut text as cut ("…"), then one message saying
  whether the timeline changed so far;
* the backend's own words end with the actions that make sense now; when it
  called a tool but the timeline is unchanged, the bot says so;
* no words at all: what changed, or plainly that nothing did, with what to try.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core import inbox
from core.calls import BackendCalls
from core.config import Settings
from core.draft import Draft, diff_drafts, unchanged
from core.errors import ApiError, StreamTimeoutError, TransportError
from core.events import HeartbeatEvent, StreamErrorEvent, TextEvent, ToolCallEvent, ToolResultEvent
from core.gui import SentenceBuffer
from core.metrics import Metrics
from core.project import Project
from core.replies import nudge, plain_reason
from core.request import Request
from core.types import DEFAULT_ACTIONS, Action, TextStream

__all__ = ["MAX_PROMPT_CHARS", "ChatRelay"]

log = logging.getLogger("nemo.relay")

#: The longest message sent to the backend as a prompt (Telegram's own message cap);
#: a longer one is refused with this number, before anything is sent.
MAX_PROMPT_CHARS = 4096


@dataclass(slots=True)
class _Turn:
    """What one streamed turn brought, besides its text."""

    shown: bool = False  # some of the backend's words reached the user
    answered: bool = False  # anything but heartbeats came
    claimed: bool = False  # the backend's words say it changed something
    error: str | None = None  # the last error reported inside the stream
    dropped: bool = False  # the connection ended mid-turn
    timed_out: bool = False  # heartbeats only, for too long


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
        if len(text) > MAX_PROMPT_CHARS:
            await req.say("message_too_long", length=len(text), limit=MAX_PROMPT_CHARS)
            return
        before = await self._baseline(req)
        ticket = inbox.current()
        if ticket is not None and ticket.resumed:
            # A replica that died mid-stream had sent this prompt: the backend may still
            # be working on it, so never send it again; say what the state shows.
            log.info("a request cut mid-stream by a lost replica: reporting its outcome")
            await self._conclude(req, None, before, _Turn(dropped=True), False)
            return
        # The owner can stop the turn with the button under the growing reply (core.cancel).
        stream = req.replier.stream(running=(Action.CANCEL,))
        buffer = SentenceBuffer()
        turn = _Turn()
        nudge(req.replier.working("typing"))
        if ticket is not None:
            await ticket.mark_sent()
        self._metrics.active_streams.inc()
        try:
            await self._relay(req, text, stream, buffer, turn)
        except StreamTimeoutError:
            turn.timed_out = True
            self._metrics.error("stream_timeout")
        except TransportError:
            turn.dropped = True
            self._metrics.error("stream_dropped")
            log.warning("chat stream dropped for a %s user", req.msg.platform)
        except asyncio.CancelledError:
            # A cancel (or a stop): the stream is closed; show the reply as cut, without
            # its Cancel button. The cancel tells the user what the timeline shows.
            await _even_if_cancelled(self._cut(stream, buffer))
            raise
        finally:
            self._metrics.active_streams.dec()
        rest = buffer.flush(cut=turn.dropped or turn.timed_out)
        if rest:
            turn.shown = True
            turn.claimed = turn.claimed or _claims_change(rest)
            await stream.append(rest)
        if turn.timed_out:
            await self._timed_out(req, stream if turn.shown else None, turn)
            return
        await self._conclude(
            req, stream if turn.shown else None, before, turn, buffer.hints.show_timeline
        )

    async def _cut(self, stream: TextStream, buffer: SentenceBuffer) -> None:
        rest = buffer.flush(cut=True)
        if rest:
            await stream.append(rest)
        await stream.finish()

    async def _relay(
        self, req: Request, text: str, stream: TextStream, buffer: SentenceBuffer, turn: _Turn
    ) -> None:
        """Pass the stream's events on; ``turn`` records what came besides text."""
        last_news = self._clock()
        notices = 0
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
                turn.answered = True
                if isinstance(event, TextEvent):
                    out = buffer.feed(event.text)
                    if out:
                        turn.shown = True
                        turn.claimed = turn.claimed or _claims_change(out)
                        await stream.append(out)
                elif isinstance(event, StreamErrorEvent):
                    turn.error = event.message
                    self._metrics.error("stream_error")
                elif isinstance(event, (ToolCallEvent, ToolResultEvent)):
                    nudge(req.replier.working("typing"))

    async def after_turn(self, req: Request, *, note: str) -> None:
        """Say ``note`` (what a turn without words did) with the actions that make sense now."""
        draft = (await self._project.state(req)).draft
        await req.replier.send_text(note, actions=_actions(draft))

    # -- concluding a turn ---------------------------------------------------------------

    async def _baseline(self, req: Request) -> Draft | None:
        """The draft before the turn: the stored one, else read now (None if unreadable)."""
        if self._project.knows_draft(req):
            return self._project.stored_draft(req)
        return await self._read(req)

    async def _read(self, req: Request) -> Draft | None:
        """The session's draft now; None when the backend can't tell us."""
        try:
            return (await self._project.state(req)).draft
        except (ApiError, TransportError) as exc:
            log.warning("could not read the session state (%s)", type(exc).__name__)
            return None

    async def _timed_out(self, req: Request, stream: TextStream | None, turn: _Turn) -> None:
        """Heartbeats only, for too long: the work may still finish, so don't guess."""
        if stream is not None:
            await stream.finish()
        if turn.error:
            outcome = req.words("stream_timeout")
            await req.say("stream_error", detail=_detail(req, turn.error), outcome=outcome)
        else:
            await req.say("stream_timeout")

    async def _conclude(
        self,
        req: Request,
        stream: TextStream | None,
        before: Draft | None,
        turn: _Turn,
        show_timeline: bool,
    ) -> None:
        """Close the reply with what the state shows now."""
        after = await self._read(req)
        if after is None:
            if stream is not None:
                await stream.finish()
            if turn.error:
                outcome = req.words("outcome_unknown")
                await req.say("stream_error", detail=_detail(req, turn.error), outcome=outcome)
            elif turn.dropped:
                await req.say("stream_dropped", outcome=req.words("outcome_unknown"))
            else:
                await req.say("outcome_unknown")
            return
        actions = _actions(after)
        changes = diff_drafts(before, after, req.lang) if before is not None else []
        if turn.error or turn.dropped:
            if stream is not None:
                await stream.finish()
            trouble = self._trouble(req, before, after, changes, turn)
            if show_timeline and after.is_exportable:  # the text pointed "below"
                await req.replier.send_text(trouble)
                await req.replier.send_text(after.summary(req.lang), actions=actions)
            else:
                await req.replier.send_text(trouble, actions=actions)
            return
        if stream is not None:
            await stream.finish(() if show_timeline else actions)
            if show_timeline:
                await req.replier.send_text(after.summary(req.lang), actions=actions)
            if turn.claimed and before is not None and unchanged(before, after):
                await req.say("claimed_no_change")
            return
        await req.replier.send_text(
            self._silent(req, before, after, changes, turn), actions=actions
        )

    def _trouble(
        self, req: Request, before: Draft | None, after: Draft, changes: list[str], turn: _Turn
    ) -> str:
        """One message for a turn that hit an error or a dropped connection."""
        if changes:
            outcome = req.words("outcome_changed", changes="\n".join(changes))
        elif before is None:
            outcome = req.words("timeline_now", summary=after.summary(req.lang))
        elif not unchanged(before, after):
            outcome = req.words("changes_hidden")
        elif turn.dropped:
            outcome = req.words("outcome_pending")
        else:
            outcome = req.words("outcome_unchanged")
        if turn.error:
            return req.words("stream_error", detail=_detail(req, turn.error), outcome=outcome)
        return req.words("stream_dropped", outcome=outcome)

    def _silent(
        self, req: Request, before: Draft | None, after: Draft, changes: list[str], turn: _Turn
    ) -> str:
        """What a turn without a word from the backend did, as the state shows it."""
        if changes:
            return req.words("changes", changes="\n".join(changes))
        if before is None:
            if after.is_exportable:
                return req.words("timeline_now", summary=after.summary(req.lang))
        elif not unchanged(before, after):
            return req.words("changes_hidden")
        suggestion = req.words("suggest_edit" if after.is_exportable else "suggest_first")
        key = "no_changes" if turn.answered else "no_answer"
        return req.words(key, suggestion=suggestion)


#: Words with which a reply says it changed the project ("I added", "Done, I updated",
#: "已添加", "修改了"). A read-only answer ("your project has 2 tracks") has none.
_CHANGE_CLAIM = re.compile(
    r"\b(?:added|updated|changed|removed|deleted|applied|generated|created|trimmed|"
    r"replaced|adjusted|moved|inserted|shortened|extended|lengthened|muted|renamed)\b"
    r"|(?:已经?|已)(?:添加|更新|修改|删除|移除|应用|生成|创建|裁剪|替换|调整|移动|插入)"
    r"|(?:添加|更新|修改|删除|移除|应用|生成|创建|裁剪|替换|调整|移动|插入)了",
    re.IGNORECASE,
)


async def _even_if_cancelled(work: Awaitable[None]) -> None:
    """Finish a last reply while the task is being cancelled (a failure is only logged)."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task  # cancelled once more: finish it all the same, then stop
    except Exception:
        log.debug("the cut reply could not be shown", exc_info=True)


def _claims_change(text: str) -> bool:
    return _CHANGE_CLAIM.search(text) is not None


def _actions(draft: Draft) -> tuple[Action, ...]:
    return DEFAULT_ACTIONS if draft.is_exportable else (Action.CREDITS,)


def _detail(req: Request, error: str) -> str:
    return plain_reason(error, req.words("try_again"))
