"""POST /api/upload-video/nemo_agent/me/{sid}: multipart ``files`` or JSON ``urls``.

Multipart bodies are streamed to disk chunk by chunk (hashing on the way), so large
files never sit in memory. A declared ``Content-Length`` over the cap is refused before
reading anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from aiohttp import BodyPartReader, web

from simulator import media
from simulator.backend import Backend, Reply
from simulator.state import add_media

_CHUNK = 256 * 1024
_MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file bytes
_DEFAULTS = {  # duration, width, height, fps when nothing better is known
    "video": (10.0, 1920, 1080, 30.0),
    "image": (0.0, 1920, 1080, 0.0),
    "audio": (30.0, 0, 0, 0.0),
}


def _safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name or "file"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[-100:]


def _ext(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _unsupported(b: Backend, name: str) -> Reply:
    accepted = ", ".join(sorted(media.ACCEPTED_EXTS - {"jpeg"}))
    return Reply(b.err(4001, f"Unsupported file type: {name}. Accepted formats: {accepted}"))


def _too_large(b: Backend) -> Reply:
    cap = b.config.max_upload_bytes
    return Reply(b.err(4002, f"File too large (max {cap // (1024 * 1024)} MB)"))


async def upload(b: Backend, request: web.Request) -> web.Response:
    """Store the files, put them on the session's timeline, describe them."""
    sid = request.match_info["sid"]
    fault = b.begin(request, "upload")
    user = b.auth(request)
    if fault == "session_lost":
        return b.lose_session(sid)
    session = b.session_for(user, sid)
    if fault == "unsupported_file":
        raise _unsupported(b, "upload")
    if fault == "file_too_large":
        raise _too_large(b)
    length = request.content_length
    if length is not None and length > b.config.max_upload_bytes + _MULTIPART_SLACK:
        raise _too_large(b)
    if fault == "upload_stalls":
        await asyncio.sleep(b.config.late_answer_seconds)
        if request.transport is None or request.transport.is_closing():
            b.stats["uploads_abandoned"] += 1  # the client went away: nothing is taken
            return b.err(400, "The upload was abandoned by its client", 400)
    base = f"http://{request.host}/media/"
    if request.content_type.startswith("multipart/"):
        files = await _multipart(b, request, base)
    else:
        files = await _urls(b, request, base)
    if not files:
        return b.err(400, "No files in request (use multipart field 'files' or 'urls')", 400)
    for info in files:
        add_media(
            session.draft,
            kind=info["file_type"],
            filename=info["filename"],
            url=info["cdn_url"],
            duration=info["duration"],
            width=info["width"],
            height=info["height"],
            rng=session.rng,
        )
        session.video_infos.append(info)
    session.draft_version += 1
    b.stats["uploads"] += len(files)
    if fault == "late_answer":  # stored and applied; the answer is late
        await asyncio.sleep(b.config.late_answer_seconds)
    return b.ok({"files": files, "session_state_applied": True, "session_id": sid})


async def _multipart(b: Backend, request: web.Request, base: str) -> list[dict[str, Any]]:
    reader = await request.multipart()
    files: list[dict[str, Any]] = []
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader) or part.name != "files":
            await part.release()
            continue
        filename = part.filename or "file"
        kind = media.file_kind(_ext(filename))
        if kind is None:
            raise _unsupported(b, filename)
        n = b.stats["upload_files_stored"] + 1
        b.stats["upload_files_stored"] = n
        name = f"up{n}_{_safe_name(filename)}"
        path = b.media_dir / name
        digest, size = hashlib.sha256(), 0
        try:
            with path.open("wb") as fh:
                while chunk := await part.read_chunk(_CHUNK):
                    size += len(chunk)
                    if size > b.config.max_upload_bytes:
                        raise _too_large(b)
                    digest.update(chunk)
                    fh.write(chunk)
        except Reply:
            path.unlink(missing_ok=True)
            raise
        b.stats["upload_bytes"] += size
        b.media[name] = path
        files.append(await _describe(b, path, filename, kind, base + name, digest.hexdigest()))
    return files


async def _describe(
    b: Backend, path: Path, filename: str, kind: str, url: str, sha: str
) -> dict[str, Any]:
    duration, width, height, fps = _DEFAULTS[kind]
    if b.config.probe_uploads:
        probed = await media.probe(path)
        if probed.duration > 0 and kind != "image":
            duration = probed.duration
        if probed.width:
            width, height = probed.width, probed.height
        if probed.fps and kind == "video":
            fps = probed.fps
    return {
        "filename": filename,
        "file_type": kind,
        "cdn_url": url,
        "duration": round(duration, 3),
        "width": width,
        "height": height,
        "fps": fps,
        "hash": sha,
        "size": path.stat().st_size,  # noqa: ASYNC240
    }


async def _urls(b: Backend, request: web.Request, base: str) -> list[dict[str, Any]]:
    body = await b.read_json(request)
    urls = body.get("urls") or []
    if not isinstance(urls, list):
        raise Reply(b.err(400, "'urls' must be a list", 400))
    files = []
    samples = {"video": "sample.mp4", "image": "sample.png", "audio": "sample.wav"}
    for url in urls:
        filename = unquote(Path(urlparse(str(url)).path).name) or "remote"
        kind = media.file_kind(_ext(filename))
        if kind is None:
            raise _unsupported(b, filename)
        duration, width, height, fps = _DEFAULTS[kind]
        files.append(
            {
                "filename": filename,
                "file_type": kind,
                # Nothing is fetched (no internet): a local sample stands in for it.
                "cdn_url": base + samples[kind],
                "source_url": str(url),
                "duration": duration,
                "width": width,
                "height": height,
                "fps": fps,
                "hash": hashlib.sha256(str(url).encode()).hexdigest(),
            }
        )
    return files
