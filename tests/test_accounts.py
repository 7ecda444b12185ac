"""Accounts under concurrency: one client id, one token and one session per person and chat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.accounts import Accounts
from core.client import NemoClient
from core.errors import TokenExpiredError
from simulator.server import Simulator
from storage.sqlite import SQLiteStore


@pytest.fixture
async def accounts(sim: Simulator, tmp_path: Path) -> AsyncIterator[Accounts]:
    """Accounts on a fresh SQLite file and a client of the simulator."""
    async with (
        SQLiteStore(tmp_path / "db.sqlite") as store,
        NemoClient(base_url=sim.base_url) as client,
    ):
        yield Accounts(store=store, client=client)


async def test_simultaneous_first_messages_make_one_user_one_token_one_session(
    sim: Simulator, accounts: Accounts
) -> None:
    async def first_contact() -> tuple[str, str, str]:
        user = await accounts.user("telegram", "42", "en")
        token = await accounts.token(user)
        session = await accounts.session(user, "chat-1", token, "en")
        return user.client_id, token, session.session_id

    results = await asyncio.gather(*(first_contact() for _ in range(10)))
    assert len(set(results)) == 1
    assert sim.stats["tokens_minted"] == 1
    assert sim.stats["session"] == 1


async def test_renewals_are_capped_per_user(sim: Simulator, accounts: Accounts) -> None:
    user = await accounts.user("discord", "7")
    token = await accounts.token(user)
    for _ in range(5):
        token = await accounts.renew(user, token)
    with pytest.raises(TokenExpiredError, match="too many token renewals"):
        await accounts.renew(user, token)  # the cap speaks as a rejected token
    assert sim.stats["token"] == 6  # one first mint + five renewals, then the cap


async def test_a_lost_session_is_replaced_once_however_many_requests_notice(
    sim: Simulator, accounts: Accounts
) -> None:
    user = await accounts.user("telegram", "42")
    token = await accounts.token(user)
    lost = await accounts.session(user, "chat-1", token, "en")
    results = await asyncio.gather(
        *(
            accounts.replace_session(user, "chat-1", token, "en", lost=lost.session_id)
            for _ in range(5)
        )
    )
    sessions = {session.session_id for session, _ in results}
    assert len(sessions) == 1 and lost.session_id not in sessions
    assert [made for _, made in results].count(True) == 1
    assert sim.stats["session"] == 2
