"""The HTTP exchange under the NemoVideo client: one pooled ``httpx.AsyncClient``.

:class:`NemoHttp` sends JSON calls, opens and reads the chat's SSE stream and
downloads files, every one under the one retry policy and error translation of
:mod:`core.retry`. It knows nothing of the endpoints (that is
:class:`core.client.NemoClient`). Tokens travel only in the ``Authorization``
header; they never reach a log line, a ``repr`` or an exception message
(``nemo.client`` logs method, path, status).
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

import httpx
from httpx_sse import aconnect_sse

from core.envelope import unwrap
from core.errors import StreamTimeoutError
from core.events import ChatEvent, EventDecoder, HeartbeatEvent, SSEChatDecoder
from core.retry import RetryPolicy, translated
from core.transport import NemoTransport

__all__ = ["DOWNLOAD_TIMEOUT", "JSON_TIMEOUT", "POOL_LIMITS", "UPLOAD_TIMEOUT", "NemoHttp"]

log = logging.getLogger("nemo.client")

JSON_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=30.0)
DOWNLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=30.0)
# Every chat stream holds a connection for up to 15 minutes, so the pool must not cap
# how many users can chat at once (256 left the 257th waiting: bench/concurrency.py).
# Idle keep-alive connections stay few: httpx's pool bookkeeping grows with them.
POOL_LIMITS = httpx.Limits(max_connections=4096, max_keepalive_connections=64)


class NemoHttp:
    """Calls, streams and downloads against one API root, retried and translated.

    An injected ``http`` client is borrowed (never closed here); without one this
    creates and owns a pooled ``httpx.AsyncClient``. ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        base_url: str,
        http: httpx.AsyncClient | None,
        attribution: dict[str, str],
        heartbeat_timeout: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url
        self.heartbeat_timeout = heartbeat_timeout
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=JSON_TIMEOUT, transport=NemoTransport(limits=POOL_LIMITS)
        )
        self._attribution = attribution
        self._sleep = sleep
        self._retry = retry or RetryPolicy()
        # Silence between bytes is bounded by the heartbeat limit: any longer and
        # the stream is dead anyway. Heartbeats keep 15-minute generations alive.
        self._sse_timeout = httpx.Timeout(
            connect=10.0, read=max(heartbeat_timeout, 1.0), write=30.0, pool=30.0
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

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
        http_timeout: httpx.Timeout = JSON_TIMEOUT,
        idempotent: bool = True,
        resendable: Callable[[], bool] = lambda: True,
        secrets: tuple[str, ...] = (),
        unwrapper: Callable[..., Any] = unwrap,
    ) -> Any:
        """Send one JSON call under the retry policy; return the unwrapped payload."""
        url = self.base_url + path
        secrets = (*secrets, token) if token else secrets

        async def attempt() -> Any:
            started = time.monotonic()
            with translated("connection"):
                response = await self._http.request(
                    method,
                    url,
                    json=json,
                    content=content() if content is not None else None,
                    headers=self.headers(token, headers),
                    timeout=http_timeout,
                )
            elapsed_ms = (time.monotonic() - started) * 1000
            log.debug("%s %s -> %d in %.0f ms", method, path, response.status_code, elapsed_ms)
            return unwrapper(
                response.status_code,
                response.content,
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
    ) -> AsyncIterator[httpx.Response | list[ChatEvent]]:
        """Open ``/run_sse``; yield the streaming response (or a JSON reply's events).

        httpx-sse's ``aconnect_sse`` sets the SSE request headers; reading is done by
        :class:`SSEChatDecoder`, not ``aiter_sse``, so ``: ping`` comments count.
        """
        url = self.base_url + "/run_sse"

        async def attempt() -> tuple[contextlib.AsyncExitStack, httpx.Response | list[ChatEvent]]:
            with translated("chat stream", stream=True):
                async with contextlib.AsyncExitStack() as stack:
                    source = await stack.enter_async_context(
                        aconnect_sse(
                            self._http,
                            "POST",
                            url,
                            json=body,
                            headers=self.headers(token),
                            timeout=self._sse_timeout,
                        )
                    )
                    response = source.response
                    kind = response.headers.get("content-type", "")
                    log.debug("POST /run_sse -> %d (%s)", response.status_code, kind)
                    if response.status_code < 400 and "text/event-stream" in kind:
                        return stack.pop_all(), response  # stays open for the caller
                    # Not a stream: a JSON error (or, tolerated, a JSON event list).
                    data = unwrap(
                        response.status_code,
                        await response.aread(),
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

    async def read_events(self, response: httpx.Response) -> AsyncGenerator[ChatEvent, None]:
        """Decode the stream and enforce the heartbeat-only limit."""
        decoder = SSEChatDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        last_real = time.monotonic()
        chunks = response.aiter_bytes()
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
        ``limit``. Relative URLs resolve against the API root.
        """
        url = urljoin(self.base_url + "/", url)
        shown = urlsplit(url)._replace(query="", fragment="").geturl()  # no signed params in logs

        async def attempt() -> bytes | None:
            with translated("download"):
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

        return await self._retry.run("download", attempt, sleep=self._sleep, idempotent=True)
