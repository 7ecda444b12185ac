"""The async NemoVideo client: one pooled ``httpx.AsyncClient``, typed results.

Every endpoint of NEMO_API.md is one method. Replies are unwrapped by
:func:`core.wire.unwrap` and failures raised from the :mod:`core.errors` tree;
httpx exceptions are translated here, once, with ``raise ... from exc``.

Retries, and why they are safe:

* HTTP 429 means "not processed": every call sleeps ``retry_after`` (injected
  ``sleep``) and tries once more.
* Idempotent calls (credits, state, render status, cancel, download) retry 5xx
  replies and connection failures with jittered exponential backoff.
* Calls that may have taken effect (chat, upload, render submit) are resent only
  when httpx proves nothing left the machine (connect errors, pool time-outs);
  resending a chat message mid-generation would duplicate work and charges.
* Token expiry is *not* handled here: :class:`~core.errors.TokenExpiredError`
  goes up to the service, which owns the user's client id.

Tokens travel only in the ``Authorization`` header. They never reach a log line,
a ``repr`` or an exception message (``nemo.client`` logs method, path, status).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import mimetypes
import random
import secrets
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Sequence,
)
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from httpx_sse import aconnect_sse

from core.errors import (
    ApiError,
    ExportBlockedError,
    FileTooLargeError,
    OutOfCreditsError,
    RateLimitedError,
    ServerError,
    SessionNotFoundError,
    StreamTimeoutError,
    TokenExpiredError,
    TransportError,
    UnsupportedFileError,
)
from core.events import ChatEvent, EventDecoder, HeartbeatEvent, SSEChatDecoder
from core.transport import NemoTransport
from core.wire import (
    AnonToken,
    Credits,
    RenderStatus,
    SessionInfo,
    SessionState,
    UploadResult,
    unwrap,
    unwrap_render_status,
)

if TYPE_CHECKING:
    from core.config import Settings

__all__ = [
    "ACCEPTED_EXTENSIONS",
    "AnonToken",
    "Credits",
    "NemoClient",
    "RenderStatus",
    "SessionInfo",
    "SessionState",
    "UploadResult",
]

log = logging.getLogger("nemo.client")

ACCEPTED_EXTENSIONS: frozenset[str] = frozenset(
    {"mp4", "mov", "avi", "webm", "mkv", "jpg", "jpeg", "png", "gif", "webp", "mp3", "wav"}
    | {"m4a", "aac"}
)

APP_NAME = "nemo_agent"
JSON_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=30.0)
DOWNLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=30.0)
# Every chat stream holds a connection for up to 15 minutes, so the pool must not cap
# how many users can chat at once (256 left the 257th waiting: bench/concurrency.py).
# Idle keep-alive connections stay few: httpx's pool bookkeeping grows with them.
POOL_LIMITS = httpx.Limits(max_connections=4096, max_keepalive_connections=64)
ATTEMPTS = 3  # for idempotent calls and connect errors
BACKOFF_BASE = 0.5  # seconds; doubled per attempt, jittered ±50 %
MAX_RATE_LIMIT_WAIT = 120.0  # a longer Retry-After is passed up instead of slept through
CHUNK = 256 * 1024

# Nothing reached the server: safe to resend even a non-idempotent call.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Errors that look like a duplicate render id (the docs do not name a code).
_DUPLICATE_WORDS = ("duplicate", "already exist", "conflict", "in use", "not unique")


def _extension(filename: str) -> str:
    name = filename.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _quote_filename(filename: str) -> str:
    """A filename safe inside a quoted multipart header (HTML5 form encoding)."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return name.replace("\r", " ").replace("\n", " ").replace('"', "%22")


def may_have_been_sent(exc: TransportError) -> bool:
    """Whether a call that failed in transport may still have reached the backend.

    Only a failure to connect proves nothing was sent (the client already retried
    those); a hang-up or time-out after sending leaves the outcome unknown.
    """
    return not isinstance(exc.__cause__, _NOT_SENT)


def new_render_id() -> str:
    """A fresh render id: ``render_<unix ms>_<random hex>``."""
    return f"render_{int(time.time() * 1000)}_{secrets.token_hex(4)}"


