"""Secrets never leak: not into logs, not to a chat platform, not to the video backend.

``nemo-bot telegram`` runs as a real process at ``NEMO_LOG_LEVEL=DEBUG`` against the
fake Bot API and the simulator, through a whole session: a prompt, a photo (whose
download URL carries the bot token), a photo whose download fails (the error path
that used to quote the URL), status, credits, a button pressed by a stranger and
an export. Then every log line the process wrote, every payload the fake Bot API
received and every request the simulator received are searched for the bot token,
the NemoVideo tokens the simulator minted (``nmv_...``) and Telegram file URLs.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from simulator import media
from simulator.server import Simulator
from tests.conftest import fast_sim_config
from tests.fakes.procs import BotProcess, bot_env, wait_until
from tests.fakes.telegram_server import FakeTelegram

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

BOT_TOKEN = "8123456789:AAF-secret_bot_token-0123456789abcdef"
WEBHOOK_SECRET = "hook-secret-9f8e7d6c5b4a"


async def test_no_secret_in_logs_chat_payloads_or_backend_requests(tmp_path: Path) -> None:
    png = media.sample_image().read_bytes()
    async with (
        FakeTelegram(BOT_TOKEN) as tg,
        Simulator(fast_sim_config(render_seconds=0.5)) as sim,
    ):
        env = bot_env(
            TELEGRAM_BOT_TOKEN=BOT_TOKEN,
            TELEGRAM_API_BASE=tg.base_url,
            TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
            NEMO_API_BASE=sim.base_url,
            NEMO_BOT_DB=tmp_path / "bot.db",
            NEMO_LOG_LEVEL="DEBUG",
        )
        async with BotProcess("telegram", env=env, cwd=tmp_path) as bot:
            await wait_until(lambda: tg.calls_of("getUpdates", ok_only=False), within=30)
            # several chats at once (each chat is paced at ~1 message a second)
            tg.private_text(501, "make a clip of a night market")
            broken = tg.photo(tg.private_chat(503), 503, png, caption="and this one")
            tg.broken_downloads.add(tg._files[broken["photo"][-1]["file_id"]][0])
            tg.private_text(504, "/credits")
            tg.group_text(-505, 505, "make a clip of a parade", mention=True)
            await tg.wait_for(lambda: any(m.result_markup for m in tg.sent_to(501)), within=20)
            tg.photo(tg.private_chat(501), 501, png, caption="use this as the opening shot")
            tg.press(502, tg.sent_to(501)[0], "a:export:501")  # a stranger's thumb
            await tg.wait_for(lambda: len(tg.calls_of("getFile")) >= 2, within=20)
            tg.private_text(501, "/export")
            await tg.wait_for(lambda: tg.calls_of("sendVideo"), within=20)
            await tg.wait_for(lambda: tg.texts(503) and tg.texts(504) and tg.texts(-505))
            bot.signal(signal.SIGTERM)
            assert await bot.wait() == 0, bot.stderr[-3000:]
        minted = list(sim.backend.tokens)
        backend = [json.dumps(r.as_dict(), default=str) for r in sim.requests]

    logs = bot.stdout + bot.stderr
    payloads = [json.dumps(c.params, default=str, ensure_ascii=False) for c in tg.calls]
    assert minted and tg.downloads and len(logs.splitlines()) > 100  # the session was real
    assert "DEBUG" in logs
    secrets = [BOT_TOKEN, WEBHOOK_SECRET, BOT_TOKEN.split(":")[1], *minted]
    for secret in secrets:
        assert secret not in logs, f"a secret leaked into the logs: {secret[:6]}…"
        assert not [p for p in payloads if secret in p], "a secret was sent to Telegram"
    assert "nmv_" not in logs and not [p for p in payloads if "nmv_" in p]
    # PTB logs its file URL root at start-up: only ever with the token masked
    assert not re.search(r"/file/bot(?!<bot-token>|\*\*\*)", logs)
    assert not [p for p in payloads if "/file/bot" in p]
    for request in backend:  # the video backend sees its own token, nothing of Telegram's
        assert BOT_TOKEN not in request and "/file/bot" not in request
        assert WEBHOOK_SECRET not in request
