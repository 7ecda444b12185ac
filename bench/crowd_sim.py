"""``python -m bench.crowd_sim '<SimConfig JSON>'``: the simulator, timing every chat stream.

Like :mod:`bench.simproc`, plus ``GET /_bench/streams``: for every ``/run_sse``
request whose prompt carries a ``crowd-<n>`` marker, when the stream opened and
when the backend wrote its last chunk (``time.monotonic()``, which every process
on the machine shares). ``DELETE /_bench/streams`` forgets them between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bench.common import raise_nofile
from simulator.config import SimConfig
from simulator.server import Simulator

_MARKER = re.compile(rb"crowd-(\d+)")


class TimedSimulator(Simulator):
    """A simulator recording ``{marker: [opened, last_chunk]}`` of chat streams."""

    def __init__(self, config: SimConfig) -> None:
        super().__init__(config)
        self.streams: dict[str, list[float]] = {}

    def _app(self) -> web.Application:
        app = super()._app()
        app.middlewares.append(self._timing)
        app.router.add_get("/_bench/streams", self._get)
        app.router.add_delete("/_bench/streams", self._clear)
        return app

    @web.middleware
    async def _timing(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path != "/run_sse":
            return await handler(request)
        opened = time.monotonic()
        match = _MARKER.search(await request.read())  # read() caches: the handler reads it too
        response = await handler(request)
        if match is not None:  # the handler returns after writing the last chunk
            self.streams[match.group(1).decode()] = [opened, time.monotonic()]
        return response

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response(self.streams)

    async def _clear(self, request: web.Request) -> web.Response:
        self.streams.clear()
        return web.json_response({})


async def _serve(config: SimConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with TimedSimulator(config) as sim:
        print(f"NemoVideo simulator on {sim.base_url}", flush=True)
        await stop.wait()


def main() -> None:
    """Parse the config and serve until SIGTERM."""
    raw: dict[str, Any] = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    raise_nofile()
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(SimConfig(**raw)))


if __name__ == "__main__":
    main()
