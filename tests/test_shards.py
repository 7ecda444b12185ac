"""Discord shards in separate processes: two real ``nemo-bot discord`` processes, one
database, one fake gateway that routes each guild to its shard and DMs to shard 0.

Which process handled what is read from each process's own ``/metrics`` (every
sample carries its ``replica`` label); what the users saw is read from the fake's
record of REST calls.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bots.discord_adapter import DiscordBot
from bots.discord_adapter.views import custom_id
from core.config import Settings
from core.types import Action
from simulator.server import Simulator
from tests.fakes.discord_server import FakeDiscord, Recorded, shard_of
from tests.fakes.procs import NEMO_BOT, BotProcess, bot_env, wait_until

TOKEN = "MTIz.shard-test-bot-token-do-not-log"


async def _config(cwd: Path, **env: object) -> tuple[int, str, str]:
    """``nemo-bot config`` in ``cwd`` (where a .env may be): exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *NEMO_BOT, "config",
        env=bot_env(**env), cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_shard_settings_read_comma_separated_ids_from_env_and_dotenv(
    tmp_path: Path,
) -> None:
    code, out, err = await _config(tmp_path, DISCORD_SHARD_COUNT=4, DISCORD_SHARD_IDS="3, 1")
    assert code == 0, err
    assert re.search(r"^DISCORD_SHARD_COUNT=4$", out, re.M)
    assert re.search(r"^DISCORD_SHARD_IDS=\[?1, ?3\]?$", out, re.M)
    (tmp_path / ".env").write_text("DISCORD_SHARD_COUNT=3\nDISCORD_SHARD_IDS=0,2\n")
    code, out, err = await _config(tmp_path)
    assert code == 0, err
    assert re.search(r"^DISCORD_SHARD_IDS=\[?0, ?2\]?$", out, re.M)


