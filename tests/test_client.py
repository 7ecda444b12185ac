"""NemoClient against the simulator over real HTTP/SSE on 127.0.0.1 (plus a few cases
against a scripted local server, tests/fakes/scripted_http.py, for what the simulator
does not stage)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.client import NemoClient
from core.config import load_settings
from core.draft import diff_drafts
from core.errors import (
    ApiError,
    ClientIdMissingError,
    ExportBlockedError,
    FileTooLargeError,
    NemoError,
    OutOfCreditsError,
    RateLimitedError,
    ServerError,
    SessionNotFoundError,
    StreamTimeoutError,
    TokenExpiredError,
    TransportError,
    UnsupportedFileError,
)
from core.events import (
    ChatEvent,
    HeartbeatEvent,
    StreamErrorEvent,
    TextEvent,
    TurnCompleteEvent,
)
from core.files import ACCEPTED_EXTENSIONS
from simulator.server import SimConfig, Simulator
from tests.fakes.scripted_http import HANG_UP, Reply, ScriptedServer

PROMPT = "make a 10-second clip of a futuristic city at night"


class Sleeps:
    """A fake ``sleep`` that records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimConfig(
        seed=0,
        render_seconds=1.0,
        chunk_delay=0.005,
        heartbeat_interval=0.05,
        slow_step_seconds=0.2,
        heartbeat_only_seconds=1.0,
        silent_edit_ratio=0.0,
    )
    async with Simulator(config) as running:
        yield running


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def nemo(sim: Simulator, sleeps: Sleeps) -> AsyncIterator[NemoClient]:
    async with NemoClient(base_url=sim.base_url, sleep=sleeps, heartbeat_timeout=5.0) as client:
        yield client


async def login(nemo: NemoClient, client_id: str = "client-1") -> tuple[str, str]:
    """A token and a fresh session id."""
    anon = await nemo.anonymous_token(client_id)
    session = await nemo.create_session(anon.token)
    return anon.token, session.session_id


async def collect(stream: AsyncGenerator[ChatEvent, None]) -> list[ChatEvent]:
    async with aclosing(stream) as events:
        return [event async for event in events]


def text_of(events: list[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextEvent))


def calls(sim: Simulator, endpoint: str) -> list[Any]:
    return [r for r in sim.requests if r.endpoint == endpoint]


# -- the happy path ---------------------------------------------------------------------


async def test_full_export_round_trip(sim: Simulator, nemo: NemoClient) -> None:
    started = time.monotonic()
    anon = await nemo.anonymous_token("round-trip")
    assert anon.user_id and anon.user_id.startswith("anon_") and anon.credits == 100
    assert anon.expires_at and anon.expires_at > time.time() + 6 * 86400
    session = await nemo.create_session(anon.token, language="en")
    assert session.session_id.isdigit() and session.task_id

    events = await collect(nemo.chat(anon.token, session.session_id, PROMPT))
    assert any(isinstance(e, HeartbeatEvent) for e in events)
    reply = text_of(events)
    assert reply and reply.count(reply[:20]) == 1  # partial chunks + final: shown once

    state = await nemo.state(anon.token, session.session_id)
    assert state.session_id == session.session_id
    assert state.draft.is_exportable and state.raw_draft
    assert state.draft.summary().startswith("Timeline (1 track): 1. Video: ")

    render_id = await nemo.submit_render(anon.token, session.session_id, state.raw_draft)
    assert render_id.startswith("render_")
    seen = []
    while True:
        status = await nemo.render_status(anon.token, render_id)
        seen.append(status.status)
        if status.done:
            break
        await asyncio.sleep(0.1)
    assert status.status == "completed" and status.output_url and status.progress == 100
    assert "processing" in seen
    video = await nemo.download(status.output_url, limit=50 * 2**20)
    assert video is not None and video[4:8] == b"ftyp"
    elapsed = time.monotonic() - started
    print(f"\nfull export round trip: {elapsed:.2f} s")  # shown with pytest -s

    credits = await nemo.credits(anon.token)
    assert credits.available is not None and credits.available < 100
    assert credits.total == credits.available + (credits.frozen or 0)


