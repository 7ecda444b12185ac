"""The HTTP exchange under the NemoVideo client: one pooled ``aiohttp.ClientSession``.

:class:`NemoHttp` sends JSON calls, opens and reads the chat's SSE stream, uploads
and downloads files, every one under the one retry policy and error translation of
:mod:`core.retry`. It knows nothing of the endpoints (that is
:class:`core.client.NemoClient`). Tokens travel only in the ``Authorization``
header; they never reach a log line, a ``repr`` or an exception message
(``nemo.client`` logs method, path, status).

Why aiohttp directly, not httpx: when a crowd of new users writes at once, the bot's
core is pegged until the last backend stream opens, and the backend client was the
largest piece of that CPU. httpx's request/response models, URL parsing, header
objects and cookie jar roughly doubled the client's CPU per call, even with aiohttp
moving the bytes underneath (``core.transport``). Measured with the three calls a new
user's first message makes (anonymous token, session, open ``/run_sse``), 1,000 users
at once against the simulator on this 2-core machine (the floor rows of
``python -m bench crowd``), client CPU until every stream opened, medians of four
runs each, side by side: httpx on aiohttp 2.10 s (last stream opened after 2.6 s);
this module 1.06 s (1.55 s); a bare aiohttp script making the same calls 0.97 s.

What httpx gave for free and is kept here by hand: proxies from the environment
(:class:`core.proxies.ProxyRoutes`, passed per request), no cookies
(one pooled session serves every user: :class:`aiohttp.DummyCookieJar`), and the
error mapping of :func:`core.retry.translated`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from core.envelope import unwrap
from core.errors import StreamTimeoutError
from core.events import ChatEvent, EventDecoder, HeartbeatEvent, SSEChatDecoder
from core.proxies import ProxyRoutes
from core.retry import RetryPolicy, translated

__all__ = ["DOWNLOAD_TIMEOUT", "JSON_TIMEOUT", "POOL_LIMIT", "UPLOAD_TIMEOUT", "NemoHttp"]

log = logging.getLogger("nemo.client")

# ``connect`` bounds the wait for a pooled connection plus the connect itself,
# ``sock_connect`` the connect alone, ``sock_read`` any silence while a reply is
# awaited or read. (aiohttp has no write time-out; a stalled upload is bounded by
# ``sock_read`` once the body is out, and by the server.)
JSON_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30.0, sock_connect=10.0, sock_read=30.0)
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30.0, sock_connect=10.0, sock_read=300.0)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(
    total=None, connect=30.0, sock_connect=10.0, sock_read=60.0
)
# Every chat stream holds a connection for up to 15 minutes, so the pool must not cap
# how many users can chat at once (256 left the 257th waiting: bench/concurrency.py).
POOL_LIMIT = 4096
_SSE_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-store"}


class NemoHttp:
    """Calls, streams and downloads against one API root, retried and translated.

    An injected ``http`` session is borrowed (never closed here); without one this
    creates and owns a pooled ``aiohttp.ClientSession`` on first use (in the running
    event loop). ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        base_url: str,
        http: aiohttp.ClientSession | None,
        attribution: dict[str, str],
        heartbeat_timeout: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url
        self.heartbeat_timeout = heartbeat_timeout
        self._owns_http = http is None
        self._http = http
        self._closed = False
        self._attribution = attribution
        self._sleep = sleep
        self._retry = retry or RetryPolicy()
        self._routes = ProxyRoutes()
        # Silence between bytes is bounded by the heartbeat limit: any longer and
        # the stream is dead anyway. Heartbeats keep 15-minute generations alive.
        self._sse_timeout = aiohttp.ClientTimeout(
            total=None, connect=30.0, sock_connect=10.0, sock_read=max(heartbeat_timeout, 1.0)
        )

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            if self._closed:  # (a new session now would never be closed)
                raise RuntimeError("the NemoVideo HTTP client is closed")
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_LIMIT),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=JSON_TIMEOUT,
            )
        return self._http

    def _proxy(self, url: str) -> str | None:
        """The proxy for ``url`` from the environment (None: connect directly)."""
        parts = urlsplit(url)
        return self._routes.proxy_for(parts.scheme, parts.hostname or "")

    async def aclose(self) -> None:
        """Close the HTTP session if this object created it."""
        self._closed = True
        if self._owns_http and self._http is not None:
            await self._http.close()

    def headers(self, token: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(self._attribution)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        content: Callable[[], AsyncIterator[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        http_timeout: aiohttp.ClientTimeout | None = None,
        idempotent: bool = True,
        resendable: Callable[[], bool] = lambda: True,
        secrets: tuple[str, ...] = (),
        unwrapper: Callable[..., Any] = unwrap,
    ) -> Any:
        """Send one JSON call under the retry policy; return the unwrapped payload.

        ``http_timeout`` defaults to :data:`JSON_TIMEOUT` (looked up per call).
        """
        url = self.base_url + path
        secrets = (*secrets, token) if token else secrets
        proxy = self._proxy(url)

        async def attempt() -> Any:
            started = time.monotonic()
            with translated("connection"):
                async with self._session().request(
                    method,
                    url,
                    json=json,
                    data=content() if content is not None else None,
                    headers=self.headers(token, headers),
                    timeout=http_timeout or JSON_TIMEOUT,
                    proxy=proxy,
                ) as response:
                    body = await response.read()
            elapsed_ms = (time.monotonic() - started) * 1000
            log.debug("%s %s -> %d in %.0f ms", method, path, response.status, elapsed_ms)
            return unwrapper(
                response.status,
                body,
                retry_after=response.headers.get("retry-after"),
                secrets=secrets,
            )

        return await self._retry.run(
            f"{method} {path}",
            attempt,
            sleep=self._sleep,
            idempotent=idempotent,
            resendable=resendable,
        )

    @contextlib.asynccontextmanager
    async def open_stream(
        self, token: str, body: dict[str, Any]
    ) -> AsyncIterator[aiohttp.ClientResponse | list[ChatEvent]]:
        """Open ``/run_sse``; yield the streaming response (or a JSON reply's events).

        Reading is done by :meth:`read_events` (:class:`SSEChatDecoder`), so
        ``: ping`` comments count as heartbeats.
        """
        url = self.base_url + "/run_sse"
        proxy = self._proxy(url)

        async def attempt() -> tuple[contextlib.AsyncExitStack, aiohttp.ClientResponse | list]:
            with translated("chat stream", stream=True):
                async with contextlib.AsyncExitStack() as stack:
                    response = await stack.enter_async_context(
                        self._session().post(
                            url,
                            json=body,
                            headers=self.headers(token, _SSE_HEADERS),
                            timeout=self._sse_timeout,
                            proxy=proxy,
                        )
                    )
                    kind = response.headers.get("content-type", "")
                    log.debug("POST /run_sse -> %d (%s)", response.status, kind)
                    if response.status < 400 and "text/event-stream" in kind:
                        return stack.pop_all(), response  # stays open for the caller
                    # Not a stream: a JSON error (or, tolerated, a JSON event list).
                    data = unwrap(
                        response.status,
                        await response.read(),
                        retry_after=response.headers.get("retry-after"),
                        secrets=(token,),
                    )
            return contextlib.AsyncExitStack(), EventDecoder().feed_obj(data) if data else []

        opened, result = await self._retry.run(
            "POST /run_sse", attempt, sleep=self._sleep, idempotent=False
        )
        with translated("chat stream", stream=True):
            async with opened:
                yield result

    async def read_events(
        self, response: aiohttp.ClientResponse
    ) -> AsyncGenerator[ChatEvent, None]:
        """Decode the stream and enforce the heartbeat-only limit."""
        decoder = SSEChatDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        last_real = time.monotonic()
        chunks = response.content.iter_any()
        while True:
            with translated("chat stream", stream=True):
                chunk = await anext(chunks, None)
            if chunk is None:
                events = decoder.feed(utf8.decode(b"", final=True)) + decoder.close()
                for event in events:
                    yield event
                return
            for event in decoder.feed(utf8.decode(chunk)):
                now = time.monotonic()
                if not isinstance(event, HeartbeatEvent):
                    last_real = now
                elif now - last_real > self.heartbeat_timeout:
                    raise StreamTimeoutError(
                        f"no progress from NemoVideo for {self.heartbeat_timeout:g} s"
                    )
                yield event

    async def download(self, url: str, *, limit: int) -> bytes | None:
        """Fetch ``url`` (e.g. a render output) if it is at most ``limit`` bytes, else None.

        Streamed: stops reading as soon as the announced or received size passes
        ``limit``. Redirects are followed. Relative URLs resolve against the API root.
        """
        url = urljoin(self.base_url + "/", url)
        shown = urlsplit(url)._replace(query="", fragment="").geturl()  # no signed params in logs
        proxy = self._proxy(url)

        async def attempt() -> bytes | None:
            with translated("download"):
                async with self._session().get(
                    url,
                    headers=self._attribution,
                    timeout=DOWNLOAD_TIMEOUT,
                    proxy=proxy,
                ) as response:
                    if response.status >= 400:
                        unwrap(
                            response.status,
                            await response.read(),
                            retry_after=response.headers.get("retry-after"),
                        )
                    announced = response.headers.get("content-length", "")
                    if announced.isdigit() and int(announced) > limit:
                        log.debug("download %s: %s bytes > limit", shown, announced)
                        return None
                    buffer = bytearray()
                    async for chunk in response.content.iter_any():
                        buffer += chunk
                        if len(buffer) > limit:
                            log.debug("download %s: over limit while streaming", shown)
                            return None
                    log.debug("download %s: %d bytes", shown, len(buffer))
                    return bytes(buffer)

        return await self._retry.run("download", attempt, sleep=self._sleep, idempotent=True)
