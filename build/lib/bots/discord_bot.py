"""Entry for ``nemo-bot discord``: the Discord adapter lives in :mod:`bots.discord_adapter`.

``bots.cli`` calls::

    await run_discord(settings, service, stop_event=stop_event)
"""

from bots.discord_adapter import (
    DiscordAdapter,
    DiscordBot,
    DiscordReplier,
    configure_endpoints,
    run_discord,
)

__all__ = ["DiscordAdapter", "DiscordBot", "DiscordReplier", "configure_endpoints", "run_discord"]
