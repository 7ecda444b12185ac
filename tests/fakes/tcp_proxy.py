"""A TCP forwarder on 127.0.0.1 that a test can cut and restore, to make a server
(PostgreSQL, say) unreachable for a process under test without stopping the server.

Usage::

    async with TcpProxy("127.0.0.1", pg_port) as proxy:
        url = f"postgresql://user@127.0.0.1:{proxy.port}/db"
        ...
        await proxy.cut()      # open connections reset, new ones refused
        await proxy.restore()  # the same port accepts again
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.fakes.listener import ResettableServer

__all__ = ["TcpProxy"]


class TcpProxy(ResettableServer):
    """Forwards 127.0.0.1:``port`` to ``host``:``target_port`` until cut."""

    def __init__(self, host: str, target_port: int) -> None:
        super().__init__()
        self.host = host
        self.target_port = target_port
        self._pumps: set[asyncio.Task[None]] = set()

    async def restore(self) -> None:
        """Accept connections (again) on the same port."""
        await self.start()

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        await self.stop()

    async def _after_reset(self) -> None:
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pumps = {
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        }
        self._pumps |= pumps
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)
            self._pumps -= pumps

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
