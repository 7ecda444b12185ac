"""Shared test fixtures. Every server in the tests listens on 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from simulator import media
from simulator.server import SimConfig, Simulator
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.telegram_server import FakeTelegram
from tests.pgserver import PgServer, start_server


def fast_sim_config(**overrides: object) -> SimConfig:
    """Simulator settings for tests: short renders, chunk delays and heartbeats, small
    MP4s (each draft's MP4 is made once per content and cached on disk)."""
    settings: dict[str, object] = {
        "video_width": 320,
        "video_height": 180,
        "render_seconds": 1.0,
        "chunk_delay": 0.005,
        "heartbeat_interval": 0.05,
        "slow_step_seconds": 0.1,
        "heartbeat_only_seconds": 0.3,
    }
    settings.update(overrides)
    return SimConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A started NemoVideo simulator on 127.0.0.1 with fast settings (seed 0).

    Media are made once per process (and cached on disk), so starting one is cheap.
    """
    async with Simulator(fast_sim_config()) as running:
        yield running


@pytest.fixture(scope="session")
def png() -> bytes:
    """A small real PNG (made once with ffmpeg and cached on disk)."""
    return media.sample_image(64, 36).read_bytes()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throw-away PostgreSQL server for the whole run (or ``NEMO_TEST_DATABASE_URL``).

    Started once, on first use; a server that cannot start fails the tests that
    need it (never a skip).
    """
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty database of its own for one test."""
    return await pg_server.create_database()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    """A fake Bot API server on 127.0.0.1 (bot token ``123:ABC``)."""
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A fake Discord (REST + gateway) on 127.0.0.1."""
    async with FakeDiscord() as running:
        yield running
