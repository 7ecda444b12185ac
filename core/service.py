"""The conversation service: one entry point for every chat platform.

``await service.handle(message, replier)`` routes the message
(:mod:`core.router`), finds the user's token and session
(:mod:`core.accounts`), calls the backend (:mod:`core.client`) and answers
through the adapter's :class:`~core.types.Replier`. It never raises: every
failure becomes a friendly message, and nothing the user sent is lost.

Concurrency: one request per session runs at a time. A request that arrives
while its session is busy is **queued** (the user is told so) rather than
refused, so a burst of photos or a quick follow-up is not lost; at most
``max_queued`` requests wait per session, beyond that the user is asked to
wait. Read-only requests (status, credits, help) never wait. Different users
and different chats run fully in parallel; there is no global lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from core.accounts import Accounts, Identity
from core.client import NemoClient, may_have_been_sent, new_render_id
from core.config import Settings
from core.draft import Draft, diff_drafts
from core.errors import (
    ApiError,
    ExportBlockedError,
    FileTooLargeError,
    NemoError,
    OutOfCreditsError,
    RateLimitedError,
    ServerError,
    SessionNotFoundError,
    StreamTimeoutError,
    TokenExpiredError,
    TransportError,
    UnsupportedFileError,
    bind_url,
)
from core.events import (
    ChatEvent,
    HeartbeatEvent,
    StreamErrorEvent,
    TextEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from core.files import (
    describe_upload,
    display_name,
    refuse_after_download,
    refuse_before_download,
    safe_filename,
)
from core.gui import SentenceBuffer
from core.i18n import t
from core.logs import mask_id
from core.metrics import Metrics
from core.renders import SUBMITTING, PollPolicy, RenderTracker
from core.replies import plain_reason, quietly
from core.router import route
from core.types import (
    DEFAULT_ACTIONS,
    Action,
    Attachment,
    ChatAdapter,
    IncomingMessage,
    Intent,
    Replier,
    TextStream,
)
from core.wire import UploadResult
from storage.base import RenderRecord, Store, UserRecord

__all__ = ["ConversationService"]

log = logging.getLogger("nemo.service")
T = TypeVar("T")

_EXCLUSIVE = frozenset({Intent.CHAT, Intent.UPLOAD, Intent.EXPORT, Intent.NEW})


@dataclass(slots=True)
class _Gate:
    """The per-session turnstile: one request runs, a few may wait."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    members: int = 0  # the request running plus those waiting


@dataclass(slots=True)
class _Request:
    """One message being handled: who asks, where to answer, and their identity."""

    msg: IncomingMessage
    replier: Replier
    ident: Identity

    @property
    def lang(self) -> str | None:
        return self.ident.user.language or self.msg.language


