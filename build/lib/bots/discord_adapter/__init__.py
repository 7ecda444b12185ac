"""The Discord adapter: slash commands, mentions, DMs and persistent buttons on discord.py.

Entry points: :class:`DiscordBot` (a :class:`discord.Client`) and
:func:`run_discord` (run it inside a bigger process until a stop event).
"""

from .bot import DiscordAdapter, DiscordBot, configure_endpoints, run_discord
from .replier import DiscordReplier

__all__ = ["DiscordAdapter", "DiscordBot", "DiscordReplier", "configure_endpoints", "run_discord"]
