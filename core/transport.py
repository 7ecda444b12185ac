"""The HTTP transport under python-telegram-bot's Bot API calls: httpx's API on
aiohttp's sockets. (The NemoVideo client talked through it too, until httpx's own
per-call work showed as half the client's CPU in a crowd: it now uses aiohttp
directly, :mod:`core.nemo_http`, with the same error mapping in :mod:`core.retry`.)

httpx's own connection pool does work per request that grows with the requests in
flight (encode/httpx#3215); with hundreds of users streaming at once that costs a
core. ``httpx-aiohttp`` keeps httpx's API and lets aiohttp move the bytes: in
``bench/concurrency.py`` 1,000 open streams relay with a p99 of ~3 ms instead of
35-65 ms, at under half the CPU. The Telegram adapter hands the same transport to
python-telegram-bot (its ``HTTPXRequest`` takes one through ``httpx_kwargs``) for
the same reason: in a crowd, the Bot API calls through httpcore's pool (which also
attempts ``import sniffio`` on every call) were the bot's largest CPU cost.

One correction on top: httpx-aiohttp maps every ``aiohttp.ClientConnectionError``
to ``httpx.ConnectTimeout``, including a server that hung up *after* the request
was sent. The client treats connect errors as "nothing was sent, safe to resend",
so that would resend chat messages and render submits. :class:`NemoTransport`
keeps "could not connect" (``ConnectError``/``ConnectTimeout``) apart from "the
connection broke" (``RemoteProtocolError``), and maps what the library leaves
unmapped (a malformed reply, a bare time-out, a failure mid-body) to httpx errors,
so nothing but httpx's error tree ever leaves the transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from core.proxies import ProxyRoutes

__all__ = ["NemoTransport"]


class NemoTransport(httpx.AsyncBaseTransport):
    """An aiohttp-backed httpx transport whose errors are all httpx errors, honestly mapped."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._limits = limits
        self._routes = ProxyRoutes()
        self._inner: dict[str | None, AiohttpTransport] = {}
        self._closed = False

    def _transport_for(self, url: httpx.URL) -> AiohttpTransport:
        proxy = self._routes.proxy_for(url.scheme, url.host)
        inner = self._inner.get(proxy)
        if inner is None:
            limits = self._limits

            def session() -> aiohttp.ClientSession:
                connector = aiohttp.TCPConnector(
                    limit=limits.max_connections or 0, keepalive_timeout=limits.keepalive_expiry
                )
                return aiohttp.ClientSession(connector=connector)

            via = httpx.Proxy(proxy) if proxy else None
            inner = self._inner[proxy] = AiohttpTransport(limits=limits, client=session, proxy=via)
        return inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request; see the module docstring for the error mapping."""
        if self._closed:  # (a new aiohttp session now would never be closed)
            raise RuntimeError("the HTTP transport is closed")
        try:
            response = await self._transport_for(request.url).handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            raise _remap(exc, request) from exc.__cause__
        except (aiohttp.ClientError, TimeoutError) as exc:  # left unmapped by httpx-aiohttp
            raise _broken(exc, request) from exc
        response.stream = _BodyStream(response.stream, request)
        return response

    async def aclose(self) -> None:
        """Close aiohttp's sessions and their connections (a request after this fails)."""
        self._closed = True
        for transport in self._inner.values():
            await transport.aclose()


class _BodyStream(httpx.AsyncByteStream):
    """The response body, with every failure while reading it an httpx read error."""

    def __init__(self, inner: httpx.AsyncByteStream | httpx.SyncByteStream, request: httpx.Request):
        assert isinstance(inner, httpx.AsyncByteStream)
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.ConnectTimeout as exc:  # a hang-up mid-body, as httpx-aiohttp maps it
            raise httpx.ReadError(str(exc), request=self._request) from exc.__cause__
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _broken(exc, self._request) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()


def _broken(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    """An aiohttp error the library did not map: the exchange broke after it began."""
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(str(exc) or "timed out", request=request)
    return httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request)


def _remap(exc: httpx.ConnectTimeout, request: httpx.Request) -> Exception:
    """What an ``aiohttp.ClientConnectionError`` really was."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return exc
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(cause), request=request)
    # An error raised by the request body itself (an upload stream refusing to go
    # past the size cap) reaches us wrapped as a connection error: hand it back.
    inner = cause.__cause__ if cause is not None else None
    if isinstance(inner, Exception) and not isinstance(inner, aiohttp.ClientError | OSError):
        return inner
    message = str(cause or exc) or type(cause).__name__
    return httpx.RemoteProtocolError(message, request=request)