async def test_headers_on_every_call(sim: Simulator, nemo: NemoClient) -> None:
    token, sid = await login(nemo)
    await nemo.credits(token)
    await nemo.state(token, sid)
    await collect(nemo.chat(token, sid, "add lo-fi music"))
    assert {r.endpoint for r in sim.requests} >= {"token", "session", "credits", "state", "chat"}
    for request in sim.requests:
        assert request.headers["X-Skill-Source"] == "nemo-bot"
        assert request.headers["X-Skill-Version"] == "0.1.0"
        assert request.headers["X-Skill-Platform"] == "python"
        if request.endpoint == "token":
            assert request.headers["X-Client-Id"] == "client-1"
            assert "Authorization" not in request.headers
        else:
            assert request.headers["Authorization"] == f"Bearer {token}"
    chat = calls(sim, "chat")[0]
    assert chat.headers["Accept"] == "text/event-stream"
    assert chat.json["session_id"] == sid and chat.json["app_name"] == "nemo_agent"
    assert chat.json["new_message"]["parts"] == [{"text": "add lo-fi music"}]
    assert sim.stats["missing_attribution"] == 0


async def test_same_client_id_reuses_the_token(sim: Simulator, nemo: NemoClient) -> None:
    first = await nemo.anonymous_token("same")
    second = await nemo.anonymous_token("same")
    assert first.token == second.token and sim.stats["tokens_minted"] == 1


async def test_from_settings_and_borrowed_http(sim: Simulator) -> None:
    settings = load_settings(
        NEMO_API_BASE=sim.base_url, NEMO_SKILL_SOURCE="tester", NEMO_MAX_UPLOAD_MB=3
    )
    async with NemoClient.from_settings(settings) as client:
        assert client.max_upload_bytes == 3 * 2**20
        await client.anonymous_token("settings")
    assert sim.requests[-1].headers["X-Skill-Source"] == "tester"
    async with aiohttp.ClientSession() as http:
        async with NemoClient(base_url=sim.base_url + "/", http=http) as client:
            await client.anonymous_token("borrowed")
        assert not http.closed  # borrowed, not owned
        async with http.get(f"{sim.base_url}/_sim/stats") as still_usable:
            assert still_usable.status == 200


# -- errors, one per code ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "endpoint", "error"),
    [
        ("token_expired", "chat", TokenExpiredError),
        ("token_invalid_1010", "credits", TokenExpiredError),
        ("http_401", "state", TokenExpiredError),
        ("token_expired", "render_status", TokenExpiredError),
        ("session_lost", "chat", SessionNotFoundError),
        ("session_lost", "state", SessionNotFoundError),
        ("session_lost", "upload", SessionNotFoundError),
        ("no_credits", "chat", OutOfCreditsError),
        ("unsupported_file", "upload", UnsupportedFileError),
        ("file_too_large", "upload", FileTooLargeError),
        ("export_blocked", "render", ExportBlockedError),
    ],
)
async def test_error_codes(
    sim: Simulator, nemo: NemoClient, fault: str, endpoint: str, error: type[ApiError]
) -> None:
    token, sid = await login(nemo)
    draft = {"t": [{"tt": 0, "sg": [{"d": 1000}]}]}
    render_id = await nemo.submit_render(token, sid, draft) if endpoint == "render_status" else ""
    sim.inject(fault, count=1, endpoint=endpoint)
    with pytest.raises(error) as info:
        if endpoint == "chat":
            await collect(nemo.chat(token, sid, PROMPT))
        elif endpoint == "credits":
            await nemo.credits(token)
        elif endpoint == "state":
            await nemo.state(token, sid)
        elif endpoint == "upload":
            await nemo.upload(token, sid, filename="clip.mp4", data=b"\x00" * 1000)
        elif endpoint == "render":
            await nemo.submit_render(token, sid, draft)
        elif endpoint == "render_status":
            await nemo.render_status(token, render_id)
    assert sim.stats[f"fault_{fault}"] == 1
    assert len(calls(sim, endpoint)) == 1  # never resent
    assert token not in str(info.value) and token not in repr(info.value)


async def test_out_of_credits_carries_no_user_id_but_is_typed(
    sim: Simulator, nemo: NemoClient
) -> None:
    token, sid = await login(nemo)
    sim.set_credits(0)
    with pytest.raises(OutOfCreditsError) as info:
        await collect(nemo.chat(token, sid, PROMPT))
    assert info.value.code == 2001


async def test_client_id_missing(sim: Simulator, nemo: NemoClient) -> None:
    sim.inject("client_id_missing", endpoint="token")
    with pytest.raises(ClientIdMissingError):
        await nemo.anonymous_token("x")
    with pytest.raises(ClientIdMissingError):
        await nemo.anonymous_token("")  # the simulator wants a non-empty id


