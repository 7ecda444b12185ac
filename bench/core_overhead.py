"""Core overhead: requests through the full core vs a bare httpx script, side by side.

Subject: :class:`core.service.ConversationService` as ``open_core`` builds it (SQLite
file store, the default pooled NemoClient) handling chat, status and credits requests
with a no-op replier. Baseline: a bare ``httpx.AsyncClient`` script making the same
HTTP calls per request (chat = POST /run_sse read to the end + GET state, as the core
does; status = GET state; credits = GET credits), parsing the JSON it gets. A second,
informational baseline makes the same calls from a bare ``aiohttp.ClientSession`` (the
library the client is built on since 2026-12-01): against it the ratio shows the
core's own work per request (store, routing, relay), not its HTTP client's.

Both hit the same simulator (a subprocess, no think time) with the same users and
sessions and the same concurrency. Rounds alternate subject/baseline (order flipped
every round) so both see the same noise; we report medians and per-round ratios of
requests/s and of this process's CPU time per request (the bot's own cost, which the
simulator's speed cannot hide).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.common import (
    Result,
    cpu_seconds,
    fast_sim,
    median,
    ratios,
    run_main,
    simulator_process,
)
from core.app import open_core
from core.config import Settings
from core.service import ConversationService
from core.types import Action, IncomingMessage

NAME = "core"
USERS = 16  # concurrent users, no think time
ROUNDS = 5
PER_USER = 30  # requests per user per round: chat, status, credits, chat, ...
CHAT_TEXT = "what do you think of it so far?"
KINDS = ("chat", "status", "credits")
APP = "nemo_agent"


class NullStream:
    """A text stream that keeps nothing (the adapter's cost is not the core's)."""

    async def append(self, text: str) -> None:
        pass

    async def finish(self, actions: Sequence[Action] = ()) -> None:
        pass


class NullReplier:
    """A replier that counts what it was asked to say."""

    def __init__(self) -> None:
        self.calls = 0

    async def send_text(self, text: str, *, actions: Sequence[Action] = (), private: bool = False):
        self.calls += 1

    def stream(self, running: Any = ()) -> NullStream:
        self.calls += 1
        return NullStream()

    async def progress(self, text: str, percent: int | None = None) -> None:
        self.calls += 1

    async def notice(self, text: str, *, actions: Any = ()) -> None:
        self.calls += 1

    async def send_video(self, video: Any) -> None:
        self.calls += 1

    async def working(self, kind: str = "typing") -> None:
        pass


def _message(user: int, kind: str) -> IncomingMessage:
    text = CHAT_TEXT if kind == "chat" else kind
    return IncomingMessage(platform="bench", user_id=str(user), chat_id=str(user), text=text)


async def _core_round(service: ConversationService) -> tuple[float, float, int]:
    replier = NullReplier()

    async def user(u: int) -> None:
        for i in range(PER_USER):
            await service.handle(_message(u, KINDS[i % 3]), replier)

    cpu, wall = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(user(u) for u in range(USERS)))
    return time.perf_counter() - wall, cpu_seconds() - cpu, replier.calls


class BareScript:
    """The same HTTP calls, straight from httpx."""

    def __init__(self, http: httpx.AsyncClient, base: str, creds: list[tuple[str, str]]) -> None:
        self.http = http
        self.base = base
        self.creds = creds
        self.headers = {
            "X-Skill-Source": "nemo-bot",
            "X-Skill-Version": "0.1.0",
            "X-Skill-Platform": "python",
        }

    def _auth(self, token: str) -> dict[str, str]:
        return {**self.headers, "Authorization": f"Bearer {token}"}

    async def _get(self, url: str, headers: dict[str, str]) -> bytes:
        return (await self.http.get(url, headers=headers)).content

    async def _stream(self, url: str, body: Any, headers: dict[str, str]) -> None:
        async with self.http.stream("POST", url, json=body, headers=headers) as r:
            async for line in r.aiter_lines():
                if line.startswith("data:") and len(line) > 5:
                    json.loads(line[5:])

    async def request(self, token: str, session: str, kind: str) -> None:
        if kind == "credits":
            json.loads(
                await self._get(f"{self.base}/api/credits/balance/simple", self._auth(token))
            )
            return
        if kind == "chat":
            body = {
                "app_name": APP,
                "user_id": "me",
                "session_id": session,
                "new_message": {"role": "user", "parts": [{"text": CHAT_TEXT}]},
            }
            headers = {**self._auth(token), "Accept": "text/event-stream"}
            await self._stream(f"{self.base}/run_sse", body, headers)
        state = f"{self.base}/api/state/{APP}/me/{session}/latest"
        json.loads(await self._get(state, self._auth(token)))

    async def round(self) -> tuple[float, float, int]:
        async def user(u: int) -> None:
            token, session = self.creds[u]
            for i in range(PER_USER):
                await self.request(token, session, KINDS[i % 3])

        cpu, wall = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(user(u) for u in range(USERS)))
        return time.perf_counter() - wall, cpu_seconds() - cpu, 0


class BareAiohttpScript(BareScript):
    """The same HTTP calls, straight from aiohttp."""

    def __init__(
        self, http: aiohttp.ClientSession, base: str, creds: list[tuple[str, str]]
    ) -> None:
        super().__init__(http, base, creds)  # type: ignore[arg-type]
        self.session = http

    async def _get(self, url: str, headers: dict[str, str]) -> bytes:
        async with self.session.get(url, headers=headers) as r:
            return await r.read()

    async def _stream(self, url: str, body: Any, headers: dict[str, str]) -> None:
        async with self.session.post(url, json=body, headers=headers) as r:
            async for raw in r.content:  # one line at a time
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:") and len(line) > 5:
                    json.loads(line[5:])


async def _credentials(service: ConversationService) -> list[tuple[str, str]]:
    """Each user's token and session, as the core stored them after warm-up."""
    store = service._store  # the bench reads what the core persisted
    creds = []
    for u in range(USERS):
        user = await store.get_user("bench", str(u))
        session = await store.get_session("bench", str(u), str(u))
        assert user is not None and user.token and session is not None
        creds.append((user.token, session.session_id))
    return creds


