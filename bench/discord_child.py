"""``python -m bench.discord_child production|defaults``: ``nemo-bot discord`` for the
Discord shard benchmark.

``production`` is exactly ``nemo-bot discord``. ``defaults`` is the same process with
discord.py's default caches put back (a 1,000-message cache and the member cache its
intents allow; chunking at start-up needs the members intent, so it is off either way),
the contrast that shows what the small caches save.
"""

from __future__ import annotations

import sys
from typing import Any

import discord

from bots import cli
from bots.discord_adapter import bot as discord_bot


def _with_default_caches() -> None:
    original = discord_bot.DiscordBot.__init__

    def init(self: discord_bot.DiscordBot, *args: Any, **options: Any) -> None:
        options.update(
            max_messages=1000,
            member_cache_flags=discord.MemberCacheFlags.from_intents(discord.Intents.default()),
        )
        original(self, *args, **options)

    discord_bot.DiscordBot.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    if sys.argv[1:] == ["defaults"]:
        _with_default_caches()
    elif sys.argv[1:] != ["production"]:
        raise SystemExit("usage: python -m bench.discord_child production|defaults")
    sys.exit(cli.main(["discord"]))