async def test_unknown_session_is_a_json_error_before_streaming(nemo: NemoClient) -> None:
    token, _ = await login(nemo)
    with pytest.raises(SessionNotFoundError) as info:
        await collect(nemo.chat(token, "123456789", "hello"))
    assert info.value.status == 404 and info.value.code == 1002


async def test_bad_token_without_fault(nemo: NemoClient) -> None:
    with pytest.raises(TokenExpiredError):
        await nemo.credits("nmv_usr_not_a_real_token")


# -- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint", ["token", "session", "chat", "upload", "credits", "state", "render"]
)
async def test_rate_limit_sleeps_then_retries_once(
    sim: Simulator, nemo: NemoClient, sleeps: Sleeps, endpoint: str
) -> None:
    token, sid = await login(nemo, "pre")
    sim.inject("rate_limit", count=1, endpoint=endpoint)
    if endpoint == "token":
        await nemo.anonymous_token("other")
    elif endpoint == "session":
        await nemo.create_session(token)
    elif endpoint == "chat":
        assert text_of(await collect(nemo.chat(token, sid, PROMPT)))
    elif endpoint == "upload":
        result = await nemo.upload(token, sid, filename="a.png", data=b"\x89PNG" + b"\x00" * 64)
        assert result.files and result.files[0].filename == "a.png"
    elif endpoint == "credits":
        await nemo.credits(token)
    elif endpoint == "state":
        await nemo.state(token, sid)
    elif endpoint == "render":
        await collect(nemo.chat(token, sid, PROMPT))
        assert (await nemo.submit_render(token, sid, None)).startswith("render_")
    assert sleeps.delays == [1.0]  # the simulator's Retry-After
    assert len(calls(sim, endpoint)) == (3 if endpoint in ("token", "session") else 2)


async def test_rate_limit_without_header_waits_30s_and_gives_up_on_second(
    sim: Simulator, nemo: NemoClient, sleeps: Sleeps
) -> None:
    token, _ = await login(nemo)
    sim.inject("rate_limit", count=3, endpoint="credits")
    with pytest.raises(RateLimitedError) as info:
        await nemo.credits(token)
    # The simulator alternates: with Retry-After: 1, then without (30 s default).
    assert sleeps.delays == [1.0]
    assert info.value.retry_after == 30.0
    sleeps.delays.clear()
    await nemo.credits(token)  # third 429 (with header), then success
    assert sleeps.delays == [1.0]


async def test_idempotent_gets_retry_server_errors(
    sim: Simulator, nemo: NemoClient, sleeps: Sleeps
) -> None:
    token, sid = await login(nemo)
    sim.inject("server_error", count=2, endpoint="state")
    state = await nemo.state(token, sid)
    assert state.session_id == sid and len(calls(sim, "state")) == 3
    assert len(sleeps.delays) == 2 and sleeps.delays[0] < sleeps.delays[1] * 2
    sim.inject("server_error", count=3, endpoint="credits")
    with pytest.raises(ServerError):
        await nemo.credits(token)
    assert len(calls(sim, "credits")) == 3


async def test_posts_are_not_resent_on_server_errors(sim: Simulator, nemo: NemoClient) -> None:
    token, sid = await login(nemo)
    for endpoint in ("session", "chat", "render"):
        sim.inject("server_error", count=1, endpoint=endpoint)
    with pytest.raises(ServerError):
        await nemo.create_session(token)
    with pytest.raises(ServerError):  # 503 with an HTML body
        await collect(nemo.chat(token, sid, PROMPT))
    with pytest.raises(ServerError):
        await nemo.submit_render(token, sid, {"t": [{"tt": 0, "sg": [{"d": 1}]}]})
    for endpoint in ("chat", "render"):
        assert len(calls(sim, endpoint)) == 1
    assert len(calls(sim, "session")) == 2  # the login one and the failed one


async def test_duplicate_render_id_retries_with_a_new_id(sim: Simulator, nemo: NemoClient) -> None:
    token, sid = await login(nemo)
    await collect(nemo.chat(token, sid, PROMPT))
    for _ in range(2):  # the simulator alternates HTTP 409 and HTTP 200 + success:false
        sim.inject("duplicate_render_id", endpoint="render")
        render_id = await nemo.submit_render(token, sid, None)
        submitted = [r.json["id"] for r in calls(sim, "render")[-2:]]
        assert submitted[0] != submitted[1] and render_id == submitted[1]
    sim.inject("duplicate_render_id", count=2, endpoint="render")
    with pytest.raises(ApiError, match="already exists"):
        await nemo.submit_render(token, sid, None)


