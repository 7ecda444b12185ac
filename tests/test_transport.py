"""The aiohttp-backed transport keeps "could not connect" apart from "the connection broke".

Calls that may already have taken effect (chat, render submit) are resent only after a
connect error; a server that hangs up after reading the request must not look like one.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from core.client import NemoClient
from core.errors import TransportError
from core.transport import NemoTransport


class LocalServer:
    """A raw TCP server on 127.0.0.1; ``async with`` yields its ``http://`` URL."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class HangUpServer(LocalServer):
    """Reads each request in full, then closes the connection without answering."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        await reader.readexactly(length)
        self.requests += 1
        writer.close()


class AnsweringServer(LocalServer):
    """Answers every request ``200 ok`` and records its request line (as a proxy sees it)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.lines.append(head.decode().split("\r\n", 1)[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


@pytest.fixture
async def hang_up() -> AsyncIterator[tuple[HangUpServer, str]]:
    server = HangUpServer()
    async with server as url:
        yield server, url


async def no_sleep(_: float) -> None:
    return None


async def test_a_hang_up_after_the_request_is_not_a_connect_error(
    hang_up: tuple[HangUpServer, str],
) -> None:
    server, url = hang_up
    async with httpx.AsyncClient(transport=NemoTransport(limits=httpx.Limits())) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f"{url}/x", json={"a": 1})
    assert server.requests == 1


async def test_a_post_that_reached_the_server_is_never_resent(
    hang_up: tuple[HangUpServer, str],
) -> None:
    server, url = hang_up
    async with NemoClient(base_url=url, sleep=no_sleep) as client:
        with pytest.raises(TransportError):
            await client.submit_render("nmv_usr_x", "1", {"t": []})
    assert server.requests == 1


async def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: refused
        async with httpx.AsyncClient(transport=NemoTransport(limits=httpx.Limits())) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/")


class ScriptedServer:
    """Answers every request with the same raw bytes, then closes the connection."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(self.reply)
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def test_a_malformed_reply_is_an_httpx_error() -> None:
    huge_header = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\n{}"
    async with (
        ScriptedServer(huge_header) as url,
        httpx.AsyncClient(transport=NemoTransport(limits=httpx.Limits())) as http,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(f"{url}/")


async def test_a_hang_up_mid_body_is_a_read_error() -> None:
    partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it"
    async with (
        ScriptedServer(partial) as url,
        httpx.AsyncClient(transport=NemoTransport(limits=httpx.Limits())) as http,
    ):
        with pytest.raises(httpx.ReadError):
            await http.get(f"{url}/")


async def test_the_client_turns_a_malformed_reply_into_a_transport_error() -> None:
    huge_header = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\n{}"
    async with ScriptedServer(huge_header) as url, NemoClient(base_url=url, sleep=no_sleep) as c:
        with pytest.raises(TransportError):
            await c.credits("nmv_usr_x")


async def test_the_environments_proxy_is_used_and_no_proxy_bypasses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy, direct = AnsweringServer(), AnsweringServer()
    async with proxy as proxy_url, direct as direct_url:
        for name in ("HTTPS_PROXY", "ALL_PROXY", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.setenv("http_proxy", proxy_url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with httpx.AsyncClient(transport=NemoTransport(limits=httpx.Limits())) as http:
            far = await http.get("http://nemo.example/api/state")
            near = await http.get(f"{direct_url}/api/state")
    assert far.text == near.text == "ok"
    assert proxy.lines == ["GET http://nemo.example/api/state HTTP/1.1"]
    assert direct.lines == ["GET /api/state HTTP/1.1"]
