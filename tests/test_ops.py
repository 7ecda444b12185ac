"""Operations: /healthz and /metrics while the bot runs, `nemo-bot config`, logs, Docker files."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import yaml

from core.health import health_server
from core.logs import SecretFilter
from core.metrics import Metrics
from simulator.server import Simulator
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.procs import BotProcess, bot_env, wait_until
from tests.fakes.tcp_proxy import TcpProxy
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
            NEMO_REPLICA_NAME="tg-1",
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
                assert health.json()["replica"] == "tg-1"
                assert health.json()["checks"] == {"database": "ok"}

                tg.private_text(42, "credits")
                await tg.wait_for(lambda: any("Credits" in t for t in tg.texts(42)), within=20)
                metrics = (await http.get("/metrics")).text
                credits = 'nemo_requests_total{intent="credits",platform="telegram",replica="tg-1"}'
                assert f"{credits} 1.0" in metrics
                assert "nemo_export_delivery_delay_seconds_bucket" in metrics
                assert 'nemo_renders_in_flight{replica="tg-1"} 0.0' in metrics
                # Every sample says which replica it came from.
                samples = [line for line in metrics.splitlines() if not line.startswith("#")]
                assert samples and all('replica="tg-1"' in line for line in samples)
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


async def _get_health(http: httpx.AsyncClient) -> httpx.Response:
    for _ in range(300):
        try:
            return await http.get("/healthz")
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise AssertionError("the health listener never came up")


async def test_healthz_answers_503_with_the_reason_while_the_database_is_unusable(
    sim: Simulator, tmp_path: Path
) -> None:
    port = _free_port()
    db = tmp_path / "bot.db"
    async with FakeTelegram(TOKEN) as tg:
        env = _clean_env(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE=tg.base_url,
            NEMO_API_BASE=sim.base_url,
            NEMO_BOT_DB=str(db),
            NEMO_HEALTH_PORT=str(port),
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots.cli", "telegram",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                healthy = await _get_health(http)
                assert healthy.status_code == 200, healthy.text
                # Another process takes the database's write lock and keeps it.
                holder = sqlite3.connect(db, isolation_level=None)
                try:
                    holder.execute("BEGIN IMMEDIATE")
                    sick = await http.get("/healthz")
                finally:
                    holder.execute("ROLLBACK")
                    holder.close()
                recovered = await http.get("/healthz")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert sick.status_code == 503
    body = sick.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "unreachable"}
    assert body["reason"].startswith("database unreachable: ")
    assert recovered.status_code == 200 and recovered.json()["checks"] == {"database": "ok"}
    assert proc.returncode == 0, stderr.decode()[-2000:]


async def test_a_failing_check_is_reported_without_credentials() -> None:
    async def refused() -> None:
        raise OSError("could not connect to postgresql://nemo:hunter22@db:5432/nemo\nmore")

    async def hangs() -> None:
        await asyncio.sleep(60)

    checks = {"database": refused, "cache": hangs}
    async with (
        health_server(Metrics(), checks=checks, replica="r-1", check_timeout=0.2) as port,
        httpx.AsyncClient() as http,
    ):
        answer = await http.get(f"http://127.0.0.1:{port}/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["replica"] == "r-1"
    assert body["checks"] == {"database": "unreachable", "cache": "unreachable"}
    assert body["reason"] == (
        "database unreachable: OSError: could not connect to postgresql://***@db:5432/nemo; "
        "cache unreachable: no answer within 0.2 s"
    )
    assert "hunter22" not in answer.text


async def test_the_replica_name_defaults_to_the_host_name(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "config",
        cwd=tmp_path, env=_clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert f"NEMO_REPLICA_NAME={socket.gethostname()}\n" in out.decode()


def test_the_compose_example_names_real_commands_settings_and_every_shard_once() -> None:
    from core.config import Settings, load_settings

    text = (ROOT / "deploy" / "compose.yaml").read_text()
    # Compose fills ${VAR:?message} in from --env-file; the test fills in a stand-in.
    compose = yaml.safe_load(re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "pw", text))
    aliases = {field.alias for field in Settings.model_fields.values()}
    services = compose["services"]
    bots = {name: service for name, service in services.items() if "build" in service}
    assert set(bots) == {"telegram-0", "telegram-1", "discord-0", "discord-1"}
    # The Telegram replicas register one webhook URL; the load balancer reaches each one.
    webhooks = {tuple(s["command"]) for n, s in bots.items() if n.startswith("telegram")}
    [webhook] = webhooks
    assert webhook[2:4] == ("--webhook-url", "https://pw/telegram")
    proxy = services["caddy"]["command"]
    upstreams = [proxy[i + 1] for i, arg in enumerate(proxy) if arg == "--to"]
    assert upstreams == ["telegram-0:8443", "telegram-1:8443"] and "8443" in webhook
    shards: dict[int, list[int]] = {}
    for name, service in bots.items():
        program, command, *args = service["command"]
        assert program == "nemo-bot", name
        usage = subprocess.run(
            [sys.executable, "-m", "bots.cli", command, *args, "--help"],
            capture_output=True, cwd=ROOT, env=_clean_env(), check=False,
        )  # fmt: skip
        assert usage.returncode == 0, usage.stderr  # a command nemo-bot knows
        assert (ROOT / "deploy" / service["build"]["context"] / "Dockerfile").exists()
        assert service["env_file"] == "../.env"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        environment = {k: str(v) for k, v in service["environment"].items()}
        assert set(environment) <= aliases, name
        settings = load_settings(_env_file=None, **environment)
        assert settings.replica_name == name
        assert str(settings.db_target) == "postgresql://nemo:pw@postgres:5432/nemo"
        if command == "discord":
            ids, count = settings.discord_shards
            for shard in ids:
                shards.setdefault(count, []).append(shard)
    postgres = services["postgres"]["environment"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("nemo", "nemo")
    # One shard count for every process, and each shard served exactly once.
    [(count, served)] = shards.items()
    assert sorted(served) == list(range(count)) and count > 1


async def test_healthz_follows_a_postgresql_server_going_away_and_coming_back(
    sim: Simulator, pg_url: str, tmp_path: Path
) -> None:
    parts = urlsplit(pg_url)
    assert parts.hostname is not None and parts.port is not None
    port = _free_port()
    async with TcpProxy(parts.hostname, parts.port) as proxy, FakeTelegram(TOKEN) as tg:
        via_proxy = parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}"))
        env = bot_env(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE=tg.base_url,
            NEMO_API_BASE=sim.base_url,
            NEMO_BOT_DB=urlunsplit(via_proxy),
            NEMO_HEALTH_PORT=port,
            NEMO_REPLICA_NAME="tg-pg",
        )
        async with (
            BotProcess("telegram", env=env, cwd=tmp_path) as bot,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
        ):
            await wait_until(lambda: "all platforms up" in bot.stderr, within=60, what="start-up")
            healthy = await _get_health(http)
            await proxy.cut()
            gone = await http.get("/healthz")
            await proxy.restore()
            for _ in range(100):  # the pool connects again on the next use
                back = await http.get("/healthz")
                if back.status_code == 200:
                    break
                await asyncio.sleep(0.2)
            bot.signal(signal.SIGTERM)
            code = await bot.wait()
    assert healthy.status_code == 200, healthy.text
    assert healthy.json()["checks"] == {"database": "ok"}
    assert gone.status_code == 503
    assert gone.json()["replica"] == "tg-pg"
    assert gone.json()["checks"] == {"database": "unreachable"}
    assert gone.json()["reason"].startswith("database unreachable: ")
    assert back.status_code == 200, back.text
    assert code == 0, bot.stderr[-2000:]