async def test_connect_errors_are_retried_then_translated(sleeps: Sleeps) -> None:
    async with NemoClient(base_url="http://127.0.0.1:9", sleep=sleeps) as client:
        with pytest.raises(TransportError) as info:
            await client.create_session("nmv_usr_secret")
        assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
        assert info.value.maybe_sent is False  # nothing left the machine: safe to resend
        with pytest.raises(TransportError):
            await collect(client.chat("nmv_usr_secret", "1", "hi"))
    assert len(sleeps.delays) == 4  # two backoffs per call, three attempts each


# -- the stream -----------------------------------------------------------------------------


async def test_dropped_stream_raises_transport_error(sim: Simulator, nemo: NemoClient) -> None:
    token, sid = await login(nemo)
    sim.inject("drop_stream", endpoint="chat")
    seen: list[ChatEvent] = []
    with pytest.raises(TransportError) as info:
        async with aclosing(nemo.chat(token, sid, PROMPT)) as events:
            async for event in events:
                seen.append(event)
    assert not isinstance(info.value, StreamTimeoutError)
    assert isinstance(info.value.__cause__, aiohttp.ClientError)
    assert info.value.maybe_sent is True  # the message was sent: its outcome is unknown
    assert len(calls(sim, "chat")) == 1  # never resent
    await sim.idle()


async def test_stream_errors_are_events(sim: Simulator, nemo: NemoClient) -> None:
    token, sid = await login(nemo)
    sim.inject("stream_error", count=2, endpoint="chat")
    for _ in range(2):  # valid JSON {"error": ...}, then broken JSON
        events = await collect(nemo.chat(token, sid, PROMPT))
        errors = [e for e in events if isinstance(e, StreamErrorEvent)]
        assert errors and errors[0].message


async def test_heartbeat_only_stream_times_out(sim: Simulator, sleeps: Sleeps) -> None:
    async with NemoClient(base_url=sim.base_url, sleep=sleeps, heartbeat_timeout=0.25) as nemo:
        token, sid = await login(nemo)
        sim.config.heartbeat_only_seconds = 0.5
        sim.inject("heartbeat_only", endpoint="chat")
        started = time.monotonic()
        beats = 0
        with pytest.raises(StreamTimeoutError):
            async with aclosing(nemo.chat(token, sid, PROMPT)) as events:
                async for event in events:
                    assert isinstance(event, HeartbeatEvent)
                    beats += 1
        assert beats >= 2 and time.monotonic() - started < 0.9
        # The turn keeps running server-side; let it end so the server can stop quickly.
        await sim.idle()


async def test_silent_edit_is_found_by_diffing_state(sim: Simulator, nemo: NemoClient) -> None:
    token, sid = await login(nemo)
    await collect(nemo.chat(token, sid, PROMPT))
    before = (await nemo.state(token, sid)).draft
    sim.inject("silent_edit", endpoint="chat")
    events = await collect(nemo.chat(token, sid, "add lo-fi background music"))
    assert text_of(events) == ""
    after = (await nemo.state(token, sid)).draft
    assert diff_drafts(before, after)


async def test_conversation_keeps_text_once_across_turns(sim: Simulator, nemo: NemoClient) -> None:
    token, sid = await login(nemo)
    for message in (PROMPT, "add lo-fi music", 'add a title "Urban Dreams"'):
        events = await collect(nemo.chat(token, sid, message))
        text = text_of(events)
        assert text, message
        half = text[: len(text) // 2]
        assert text.count(half) == 1
        assert sum(isinstance(e, TurnCompleteEvent) for e in events) <= 1
    summary = (await nemo.state(token, sid)).draft.summary()
    assert "Video:" in summary and "BGM:" in summary and '"' in summary


# -- uploads ----------------------------------------------------------------------------------


async def test_upload_from_path_data_and_stream(
    sim: Simulator, nemo: NemoClient, tmp_path: Path
) -> None:
    token, sid = await login(nemo)
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 300_000)
    by_path = await nemo.upload(token, sid, filename="clip.mp4", path=path)
    assert by_path.files[0].cdn_url and by_path.session_state_applied

    by_data = await nemo.upload(token, sid, filename='we"ird.wav', data=b"RIFF" + b"\x00" * 100)
    assert by_data.files[0].file_type == "audio"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"\x89PNG" + b"\x00" * 1020

    by_stream = await nemo.upload(token, sid, filename="pic.PNG", stream=chunks())
    assert by_stream.files[0].filename == "pic.PNG"
    assert sim.stats["upload_bytes"] == path.stat().st_size + 104 + 4096
    state = await nemo.state(token, sid)
    assert state.video_infos and state.draft.is_exportable


