"""Export endpoints: submit, poll and cancel renders under /api/render/proxy/lambda.

A job's status is a pure function of time since submission (pending → processing with
progress → completed, or failed halfway when the ``render_failed`` fault hit it). Reply
shapes alternate per job: even jobs flat, odd jobs ``{"success": true, "data": ...}``.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

from aiohttp import web

from simulator import media
from simulator.backend import Backend, Reply, missing_attribution
from simulator.state import Draft, is_ready, snapshot, title_of, video_spec
from simulator.world import RenderJob, now


class Renders:
    """Render jobs of one simulator."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self.jobs: dict[str, RenderJob] = {}
        self.outputs: dict[str, RenderJob] = {}  # served file name -> job
        self._rng = random.Random(f"{backend.config.seed}:render")
        #: Links handed out before this time no longer work (see :meth:`expire_links`).
        self.links_valid_from = 0.0

    def _seconds(self) -> float:
        cfg = self.b.config
        if cfg.render_seconds_range is not None:
            lo, hi = cfg.render_seconds_range
            return self._rng.uniform(lo, hi)
        if callable(cfg.render_seconds):
            return float(cfg.render_seconds(self._rng))
        return float(cfg.render_seconds)

    def _fail(self, error: str, status: int) -> Reply:
        return Reply(web.json_response({"success": False, "error": error}, status=status))

    async def submit(self, request: web.Request) -> web.Response:
        """POST /api/render/proxy/lambda."""
        b = self.b
        fault = b.begin(request, "render")
        user = b.auth(request)
        if fault == "export_blocked" or missing_attribution(request):
            return b.err(
                402,
                "Export is not available on the free plan. Upgrade your subscription to export.",
                status=402,
            )
        body = await b.read_json(request)
        if fault == "render_stalls":  # not known to the backend until it is taken
            await asyncio.sleep(b.config.late_answer_seconds)
        render_id = str(body.get("id") or "")
        if not render_id:
            raise self._fail("'id' is required", 400)
        if fault == "duplicate_render_id" or render_id in self.jobs:
            b.stats["duplicate_render_ids"] += 1
            status = 409 if b.variant("duplicate") % 2 == 0 else 200
            raise self._fail(f"Render job with id {render_id} already exists", status)
        sid = str(body.get("sessionId") or "")
        session = b.sessions.get(sid)
        if session is not None and session.user_id != user.user_id:
            session = None
        draft = body.get("draft")
        if not isinstance(draft, dict):
            if session is None:
                raise self._fail("Either a draft or a known sessionId is required", 400)
            draft = session.draft
        if not is_ready(draft):
            raise self._fail("Draft has no segments to render", 400)
        wrapped = len(self.jobs) % 2 == 1
        job = RenderJob(render_id, sid, now(), self._seconds(), wrapped, title_of(draft))
        job.fail = fault == "render_failed"
        safe_id = re.sub(r"[^A-Za-z0-9_-]+", "_", render_id)[:80]
        job.output_name = f"render{len(self.jobs)}_{safe_id}.mp4"
        self.outputs[job.output_name] = job
        self.jobs[render_id] = job
        b.stats["renders"] += 1
        if b.config.render_drafts:
            b.spawn(self._make_video(job, snapshot(draft)))
        else:
            job.output_path = b.media["preview.mp4"]
        data = {"id": render_id, "status": "pending", "progress": 0}
        if fault == "late_answer":  # the render runs; the answer is late
            await asyncio.sleep(b.config.late_answer_seconds)
        if wrapped:
            return web.json_response({"success": True, "data": data})
        return web.json_response(data)

    async def _make_video(self, job: RenderJob, draft: Draft) -> None:
        cfg = self.b.config
        spec = video_spec(draft, cfg.video_width, cfg.video_height)
        try:
            job.output_path = await asyncio.to_thread(media.render_video, spec)
        except RuntimeError:
            # ffmpeg failed on this draft: finish with the preview rather than never.
            job.output_path = self.b.media["preview.mp4"]

    def job_for(self, request: web.Request, endpoint: str) -> RenderJob:
        """Common prologue of poll/cancel: count, faults, auth, find the job."""
        self.b.begin(request, endpoint)
        self.b.auth(request)
        job = self.jobs.get(request.match_info["rid"])
        if job is None:
            raise self._fail("Render not found", 404)
        return job

    def _status_body(self, request: web.Request, job: RenderJob) -> dict[str, Any]:
        status, progress = job.status(now())
        # Like a signed link: when it was handed out rides in the query (see link_works).
        url = f"http://{request.host}/media/{job.output_name}?issued={now():.6f}"
        if status == "completed" and not job.counted:
            job.counted = True
            self.b.stats["renders_completed"] += 1
        if status == "failed" and not job.counted:
            job.counted = True
            self.b.stats["renders_failed"] += 1
        error = "Lambda render failed: out of memory while encoding" if status == "failed" else None
        if job.wrapped:
            data: dict[str, Any] = {"id": job.render_id, "status": status, "progress": progress}
            if status == "completed":
                data["outputUrl"] = url
            if error:
                return {"success": False, "error": error, "data": data}
            return {"success": True, "data": data}
        flat: dict[str, Any] = {"id": job.render_id, "status": status, "progress": progress}
        if status == "completed":
            size = job.output_path.stat().st_size if job.output_path else 0
            flat["output"] = {"url": url, "format": "mp4", "size": size}
        if error:
            flat["error"] = error
        return flat

    def _without_progress(self, body: dict[str, Any]) -> dict[str, Any]:
        body.pop("progress", None)
        if isinstance(body.get("data"), dict):
            body["data"].pop("progress", None)
        return body

    async def status(self, request: web.Request) -> web.Response:
        """GET /api/render/proxy/lambda/{rid}."""
        job = self.job_for(request, "render_status")
        body = self._status_body(request, job)
        if not self.b.config.render_progress:
            body = self._without_progress(body)
        return web.json_response(body)

    async def cancel(self, request: web.Request) -> web.Response:
        """POST /api/render/proxy/lambda/{rid}/cancel."""
        job = self.job_for(request, "cancel")
        status, _ = job.status(now())
        if status in ("completed", "failed"):
            raise self._fail(f"Render is already {status}", 409)
        if job.cancelled_at is None:
            job.cancelled_at = now()
            self.b.stats["renders_cancelled"] += 1
        return web.json_response(
            {"success": True, "data": {"id": job.render_id, "status": "cancelled"}}
        )

    def expire_links(self) -> None:
        """Every output link handed out so far stops working; status replies give new ones."""
        self.links_valid_from = now()

    def forget(self) -> None:
        """Forget every render (as a backend that cleaned up old jobs): polls answer 404."""
        self.jobs.clear()
        self.outputs.clear()

    def link_works(self, request: web.Request) -> bool:
        """Whether the output link ``request`` came with is still good."""
        try:
            issued = float(request.query.get("issued", "0"))
        except ValueError:
            return False
        ttl = self.b.config.link_ttl_seconds
        return issued >= self.links_valid_from and (ttl is None or now() < issued + ttl)

    def output(self, name: str) -> RenderJob | None:
        """The job whose output is served as ``name``."""
        return self.outputs.get(name)