async def run() -> Result:
    result = Result(NAME)
    n = USERS * PER_USER
    async with simulator_process(**fast_sim()) as base:
        with tempfile.TemporaryDirectory(prefix="nemo-bench-") as tmp:
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None, NEMO_API_BASE=base, NEMO_BOT_DB=Path(tmp) / "bench.db"
            )
            async with (
                open_core(settings) as service,
                httpx.AsyncClient(
                    timeout=30,
                    limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                ) as http,
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=256),
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as session,
            ):
                # Warm-up: first contact (token, session) and one of each request per user.
                warm = NullReplier()
                await asyncio.gather(
                    *(service.handle(_message(u, k), warm) for u in range(USERS) for k in KINDS)
                )
                creds = await _credentials(service)
                bare = BareScript(http, base, creds)
                aio = BareAiohttpScript(session, base, creds)
                await bare.round()
                await aio.round()
                await _core_round(service)
                runs: dict[str, list[tuple[float, float]]] = {"core": [], "bare": [], "aio": []}
                rounds = {
                    "core": lambda: _core_round(service),
                    "bare": bare.round,
                    "aio": aio.round,
                }
                names = list(rounds)
                for r in range(ROUNDS):  # each subject first, second and last in turn
                    for who in names[r % 3 :] + names[: r % 3]:
                        wall, cpu, _ = await rounds[who]()
                        runs[who].append((wall, cpu))
    core, base_, aio_ = runs["core"], runs["bare"], runs["aio"]
    aio_rps = [n / w for w, _ in aio_]
    aio_cpu = [c / n * 1000 for _, c in aio_]
    core_rps = [n / w for w, _ in core]
    bare_rps = [n / w for w, _ in base_]
    core_cpu = [c / n * 1000 for _, c in core]
    bare_cpu = [c / n * 1000 for _, c in base_]
    rps_ratio = median(ratios(core_rps, bare_rps))
    cpu_ratio = median(ratios(core_cpu, bare_cpu))
    result.data.update(
        users=USERS,
        requests_per_round=n,
        rounds=ROUNDS,
        mix="chat, status, credits in turn (chat = /run_sse + state)",
        core_rps=core_rps,
        bare_rps=bare_rps,
        core_cpu_ms_per_request=core_cpu,
        bare_cpu_ms_per_request=bare_cpu,
        rps_ratio_median=rps_ratio,
        cpu_ratio_median=cpu_ratio,
    )
    result.add("core requests/s (median)", f"{median(core_rps):.0f}")
    result.add("bare httpx requests/s (median)", f"{median(bare_rps):.0f}")
    result.add("core / bare throughput", f"{rps_ratio:.2f}x", ">= 0.8x", rps_ratio >= 0.8)
    result.add(
        "CPU ms/request core vs bare",
        f"{median(core_cpu):.2f} vs {median(bare_cpu):.2f} ({cpu_ratio:.1f}x)",
    )
    aio_ratio = median(ratios(core_rps, aio_rps))
    result.data.update(aiohttp_rps=aio_rps, aiohttp_cpu_ms_per_request=aio_cpu)
    result.add(
        "core vs bare aiohttp: requests/s (CPU ms/request)",
        f"{median(core_rps):.0f} vs {median(aio_rps):.0f}: {aio_ratio:.2f}x "
        f"({median(core_cpu):.2f} vs {median(aio_cpu):.2f})",
    )
    return result


def main() -> None:
    run_main(NAME, run)


if __name__ == "__main__":
    main()
