"""An optional HTTP listener with ``/healthz`` and Prometheus ``/metrics``.

Started by the CLI when ``NEMO_HEALTH_PORT`` is set, one per process (replica).
``/healthz`` runs the health checks (the database: can it take a write now?) and
answers 200 with a small JSON status, or 503 with the reason when a check fails
or does not answer within ``check_timeout`` seconds: a load balancer or
orchestrator then stops sending work to this replica (the Docker HEALTHCHECK
calls it too). ``/metrics`` carries the replica's name as a ``replica`` label.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from core.metrics import Metrics

__all__ = ["CHECK_TIMEOUT", "HealthCheck", "health_server"]

HealthCheck = Callable[[], Awaitable[object]]
"""A health check: returns when healthy, raises (with a reason) when not."""

CHECK_TIMEOUT = 3.0
"""Seconds a health check may take before it counts as failed."""

_CREDENTIALS = re.compile(r"(://)[^/@\s]*@")


def _reason(exc: BaseException) -> str:
    """One short line about a failure; credentials in a URL are masked."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return _CREDENTIALS.sub(r"\1***@", text)[:200]


async def _run_check(check: HealthCheck, limit: float) -> str | None:
    """``None`` when the check passes, else why it failed."""
    try:
        async with asyncio.timeout(limit):
            await check()
    except TimeoutError:
        return f"no answer within {limit:g} s"
    except Exception as exc:  # any failure is a reason to report, never a 500
        return _reason(exc)
    return None


def _app(
    metrics: Metrics,
    status: Callable[[], dict[str, Any]],
    checks: Mapping[str, HealthCheck],
    replica: str | None,
    check_timeout: float,
) -> web.Application:
    started = time.monotonic()
    labels = {"replica": replica} if replica else None

    async def healthz(_: web.Request) -> web.Response:
        names = list(checks)
        results = await asyncio.gather(*(_run_check(checks[n], check_timeout) for n in names))
        failed = {name: reason for name, reason in zip(names, results, strict=True) if reason}
        body: dict[str, Any] = {
            "status": "unavailable" if failed else "ok",
            "uptime_s": round(time.monotonic() - started, 1),
        }
        if replica:
            body["replica"] = replica
        body["checks"] = {name: "unreachable" if name in failed else "ok" for name in names}
        if failed:
            body["reason"] = "; ".join(f"{name} unreachable: {why}" for name, why in failed.items())
        body.update(status())
        return web.json_response(body, status=503 if failed else 200)

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(
            body=metrics.render(labels=labels), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

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
    checks: Mapping[str, HealthCheck] | None = None,
    replica: str | None = None,
    check_timeout: float = CHECK_TIMEOUT,
) -> AsyncIterator[int]:
    """Serve ``/healthz`` and ``/metrics`` for the lifetime of the block; yields the port.

    ``checks`` name the things ``/healthz`` tries on every call (e.g.
    ``{"database": store.ping}``); ``replica`` is this process's name, shown in
    ``/healthz`` and put on every metric as the ``replica`` label.
    """
    app = _app(metrics, status, dict(checks or {}), replica, check_timeout)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