async def test_bad_shard_settings_stop_start_up_with_one_line_each(tmp_path: Path) -> None:
    ids = "DISCORD_SHARD_IDS"
    cases: list[tuple[dict[str, object], str, str]] = [
        ({"DISCORD_SHARD_COUNT": 2, ids: "1,2"}, ids, "2 not in 0..1"),
        ({ids: "0,1"}, ids, "needs DISCORD_SHARD_COUNT"),
        ({"DISCORD_SHARD_COUNT": 2, ids: "0,zero"}, ids, "'zero' is not a shard number"),
        ({"DISCORD_SHARD_COUNT": 2, ids: "1,1"}, ids, "twice"),
        ({"DISCORD_SHARD_COUNT": 0, ids: "0"}, "DISCORD_SHARD_COUNT", "greater than or equal"),
    ]
    for env, variable, why in cases:
        code, out, err = await _config(tmp_path, **env)
        assert code == 2, (env, out)
        [line] = err.strip().splitlines()
        assert line.startswith(f"nemo-bot: bad setting {variable}: "), line
        assert why in line, line
    # The same check reads .env.
    (tmp_path / ".env").write_text("DISCORD_SHARD_COUNT=2\nDISCORD_SHARD_IDS=5\n")
    code, _, err = await _config(tmp_path)
    assert code == 2
    assert err.strip() == (
        "nemo-bot: bad setting DISCORD_SHARD_IDS: 5 not in 0..1 (DISCORD_SHARD_COUNT=2)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _requests_counted(port: int) -> dict[tuple[str, str], float]:
    """``nemo_requests_total`` of one process, by (intent, replica label)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        text = (await http.get("/metrics")).text
    counted: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "nemo_requests_total" and sample.labels["platform"] == "discord":
                counted[(sample.labels["intent"], sample.labels["replica"])] = sample.value
    return counted


async def _healthy(port: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        while True:
            try:
                response = await http.get("/healthz")
                if response.status_code == 200:
                    return dict(response.json())
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


def _posts_to(channel_id: str) -> Any:
    return lambda r: r.method == "POST" and r.path.endswith(f"/channels/{channel_id}/messages")


def _dm_channel(user: dict[str, Any]) -> str:
    return str(int(user["id"]) + 1)  # the fake's DM channel id of a user


def _content(rec: Recorded) -> str:
    payload = rec.payload
    return str(payload.get("content") or "") if isinstance(payload, dict) else ""


def _answers(fake: FakeDiscord, interaction: dict[str, Any]) -> list[Recorded]:
    """What the bot wrote through an interaction's token (edits of the original, followups)."""
    marker = f"/webhooks/{fake.app_id}/{interaction['token']}"
    return [r for r in fake.requests if marker in r.path and r.method in ("PATCH", "POST")]


# Two bot processes, a simulator and a fake gateway: on a loaded machine this takes far
# longer than its usual ~10 s, and the suite's 120 s hang guard would cut it off before
# the test's own deadlines (each naming the step it waited for) could say what was slow.
_PROCESSES = pytest.mark.timeout(300)


@_PROCESSES
async def test_two_shard_processes_on_one_sqlite_file(sim: Simulator, tmp_path: Path) -> None:
    await _two_shard_processes(sim, tmp_path, database=tmp_path / "shared.db")


@_PROCESSES
async def test_two_shard_processes_on_one_postgresql_database(
    sim: Simulator, pg_url: str, tmp_path: Path
) -> None:
    await _two_shard_processes(sim, tmp_path, database=pg_url)


async def _two_shard_processes(sim: Simulator, tmp_path: Path, *, database: object) -> None:
    """Two ``nemo-bot discord`` processes, shards 0 and 1 of 2, on one database."""
    async with FakeDiscord() as fake:
        home = fake.add_guild(shard=(0, 2))  # shard 0: process A (which also gets DMs)
        away = fake.add_guild(shard=(1, 2))  # shard 1: process B
        assert (shard_of(home.id, 2), shard_of(away.id, 2)) == (0, 1)
        common = {
            "DISCORD_BOT_TOKEN": TOKEN,
            "DISCORD_API_BASE": fake.api_base,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
            "NEMO_API_BASE": sim.base_url,
            "NEMO_BOT_DB": database,
        }
        port_a, port_b = _free_port(), _free_port()
        # Process A is configured through the environment, process B through its .env file.
        env_a = bot_env(
            **common,
            DISCORD_SHARD_COUNT=2,
            DISCORD_SHARD_IDS="0",
            NEMO_HEALTH_PORT=port_a,
            NEMO_REPLICA_NAME="discord-a",
        )
        dir_b = tmp_path / "b"
        dir_b.mkdir()
        (dir_b / ".env").write_text(
            "DISCORD_SHARD_COUNT=2\nDISCORD_SHARD_IDS=1\n"
            f"NEMO_HEALTH_PORT={port_b}\nNEMO_REPLICA_NAME=discord-b\n"
        )
        env_b = bot_env(**common)
        async with (
            BotProcess("discord", env=env_a, cwd=tmp_path) as proc_a,
            BotProcess("discord", env=env_b, cwd=dir_b) as proc_b,
        ):
            try:
                await fake.wait_connected(2, within=60)
            except TimeoutError:
                logs = "\n".join(p.stderr[-2000:] for p in (proc_a, proc_b))
                raise AssertionError(f"the shard processes did not connect:\n{logs}") from None
            for proc in (proc_a, proc_b):
                await wait_until(
                    lambda p=proc: "all platforms up" in p.stderr, within=60, what="ready"
                )
            async with asyncio.timeout(30):
                health_a, health_b = await _healthy(port_a), await _healthy(port_b)
            assert (health_a["replica"], health_b["replica"]) == ("discord-a", "discord-b")
            assert health_a["checks"] == {"database": "ok"} == health_b["checks"]
            assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]
            # Only the process running shard 0 synced the slash commands.
            assert len(fake.find("PUT", f"/applications/{fake.app_id}/commands")) == 1

            # A guild event on each shard, and a DM: each goes to one process.
            mention = f"<@{fake.bot_user['id']}>"
            await fake.user_message(f"{mention} status", guild=home)
            await fake.user_message(f"{mention} credits", user=fake.bob, guild=away)
            await fake.user_message("help", dm=True)
            [status] = await fake.wait_for(_posts_to(home.channel_id), within=30)
            [help_text] = await fake.wait_for(_posts_to(_dm_channel(fake.alice)), within=30)
            # Credits are private: the answer to a mention goes to the user's DM.
            [credits] = await fake.wait_for(_posts_to(_dm_channel(fake.bob)), within=30)
            assert [shard for _, shard in fake.deliveries] == [0, 1, 0]
            assert "empty" in _content(status).lower()
            assert "Commands:" in _content(help_text)
            assert "credits" in _content(credits).lower()

            # A video made on shard 1 (process B)...
            timeline_button = custom_id(Action.TIMELINE, int(fake.alice["id"]))
            video = await fake.slash(
                "video", {"prompt": "make a 10-second clip of a city at night"}, guild=away
            )
            await wait_until(
                lambda: any(timeline_button in str(r.payload) for r in _answers(fake, video)),
                within=30,
                what="the video answer with its buttons",
            )
            assert fake.message_with(timeline_button) is not None
            # ...and its Timeline button pressed on shard 0 (process A), as after the
            # guild moved there: the project is found in the shared database.
            press = await fake.press(timeline_button, guild=away, shard=0)
            timeline = await wait_until(
                lambda: [r for r in _answers(fake, press) if "Timeline" in _content(r)],
                within=30,
                what="the timeline answer",
            )
            counted_a = await _requests_counted(port_a)
            counted_b = await _requests_counted(port_b)
            proc_a.signal(signal.SIGTERM)
            proc_b.signal(signal.SIGTERM)
            codes = await asyncio.gather(proc_a.wait(), proc_b.wait())

    assert fake.deliveries[-1] == ("INTERACTION_CREATE", 0)
    assert len(timeline) == 1
    assert "city at night" in _content(timeline[0]).lower()
    # Each request handled once, by the process that owns its shard.
    assert counted_a == {("status", "discord-a"): 2.0, ("help", "discord-a"): 1.0}
    assert counted_b == {("credits", "discord-b"): 1.0, ("chat", "discord-b"): 1.0}
    assert codes == [0, 0], proc_a.stderr[-2000:] + proc_b.stderr[-2000:]
    for proc in (proc_a, proc_b):
        assert "stopped cleanly" in proc.stderr
        assert TOKEN not in proc.stderr + proc.stdout
    # The same user's account serves both processes: one backend token, not one each.
    assert sim.stats["tokens_minted"] == 2  # alice and bob


