"""Concurrency: 1,000 users with open SSE chat streams at once, through one process.

The simulator runs in a subprocess and streams slowly (a 10 s generation step of
heartbeats, then text chunks 0.25 s apart). This process runs the real core
(:class:`ConversationService`, SQLite file store, NemoClient) and a recording
replier. All 1,000 chats start within ``STAGGER`` seconds, so all streams are open
at the same time (the peak count of open streams is measured, not assumed).

Relay latency is measured from the simulator's send to the adapter call: every ADK
event carries the simulator's ``timestamp`` (``time.time()`` when it was built, just
before it is written), and a tiny aiohttp client middleware on the client's session
remembers, per stream, the timestamp of the newest event that has arrived. When the core calls the
replier's ``stream.append``, latency = now - that timestamp. Both processes read the
same wall clock. The order check compares, per user, the relayed text with the
simulator's whole reply (translated as the core translates GUI talk).

The client's session is built as :class:`core.nemo_http.NemoHttp` builds its own
(aiohttp, ``POOL_LIMIT`` connections, no cookie jar), plus the stamping middleware.
(Until the client moved from httpx to aiohttp, a second run swapped in httpx's own
transport as a contrast; the client no longer has an httpx door to swap.)
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    ROOT,
    Result,
    cpu_seconds,
    current_rss_mb,
    fast_sim,
    peak_rss_mb,
    percentile,
    quiet_logs,
    raise_nofile,
    run_main,
    simulator_process,
)
from core.app import build_service
from core.client import NemoClient
from core.config import Settings
from core.gui import translate
from core.nemo_http import JSON_TIMEOUT, POOL_LIMIT
from core.types import Action, IncomingMessage
from storage.sqlite import SQLiteStore

NAME = "concurrency"
USERS = 1000
STAGGER = 3.0  # seconds over which the 1,000 chats start
PROMPT = "make a 10-second clip of a city at night"
SIM = fast_sim(
    chunk_delay=0.25,
    heartbeat_interval=1.0,
    slow_step_seconds=10.0,
    gui_phrase_ratio=1.0,  # a second sentence (GUI talk the core rewrites): two relays each
    thought_ratio=0.0,
)
_TIMESTAMP = re.compile(rb'"timestamp":([0-9.]+)')


@dataclass
class Probe:
    """What one user's stream saw on the wire and what reached the adapter."""

    last_sent: float | None = None  # simulator timestamp of the newest event received
    raw: bytearray = field(default_factory=bytearray)
    opened_at: float | None = None  # response headers received (monotonic)
    started_at: float = 0.0  # handle() called (monotonic)
    relayed: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    finished: bool = False
    texts: list[str] = field(default_factory=list)


PROBE: contextvars.ContextVar[Probe | None] = contextvars.ContextVar("probe", default=None)


class _StampedContent:
    """A /run_sse response body that notes each chunk's newest timestamp as it passes.

    Everything but ``iter_any`` (what the client reads with) goes to aiohttp's own reader,
    which the response itself still uses when it is released.
    """

    def __init__(self, inner: aiohttp.StreamReader, probe: Probe, gauge: Gauge) -> None:
        self._inner = inner
        self._probe = probe
        self._gauge = gauge

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def iter_any(self) -> AsyncIterator[bytes]:
        probe = self._probe
        try:
            async for chunk in self._inner.iter_any():
                stamps = _TIMESTAMP.findall(chunk)
                if stamps:
                    probe.last_sent = float(stamps[-1])
                probe.raw += chunk
                yield chunk
        finally:
            self._gauge.close()


class Gauge:
    """Open /run_sse streams now and at most."""

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0

    def opened(self) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)

    def close(self) -> None:
        self.open -= 1


class Stamping:
    """An aiohttp client middleware that watches /run_sse response bodies go by."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        probe = PROBE.get()
        if probe is None or not request.url.path.endswith("/run_sse"):
            return response
        probe.opened_at = time.monotonic()
        self._gauge.opened()
        # The client reads the body only through ``content.iter_any()``.
        response.content = _StampedContent(response.content, probe, self._gauge)  # type: ignore[assignment]
        return response


class RelayStream:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def append(self, text: str) -> None:
        probe = self.probe
        if probe.last_sent is not None:
            probe.latencies.append(time.time() - probe.last_sent)
        probe.relayed.append(text)

    async def finish(self, actions: Sequence[Action] = ()) -> None:
        self.probe.finished = True


class RelayReplier:
    """The adapter side: records relayed text and when it arrived."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def send_text(self, text: str, *, actions: Sequence[Action] = (), private: bool = False):
        self.probe.texts.append(text)

    def stream(self, running: Any = ()) -> RelayStream:
        return RelayStream(self.probe)

    async def progress(self, text: str, percent: int | None = None) -> None:
        pass

    async def notice(self, text: str, *, actions: Any = ()) -> None:
        pass

    async def send_video(self, video: Any) -> None:
        pass

    async def working(self, kind: str = "typing") -> None:
        pass


def _expected(raw: bytes | bytearray) -> str:
    """The simulator's whole reply, from the non-partial text event, as the core shows it."""
    whole = ""
    for line in raw.split(b"\n"):
        if not line.startswith(b"data:") or len(line) <= 6:
            continue
        event = json.loads(line[5:])
        parts = (event.get("content") or {}).get("parts") or []
        text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
        if text and not event.get("partial"):
            whole = text
    return translate(whole)


def _norm(text: str) -> str:
    return " ".join(text.split())


