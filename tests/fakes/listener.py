"""A server on 127.0.0.1 that a test can stop and start again on the same port.

Stopping refuses new connections and resets the open ones (the peer sees a reset, not
a polite close); starting listens again on the port the first start chose. The fakes
that stage an unreachable peer build on it (:mod:`tests.fakes.tcp_proxy`,
:mod:`tests.fakes.scripted_http`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

__all__ = ["ResettableServer"]


class ResettableServer:
    """Subclasses handle each connection in :meth:`_handle` and list its writers in ``_writers``."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and reset the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._after_reset()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def _after_reset(self) -> None:
        """What else a stop ends, after the connections were reset."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