async def test_upload_urls(sim: Simulator, nemo: NemoClient) -> None:
    token, sid = await login(nemo)
    result = await nemo.upload_urls(token, sid, ["https://example.com/a/beach.mp4"])
    assert result.files[0].filename == "beach.mp4"
    assert calls(sim, "upload")[0].json == {
        "urls": ["https://example.com/a/beach.mp4"],
        "source_type": "url",
    }


async def test_upload_limits_are_checked_before_sending(
    sim: Simulator, sleeps: Sleeps, tmp_path: Path
) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\x00" * 2048)
    async with NemoClient(base_url=sim.base_url, sleep=sleeps, max_upload_bytes=1024) as nemo:
        token, sid = await login(nemo)
        with pytest.raises(UnsupportedFileError) as unsupported:
            await nemo.upload(token, sid, filename="notes.txt", data=b"hi")
        assert "mp4" in unsupported.value.message and unsupported.value.code == 4001
        with pytest.raises(UnsupportedFileError):
            await nemo.upload(token, sid, filename="noextension", data=b"hi")
        with pytest.raises(FileTooLargeError) as too_large:
            await nemo.upload(token, sid, filename="big.mp4", path=big)
        assert too_large.value.code == 4002
        with pytest.raises(FileTooLargeError):
            await nemo.upload(token, sid, filename="big.mp4", data=b"\x00" * 1025)

        async def never() -> AsyncIterator[bytes]:
            raise AssertionError("must not be read")
            yield b""

        with pytest.raises(FileTooLargeError):
            await nemo.upload(token, sid, filename="big.mov", stream=never(), size=4096)
        with pytest.raises(ValueError):
            await nemo.upload(token, sid, filename="a.mp4")
        assert calls(sim, "upload") == []

        async def endless() -> AsyncIterator[bytes]:
            while True:
                yield b"\x00" * 512

        with pytest.raises(FileTooLargeError):  # unknown size: cut off at the cap
            await nemo.upload(token, sid, filename="live.webm", stream=endless())
        assert sim.stats["uploads"] == 0
    assert {"mp4", "jpeg", "aac"} <= ACCEPTED_EXTENSIONS and "txt" not in ACCEPTED_EXTENSIONS


# -- renders and downloads ----------------------------------------------------------------------


async def test_render_failed_and_cancel(sim: Simulator, nemo: NemoClient) -> None:
    token, sid = await login(nemo)
    await collect(nemo.chat(token, sid, PROMPT))
    statuses = []
    for _ in range(2):  # one flat job, one wrapped job
        sim.inject("render_failed", endpoint="render")
        render_id = await nemo.submit_render(token, sid, None)
        for _ in range(40):
            status = await nemo.render_status(token, render_id)
            if status.done:
                break
            await asyncio.sleep(0.05)
        statuses.append(status)
    assert [s.status for s in statuses] == ["failed", "failed"]
    assert all(s.error and "render failed" in s.error.lower() for s in statuses)

    render_id = await nemo.submit_render(token, sid, None)
    await nemo.cancel_render(token, render_id)
    assert sim.stats["renders_cancelled"] == 1
    assert (await nemo.render_status(token, render_id)).status == "failed"
    with pytest.raises(ApiError) as missing:
        await nemo.render_status(token, "render_nope")
    assert missing.value.status == 404


async def test_download_limit(sim: Simulator, nemo: NemoClient) -> None:
    url = sim.base_url + "/media/preview.mp4"
    video = await nemo.download(url, limit=10 * 2**20)
    assert video and video[4:8] == b"ftyp"
    assert await nemo.download(url, limit=len(video) - 1) is None
    assert await nemo.download("/media/preview.mp4", limit=len(video)) == video
    with pytest.raises(ApiError):
        await nemo.download(sim.base_url + "/media/missing.mp4", limit=100)


