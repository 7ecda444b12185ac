"""An optional HTTP listener with ``/healthz`` and Prometheus ``/metrics``.

Started by the CLI when ``NEMO_HEALTH_PORT`` is set. ``/healthz`` answers 200
with a small JSON status while the bot runs (the Docker HEALTHCHECK calls it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from core.metrics import Metrics

__all__ = ["health_server"]


def _app(metrics: Metrics, status: Callable[[], dict[str, Any]]) -> web.Application:
    started = time.monotonic()

    async def healthz(_: web.Request) -> web.Response:
        body = {"status": "ok", "uptime_s": round(time.monotonic() - started, 1), **status()}
        return web.json_response(body)

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    return app


@asynccontextmanager
async def health_server(
    metrics: Metrics,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    status: Callable[[], dict[str, Any]] = dict,
) -> AsyncIterator[int]:
    """Serve ``/healthz`` and ``/metrics`` for the lifetime of the block; yields the port."""
    runner = web.AppRunner(_app(metrics, status), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