async def test_each_shard_resumes_through_the_configured_gateway(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        fake.add_guild(shard=(1, 2))
        # READY names a resume node the bot cannot reach: it must resume through the proxy.
        fake.resume_gateway_url = "ws://127.0.0.1:9/unreachable"
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            DISCORD_BOT_TOKEN=SecretStr(TOKEN),
            DISCORD_API_BASE=fake.api_base,
            DISCORD_GATEWAY_URL=fake.gateway_url,
            DISCORD_SHARD_COUNT=2,
            NEMO_BOT_DB=tmp_path / "bot.db",
        )
        bot = _NoIdentifyPause(settings, _Silent(), guild_ready_timeout=0.05)
        runner = asyncio.create_task(bot.start(TOKEN))
        try:
            async with asyncio.timeout(30):
                await bot.adapter.ready.wait()
            assert sorted(bot.shards) == [0, 1]
            await fake.request_reconnect()
            await wait_until(lambda: len(fake.resumes) >= 2, within=30, what="two resumes")
            await fake.wait_connected(2, within=30)
        finally:
            await bot.close()
            await asyncio.wait_for(runner, 10)
    assert sorted(r["token"] == TOKEN for r in fake.resumes) == [True, True]
    assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (0, 2), (1, 2), (1, 2)]


class _NoIdentifyPause(DiscordBot):
    """The bot without discord.py's 5 s pause between two IDENTIFYs (the fake has no limit)."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


class _Silent:
    """A core that never gets a request in this test."""

    def register_adapter(self, adapter: object) -> None:
        """The bot registers itself; nothing is delivered in this test."""

    async def handle(self, msg: object, replier: object) -> None:
        raise AssertionError("no request expected")


async def test_too_few_shards_stop_the_process_with_one_line_naming_the_setting(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as fake:
        fake.required_shards = 4  # as Discord closes a bot past 2,500 servers per shard
        env = bot_env(
            DISCORD_BOT_TOKEN=TOKEN,
            DISCORD_API_BASE=fake.api_base,
            DISCORD_GATEWAY_URL=fake.gateway_url,
            NEMO_BOT_DB=tmp_path / "bot.db",
            DISCORD_SHARD_COUNT=2,
            DISCORD_SHARD_IDS="1",
            NEMO_LOG_LEVEL="ERROR",
        )
        async with BotProcess("discord", env=env, cwd=tmp_path) as bot:
            code = await bot.wait(within=60)
    assert code == 1
    [line] = bot.stderr.splitlines()
    assert line == (
        "nemo-bot: discord stopped: SettingsError: DISCORD_SHARD_COUNT: Discord requires "
        "more shards for this bot (above 2,500 servers a shard); raise it (running shards 1 "
        "of 2; gateway close code 4011)"
    )
    assert TOKEN not in bot.stderr