def _is_duplicate_id(exc: ApiError) -> bool:
    if isinstance(
        exc,
        TokenExpiredError
        | SessionNotFoundError
        | RateLimitedError
        | OutOfCreditsError
        | ExportBlockedError,
    ):
        return False
    if 409 in (exc.code, exc.status):
        return True
    message = exc.message.lower()
    return any(word in message for word in _DUPLICATE_WORDS)


class NemoClient:
    """Async client for the NemoVideo API.

    Use as ``async with NemoClient(base_url=...) as nemo:``. An injected ``http``
    client is borrowed (never closed here); without one the client creates and owns
    a pooled ``httpx.AsyncClient``. ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        base_url: str,
        http: httpx.AsyncClient | None = None,
        skill_source: str = "nemo-bot",
        skill_version: str = "0.1.0",
        skill_platform: str = "python",
        max_upload_bytes: int = 200 * 1024 * 1024,
        heartbeat_timeout: float = 600.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_upload_bytes = max_upload_bytes
        self.heartbeat_timeout = heartbeat_timeout
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=JSON_TIMEOUT, transport=NemoTransport(limits=POOL_LIMITS)
        )
        self._sleep = sleep
        self._attribution = {
            "X-Skill-Source": skill_source,
            "X-Skill-Version": skill_version,
            "X-Skill-Platform": skill_platform,
        }
        # Silence between bytes is bounded by the heartbeat limit: any longer and
        # the stream is dead anyway. Heartbeats keep 15-minute generations alive.
        self._sse_timeout = httpx.Timeout(
            connect=10.0, read=max(heartbeat_timeout, 1.0), write=30.0, pool=30.0
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> NemoClient:
        """A client configured from :class:`core.config.Settings`."""
        return cls(
            base_url=settings.nemo_api_base,
            skill_source=settings.skill_source,
            skill_version=settings.skill_version,
            skill_platform=settings.skill_platform,
            max_upload_bytes=settings.max_upload_bytes,
            heartbeat_timeout=settings.heartbeat_timeout_s,
        )

    def __repr__(self) -> str:
        return f"NemoClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> NemoClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    # -- endpoints ----------------------------------------------------------------

    async def anonymous_token(self, client_id: str) -> AnonToken:
        """Mint (or get back) the anonymous token of ``client_id``. Rate-limited per IP."""
        data = await self._call(
            "POST",
            "/api/auth/anonymous-token",
            headers={"X-Client-Id": client_id},
            secrets=(client_id,),
            idempotent=False,
        )
        return AnonToken.from_data(data)

    async def create_session(self, token: str, *, language: str = "en") -> SessionInfo:
        """Start a new agent session (one project)."""
        data = await self._call(
            "POST",
            f"/api/tasks/me/with-session/{APP_NAME}",
            token=token,
            json={"task_name": "project", "language": language},
            idempotent=False,
        )
        return SessionInfo.from_data(data)

    async def chat(self, token: str, session_id: str, text: str) -> AsyncGenerator[ChatEvent, None]:
        """Send one message; yield the agent's events until the stream closes.

        An error reply before streaming (e.g. session not found) raises the mapped
        :class:`ApiError`; errors inside the stream are yielded as
        ``StreamErrorEvent``; a dropped connection raises :class:`TransportError`;
        heartbeats alone for ``heartbeat_timeout`` s raise :class:`StreamTimeoutError`.
        Close the generator (``contextlib.aclosing``) if you stop early.
        """
        body = {
            "app_name": APP_NAME,
            "user_id": "me",
            "session_id": session_id,
            "new_message": {"role": "user", "parts": [{"text": text}]},
        }
        async with self._open_stream(token, body) as opened:
            if isinstance(opened, list):  # a plain JSON reply, already decoded
                for event in opened:
                    yield event
                return
            async for event in self._read_events(opened):
                yield event

    async def upload(
        self,
        token: str,
        session_id: str,
        *,
        filename: str,
        path: Path | None = None,
        data: bytes | None = None,
        stream: AsyncIterable[bytes] | None = None,
        size: int | None = None,
    ) -> UploadResult:
        """Upload one file (from ``path``, ``data`` or ``stream``) as multipart ``files``.

        The extension and the size (``size``, or the file's / data's length) are
        checked before any byte is sent: :class:`UnsupportedFileError` /
        :class:`FileTooLargeError` are raised locally. A stream of unknown size is
        cut off with :class:`FileTooLargeError` once it passes the cap.
        """
        if sum(source is not None for source in (path, data, stream)) != 1:
            raise ValueError("upload() needs exactly one of path, data or stream")
        self.check_file(filename, None)
        if path is not None:
            path = Path(path)
            size = (await asyncio.to_thread(path.stat)).st_size
        elif data is not None:
            size = len(data)
        self.check_file(filename, size)

        boundary = secrets.token_hex(16)
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{_quote_filename(filename)}"'
            f"\r\nContent-Type: {mime}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if size is not None:
            headers["Content-Length"] = str(len(head) + size + len(tail))
        started = False
        limit = self.max_upload_bytes

        async def body() -> AsyncIterator[bytes]:
            nonlocal started
            started = True
            yield head
            sent = 0
            async for chunk in self._file_chunks(path, data, stream):
                sent += len(chunk)
                if sent > limit:
                    raise FileTooLargeError(4002, f"file is larger than {limit // 2**20} MB")
                yield chunk
            if size is not None and sent != size:
                raise ValueError(f"upload stream gave {sent} bytes, expected {size}")
            yield tail

        data_out = await self._call(
            "POST",
            f"/api/upload-video/{APP_NAME}/me/{quote(session_id, safe='')}",
            token=token,
            content=body,
            headers=headers,
            http_timeout=UPLOAD_TIMEOUT,
            idempotent=False,
            # A consumed stream cannot be replayed; a file or bytes can.
            resendable=lambda: stream is None or not started,
        )
        return UploadResult.from_data(data_out)

    async def upload_urls(self, token: str, session_id: str, urls: Sequence[str]) -> UploadResult:
        """Let the backend fetch files from URLs."""
        if isinstance(urls, str):
            urls = [urls]
        data = await self._call(
            "POST",
            f"/api/upload-video/{APP_NAME}/me/{quote(session_id, safe='')}",
            token=token,
            json={"urls": list(urls), "source_type": "url"},
            http_timeout=UPLOAD_TIMEOUT,
            idempotent=False,
        )
        return UploadResult.from_data(data)

    async def credits(self, token: str) -> Credits:
        """The credit balance."""
        data = await self._call("GET", "/api/credits/balance/simple", token=token)
        return Credits.from_data(data)

    async def state(self, token: str, session_id: str) -> SessionState:
        """The session's latest state, with the parsed draft."""
        path = f"/api/state/{APP_NAME}/me/{quote(session_id, safe='')}/latest"
        return SessionState.from_data(await self._call("GET", path, token=token))

    async def submit_render(
        self,
        token: str,
        session_id: str,
        draft: dict[str, Any] | None,
        *,
        render_id: str | None = None,
    ) -> str:
        """Start an export; return its render id.

        ``draft`` is the raw draft to render; ``None`` reads the session's latest
        one first. ``render_id`` lets the caller record the id before sending; a
        duplicate-id error is retried once with a fresh id (then that one is returned).
        """
        if draft is None:
            draft = (await self.state(token, session_id)).raw_draft
        for attempt in (1, 2):
            render_id = render_id if attempt == 1 and render_id else new_render_id()
            body = {
                "id": render_id,
                "sessionId": session_id,
                "draft": draft,
                "output": {"format": "mp4", "quality": "high"},
            }
            try:
                data = await self._call(
                    "POST", "/api/render/proxy/lambda", token=token, json=body, idempotent=False
                )
            except ApiError as exc:
                if attempt == 1 and _is_duplicate_id(exc):
                    log.info("render id %s taken; retrying with a new id", render_id)
                    continue
                raise
            if isinstance(data, dict):
                for key in ("id", "renderId", "render_id"):
                    value = data.get(key)
                    if isinstance(value, str) and value:
                        return value
            return render_id
        raise AssertionError("unreachable")  # pragma: no cover

    async def render_status(self, token: str, render_id: str) -> RenderStatus:
        """Poll one render (either reply shape)."""
        path = f"/api/render/proxy/lambda/{quote(render_id, safe='')}"
        data = await self._call("GET", path, token=token, unwrapper=unwrap_render_status)
        return RenderStatus.from_data(data)

    async def cancel_render(self, token: str, render_id: str) -> None:
        """Ask the backend to stop a render (cancelling twice is harmless)."""
        path = f"/api/render/proxy/lambda/{quote(render_id, safe='')}/cancel"
        await self._call("POST", path, token=token)

    async def download(self, url: str, *, limit: int) -> bytes | None:
        """Fetch ``url`` (e.g. a render output) if it is at most ``limit`` bytes, else None.

        Streamed: stops reading as soon as the announced or received size passes
        ``limit``. Relative URLs resolve against the API root.
        """
        url = urljoin(self.base_url + "/", url)
        shown = urlsplit(url)._replace(query="", fragment="").geturl()  # no signed params in logs
        attempt = 0
        rate_limited = False
        while True:
            attempt += 1
            try:
                async with self._http.stream(
                    "GET",
                    url,
                    headers=self._attribution,
                    timeout=DOWNLOAD_TIMEOUT,
                    follow_redirects=True,
                ) as response:
                    if response.status_code >= 400:
                        unwrap(
                            response.status_code,
                            await response.aread(),
                            retry_after=response.headers.get("retry-after"),
                        )
                    announced = response.headers.get("content-length", "")
                    if announced.isdigit() and int(announced) > limit:
                        log.debug("download %s: %s bytes > limit", shown, announced)
                        return None
                    buffer = bytearray()
                    async for chunk in response.aiter_bytes():
                        buffer += chunk
                        if len(buffer) > limit:
                            log.debug("download %s: over limit while streaming", shown)
                            return None
                    log.debug("download %s: %d bytes", shown, len(buffer))
                    return bytes(buffer)
            except RateLimitedError as exc:
                if rate_limited or exc.retry_after > MAX_RATE_LIMIT_WAIT:
                    raise
                rate_limited = True
                attempt -= 1
                await self._sleep(exc.retry_after)
            except (ServerError, httpx.TransportError) as exc:
                if attempt >= ATTEMPTS:
                    if isinstance(exc, ServerError):
                        raise
                    raise TransportError(f"download failed: {type(exc).__name__}") from exc
                await self._backoff(attempt)

    # -- helpers ------------------------------------------------------------------

    def check_file(self, filename: str, size: int | None) -> None:
        """Raise UnsupportedFileError / FileTooLargeError if the file cannot be uploaded."""
        extension = _extension(filename)
        if extension not in ACCEPTED_EXTENSIONS:
            shown = f".{extension} files" if extension else "files without an extension"
            accepted = ", ".join(sorted(ACCEPTED_EXTENSIONS))
            raise UnsupportedFileError(4001, f"{shown} are not accepted (accepted: {accepted})")
        if size is not None and size > self.max_upload_bytes:
            raise FileTooLargeError(
                4002,
                f"file is {size / 2**20:.1f} MB; the limit is {self.max_upload_bytes // 2**20} MB",
            )

    def _headers(self, token: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(self._attribution)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers

    @staticmethod
    async def _file_chunks(
        path: Path | None, data: bytes | None, stream: AsyncIterable[bytes] | None
    ) -> AsyncIterator[bytes]:
        """The upload body in chunks; a file is read in a worker thread, never whole."""
        if data is not None:
            for offset in range(0, len(data), CHUNK):
                yield data[offset : offset + CHUNK]
        elif path is not None:
            handle = await asyncio.to_thread(path.open, "rb")
            try:
                while chunk := await asyncio.to_thread(handle.read, CHUNK):
                    yield chunk
            finally:
                await asyncio.to_thread(handle.close)
        elif stream is not None:
            async for chunk in stream:
                if chunk:
                    yield bytes(chunk)

    async def _backoff(self, attempt: int) -> None:
        delay = BACKOFF_BASE * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
        await self._sleep(delay)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        content: Callable[[], AsyncIterator[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        http_timeout: httpx.Timeout = JSON_TIMEOUT,
        idempotent: bool = True,
        resendable: Callable[[], bool] = lambda: True,
        secrets: tuple[str, ...] = (),
        unwrapper: Callable[..., Any] = unwrap,
    ) -> Any:
        """Send one JSON call with the retry policy above; return the unwrapped payload."""
        url = self.base_url + path
        secrets = (*secrets, token) if token else secrets
        attempt = 0
        rate_limited = False
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = await self._http.request(
                    method,
                    url,
                    json=json,
                    content=content() if content is not None else None,
                    headers=self._headers(token, headers),
                    timeout=http_timeout,
                )
            except _NOT_SENT as exc:
                log.debug("%s %s: %s (attempt %d)", method, path, type(exc).__name__, attempt)
                if attempt < ATTEMPTS and resendable():
                    await self._backoff(attempt)
                    continue
                raise TransportError(f"cannot reach NemoVideo ({type(exc).__name__})") from exc
            except httpx.TransportError as exc:
                log.debug("%s %s: %s (attempt %d)", method, path, type(exc).__name__, attempt)
                if idempotent and attempt < ATTEMPTS:
                    await self._backoff(attempt)
                    continue
                raise TransportError(f"NemoVideo connection failed ({type(exc).__name__})") from exc
            log.debug(
                "%s %s -> %d in %.0f ms",
                method,
                path,
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
            try:
                return unwrapper(
                    response.status_code,
                    response.content,
                    retry_after=response.headers.get("retry-after"),
                    secrets=secrets,
                )
            except RateLimitedError as exc:
                if rate_limited or exc.retry_after > MAX_RATE_LIMIT_WAIT or not resendable():
                    raise
                rate_limited = True
                attempt -= 1  # a 429 is not a failed attempt
                log.info("%s %s rate-limited; retrying in %.1f s", method, path, exc.retry_after)
                await self._sleep(exc.retry_after)
            except ServerError:
                if idempotent and attempt < ATTEMPTS:
                    await self._backoff(attempt)
                    continue
                raise

    @contextlib.asynccontextmanager
    async def _open_stream(
        self, token: str, body: dict[str, Any]
    ) -> AsyncIterator[httpx.Response | list[ChatEvent]]:
        """Open ``/run_sse``; yield the streaming response (or a JSON reply's events).

        httpx-sse's ``aconnect_sse`` sets the SSE request headers; reading is done by
        :class:`SSEChatDecoder`, not ``aiter_sse``, so ``: ping`` comments count.
        """
        url = self.base_url + "/run_sse"
        attempt = 0
        rate_limited = False
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                async with aconnect_sse(
                    self._http,
                    "POST",
                    url,
                    json=body,
                    headers=self._headers(token),
                    timeout=self._sse_timeout,
                ) as source:
                    response = source.response
                    kind = response.headers.get("content-type", "")
                    log.debug("POST /run_sse -> %d (%s)", response.status_code, kind)
                    if response.status_code < 400 and "text/event-stream" in kind:
                        yield response
                        return
                    try:
                        # Not a stream: a JSON error (or, tolerated, a JSON event list).
                        data = unwrap(
                            response.status_code,
                            await response.aread(),
                            retry_after=response.headers.get("retry-after"),
                            secrets=(token,),
                        )
                    except RateLimitedError as exc:
                        if rate_limited or exc.retry_after > MAX_RATE_LIMIT_WAIT:
                            raise
                        retry_after = exc.retry_after
                    else:
                        yield EventDecoder().feed_obj(data) if data else []
                        return
            except _NOT_SENT as exc:
                if attempt < ATTEMPTS:
                    await self._backoff(attempt)
                    continue
                raise TransportError(f"cannot reach NemoVideo ({type(exc).__name__})") from exc
            except httpx.TimeoutException as exc:
                raise StreamTimeoutError("NemoVideo chat stream timed out") from exc
            except httpx.HTTPError as exc:
                raise TransportError(f"chat stream failed ({type(exc).__name__})") from exc
            if retry_after is not None:
                rate_limited = True
                attempt -= 1
                log.info("POST /run_sse rate-limited; retrying in %.1f s", retry_after)
                await self._sleep(retry_after)

    async def _read_events(self, response: httpx.Response) -> AsyncGenerator[ChatEvent, None]:
        """Decode the stream, enforce the heartbeat-only limit, translate read errors."""
        decoder = SSEChatDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        last_real = time.monotonic()
        chunks = response.aiter_bytes()
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                events = decoder.feed(utf8.decode(b"", final=True)) + decoder.close()
                for event in events:
                    yield event
                return
            except httpx.TimeoutException as exc:
                raise StreamTimeoutError("NemoVideo chat stream went silent") from exc
            except httpx.HTTPError as exc:
                raise TransportError(f"chat stream dropped ({type(exc).__name__})") from exc
            for event in decoder.feed(utf8.decode(chunk)):
                now = time.monotonic()
                if not isinstance(event, HeartbeatEvent):
                    last_real = now
                elif now - last_real > self.heartbeat_timeout:
                    raise StreamTimeoutError(
                        f"no progress from NemoVideo for {self.heartbeat_timeout:g} s"
                    )
                yield event
