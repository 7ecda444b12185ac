"""The NemoVideo simulator over real HTTP/SSE on 127.0.0.1, driven with plain httpx.

Deliberately independent of ``core/``: these tests read the wire format the way
NEMO_API.md describes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import media
from simulator.config import FAULT_KINDS
from simulator.server import SimConfig, Simulator
from tests.conftest import fast_sim_config

ATTRIBUTION = {
    "X-Skill-Source": "nemo-bot-tests",
    "X-Skill-Version": "0.1.0",
    "X-Skill-Platform": "pytest",
}
ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- helpers
@dataclass
class Stream:
    """One parsed SSE response."""

    lines: list[str] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)  # parsed JSON of non-empty data lines
    bad_data: list[str] = field(default_factory=list)  # data lines that are not JSON
    error: Exception | None = None

    @property
    def heartbeats(self) -> int:
        return sum(1 for ln in self.lines if ln.startswith(":") or ln.strip() == "data:")

    def texts(self, partial: bool | None = None) -> list[str]:
        out = []
        for ev in self.events:
            if not isinstance(ev, dict) or "content" not in ev:
                continue
            if partial is not None and bool(ev.get("partial")) != partial:
                continue
            for part in ev["content"]["parts"]:
                if "text" in part and not part.get("thought"):
                    out.append(part["text"])
        return out

    def parts(self, key: str) -> list[dict[str, Any]]:
        return [
            p[key]
            for ev in self.events
            if isinstance(ev, dict) and "content" in ev
            for p in ev["content"]["parts"]
            if key in p
        ]


class Api:
    """A tiny hand-written NemoVideo client for the tests."""

    def __init__(self, sim: Simulator, client_id: str = "client-1") -> None:
        self.sim = sim
        self.client_id = client_id
        self.http = httpx.AsyncClient(base_url=sim.base_url, headers=ATTRIBUTION, timeout=10)
        self.token = ""
        self.user_id = ""
        self.sid = ""

    async def login(self) -> dict[str, Any]:
        r = await self.http.post(
            "/api/auth/anonymous-token", headers={"X-Client-Id": self.client_id}
        )
        data: dict[str, Any] = r.json()["data"]
        self.token, self.user_id = data["token"], data["user_id"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        return data

    async def new_session(self) -> str:
        r = await self.http.post(
            "/api/tasks/me/with-session/nemo_agent", json={"task_name": "project", "language": "en"}
        )
        self.sid = r.json()["data"]["session_id"]
        return self.sid

    async def chat(self, text: str, sid: str | None = None) -> Stream:
        body = {
            "app_name": "nemo_agent",
            "user_id": "me",
            "session_id": sid or self.sid,
            "new_message": {"parts": [{"text": text}]},
        }
        stream = Stream()
        headers = {"Accept": "text/event-stream"}
        async with self.http.stream("POST", "/run_sse", json=body, headers=headers) as r:
            if not r.headers["content-type"].startswith("text/event-stream"):
                await r.aread()
                stream.events.append(r.json())
                stream.error = httpx.HTTPStatusError("not a stream", request=r.request, response=r)
                return stream
            try:
                async for line in r.aiter_lines():
                    stream.lines.append(line)
                    if line.startswith("data:") and line[5:].strip():
                        try:
                            stream.events.append(json.loads(line[5:]))
                        except ValueError:
                            stream.bad_data.append(line)
            except httpx.HTTPError as exc:
                stream.error = exc
        return stream

    async def state(self, sid: str | None = None) -> dict[str, Any]:
        r = await self.http.get(f"/api/state/nemo_agent/me/{sid or self.sid}/latest")
        return r.json()

    async def draft(self) -> dict[str, Any]:
        return (await self.state())["data"]["state"]["draft"]

    async def credits(self) -> dict[str, Any]:
        return (await self.http.get("/api/credits/balance/simple")).json()["data"]

    async def render(self, rid: str, **extra: Any) -> httpx.Response:
        body = {"id": rid, "sessionId": self.sid, "draft": await self.draft()}
        body["output"] = {"format": "mp4", "quality": "high"}
        return await self.http.post("/api/render/proxy/lambda", json=body, **extra)

    async def poll(self, rid: str) -> dict[str, Any]:
        """Poll until a terminal status; returns the normalised final reply."""
        for _ in range(600):  # a loaded machine makes the MP4 slowly
            r = (await self.http.get(f"/api/render/proxy/lambda/{rid}")).json()
            data = r.get("data", r)
            if data["status"] in ("completed", "failed", "cancelled"):
                return r
            await asyncio.sleep(0.1)
        raise AssertionError("render never finished")


@asynccontextmanager
async def api_for(sim: Simulator, client_id: str = "client-1") -> AsyncIterator[Api]:
    api = Api(sim, client_id)
    try:
        await api.login()
        await api.new_session()
        yield api
    finally:
        await api.http.aclose()


# ------------------------------------------------------------------------ auth/session
async def test_token_requires_client_id_and_is_reused(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        r = await http.post("/api/auth/anonymous-token")
        assert r.status_code == 400 and r.json()["code"] == 400
        r1 = await http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "c1"})
        r2 = await http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "c1"})
        r3 = await http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "c2"})
    d1, d2, d3 = (r.json()["data"] for r in (r1, r2, r3))
    assert d1["token"].startswith("nmv_usr_") and d1["user_id"].startswith("anon_")
    assert d1["credits"] == 100 and d1["expires_at"].endswith("Z")
    assert d1 == d2 and d3["token"] != d1["token"]
    assert sim.stats["tokens_minted"] == 2 and sim.stats["token"] == 4


async def test_auth_errors(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url, headers=ATTRIBUTION) as http:
        r = await http.get("/api/credits/balance/simple")
        assert r.status_code == 401
        bearer = {"Authorization": "Bearer nmv_usr_nope"}
        r = await http.get("/api/credits/balance/simple", headers=bearer)
        assert r.status_code == 200 and r.json()["code"] == 1001
    assert sim.stats["auth_failures"] == 2


async def test_session_ids_and_envelope_variants(sim: Simulator) -> None:
    async with api_for(sim) as api:
        assert re.fullmatch(r"\d{19}", api.sid)
        bodies = [(await api.http.get("/api/credits/balance/simple")).json() for _ in range(3)]
    keys = {("message" in b, "msg" in b) for b in bodies}
    assert keys == {(True, False), (False, True), (False, False)}
    assert all(b["code"] == 0 and b["data"]["available"] == 100 for b in bodies)


async def test_token_faults_revoke_and_a_fresh_token_is_minted(sim: Simulator) -> None:
    async with api_for(sim) as api:
        old = api.token
        sim.inject("token_expired", endpoint="credits")
        r = await api.http.get("/api/credits/balance/simple")
        assert r.json()["code"] == 1001
        r = await api.http.get("/api/credits/balance/simple")  # the token really is dead
        assert r.json()["code"] == 1001
        data = await api.login()
        assert data["token"] != old and data["user_id"] == api.user_id
        sim.inject("token_invalid_1010")
        assert (await api.http.get("/api/credits/balance/simple")).json()["code"] == 1010
        await api.login()
        sim.inject("http_401", endpoint="state")
        assert (await api.http.get(f"/api/state/nemo_agent/me/{api.sid}/latest")).status_code == 401
    assert sim.stats["tokens_minted"] == 3


async def test_generic_http_faults(sim: Simulator) -> None:
    async with api_for(sim) as api:
        sim.inject("rate_limit", count=2, endpoint="credits")
        r1 = await api.http.get("/api/credits/balance/simple")
        r2 = await api.http.get("/api/credits/balance/simple")
        assert r1.status_code == r2.status_code == 429
        assert r1.headers["Retry-After"] == "1" and "Retry-After" not in r2.headers
        sim.inject("server_error", count=2)
        r1 = await api.http.get("/api/credits/balance/simple")
        r2 = await api.http.get("/api/credits/balance/simple")
        assert (r1.status_code, r2.status_code) == (500, 503)
        assert "json" in r1.headers["content-type"] and "html" in r2.text
        sim.inject("client_id_missing")
        r = await api.http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "x"})
        assert r.status_code == 400
        assert (await api.http.get("/api/credits/balance/simple")).status_code == 200
    assert sim.stats["faults_injected"] == 5


def test_inject_rejects_unknown_or_misplaced_faults() -> None:
    sim = Simulator(SimConfig())
    with pytest.raises(ValueError):
        sim.inject("nope")
    with pytest.raises(ValueError):
        sim.inject("drop_stream", endpoint="credits")
    with pytest.raises(ValueError):
        SimConfig(fault_kinds=("nope",))


# ---------------------------------------------------------------------------- chat/SSE
async def test_generation_stream_shape_and_draft(sim: Simulator) -> None:
    async with api_for(sim) as api:
        s = await api.chat("make a 10-second clip of a futuristic city at night")
        assert s.error is None and not s.bad_data
        partial, final = s.texts(partial=True), s.texts(partial=False)
        assert len(partial) >= 2 and len(final) == 1
        assert "".join(partial) == final[0]
        assert final[0].startswith("I've generated a 10-second video of futuristic city at night")
        assert s.heartbeats >= 2
        assert any(ln.startswith(": ping") for ln in s.lines)
        assert any(ln.strip() == "data:" for ln in s.lines)
        (call,), (resp,) = s.parts("functionCall"), s.parts("functionResponse")
        assert call["name"] == resp["name"] == "generate_video" and call["id"] == resp["id"]
        ev = s.events[-1]
        assert ev["author"] == "nemo_agent" and ev["invocationId"].startswith("e-")
        assert {"id", "timestamp", "content"} <= ev.keys()
        draft = await api.draft()
        (video,) = draft["t"]
        assert video["tt"] == 0 and draft["d"] == 10_000
        seg = video["sg"][0]
        assert seg["m"]["title"] == "futuristic city at night" and seg["m"]["width"] == 1920
        assert (await api.credits())["available"] == 95


async def test_music_and_title_edits(sim: Simulator) -> None:
    async with api_for(sim) as api:
        await api.chat("make a 6-second clip of a city timelapse")
        sim.inject("silent_edit", count=0)  # no-op
        await api.chat("add lo-fi music")
        await api.chat('add a title "Urban Dreams"')
        draft = await api.draft()
        by_type = {t["tt"]: t["sg"] for t in draft["t"]}
        assert by_type[1][0]["m"] == {"title": "Lo-fi", "volume": 0.35}
        assert by_type[1][0]["d"] == 6000
        assert by_type[7][0]["m"]["text"] == "Urban Dreams" and by_type[7][0]["d"] == 3000
        assert (await api.credits())["available"] == 100 - 5 - 1 - 1


async def test_silent_edits_change_the_draft_without_text(sim: Simulator) -> None:
    async with api_for(sim) as api:
        await api.chat("make a clip of the sea")
        before = await api.draft()
        sim.inject("silent_edit")
        s = await api.chat("add jazz music")
        assert s.error is None and s.texts() == []
        after = await api.draft()
        assert after != before and any(t["tt"] == 1 for t in after["t"])
    assert sim.stats["silent_edits"] == 1


async def test_silent_edit_ratio_applies_to_edits_only() -> None:
    async with Simulator(fast_sim_config(silent_edit_ratio=1.0)) as sim, api_for(sim) as api:
        first = await api.chat("make a clip of a forest")
        assert first.texts(), "the first generation always talks"
        s = await api.chat("add a fade transition")
        assert s.texts() == [] and s.error is None
        assert (await api.draft())["t"][0]["sg"][0]["m"]["transition"] == "fade"


async def test_old_style_events_and_thoughts() -> None:
    async with (
        Simulator(fast_sim_config(old_style_ratio=1.0, seed=3)) as sim,
        api_for(sim) as api,
    ):
        s = await api.chat("make a clip of rain")
        types = {ev.get("type") for ev in s.events}
        assert types == {"text", "heartbeat"}
        text = "".join(ev["content"] for ev in s.events if ev["type"] == "text")
        assert text.startswith("I've generated a 10-second video of rain")
    cfg = fast_sim_config(thought_ratio=1.0, old_style_ratio=0.0)
    async with Simulator(cfg) as sim, api_for(sim) as api:
        s = await api.chat("make a clip of rain")
        parts = [p for ev in s.events for p in ev["content"]["parts"]]
        thoughts = [p for p in parts if p.get("thought")]
        assert thoughts and all(t["text"] not in s.texts()[-1] for t in thoughts)


async def test_gui_phrases_and_temporary_issue() -> None:
    cfg = fast_sim_config(gui_phrase_ratio=1.0, temporary_issue_ratio=1.0, old_style_ratio=0.0)
    async with Simulator(cfg) as sim, api_for(sim) as api:
        s = await api.chat("make a clip of snow")
        final = s.texts(partial=False)[0]
        assert "Export button" in final
        assert re.search(r"I encountered a temporary issue\.?$", final)


async def test_unknown_and_lost_sessions(sim: Simulator) -> None:
    async with api_for(sim) as api:
        s = await api.chat("hello", sid="123")
        assert isinstance(s.error, httpx.HTTPStatusError)
        assert s.error.response.status_code == 404 and s.events[0]["code"] == 1002
        sim.inject("session_lost", endpoint="chat")
        s = await api.chat("hello")
        assert s.events[0]["code"] == 1002
        assert (await api.state())["code"] == 1002  # really gone
        assert api.sid not in sim.sessions


async def test_drop_stream_cuts_after_partial_text(sim: Simulator) -> None:
    async with api_for(sim) as api:
        sim.inject("drop_stream")
        s = await api.chat("make a clip of a volcano")
        assert isinstance(s.error, httpx.RemoteProtocolError)
        assert s.texts(partial=True) and not s.texts(partial=False)
        assert (await api.draft())["t"], "the backend applied the change anyway"
    assert sim.stats["stream_drops"] == 1


async def test_stream_error_variants(sim: Simulator) -> None:
    async with api_for(sim) as api:
        await api.chat("make a clip of a bridge")
        sim.inject("stream_error", count=3)
        a = await api.chat("add piano music")
        b = await api.chat("add piano music")
        c = await api.chat("add piano music")
        assert a.events[-1] == {"error": "Agent execution failed: upstream model timeout"}
        assert b.bad_data and b.bad_data[0].startswith('data: {"error"')
        assert c.events[-1]["errorCode"] == "MODEL_ERROR"
        assert all(x.error is None and x.texts() == [] for x in (a, b, c))
        assert all(t["tt"] == 0 for t in (await api.draft())["t"]), "errored edits do nothing"
        assert (await api.credits())["available"] == 95


async def test_heartbeat_only(sim: Simulator) -> None:
    async with api_for(sim) as api:
        sim.inject("heartbeat_only")
        s = await api.chat("make a clip of clouds")
        assert s.events == [] and s.heartbeats >= 4 and s.error is None
        assert (await api.credits())["available"] == 100


async def test_credits_run_out(sim: Simulator) -> None:
    async with api_for(sim) as api:
        sim.inject("no_credits")
        assert (await api.chat("make a clip of a cat")).events[0]["code"] == 2001
        sim.set_credits(0)
        assert (await api.chat("make a clip of a cat")).events[0]["code"] == 2001
        assert (await api.credits()) == {"available": 0, "frozen": 0, "total": 0}


async def test_concurrent_duplicates_are_counted(sim: Simulator) -> None:
    async with api_for(sim) as api:
        text = "make a clip of a parade"
        await asyncio.gather(api.chat(text), api.chat(text))
        assert sim.stats["concurrent_duplicates"] == 1
        assert (await api.credits())["available"] == 90, "charged twice, like the real one"


async def test_turn_keeps_running_after_client_disconnect(sim: Simulator) -> None:
    async with api_for(sim) as api:
        body = {"session_id": api.sid, "new_message": {"parts": [{"text": "make a clip of owls"}]}}
        async with api.http.stream("POST", "/run_sse", json=body) as r:
            async for _ in r.aiter_lines():
                break
        await sim.idle()
        assert (await api.draft())["t"][0]["sg"][0]["m"]["title"] == "owls"


async def test_stop_does_not_wait_for_open_streams() -> None:
    sim = Simulator(fast_sim_config(heartbeat_only_seconds=60))
    await sim.start()
    api = Api(sim)
    await api.login()
    await api.new_session()
    sim.inject("heartbeat_only")
    reader = asyncio.create_task(api.chat("hello"))
    await asyncio.sleep(0.2)
    await asyncio.wait_for(sim.stop(), 3)
    await asyncio.wait_for(reader, 3)
    await api.http.aclose()


# ------------------------------------------------------------------------------ upload
async def test_multipart_upload_streams_describes_and_serves(sim: Simulator) -> None:
    png, wav, mp4 = media.sample_image(), media.sample_audio(), media.sample_video()
    async with api_for(sim) as api:
        files = [
            ("files", ("photo.png", png.read_bytes(), "image/png")),
            ("files", ("voice.wav", wav.read_bytes(), "audio/wav")),
            ("files", ("clip.mp4", mp4.read_bytes(), "video/mp4")),
        ]
        r = await api.http.post(f"/api/upload-video/nemo_agent/me/{api.sid}", files=files)
        data = r.json()["data"]
        assert data["session_state_applied"] is True
        photo, voice, clip = data["files"]
        assert photo["file_type"] == "image" and (photo["width"], photo["height"]) == (640, 360)
        assert voice["file_type"] == "audio" and voice["duration"] == pytest.approx(1.0, abs=0.1)
        assert clip["file_type"] == "video" and clip["fps"] == 25.0 and clip["width"] == 320
        assert clip["hash"] == hashlib.sha256(mp4.read_bytes()).hexdigest()
        got = await api.http.get(clip["cdn_url"])
        assert got.headers["content-type"] == "video/mp4"
        assert int(got.headers["content-length"]) == mp4.stat().st_size == len(got.content)
        draft = await api.draft()
        by_type = {t["tt"]: t["sg"] for t in draft["t"]}
        assert [sg["m"]["title"] for sg in by_type[0]] == ["photo.png", "clip.mp4"]
        assert by_type[0][1]["s"] == 3000 and by_type[1][0]["m"]["title"] == "voice.wav"
        state = (await api.state())["data"]["state"]
        assert len(state["video_infos"]) == 3
    assert sim.stats["uploads"] == 3


async def test_url_upload_and_validation(sim: Simulator) -> None:
    async with api_for(sim) as api:
        url = f"/api/upload-video/nemo_agent/me/{api.sid}"
        body = {"urls": ["https://example.com/a/b%20c.mov"], "source_type": "url"}
        (info,) = (await api.http.post(url, json=body)).json()["data"]["files"]
        assert info["filename"] == "b c.mov" and info["file_type"] == "video"
        assert (await api.http.get(info["cdn_url"])).content[4:8] == b"ftyp"
        r = await api.http.post(url, files=[("files", ("notes.txt", b"hi", "text/plain"))])
        assert r.json()["code"] == 4001 and "mp4" in r.json().get("message", r.json().get("msg"))
        sim.inject("unsupported_file")
        assert (await api.http.post(url, json=body)).json()["code"] == 4001
        sim.inject("file_too_large")
        assert (await api.http.post(url, json=body)).json()["code"] == 4002


async def test_upload_size_cap() -> None:
    async with Simulator(fast_sim_config(max_upload_bytes=1000)) as sim, api_for(sim) as api:
        url = f"/api/upload-video/nemo_agent/me/{api.sid}"
        big = [("files", ("big.mp4", b"\0" * 200_000, "video/mp4"))]
        assert (await api.http.post(url, files=big)).json()["code"] == 4002
        # Without a Content-Length the cap is enforced while streaming.
        mid = b"\0" * 5000

        async def chunked() -> AsyncIterator[bytes]:
            yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="m.mp4"\r\n\r\n'
            yield mid
            yield b"\r\n--b--\r\n"

        r = await api.http.post(
            url, content=chunked(), headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        assert r.json()["code"] == 4002
        assert not list(sim.backend.media_dir.iterdir()), "partial file removed"


# ------------------------------------------------------------------------------ render
def _status(reply: dict[str, Any]) -> tuple[str, str | None]:
    if "success" in reply:
        data = reply["data"]
        return data["status"], data.get("outputUrl")
    return reply["status"], (reply.get("output") or {}).get("url")


async def test_render_lifecycle_both_shapes_and_real_mp4(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A render's status is a function of the simulator's clock; the test holds that clock
    # and moves it, so each phase is seen however slowly the machine runs (here "pending"
    # lasts a tenth of a second of the render's one).
    clock = [time.time()]
    for module in ("simulator.renders", "simulator.server"):
        monkeypatch.setattr(f"{module}.now", lambda: clock[0])
    async with api_for(sim) as api:
        await api.chat("make a 5-second clip of a lighthouse")
        r0 = (await api.render("render_a")).json()
        r1 = (await api.render("render_b")).json()
        assert r0 == {"id": "render_a", "status": "pending", "progress": 0}
        assert r1["success"] is True and r1["data"]["status"] == "pending"
        job = sim.renders.jobs["render_a"]

        async def status_a() -> dict[str, Any]:
            reply: dict[str, Any] = (await api.http.get("/api/render/proxy/lambda/render_a")).json()
            assert 0 <= reply["progress"] <= 100
            return reply

        seen = [await status_a()]  # as submitted
        clock[0] = job.created + job.seconds / 2
        seen.append(await status_a())
        clock[0] = job.created + job.seconds
        reply = await status_a()
        for _ in range(600):  # its MP4 is still being made (ffmpeg, in a thread)
            if reply["status"] == "completed":
                break
            await asyncio.sleep(0.1)
            reply = await status_a()
        seen.append(reply)
        assert [r["status"] for r in seen] == ["pending", "processing", "completed"]
        assert seen[0]["progress"] == 0 and 0 < seen[1]["progress"] < 100
        flat, wrapped = reply, await api.poll("render_b")
        assert "success" not in flat and flat["progress"] == 100
        assert wrapped["success"] is True and wrapped["data"]["progress"] == 100
        urls = [_status(flat)[1], _status(wrapped)[1]]
        for url in urls:
            assert url and url.startswith(sim.base_url)
            got = await api.http.get(url)
            body = got.content
            assert got.headers["content-type"] == "video/mp4"
            assert int(got.headers["content-length"]) == len(body) > 1_000
            assert body[4:8] == b"ftyp" and b"avc1" in body[:100_000]
        output = sim.renders.jobs["render_a"].output_path
        assert output is not None and output.read_bytes() == body
        assert (await media.probe(output)).duration == 5.0, "the draft's length"
        probed = await media.probe(media.output_video())
        assert (probed.width, probed.height, probed.duration) == (1920, 1080, 2.0)
    assert sim.stats["renders"] == 2 and sim.stats["renders_completed"] == 2


def _gray_frame(path: Path, at: float, width: int, height: int) -> bytes:
    """One decoded frame of ``path`` at ``at`` seconds, 8-bit gray, row by row."""
    out = subprocess.run(
        [
            *(media.ffmpeg_exe(), "-v", "error", "-ss", f"{at}", "-i", str(path)),
            *("-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert len(out) == width * height
    return out


def _bright(frame: bytes, width: int, rows: range) -> int:
    """How many near-white pixels (drawn text) the rows hold."""
    return sum(1 for y in rows for px in frame[y * width : (y + 1) * width] if px > 200)


async def _render_and_fetch(api: Api, rid: str, tmp_path: Path) -> Path:
    assert (await api.render(rid)).status_code == 200
    url = _status(await api.poll(rid))[1]
    assert url
    path = tmp_path / f"{rid}.mp4"
    path.write_bytes((await api.http.get(url)).content)
    return path


async def test_the_mp4_follows_the_draft(sim: Simulator, tmp_path: Path) -> None:
    """Length, size and text track of the output come from the draft; the title shows
    during its segment (0-3 s) only, in the middle of the picture."""
    async with api_for(sim) as api:
        await api.chat("make a 6-second clip of a lighthouse")
        await api.chat('add a title saying "HELLO THERE"')
        draft = await api.draft()
        assert draft["d"] == 6000
        path = await _render_and_fetch(api, "follow", tmp_path)
        probed = await media.probe(path)
        assert (probed.width, probed.height, probed.duration) == (320, 180, 6.0)
        middle = range(60, 120)
        during = _gray_frame(path, 1.5, 320, 180)
        after = _gray_frame(path, 4.5, 320, 180)
        assert _bright(during, 320, middle) > 100, "the title is drawn during 0-3 s"
        assert _bright(after, 320, middle) == 0, "and gone after its segment"

        await api.chat("make the clip longer")  # 8 s now: a new MP4, not the cached one
        longer = await _render_and_fetch(api, "longer", tmp_path)
        assert (await media.probe(longer)).duration == 8.0

        await api.chat("make a vertical 3-second clip of rain")
        vertical = await media.probe(await _render_and_fetch(api, "vertical", tmp_path))
        assert (vertical.width, vertical.height, vertical.duration) == (180, 320, 3.0)


async def test_without_a_font_the_mp4_still_has_the_drafts_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(media, "_font", lambda: None)
    spec = media.VideoSpec(320, 180, 3.0, texts=(media.Overlay("NO FONT HERE", 0.0, 3.0),))
    path = await asyncio.to_thread(media.render_video, spec)
    assert (await media.probe(path)).duration == 3.0
    assert _bright(_gray_frame(path, 1.0, 320, 180), 320, range(60, 120)) == 0, "no text"


async def test_the_same_draft_is_rendered_once(tmp_path: Path) -> None:
    """Two renders of one draft (even in two simulators) share one file: media are made
    once per content."""
    served = []
    for _ in range(2):
        async with Simulator(fast_sim_config()) as sim, api_for(sim) as api:
            await api.chat("make a 4-second clip of a quiet harbour at dawn")
            await _render_and_fetch(api, "once", tmp_path)
            served.append(sim.renders.jobs["once"].output_path)
    assert served[0] is not None and served[0] == served[1]


async def test_render_errors(sim: Simulator) -> None:
    async with api_for(sim) as api:
        assert (await api.render("r0")).json()["success"] is False, "empty draft"
        await api.chat("make a clip of a harbour")
        assert (await api.render("r1", headers={"X-Skill-Source": ""})).status_code == 402
        auth = {"Authorization": f"Bearer {api.token}"}
        async with httpx.AsyncClient(base_url=sim.base_url, headers=auth) as bare:
            body = {"id": "r1", "sessionId": api.sid}
            assert (await bare.post("/api/render/proxy/lambda", json=body)).status_code == 402
        assert sim.stats["missing_attribution"] == 2
        assert (await api.render("r1")).status_code == 200
        sim.inject("export_blocked")
        assert (await api.render("r2")).status_code == 402
        dup = await api.render("r1")
        assert dup.status_code == 409 and dup.json()["success"] is False
        sim.inject("duplicate_render_id")
        fresh = await api.render("r3")
        assert fresh.status_code == 200 and fresh.json()["success"] is False
        sim.inject("render_failed")
        await api.render("r4")
        failed = await api.poll("r4")
        assert _status(failed)[0] == "failed" and failed.get("error")
        await api.render("r5")
        cancel = await api.http.post("/api/render/proxy/lambda/r5/cancel")
        assert cancel.json() == {"success": True, "data": {"id": "r5", "status": "cancelled"}}
        assert _status(await api.poll("r5"))[0] == "cancelled"
        missing = await api.http.get("/api/render/proxy/lambda/nope")
        assert missing.status_code == 404 and missing.json()["success"] is False
    assert sim.stats["renders_failed"] == 1 and sim.stats["renders_cancelled"] == 1


async def test_render_seconds_range_and_callable() -> None:
    cfg = fast_sim_config(render_seconds_range=(30.0, 90.0), seed=7)
    async with Simulator(cfg) as sim, api_for(sim) as api:
        await api.chat("make a clip of a storm")
        await api.render("x")
        assert 30.0 <= sim.renders.jobs["x"].seconds <= 90.0
    cfg = fast_sim_config(render_seconds=lambda rng: 0.25)
    async with Simulator(cfg) as sim, api_for(sim) as api:
        await api.chat("make a clip of a storm")
        await api.render("y")
        assert sim.renders.jobs["y"].seconds == 0.25


# ------------------------------------------------------------------ admin & bookkeeping
async def test_admin_api(sim: Simulator) -> None:
    async with api_for(sim) as api:
        r = await api.http.post("/_sim/faults", json={"fault": "no_credits", "endpoint": "chat"})
        assert r.json()["ok"] is True
        bad = await api.http.post("/_sim/faults", json={"fault": "bogus"})
        assert bad.status_code == 400
        assert (await api.chat("make a clip of a dog")).events[0]["code"] == 2001
        stats = (await api.http.get("/_sim/stats")).json()
        assert stats["fault_no_credits"] == 1 and stats["chat"] == 1
        await api.http.post("/_sim/credits", json={"token": api.token, "available": 7})
        assert (await api.credits())["available"] == 7
        reqs = (await api.http.get("/_sim/requests")).json()
        assert reqs[-1]["endpoint"] == "credits"
        kinds = (await api.http.get("/_sim/faults")).json()["kinds"]
        assert set(kinds) == set(FAULT_KINDS)


async def test_requests_are_recorded_with_attribution(sim: Simulator) -> None:
    async with api_for(sim) as api:
        await api.chat("hello there")
    chat = next(r for r in sim.requests if r.endpoint == "chat")
    assert chat.method == "POST" and chat.path == "/run_sse"
    assert chat.headers["x-skill-source"] == "nemo-bot-tests"
    assert chat.headers["Authorization"].startswith("Bearer nmv_usr_")
    assert chat.json["new_message"]["parts"][0]["text"] == "hello there"
    assert sim.stats["missing_attribution"] == 0


async def _transcript(cfg: SimConfig) -> list[Any]:
    async with Simulator(cfg) as sim, api_for(sim, client_id="fixed") as api:
        out: list[Any] = [api.token, api.sid]
        for text in ("make a clip of a desert", "add lo-fi music", "add a title", "faster"):
            s = await api.chat(text)
            out.append([(ln if not ln.startswith("data: {") else "") for ln in s.lines])
            out.append(s.texts())
        out.append(await api.draft())
        return out


async def test_same_seed_same_run() -> None:
    cfg = fast_sim_config(seed=11)
    a, b = await _transcript(cfg), await _transcript(fast_sim_config(seed=11))
    c = await _transcript(fast_sim_config(seed=12))
    assert a == b and a != c


async def test_random_fault_mode_is_deterministic() -> None:
    async def run() -> list[int]:
        cfg = fast_sim_config(seed=5, fault_rate=0.5, fault_kinds=("server_error", "rate_limit"))
        async with Simulator(cfg) as sim, httpx.AsyncClient(base_url=sim.base_url) as http:
            codes = []
            for _ in range(12):
                r = await http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "z"})
                codes.append(r.status_code)
            return codes

    first = await run()
    assert first == await run()
    assert {200, 429} <= set(first) or {200, 500} <= set(first)


async def test_python_dash_m_simulator() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "--port",
        "0",
        "--render-seconds",
        "0.5",
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        m = re.fullmatch(r"NemoVideo simulator on (http://127\.0\.0\.1:\d+)\n", line)
        assert m, line
        async with httpx.AsyncClient(base_url=m[1]) as http:
            r = await http.post("/_sim/faults", json={"fault": "client_id_missing", "count": 1})
            assert r.status_code == 200
            r = await http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "q"})
            assert r.status_code == 400
            assert (await http.get("/_sim/stats")).json()["token"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_render_links_expire_and_each_status_reply_hands_out_a_fresh_one() -> None:
    async with Simulator(fast_sim_config(render_seconds=0.2)) as sim, api_for(sim) as api:
        await api.chat("make a 3-second clip of a lighthouse")
        await api.render("render_x")
        old = _status(await api.poll("render_x"))[1]
        assert old is not None and (await api.http.get(old)).status_code == 200
        sim.expire_links()
        assert (await api.http.get(old)).status_code == 403
        fresh = _status(await api.poll("render_x"))[1]
        assert fresh is not None and fresh != old
        assert (await api.http.get(fresh)).content[4:8] == b"ftyp"
        sim.forget_renders()
        assert (await api.http.get("/api/render/proxy/lambda/render_x")).status_code == 404
        assert (await api.http.get(fresh)).status_code == 404
    # --link-ttl: a link handed out is good only that long (0: expired at once)
    expiring = fast_sim_config(render_seconds=0.2, link_ttl_seconds=0)
    async with Simulator(expiring) as sim, api_for(sim) as api:
        await api.chat("make a 3-second clip of a lighthouse")
        await api.render("render_y")
        url = _status(await api.poll("render_y"))[1]
        assert url is not None and (await api.http.get(url)).status_code == 403
