"""Logging hygiene: the bot token must never reach a log line.

Bot API URLs contain the token (``/bot<token>/method``, ``/file/bot<token>/path``);
PTB logs them at DEBUG while building the bot, httpx logs every request URL at
INFO. :func:`quiet_http_loggers` silences httpx below WARNING and
:class:`TokenRedactor` scrubs whatever still mentions the token.
"""

from __future__ import annotations

import logging
import traceback

__all__ = ["TokenRedactor", "quiet_http_loggers"]

#: Loggers that may see Bot API URLs (PTB logs them at DEBUG when building the bot).
_URL_LOGGERS = (
    "telegram",
    "telegram.Bot",
    "telegram.ext",
    "telegram.ext.ExtBot",
    "telegram.ext.Application",
    "telegram.ext.Updater",
    "telegram.ext.AIORateLimiter",
    "telegram.request",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
    "httpx",
    "httpcore",
    "bots.telegram",
    "bots.telegram.bot",
    "bots.telegram.handlers",
    "bots.telegram.replier",
)


class TokenRedactor(logging.Filter):
    """Replaces the bot token in log records (PTB and httpx can put URLs in messages).

    Logger filters only see records created by their own logger, so :meth:`install`
    puts it on every logger that may see a Bot API URL and on the root handlers.
    """

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def install(self) -> None:
        """Filter the URL-bearing loggers and whatever handlers the root logger has now."""
        for name in _URL_LOGGERS:
            logging.getLogger(name).addFilter(self)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self)

    def uninstall(self) -> None:
        """Undo :meth:`install`."""
        for name in _URL_LOGGERS:
            logging.getLogger(name).removeFilter(self)
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record if the token shows up anywhere in it."""
        message = record.getMessage()
        if self._token in message:
            record.msg, record.args = message.replace(self._token, "<bot-token>"), None
        if record.exc_info and not record.exc_text:
            text = "".join(traceback.format_exception(*record.exc_info))
            if self._token in text:
                record.exc_text = text.replace(self._token, "<bot-token>").rstrip("\n")
        return True


def quiet_http_loggers() -> None:
    """httpx logs every request URL at INFO, and Bot API URLs contain the token."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