class ConversationService:
    """Routes chat messages to NemoVideo and answers through the adapter."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        client: NemoClient,
        poll_policy: PollPolicy | None = None,
        max_queued: int = 3,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._store = store
        self._client = client
        self._clock = clock
        self._max_queued = max_queued
        operator = settings.nemo_token.get_secret_value() if settings.nemo_token else None
        self.accounts = Accounts(store=store, client=client, operator_token=operator)
        self.metrics = metrics or Metrics()
        self.renders = RenderTracker(
            store=store,
            client=client,
            token_source=self._render_token,
            policy=poll_policy,
            on_delivered=self._delivered,
        )
        self.metrics.renders_in_flight.set_function(lambda: self.renders.in_flight)
        self._adapters: dict[str, ChatAdapter] = {}
        self._gates: dict[tuple[str, str, str], _Gate] = {}
        self._handlers: dict[Intent, Callable[[_Request], Awaitable[None]]] = {
            Intent.CHAT: self._chat_intent,
            Intent.UPLOAD: self._upload,
            Intent.EXPORT: self._export,
            Intent.STATUS: self._status,
            Intent.NEW: self._new_project,
        }

    # ----------------------------------------------------------------- lifecycle

    def register_adapter(self, adapter: ChatAdapter) -> None:
        """Let the service deliver finished renders to ``adapter``'s platform."""
        self._adapters[adapter.platform] = adapter

    async def start(self) -> int:
        """Resume renders that were not delivered before the last stop; returns how many."""
        return await self.renders.resume(self._adapters, self._render_language)

    async def wait_idle(self) -> None:
        """Wait for every render in flight to be delivered (the one-shot CLI uses this)."""
        await self.renders.wait_idle()

    async def aclose(self) -> None:
        """Stop background work; undelivered renders resume at the next start."""
        await self.renders.aclose()

    # ------------------------------------------------------------------ the door

    async def handle(self, msg: IncomingMessage, replier: Replier) -> None:
        """Answer one message. Never raises."""
        lang = msg.language
        try:
            if not self.settings.is_allowed(msg.user_id, msg.chat_id):
                await replier.send_text(t("not_allowed", lang), private=True)
                return
            intent = msg.intent or route(msg.text, has_attachments=bool(msg.attachments))
            log.info(
                "request platform=%s user=%s intent=%s",
                msg.platform,
                mask_id(msg.user_id),
                intent.value,
            )
            self.metrics.requests.labels(platform=msg.platform, intent=intent.value).inc()
            if intent in (Intent.HELP, Intent.START):
                key = "welcome" if intent is Intent.START else "help"
                await replier.send_text(t(key, lang))
                return
            if intent is Intent.CHAT and not msg.text.strip():
                await replier.send_text(t("empty_message", lang))
                return
            if intent in _EXCLUSIVE:
                await self._exclusive(msg, replier, intent)
            else:
                await self._guarded(msg, replier, intent)
        except Exception:
            log.exception("unexpected error while handling a %s message", msg.platform)
            await quietly(replier.send_text(t("unexpected", lang)))

    async def _exclusive(self, msg: IncomingMessage, replier: Replier, intent: Intent) -> None:
        key = (msg.platform, msg.user_id, msg.chat_id)
        gate = self._gates.setdefault(key, _Gate())
        busy = gate.lock.locked()
        if busy and gate.members > self._max_queued:
            await replier.send_text(t("busy", msg.language), private=True)
            return
        # Counted before the first await, and uncounted in `finally` (a cancelled waiter
        # too): the gate is dropped only when nobody holds or awaits it.
        gate.members += 1
        try:
            if busy:
                await quietly(replier.send_text(t("queued", msg.language)))
            async with gate.lock:
                await self._guarded(msg, replier, intent)
        finally:
            gate.members -= 1
            if gate.members == 0:
                self._gates.pop(key, None)

    async def _guarded(self, msg: IncomingMessage, replier: Replier, intent: Intent) -> None:
        """Run the intent's handler; turn every backend failure into a friendly message."""
        lang = msg.language
        try:
            user = await self.accounts.user(msg.platform, msg.user_id, msg.language)
            lang = user.language
            token = await self.accounts.token(user)
            if intent is Intent.CREDITS:  # credits follow the person: no project needed
                await self._credits(user, token, replier)
                return
            try:
                session = await self.accounts.session(user, msg.chat_id, token, user.language)
            except TokenExpiredError:
                # Without this the stored (revoked) token would fail every request until
                # it expired by the clock: renew it here like any other call does.
                token = await self.accounts.renew(user, token)
                session = await self.accounts.session(user, msg.chat_id, token, user.language)
            request = _Request(msg, replier, Identity(user, token, session))
            await self._handlers[intent](request)
        except ApiError as exc:
            self.metrics.error(exc.code)
            await replier.send_text(await self._explain(msg, intent, exc, lang), private=True)
        except TransportError:
            self.metrics.error("transport")
            await replier.send_text(t("network", lang), private=True)

    async def _explain(
        self, msg: IncomingMessage, intent: Intent, exc: ApiError, lang: str | None
    ) -> str:
        """What a backend error means for the user, in their language."""
        if isinstance(exc, OutOfCreditsError):
            bind = exc.bind_url
            if bind is None and not self.settings.nemo_token:  # the reply may not say who
                user = await self._store.get_user(msg.platform, msg.user_id)
                bind = bind_url(user.backend_user_id if user else None)
            return t("out_of_credits_anon", lang, url=bind) if bind else t("out_of_credits", lang)
        if isinstance(exc, ExportBlockedError):
            return t("export_blocked", lang)
        if isinstance(exc, RateLimitedError):
            return t("rate_limited", lang)
        if isinstance(exc, TokenExpiredError):
            return t("auth_failed", lang)
        if isinstance(exc, UnsupportedFileError):
            return t("unsupported_file", lang, name="that file")
        if isinstance(exc, FileTooLargeError):
            return t("file_too_large", lang, name="That file", limit=self.settings.max_upload_mb)
        log.warning("backend error %s on %s", exc.code, intent.value)
        if isinstance(exc, ServerError | SessionNotFoundError):
            # 5xx on a call that is not resent blindly, or a session lost twice in a row.
            return t("service_error", lang)
        return t("unexpected", lang)

    # ------------------------------------------------------- recovery wrappers

    async def _recover(self, req: _Request, exc: NemoError) -> None:
        """Fix what a 1001 or 1002 broke, so the call can be tried once more."""
        ident = req.ident
        if isinstance(exc, TokenExpiredError):
            ident.token = await self.accounts.renew(ident.user, ident.token)
        elif isinstance(exc, SessionNotFoundError):
            ident.session, made = await self.accounts.replace_session(
                ident.user, req.msg.chat_id, ident.token, req.lang, lost=ident.session.session_id
            )
            if made:
                await req.replier.send_text(t("session_fresh", req.lang))
        else:
            raise exc

    async def _call(self, req: _Request, call: Callable[[Identity], Awaitable[T]]) -> T:
        """One backend call, retried once after renewing the token or the session."""
        try:
            return await call(req.ident)
        except (TokenExpiredError, SessionNotFoundError) as exc:
            await self._recover(req, exc)
            return await call(req.ident)

    async def _events(self, req: _Request, text: str) -> AsyncGenerator[ChatEvent, None]:
        """The chat stream; a 1001/1002 before the first event is recovered once."""
        for attempt in (1, 2):
            chat = self._client.chat(req.ident.token, req.ident.session.session_id, text)
            async with contextlib.aclosing(chat) as stream:
                try:
                    first = await anext(stream)
                except StopAsyncIteration:
                    return
                except (TokenExpiredError, SessionNotFoundError) as exc:
                    if attempt == 2:
                        raise
                    await self._recover(req, exc)
                    continue
                yield first
                async for event in stream:
                    yield event
                return

    def _delivered(self, render: RenderRecord, delay: float) -> None:
        self.metrics.renders_delivered.labels(outcome=render.status).inc()
        if render.status == "completed":
            self.metrics.delivery_delay.observe(delay)

    async def _render_token(self, render: RenderRecord, rejected: str | None) -> str:
        user = await self.accounts.user(render.platform, render.user_id)
        if rejected:
            return await self.accounts.renew(user, rejected)
        return await self.accounts.token(user)

    async def _render_language(self, render: RenderRecord) -> str | None:
        user = await self._store.get_user(render.platform, render.user_id)
        return user.language if user else None

    # ------------------------------------------------------------------ intents

    async def _chat_intent(self, req: _Request) -> None:
        await self._chat(req, req.msg.text.strip())

    async def _chat(self, req: _Request, text: str) -> None:
        """Stream one message through the backend and relay what comes back."""
        settings, lang = self.settings, req.lang
        stream = req.replier.stream()
        buffer = SentenceBuffer()
        shown = False
        error: str | None = None
        dropped = False
        last_news = self._clock()
        notices = 0
        await quietly(req.replier.working("typing"))
        self.metrics.active_streams.inc()
        try:
            async with contextlib.aclosing(self._events(req, text)) as events:
                async for event in events:
                    now = self._clock()
                    if isinstance(event, HeartbeatEvent):
                        # (The client ends a heartbeat-only stream after its
                        # heartbeat_timeout with StreamTimeoutError.)
                        if now - last_news >= settings.heartbeat_notice_s * (notices + 1):
                            notices += 1
                            await req.replier.send_text(t("still_working", lang))
                        continue
                    last_news, notices = now, 0
                    if isinstance(event, TextEvent):
                        out = buffer.feed(event.text)
                        if out.strip():
                            shown = True
                            await stream.append(out)
                    elif isinstance(event, StreamErrorEvent):
                        error = event.message
                        self.metrics.error("stream_error")
                    elif isinstance(event, (ToolCallEvent, ToolResultEvent)):
                        await quietly(req.replier.working("typing"))
        except StreamTimeoutError:
            self.metrics.error("stream_timeout")
            if await self._flush(stream, buffer, shown):
                await stream.finish()
            await req.replier.send_text(t("stream_timeout", lang))
            return
        except TransportError:
            dropped = True
            self.metrics.error("stream_dropped")
            log.warning("chat stream dropped for a %s user", req.msg.platform)
        finally:
            self.metrics.active_streams.dec()
        shown = await self._flush(stream, buffer, shown)
        if dropped:
            if shown:
                await stream.finish()
            await req.replier.send_text(t("stream_dropped", lang))
        await self._after_chat(
            req,
            stream if shown and not dropped else None,
            error=error,
            show_timeline=buffer.hints.show_timeline,
        )

    @staticmethod
    async def _flush(stream: TextStream, buffer: SentenceBuffer, shown: bool) -> bool:
        """Send what the buffer still holds; whether any text was shown at all."""
        rest = buffer.flush()
        if rest.strip():
            await stream.append(rest)
            return True
        return shown

    async def _after_chat(
        self,
        req: _Request,
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
        lang = req.lang
        before = Draft.from_json(_loads(req.ident.session.draft_json))
        state = await self._call(req, lambda i: self._client.state(i.token, i.session.session_id))
        await self._remember_draft(req, state.raw_draft)
        draft = state.draft
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
            text = t(
                "stream_error", lang, detail=plain_reason(error, "please try again in a moment")
            )
        elif changes:
            text = t("changes", lang, changes="\n".join(changes))
        else:
            text = t("no_changes", lang)
        await req.replier.send_text(text, actions=actions)

    async def _remember_draft(self, req: _Request, raw: object) -> None:
        encoded = json.dumps(raw, separators=(",", ":"), ensure_ascii=False) if raw else None
        req.ident.session.draft_json = encoded
        s = req.ident.session
        await self._store.save_draft(s.platform, s.user_id, s.chat_id, encoded or "")

    async def _status(self, req: _Request) -> None:
        state = await self._call(req, lambda i: self._client.state(i.token, i.session.session_id))
        await self._remember_draft(req, state.raw_draft)
        draft = state.draft
        if not draft.is_exportable and not draft.tracks:
            await req.replier.send_text(t("empty_timeline", req.lang))
            return
        await req.replier.send_text(draft.summary(), actions=DEFAULT_ACTIONS)

    async def _credits(self, user: UserRecord, token: str, replier: Replier) -> None:
        try:
            c = await self._client.credits(token)
        except TokenExpiredError:
            c = await self._client.credits(await self.accounts.renew(user, token))
        text = t("credits", user.language, available=c.available, frozen=c.frozen, total=c.total)
        await replier.send_text(text, private=True)

    async def _new_project(self, req: _Request) -> None:
        chat_id, lang = req.msg.chat_id, req.lang
        req.ident.session = await self._call(
            req, lambda i: self.accounts.new_session(i.user, chat_id, i.token, lang)
        )
        await req.replier.send_text(t("new_project", req.lang))

    async def _upload(self, req: _Request) -> None:
        msg, lang = req.msg, req.lang
        if not msg.attachments:
            await req.replier.send_text(t("upload_none", lang))
            return
        await quietly(req.replier.working("upload_video"))
        added: list[str] = []
        for att in msg.attachments:
            refusal, described = await self._upload_one(req, att)
            if refusal:
                limit_mb = self.settings.max_upload_mb
                name = display_name(att.filename)
                await req.replier.send_text(t(refusal, lang, name=name, limit=limit_mb))
            else:
                added.extend(described)
        if not added:
            return
        uploaded = t("uploaded", lang, files=", ".join(added))
        if msg.text.strip():
            await req.replier.send_text(uploaded)
            await self._chat(req, msg.text.strip())
        else:
            await self._after_chat(req, None, note=uploaded)

    async def _upload_one(self, req: _Request, att: Attachment) -> tuple[str | None, list[str]]:
        """Check, download and upload one file: (why not, or None; what was added)."""
        limit = self.settings.max_upload_bytes
        refusal = refuse_before_download(att.filename, att.size, limit)
        if refusal:
            return refusal, []
        try:
            data = await att.read()
        except Exception:
            log.warning("could not download an attachment from %s", req.msg.platform, exc_info=True)
            return "download_failed", []
        refusal = refuse_after_download(data, limit)
        if refusal:
            return refusal, []
        try:
            result = await self._call(
                req, functools.partial(self._upload_bytes, name=att.filename, data=data)
            )
        except UnsupportedFileError:
            return "unsupported_file", []
        except FileTooLargeError:
            return "file_too_large", []
        return None, [describe_upload(f) for f in result.files] or [display_name(att.filename)]

    async def _upload_bytes(self, ident: Identity, *, name: str, data: bytes) -> UploadResult:
        return await self._client.upload(
            ident.token, ident.session.session_id, filename=safe_filename(name), data=data
        )

    async def _export(self, req: _Request) -> None:
        lang, session = req.lang, req.ident.session
        if self.renders.active_for(session.session_id):
            await req.replier.send_text(t("export_already", lang))
            return
        state = await self._call(req, lambda i: self._client.state(i.token, i.session.session_id))
        await self._remember_draft(req, state.raw_draft)
        if not state.draft.is_exportable:
            await req.replier.send_text(t("nothing_to_export", lang))
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
            ref_extra=ref.extra,
            status=SUBMITTING,
            summary=state.draft.summary(),
        )
        # Recorded before it is sent: a crash right after the backend accepts it must
        # not lose the export (the next start finds the record and follows it).
        await self._store.add_render(render)
        try:
            accepted = await self._call(
                req,
                lambda i: self._client.submit_render(
                    i.token, i.session.session_id, state.raw_draft, render_id=render.render_id
                ),
            )
        except ApiError:
            await self._store.delete_render(render.render_id)  # refused: nothing started
            raise
        except TransportError as exc:
            if not may_have_been_sent(exc):
                await self._store.delete_render(render.render_id)
                raise
            # The backend may have accepted it: follow the record. A render it never
            # received answers 404, and the user is told to try again.
            log.warning("render submit outcome unknown; following %s", render.render_id)
            await quietly(req.replier.progress(t("export_started", lang, percent=0), 0))
            self.renders.follow(render, req.replier, lang)
            return
        if accepted != render.render_id:  # the backend chose the id (or ours was taken)
            old_id, render.render_id = render.render_id, accepted
            await self._store.add_render(render)
            await self._store.delete_render(old_id)
        render.status = "pending"
        await self._store.update_render(render.render_id, status="pending")
        await quietly(req.replier.progress(t("export_started", lang, percent=0), 0))
        await quietly(req.replier.working("upload_video"))
        self.renders.follow(render, req.replier, lang)


def _loads(raw: str | None) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
