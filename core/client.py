"""The async NemoVideo client: one method per endpoint, typed results.

Every endpoint of NEMO_API.md is one method. Replies are unwrapped by
:func:`core.envelope.unwrap` and failures raised from the :mod:`core.errors` tree.
The exchange itself (the pooled ``aiohttp.ClientSession``, SSE, uploads, downloads)
is :class:`core.nemo_http.NemoHttp`; every call, streams and downloads included, goes
through one retry policy and one translation of aiohttp errors (:mod:`core.retry`:
429 waited out once, 5xx and transport failures retried only where that is safe).
What may be uploaded is :mod:`core.files`' policy; the multipart body is
:mod:`core.multipart`.

Token expiry is *not* handled here: :class:`~core.errors.TokenExpiredError` goes
up to the service, which owns the user's client id.

Tokens never reach a log line, a ``repr`` or an exception message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Sequence,
)
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from core.envelope import unwrap_render_status
from core.errors import (
    ApiError,
    ExportBlockedError,
    OutOfCreditsError,
    RateLimitedError,
    SessionNotFoundError,
    TokenExpiredError,
)
from core.events import ChatEvent
from core.files import check_upload
from core.multipart import MultipartFile
from core.nemo_http import UPLOAD_TIMEOUT, NemoHttp
from core.retry import RetryPolicy
from core.wire import (
    AnonToken,
    Credits,
    RenderStatus,
    SessionInfo,
    SessionState,
    UploadResult,
)

if TYPE_CHECKING:
    from core.config import Settings

__all__ = [
    "AnonToken",
    "Credits",
    "NemoClient",
    "RenderStatus",
    "SessionInfo",
    "SessionState",
    "UploadResult",
]

log = logging.getLogger("nemo.client")

APP_NAME = "nemo_agent"
# Errors that look like a duplicate render id (the docs do not name a code).
_DUPLICATE_WORDS = ("duplicate", "already exist", "conflict", "in use", "not unique")


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
    session is borrowed (never closed here); without one the client creates and owns
    a pooled ``aiohttp.ClientSession``. ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        base_url: str,
        http: aiohttp.ClientSession | None = None,
        skill_source: str = "nemo-bot",
        skill_version: str = "0.1.0",
        skill_platform: str = "python",
        max_upload_bytes: int = 200 * 1024 * 1024,
        heartbeat_timeout: float = 600.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_upload_bytes = max_upload_bytes
        self.heartbeat_timeout = heartbeat_timeout
        attribution = {
            "X-Skill-Source": skill_source,
            "X-Skill-Version": skill_version,
            "X-Skill-Platform": skill_platform,
        }
        self._http = NemoHttp(
            base_url=self.base_url,
            http=http,
            attribution=attribution,
            heartbeat_timeout=heartbeat_timeout,
            sleep=sleep,
            retry=retry,
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
        await self._http.aclose()

    # -- endpoints ----------------------------------------------------------------

    async def anonymous_token(self, client_id: str) -> AnonToken:
        """Mint (or get back) the anonymous token of ``client_id``. Rate-limited per IP."""
        data = await self._http.call(
            "POST",
            "/api/auth/anonymous-token",
            headers={"X-Client-Id": client_id},
            secrets=(client_id,),
            idempotent=False,
        )
        return AnonToken.from_data(data)

    async def create_session(self, token: str, *, language: str = "en") -> SessionInfo:
        """Start a new agent session (one project)."""
        data = await self._http.call(
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
        async with self._http.open_stream(token, body) as opened:
            if isinstance(opened, list):  # a plain JSON reply, already decoded
                for event in opened:
                    yield event
                return
            async for event in self._http.read_events(opened):
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
        check_upload(filename, None, self.max_upload_bytes)
        if path is not None:
            path = Path(path)
            size = (await asyncio.to_thread(path.stat)).st_size
        elif data is not None:
            size = len(data)
        check_upload(filename, size, self.max_upload_bytes)
        part = MultipartFile(
            filename, path=path, data=data, stream=stream, size=size, limit=self.max_upload_bytes
        )
        data_out = await self._http.call(
            "POST",
            f"/api/upload-video/{APP_NAME}/me/{quote(session_id, safe='')}",
            token=token,
            content=part.body,
            headers=part.headers,
            http_timeout=UPLOAD_TIMEOUT,
            idempotent=False,
            resendable=part.resendable,
        )
        return UploadResult.from_data(data_out)

    async def upload_urls(self, token: str, session_id: str, urls: Sequence[str]) -> UploadResult:
        """Let the backend fetch files from URLs."""
        if isinstance(urls, str):
            urls = [urls]
        data = await self._http.call(
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
        data = await self._http.call("GET", "/api/credits/balance/simple", token=token)
        return Credits.from_data(data)

    async def state(self, token: str, session_id: str) -> SessionState:
        """The session's latest state, with the parsed draft."""
        path = f"/api/state/{APP_NAME}/me/{quote(session_id, safe='')}/latest"
        return SessionState.from_data(await self._http.call("GET", path, token=token))

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
                data = await self._http.call(
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
        data = await self._http.call("GET", path, token=token, unwrapper=unwrap_render_status)
        return RenderStatus.from_data(data)

    async def cancel_render(self, token: str, render_id: str) -> None:
        """Ask the backend to stop a render (cancelling twice is harmless)."""
        path = f"/api/render/proxy/lambda/{quote(render_id, safe='')}/cancel"
        await self._http.call("POST", path, token=token)

    async def download(self, url: str, *, limit: int) -> bytes | None:
        """Fetch ``url`` (e.g. a render output) if it is at most ``limit`` bytes, else None.

        Streamed: stops reading as soon as the announced or received size passes
        ``limit``. Relative URLs resolve against the API root.
        """
        return await self._http.download(url, limit=limit)
