"""A local NemoVideo-compatible server for offline demos and tests.

Usage::

    async with Simulator(SimConfig(render_seconds=1.0)) as sim:
        sim.base_url                      # "http://127.0.0.1:PORT"
        sim.inject("token_expired", endpoint="chat")
        sim.stats["chat"], sim.requests[-1].headers["X-Skill-Source"]

Admin API (for subprocess tests): ``POST /_sim/faults`` ``{"fault", "count", "endpoint"}``,
``DELETE /_sim/faults``, ``GET /_sim/faults``, ``GET /_sim/stats``, ``GET /_sim/requests``,
``POST /_sim/credits`` ``{"user_id" | "token", "available"}``, ``GET /_sim/health``.

This package imports nothing from ``core/``: it is an independent reading of the wire
format in NEMO_API.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from simulator import media
from simulator.backend import RECORD, Backend, RecordedRequest, Reply
from simulator.config import ENDPOINTS, FAULT_KINDS, SimConfig
from simulator.renders import Renders
from simulator.uploads import upload
from simulator.world import Session, now

__all__ = ["FAULT_KINDS", "SimConfig", "Simulator", "serve"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Simulator:
    """A running simulator; use as ``async with Simulator(cfg) as sim``.

    Listens on ``host`` (default 127.0.0.1) and ``port`` (default 0 = a free port).
    """

    def __init__(
        self, config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SimConfig()
        self.host = host
        self.port = port
        self.backend = Backend(self.config)
        self.renders = Renders(self.backend)
        self._runner: web.AppRunner | None = None
        self._tmp: Path | None = None

    # ------------------------------------------------------------- public API
    @property
    def base_url(self) -> str:
        """Root URL of the API, e.g. ``http://127.0.0.1:PORT``."""
        if self._runner is None:
            raise RuntimeError("simulator is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def stats(self) -> Counter[str]:
        """Counters (missing keys read 0): calls per endpoint name (``"chat"``, ...),
        ``calls``, ``tokens_minted``, ``sessions_created``, ``faults_injected``,
        ``fault_<kind>``, ``uploads``, ``upload_bytes``, ``renders``,
        ``renders_completed``/``_failed``/``_cancelled``, ``chat_turns``, ``generations``,
        ``edits``, ``silent_edits``, ``stream_drops``, ``stream_errors``,
        ``credits_spent``, ``concurrent_chats``, ``concurrent_duplicates``,
        ``missing_attribution``, ``auth_failures``, ``duplicate_render_ids``,
        ``error_<code>``."""
        return self.backend.stats

    @property
    def requests(self) -> list[RecordedRequest]:
        """Recorded API requests (method, path, query, headers, endpoint, json, time)."""
        return self.backend.requests

    @property
    def sessions(self) -> dict[str, Session]:
        """Live sessions by id (``.draft``, ``.video_infos``, ...)."""
        return self.backend.sessions

    def inject(self, fault: str, count: int = 1, endpoint: str | None = None) -> None:
        """Queue ``count`` faults of kind ``fault`` (see ``FAULT_KINDS``) for the next
        calls of ``endpoint`` (None: the next call of any endpoint the fault fits)."""
        self.backend.faults.inject(fault, count, endpoint)

    def clear_faults(self) -> None:
        """Drop queued faults."""
        self.backend.faults.clear()

    def draft(self, session_id: str) -> dict[str, Any]:
        """The current draft of a session (a live reference)."""
        return self.backend.sessions[session_id].draft

    def set_credits(self, available: int, *, user_id: str | None = None) -> None:
        """Set the balance of one user (or of every user when ``user_id`` is None)."""
        for user in self.backend.users.values():
            if user_id is None or user.user_id == user_id:
                user.total = available + user.frozen

    def expire_token(self, token: str) -> None:
        """Make ``token`` stop working, as if its 7 days were over."""
        if token in self.backend.tokens:
            self.backend.tokens[token].revoked = True

    def expire_links(self) -> None:
        """Every render link handed out so far answers 403 (status replies give fresh ones)."""
        self.renders.expire_links()

    def forget_renders(self) -> None:
        """Forget every render: its status answers 404 and its links stop working."""
        self.renders.forget()

    async def idle(self, limit: float = 5.0) -> None:
        """Wait until no chat turn runs in the background (they outlive dropped streams)."""
        tasks = list(self.backend.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=limit)

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Make the media (cached), bind the socket and start serving."""
        cfg = self.config
        b = self.backend
        self._tmp = Path(tempfile.mkdtemp(prefix="nemo-sim-"))
        b.media_dir = self._tmp
        b.media["preview.mp4"] = await asyncio.to_thread(
            media.output_video,
            width=cfg.video_width,
            height=cfg.video_height,
            seconds=cfg.video_seconds,
        )
        b.media["sample.mp4"] = await asyncio.to_thread(media.sample_video)
        b.media["sample.png"] = await asyncio.to_thread(media.sample_image)
        b.media["sample.wav"] = await asyncio.to_thread(media.sample_audio)
        app = self._app()
        # Streams still open at shutdown (clients gone) must not hold stop() for 60 s.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop serving, cancel running turns and remove uploaded files."""
        for task in list(self.backend.tasks):
            task.cancel()
        if self.backend.tasks:
            await asyncio.gather(*self.backend.tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ----------------------------------------------------------------- wiring
    def _app(self) -> web.Application:
        b, r = self.backend, self.renders
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**2)
        app.router.add_post("/api/auth/anonymous-token", b.token)
        app.router.add_post("/api/tasks/me/with-session/nemo_agent", b.session)
        app.router.add_post("/run_sse", b.chat)
        app.router.add_post("/api/upload-video/nemo_agent/me/{sid}", self._upload)
        app.router.add_get("/api/credits/balance/simple", b.credits)
        app.router.add_get("/api/state/nemo_agent/me/{sid}/latest", b.state)
        app.router.add_post("/api/render/proxy/lambda", r.submit)
        app.router.add_get("/api/render/proxy/lambda/{rid}", r.status)
        app.router.add_post("/api/render/proxy/lambda/{rid}/cancel", r.cancel)
        app.router.add_get("/media/{name}", self._media)
        app.router.add_post("/_sim/faults", self._admin_inject)
        app.router.add_delete("/_sim/faults", self._admin_clear)
        app.router.add_get("/_sim/faults", self._admin_faults)
        app.router.add_get("/_sim/stats", self._admin_stats)
        app.router.add_get("/_sim/requests", self._admin_requests)
        app.router.add_post("/_sim/credits", self._admin_credits)
        app.router.add_get("/_sim/health", self._admin_health)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        b = self.backend
        if self.config.record_requests and not request.path.startswith("/_sim/"):
            record = RecordedRequest(
                request.method, request.path, CIMultiDict(request.headers), request.query_string
            )
            request[RECORD] = record
            b.requests.append(record)
            if len(b.requests) > self.config.max_recorded_requests:
                del b.requests[: len(b.requests) - self.config.max_recorded_requests]
        try:
            return await handler(request)
        except Reply as reply:
            return reply.response

    async def _upload(self, request: web.Request) -> web.Response:
        return await upload(self.backend, request)

    async def _media(self, request: web.Request) -> web.StreamResponse:
        """GET /media/{name}: uploads, samples and finished renders (Range supported)."""
        name = request.match_info["name"]
        self.backend.stats["media"] += 1
        if (record := request.get(RECORD)) is not None:
            record.endpoint = "media"
        path = self.backend.media.get(name)
        job = self.renders.output(name)
        if job is not None:
            if not self.renders.link_works(request):
                self.backend.stats["media_expired"] += 1
                return web.json_response(
                    {"code": 403, "message": "Request has expired"}, status=403
                )
            status, _ = job.status(now())
            path = job.output_path if status == "completed" else None
        if path is None or not path.exists():
            return web.json_response({"code": 404, "message": "Not found"}, status=404)
        return web.FileResponse(path, headers={"Content-Type": media.content_type(name)})

    # ------------------------------------------------------------------ admin
    async def _admin_inject(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.inject(str(body["fault"]), int(body.get("count", 1)), body.get("endpoint"))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True, "queued": self.backend.faults.pending})

    async def _admin_clear(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return web.json_response({"ok": True})

    async def _admin_faults(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "queued": self.backend.faults.pending,
                "kinds": list(FAULT_KINDS),
                "endpoints": list(ENDPOINTS),
            }
        )

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.stats))

    async def _admin_requests(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "200"))
        return web.json_response([r.as_dict() for r in self.requests[-limit:]])

    async def _admin_credits(self, request: web.Request) -> web.Response:
        body = await request.json()
        user_id = body.get("user_id")
        token = body.get("token")
        if token:
            record = self.backend.tokens.get(token)
            if record is None:
                return web.json_response({"ok": False, "error": "unknown token"}, status=404)
            user_id = record.user_id
        self.set_credits(int(body["available"]), user_id=user_id)
        return web.json_response({"ok": True})

    async def _admin_health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "base_url": self.base_url})


async def _serve(
    host: str, port: int, config: SimConfig, then: Callable[[int], str] | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. Windows
            loop.add_signal_handler(sig, stop.set)
    async with Simulator(config, host=host, port=port) as sim:
        print(f"NemoVideo simulator on {sim.base_url}", flush=True)
        if then is not None:
            print(then(sim.port), flush=True)
        await stop.wait()


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    config: SimConfig | None = None,
    then: Callable[[int], str] | None = None,
) -> None:
    """Run a simulator until SIGINT/SIGTERM (blocking).

    Prints ``NemoVideo simulator on http://H:P`` once it accepts connections, then
    ``then(port)`` if given (the port it really listens on, also when ``port`` is 0).
    """
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, port, config or SimConfig(), then))
