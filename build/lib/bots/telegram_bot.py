"""Entry point of the Telegram adapter; the code lives in :mod:`bots.telegram`.

``nemo-bot telegram`` and ``nemo-bot run`` call::

    await run_telegram(settings, service, webhook_url=None, stop_event=event)
"""

from bots.telegram import TelegramBot, TelegramReplier, TokenRedactor, run_telegram, telegram_limits

__all__ = ["TelegramBot", "TelegramReplier", "TokenRedactor", "run_telegram", "telegram_limits"]