# -- secrets ----------------------------------------------------------------------------------


async def test_tokens_never_logged_or_shown(
    sim: Simulator, nemo: NemoClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    anon = await nemo.anonymous_token("secret-client-id")
    token = anon.token
    session = await nemo.create_session(token)
    events = await collect(nemo.chat(token, session.session_id, PROMPT))
    state = await nemo.state(token, session.session_id)
    credits = await nemo.credits(token)
    render_id = await nemo.submit_render(token, session.session_id, None)
    status = await nemo.render_status(token, render_id)
    errors: list[NemoError] = []
    for fault, endpoint in [("rate_limit", "credits"), ("token_expired", "credits")]:
        sim.inject(fault, count=2 if fault == "rate_limit" else 1, endpoint=endpoint)
        try:
            await nemo.credits(token)
        except NemoError as exc:
            errors.append(exc)
    assert len(errors) == 2
    shown = [anon, session, state, credits, status, nemo, *events, *errors]
    texts = [*map(str, shown), *map(repr, shown), caplog.text]
    texts += [m.getMessage() for m in caplog.records]
    for text in texts:
        assert token not in text
    assert "secret-client-id" not in caplog.text


# -- a scripted server: what the simulator does not stage ------------------------------------


async def test_post_hung_up_on_after_sending_is_not_resent(sleeps: Sleeps) -> None:
    async with ScriptedServer(default=HANG_UP) as server:
        nemo = NemoClient(base_url=server.url, sleep=sleeps)
        with pytest.raises(TransportError) as info:
            await nemo.create_session("tok")
        assert info.value.maybe_sent is True
        assert [r.path for r in server.requests] == ["/api/tasks/me/with-session/nemo_agent"]
        assert sleeps.delays == []
        with pytest.raises(TransportError):
            await nemo.credits("tok")
        # GET: three attempts (two backoffs); aiohttp itself sends an idempotent
        # method once more on a fresh connection when one is hung up on (RFC 9112 9.3.1).
        assert len(sleeps.delays) == 2
        assert len(server.requests) == 1 + 3 * 2
        await nemo.aclose()


async def test_connect_error_on_post_is_resent(sleeps: Sleeps) -> None:
    server = ScriptedServer(Reply(json={"code": 0, "data": {"session_id": "42"}}))
    await server.start()
    await server.stop()  # the port now refuses connections

    async def restart_then_sleep(delay: float) -> None:
        await sleeps(delay)
        await server.start()  # the backend is back before the second attempt

    nemo = NemoClient(base_url=server.url, sleep=restart_then_sleep)
    try:
        assert (await nemo.create_session("tok")).session_id == "42"
    finally:
        await nemo.aclose()
        await server.stop()
    assert len(server.requests) == 1 and len(sleeps.delays) == 1  # refused once, then sent


async def test_stream_of_unknown_size_not_replayed_after_429(sleeps: Sleeps) -> None:
    slow = Reply(429, json={"message": "slow"}, headers={"Retry-After": "2"})

    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"

    async with ScriptedServer(default=slow) as server:
        nemo = NemoClient(base_url=server.url, sleep=sleeps)
        with pytest.raises(RateLimitedError):
            await nemo.upload("tok", "1", filename="a.mp3", stream=chunks())
        assert len(server.requests) == 1 and sleeps.delays == []
        assert b"abc" in server.requests[0].body  # the stream was sent, so it is spent
        with pytest.raises(RateLimitedError):
            await nemo.upload("tok", "1", filename="a.mp3", data=b"abc")
        assert len(server.requests) == 3 and sleeps.delays == [2.0]
        await nemo.aclose()


async def test_upload_stream_past_the_cap_raises_file_too_large_itself(sleeps: Sleeps) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"\x00" * 1000

    async with ScriptedServer() as server:
        nemo = NemoClient(base_url=server.url, sleep=sleeps, max_upload_bytes=5000)
        with pytest.raises(FileTooLargeError):
            await nemo.upload("tok", "1", filename="a.mp3", stream=chunks())
        assert sleeps.delays == []  # not retried
        assert all(len(r.body) <= 5000 + 500 for r in server.requests)  # the excess never left
        await nemo.aclose()


async def test_chat_json_event_list_reply_and_old_style_stream(sleeps: Sleeps) -> None:
    replies = [
        Reply(json=[{"content": {"parts": [{"text": "plain"}]}}]),
        Reply(
            headers={"Content-Type": "text/event-stream"},
            chunks=[
                b': ping\n\ndata: {"type":"text","content":"old "}\n\n',
                b'data: {"type":"heartbeat"}\n\ndata: {"type":"text","content":"style"}',
            ],
        ),
    ]
    async with ScriptedServer(*replies) as server:
        nemo = NemoClient(base_url=server.url, sleep=sleeps)
        assert text_of(await collect(nemo.chat("tok", "1", "hi"))) == "plain"
        events = await collect(nemo.chat("tok", "1", "hi"))
        await nemo.aclose()
    assert text_of(events) == "old style"
    assert sum(isinstance(e, HeartbeatEvent) for e in events) == 2


async def test_download_over_limit_without_content_length(sleeps: Sleeps) -> None:
    big = Reply(chunks=[b"\x00" * 1000] * 10)
    async with ScriptedServer(big, 503, 503, Reply(body=b"ok")) as server:
        nemo = NemoClient(base_url=server.url, sleep=sleeps)
        assert await nemo.download(f"{server.url}/x.mp4", limit=5000) is None
        assert await nemo.download(f"{server.url}/x.mp4", limit=10) == b"ok"
        await nemo.aclose()
    assert len(server.requests) == 4  # the big one, then two 503s and the retry that worked


async def test_download_follows_redirects(sleeps: Sleeps) -> None:
    moved = Reply(302, headers={"Location": "/media/final.mp4"})
    async with ScriptedServer(moved, Reply(body=b"video")) as server:
        nemo = NemoClient(base_url=server.url, sleep=sleeps)
        assert await nemo.download("/render/x.mp4", limit=100) == b"video"
        await nemo.aclose()
    assert [r.path for r in server.requests] == ["/render/x.mp4", "/media/final.mp4"]


async def test_render_status_unknown_payloads_do_not_crash(sleeps: Sleeps) -> None:
    payloads = [
        {"success": True, "data": {"status": "RENDERING", "progress": "12"}},
        {"code": 0, "data": {"state": "done", "output": "https://cdn/x.mp4"}},
        {"status": None, "progress": []},
    ]
    async with ScriptedServer(*(Reply(json=p) for p in payloads)) as server:
        nemo = NemoClient(base_url=server.url, sleep=sleeps)
        first = await nemo.render_status("tok", "render_1")
        second = await nemo.render_status("tok", "render_1")
        third = await nemo.render_status("tok", "render_1")
        await nemo.aclose()
    assert (first.status, first.progress) == ("processing", 12)
    assert (second.status, second.output_url) == ("completed", "https://cdn/x.mp4")
    assert third.status == "pending"
    assert len(server.requests) == 3


async def test_no_cookies_are_kept_or_sent(sleeps: Sleeps) -> None:
    """One pooled session serves every user: a cookie one reply sets never goes back out."""
    cookie = Reply(json={"code": 0, "data": {}}, headers={"Set-Cookie": "sid=user-a; Path=/"})
    async with ScriptedServer(cookie) as server:
        nemo = NemoClient(base_url=server.url, sleep=sleeps)
        await nemo.credits("token-of-a")
        await nemo.credits("token-of-b")
        await nemo.aclose()
    assert [r.headers.get("cookie") for r in server.requests] == [None, None]
    assert server.requests[1].headers["authorization"] == "Bearer token-of-b"


async def test_the_environments_proxy_is_used_and_no_proxy_bypasses_it(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY / NO_PROXY as the environment gives them, read when the client is made."""
    ok = Reply(json={"code": 0, "data": {"available": 7, "frozen": 0, "total": 7}})
    async with ScriptedServer(default=ok) as proxy, ScriptedServer(default=ok) as direct:
        for name in ("HTTPS_PROXY", "ALL_PROXY", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with NemoClient(base_url="http://nemo.example", sleep=sleeps) as far:
            assert (await far.credits("tok")).available == 7
        async with NemoClient(base_url=direct.url, sleep=sleeps) as near:
            assert (await near.credits("tok")).available == 7
    assert [r.path for r in proxy.requests] == ["http://nemo.example/api/credits/balance/simple"]
    assert proxy.requests[0].headers["authorization"] == "Bearer tok"
    assert [r.path for r in direct.requests] == ["/api/credits/balance/simple"]
