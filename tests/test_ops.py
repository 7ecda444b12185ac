"""Operations: /healthz and /metrics while the bot runs, `nemo-bot config`, logs, Docker files."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import sys
from pathlib import Path

import httpx

from core.logs import SecretFilter
from simulator.server import Simulator
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.telegram_server import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:ABCdefGhIJKlmnoPQRstuvWXyz0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_", "DISCORD_"))
    }
    env.update(extra)
    return env


async def test_health_and_metrics_answer_while_the_telegram_bot_runs(
    sim: Simulator, tmp_path: Path
) -> None:
    port = _free_port()
    async with FakeTelegram(TOKEN) as tg:
        env = _clean_env(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE=tg.base_url,
            NEMO_API_BASE=sim.base_url,
            NEMO_BOT_DB=str(tmp_path / "bot.db"),
            NEMO_HEALTH_PORT=str(port),
            NEMO_LOG_LEVEL="DEBUG",
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots.cli", "telegram",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                for _ in range(200):
                    try:
                        health = await http.get("/healthz")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
                assert health.status_code == 200
                assert health.json()["status"] == "ok"

                tg.private_text(42, "credits")
                await tg.wait_for(lambda: any("Credits" in t for t in tg.texts(42)), within=20)
                metrics = (await http.get("/metrics")).text
                assert re.search(
                    r'nemo_requests_total\{intent="credits",platform="telegram"\} 1\.0', metrics
                )
                assert "nemo_export_delivery_delay_seconds_bucket" in metrics
                assert "nemo_renders_in_flight 0.0" in metrics
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    log_text = stderr.decode()
    assert "stopped cleanly" in log_text
    assert TOKEN not in log_text and "nmv_" not in log_text


async def test_config_masks_secrets_and_reports_every_bad_setting() -> None:
    good = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "config",
        cwd=ROOT, env=_clean_env(TELEGRAM_BOT_TOKEN=TOKEN, NEMO_TOKEN="nmv_usr_secret"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await good.communicate()
    assert good.returncode == 0
    text = out.decode()
    assert "TELEGRAM_BOT_TOKEN=********" in text and "NEMO_TOKEN=********" in text
    assert TOKEN not in text and "nmv_usr_secret" not in text
    assert "NEMO_API_BASE=https://mega-api-prod.nemovideo.ai" in text

    bad = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "config",
        cwd=ROOT, env=_clean_env(DISCORD_GATEWAY_URL="http://x", NEMO_HEALTH_PORT="99999"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await bad.communicate()
    assert bad.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("nemo-bot: bad setting DISCORD_GATEWAY_URL")
    assert lines[1].startswith("nemo-bot: bad setting NEMO_HEALTH_PORT")


def test_secret_filter_scrubs_messages_and_tracebacks() -> None:
    secret_filter = SecretFilter([TOKEN, "hunter22"])
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1,
        "GET https://api.telegram.org/bot%s/getMe token=%s pw=%s",
        (TOKEN, "nmv_usr_abc123", "hunter22"), None,
    )  # fmt: skip
    try:
        raise RuntimeError(f"boom {TOKEN}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert secret_filter.filter(record)
    formatted = logging.Formatter().format(record)
    assert TOKEN not in formatted and "nmv_usr_abc123" not in formatted
    assert "hunter22" not in formatted and "boom ***" in formatted
    path = "POST /interactions/1234567/aW50ZXJhY3Rpb24tdG9rZW4/callback"
    assert secret_filter.scrub(path) == "POST /interactions/1234567/***/callback"
    assert secret_filter.scrub('{"token": "aW50ZXJh", "id": 1}') == '{"token": "***", "id": 1}'


def test_dockerfile_runs_the_bot_as_non_root_with_a_volume_and_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-3]-slim", dockerfile, re.M)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert re.search(r'^VOLUME \["?/data"?\]?', dockerfile, re.M)
    assert "NEMO_BOT_DB=/data/nemo-bot.db" in dockerfile
    assert re.search(r'^CMD \["nemo-bot", "run"\]', dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        for source in line.split()[:-1]:
            if "*" in source:  # optional (the lock file): a pattern may match nothing
                continue
            if not source.startswith("--"):
                assert (ROOT / source).exists(), f"Dockerfile copies a missing path: {source}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "data", ".env"):
        assert entry in ignored


def test_env_example_documents_every_setting() -> None:
    from core.config import Settings

    example = (ROOT / ".env.example").read_text()
    for name, field in Settings.model_fields.items():
        assert f"{field.alias or name}=" in example, field.alias


async def test_env_example_copied_to_dotenv_is_a_valid_configuration(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "config",
        cwd=tmp_path, env=_clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "\nNEMO_HEALTH_PORT=\n" in out.decode()  # unset prints as .env.example writes it


async def test_run_serves_telegram_and_discord_in_one_process(
    sim: Simulator, tmp_path: Path
) -> None:
    discord_token = "MTIz.discord.bot-token-for-tests"
    async with FakeTelegram(TOKEN) as tg, FakeDiscord() as dc:
        env = _clean_env(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE=tg.base_url,
            DISCORD_BOT_TOKEN=discord_token,
            DISCORD_API_BASE=dc.api_base,
            DISCORD_GATEWAY_URL=dc.gateway_url,
            NEMO_API_BASE=sim.base_url,
            NEMO_BOT_DB=str(tmp_path / "bot.db"),
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots.cli", "run",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await dc.wait_connected(within=30)
            tg.private_text(7, "status")
            await tg.wait_for(lambda: tg.texts(7), within=20)
            await dc.slash("status")
            [edit] = await dc.wait_for(
                lambda r: r.method == "PATCH" and "@original" in r.path, within=20
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert "empty" in tg.texts(7)[0].lower()
    assert "empty" in str(edit.payload).lower()
    assert TOKEN not in stderr.decode() and discord_token not in stderr.decode()
