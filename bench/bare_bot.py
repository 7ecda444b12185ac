"""``python -m bench.bare_bot BOT_API_BASE NEMO_API_BASE``: the baseline of :mod:`bench.crowd`.

A bare python-telegram-bot ``Application`` (long polling, ``concurrent_updates``,
no rate limiter, no database) making the same backend calls as the product:
``/credits`` mints the user's token once and asks for the balance; any other text
mints the token and a session once, reads the whole chat stream, reads the state,
and answers with the streamed text in one ``reply_text``. It is what a bot
without scheduling, storage or streaming display costs.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from telegram import Update
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes, MessageHandler, filters

from bench.common import raise_nofile
from core.client import NemoClient
from core.events import TextEvent

TOKEN = "123:CROWD"


class Backend:
    """Tokens and sessions per user, kept in memory."""

    def __init__(self, client: NemoClient) -> None:
        self.client = client
        self.tokens: dict[int, str] = {}
        self.sessions: dict[int, str] = {}

    async def token(self, user_id: int) -> str:
        if user_id not in self.tokens:
            self.tokens[user_id] = (await self.client.anonymous_token(f"bare-{user_id}")).token
        return self.tokens[user_id]

    async def session(self, user_id: int, token: str) -> str:
        if user_id not in self.sessions:
            self.sessions[user_id] = (await self.client.create_session(token)).session_id
        return self.sessions[user_id]


async def main(bot_api: str, nemo_api: str) -> None:
    """Run until SIGTERM."""
    client = NemoClient(base_url=nemo_api)
    backend = Backend(client)

    async def credits(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.effective_user is not None
        token = await backend.token(update.effective_user.id)
        balance = await client.credits(token)
        await update.message.reply_text(f"Credits: {balance.available}")

    async def prompt(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.effective_user is not None
        user = update.effective_user.id
        token = await backend.token(user)
        session = await backend.session(user, token)
        parts: list[str] = []
        async for event in client.chat(token, session, update.message.text or ""):
            if isinstance(event, TextEvent):
                parts.append(event.text)
        await client.state(token, session)
        await update.message.reply_text("".join(parts) or "done")

    app: Any = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{bot_api}/bot")
        .base_file_url(f"{bot_api}/file/bot")
        .concurrent_updates(True)
        .build()
    )
    app.add_handler(CommandHandler("credits", credits))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, prompt))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with app:
        await app.start()
        await app.updater.start_polling(timeout=1)
        await stop.wait()
        await app.updater.stop()
        await app.stop()
    await client.aclose()


if __name__ == "__main__":
    raise_nofile()
    asyncio.run(main(sys.argv[1], sys.argv[2]))
