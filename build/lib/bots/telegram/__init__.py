"""The Telegram adapter (python-telegram-bot): :func:`run_telegram` and :class:`TelegramBot`."""

from bots.telegram.bot import TelegramBot, run_telegram, telegram_limits
from bots.telegram.logs import TokenRedactor
from bots.telegram.replier import TelegramReplier

__all__ = ["TelegramBot", "TelegramReplier", "TokenRedactor", "run_telegram", "telegram_limits"]