async def _scenario(base: str, kind: str) -> dict[str, Any]:
    """One run in this process: warm-up, then USERS streams (``kind``: the client's)."""
    raise_nofile()
    gauge = Gauge()
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=POOL_LIMIT),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=JSON_TIMEOUT,
        middlewares=(Stamping(gauge),),
    )
    limit = 240.0
    timed_out = False
    with tempfile.TemporaryDirectory(prefix="nemo-bench-") as tmp:
        db = Path(tmp) / "bench.db"
        settings = Settings(_env_file=None, NEMO_API_BASE=base, NEMO_BOT_DB=db)  # type: ignore[call-arg]
        async with (
            SQLiteStore(db) as store,
            NemoClient(base_url=base, http=http) as client,
        ):
            service = build_service(settings=settings, store=store, client=client)
            # Warm-up: every user's first contact (token + session) before the streams.
            gate = asyncio.Semaphore(50)

            async def first_contact(u: int) -> None:
                async with gate:
                    msg = IncomingMessage("bench", str(u), str(u), "credits")
                    await service.handle(msg, RelayReplier(Probe()))

            await asyncio.gather(*(first_contact(u) for u in range(USERS)))
            rss_before = current_rss_mb()
            probes = [Probe() for _ in range(USERS)]

            async def user(u: int) -> None:
                await asyncio.sleep(STAGGER * u / USERS)
                probe = probes[u]
                PROBE.set(probe)
                probe.started_at = time.monotonic()
                msg = IncomingMessage("bench", str(u), str(u), PROMPT)
                await service.handle(msg, RelayReplier(probe))

            cpu, wall = cpu_seconds(), time.monotonic()
            try:
                await asyncio.wait_for(asyncio.gather(*(user(u) for u in range(USERS))), limit)
            except TimeoutError:
                timed_out = True
            wall, cpu = time.monotonic() - wall, cpu_seconds() - cpu
            await service.aclose()
    await http.close()

    latencies = [lat * 1000 for p in probes for lat in p.latencies]
    # A "Timeline (...)" summary is a normal reply (the GUI talk asked for it); anything
    # else sent as a whole message here is an error message (dropped stream, time-out).
    problems = sorted({t[:60] for p in probes for t in p.texts if not t.startswith("Timeline")})
    complete = [
        p
        for p in probes
        if p.finished and p.relayed and all(t.startswith("Timeline") for t in p.texts)
    ]
    in_order = [p for p in complete if _norm("".join(p.relayed)) == _norm(_expected(p.raw))]
    waits = [(p.opened_at - p.started_at) * 1000 for p in probes if p.opened_at is not None]
    return {
        "transport": kind,
        "users": USERS,
        "completed": len(complete),
        "in_order": len(in_order),
        "peak_open_streams": gauge.peak,
        "never_opened": sum(1 for p in probes if p.opened_at is None),
        "timed_out_after_s": limit if timed_out else None,
        "relays": len(latencies),
        "relay_ms_p50": percentile(latencies, 50),
        "relay_ms_p99": percentile(latencies, 99),
        "relay_ms_max": max(latencies, default=float("nan")),
        "open_wait_ms_p50": percentile(waits, 50),
        "open_wait_ms_p99": percentile(waits, 99),
        "rss_mb_before_streams": rss_before,
        "rss_mb_peak": peak_rss_mb(),
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_share": cpu / wall if wall else float("nan"),
        "problems": problems[:5],
    }


async def _child(kind: str, base: str) -> dict[str, Any]:
    """Run one scenario in a fresh process, so its peak RSS is its own."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.concurrency",
        "--child",
        kind,
        base,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"concurrency child {kind} failed ({proc.returncode})")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def _judged(result: Result, judged: bool, metric: str, value: str, target: str, ok: bool) -> None:
    """A row with its target, or (for the contrast run) the bare figure."""
    if judged:
        result.add(metric, value, target, ok)
    else:
        result.add(metric, value)


async def run() -> Result:
    result = Result(NAME)
    runs: dict[str, dict[str, Any]] = {}
    async with simulator_process(**SIM) as base:
        for kind in ("core",):
            runs[kind] = await _child(kind, base)
    result.data.update(runs=runs, sim=SIM, stagger_s=STAGGER, prompt=PROMPT)
    for kind, label in (("core", "core client: aiohttp"),):
        r, judged = runs[kind], kind == "core"
        ok = r["in_order"] == USERS and r["peak_open_streams"] == USERS
        _judged(
            result,
            judged,
            f"streams complete + in order ({label})",
            f"{r['in_order']}/{USERS}, {r['peak_open_streams']} open at once",
            f"{USERS}/{USERS}",
            ok,
        )
        rss = r["rss_mb_peak"]
        _judged(result, judged, f"peak RSS ({label})", f"{rss:.0f} MB", "<= 200 MB", rss <= 200)
        p50, p99 = r["relay_ms_p50"], r["relay_ms_p99"]
        _judged(
            result,
            judged,
            f"relay latency p50 / p99 ({label})",
            f"{p50:.1f} / {p99:.1f} ms",
            "p99 <= 50 ms",
            p99 <= 50,
        )
        result.add(f"CPU busy ({label})", f"{r['cpu_share'] * 100:.0f}% of one core")
    return result


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        quiet_logs()
        print(json.dumps(asyncio.run(_scenario(sys.argv[3], sys.argv[2]))), flush=True)
        return
    run_main(NAME, run)


if __name__ == "__main__":
    main()
