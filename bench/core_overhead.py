"""Core overhead: requests through the full core vs a bare httpx script, side by side.

Subject: :class:`core.service.ConversationService` as ``open_core`` builds it (SQLite
file store, the default pooled NemoClient) handling chat, status and credits requests
with a no-op replier. Baseline: a bare ``httpx.AsyncClient`` script making the same
HTTP calls per request (chat = POST /run_sse read to the end + GET state, as the core
does; status = GET state; credits = GET credits), parsing the JSON it gets.

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

    async def _state(self, token: str, session: str) -> Any:
        r = await self.http.get(
            f"{self.base}/api/state/{APP}/me/{session}/latest", headers=self._auth(token)
        )
        return json.loads(r.content)["data"]

    async def request(self, token: str, session: str, kind: str) -> None:
        if kind == "credits":
            r = await self.http.get(
                f"{self.base}/api/credits/balance/simple", headers=self._auth(token)
            )
            json.loads(r.content)
            return
        if kind == "chat":
            body = {
                "app_name": APP,
                "user_id": "me",
                "session_id": session,
                "new_message": {"role": "user", "parts": [{"text": CHAT_TEXT}]},
            }
            headers = {**self._auth(token), "Accept": "text/event-stream"}
            async with self.http.stream(
                "POST", f"{self.base}/run_sse", json=body, headers=headers
            ) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data:") and len(line) > 5:
                        json.loads(line[5:])
        await self._state(token, session)

    async def round(self) -> tuple[float, float, int]:
        async def user(u: int) -> None:
            token, session = self.creds[u]
            for i in range(PER_USER):
                await self.request(token, session, KINDS[i % 3])

        cpu, wall = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(user(u) for u in range(USERS)))
        return time.perf_counter() - wall, cpu_seconds() - cpu, 0


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
            ):
                # Warm-up: first contact (token, session) and one of each request per user.
                warm = NullReplier()
                await asyncio.gather(
                    *(service.handle(_message(u, k), warm) for u in range(USERS) for k in KINDS)
                )
                bare = BareScript(http, base, await _credentials(service))
                await bare.round()
                await _core_round(service)
                core: list[tuple[float, float]] = []
                base_: list[tuple[float, float]] = []
                for r in range(ROUNDS):
                    pair = [("core", _core_round(service)), ("bare", bare.round())]
                    for who, coro in pair if r % 2 == 0 else reversed(pair):
                        wall, cpu, _ = await coro
                        (core if who == "core" else base_).append((wall, cpu))
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
    return result


def main() -> None:
    run_main(NAME, run)


if __name__ == "__main__":
    main()
