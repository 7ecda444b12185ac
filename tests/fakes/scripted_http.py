"""A scripted HTTP/1.1 server on 127.0.0.1 for staging what a live backend rarely does.

Each request is answered by the next outcome of a script (then by ``default``):

* a :class:`Reply` (status, JSON or raw body, headers; ``chunks`` streams the body
  chunked, with an optional pause between chunks);
* an ``int``: that status with an HTML body (a proxy's error page);
* :data:`HANG_UP`: the request is read in full, then the connection is closed
  without a reply (the client cannot know whether the call took effect);
* :data:`SILENCE`: the request is read in full and never answered (the client's
  read time-out ends it).

``stop()`` closes the listening socket and resets open connections (a new
connection is refused); ``start()`` listens again on the same port. Every request
that reached the server is in ``requests``.

Usage::

    async with ScriptedServer(503, HANG_UP) as server:
        client = NemoClient(base_url=server.url)
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.listener import ResettableServer

__all__ = ["HANG_UP", "SILENCE", "Reply", "Request", "ScriptedServer"]

HANG_UP = "hang up after reading the request"
SILENCE = "read the request, never answer"

_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


@dataclass
class Reply:
    """One scripted response."""

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None  # sent with Transfer-Encoding: chunked
    pause: float = 0.0  # between chunks


@dataclass
class Request:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class ScriptedServer(ResettableServer):
    """Answers requests from a script of outcomes; see the module docstring."""

    def __init__(self, *outcomes: object, default: object = None) -> None:
        super().__init__()
        self.outcomes = list(outcomes)
        self.default = default if default is not None else Reply(json={"code": 0, "data": {}})
        self.requests: list[Request] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; False when the connection should end."""
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        else:
            body = b""
        self.requests.append(Request(method, path, headers, body))
        outcome = self.outcomes.pop(0) if self.outcomes else self.default
        if outcome == HANG_UP:
            return False
        if outcome == SILENCE:
            await reader.read()  # until the client gives up and closes
            return False
        if isinstance(outcome, int):
            outcome = Reply(
                outcome, body=b"<html>oops</html>", headers={"Content-Type": "text/html"}
            )
        assert isinstance(outcome, Reply), outcome
        await _answer(writer, outcome)
        return True


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return bytes(body)
        body += chunk[:-2]


async def _answer(writer: asyncio.StreamWriter, reply: Reply) -> None:
    headers = dict(reply.headers)
    body = reply.body
    if reply.json is not None:
        body = jsonlib.dumps(reply.json).encode()
        headers.setdefault("Content-Type", "application/json")
    if reply.chunks is None:
        headers["Content-Length"] = str(len(body))
    else:
        headers["Transfer-Encoding"] = "chunked"
    reason = _REASONS.get(reply.status, "Whatever")
    lines = [f"HTTP/1.1 {reply.status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if reply.chunks is None:
        writer.write(body)
    else:
        for chunk in reply.chunks:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
            if reply.pause:
                await asyncio.sleep(reply.pause)
        writer.write(b"0\r\n\r\n")
    await writer.drain()
