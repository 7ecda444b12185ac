"""Logging hygiene: the bot token must never reach a log line.

Bot API URLs contain the token (``/bot<token>/method``, ``/file/bot<token>/path``);
PTB logs them at DEBUG while building the bot, httpx logs every request URL at
INFO. :func:`quiet_http_loggers` silences httpx below WARNING and
:class:`TokenRedactor` (the shared :class:`bots.common.LogRedactor`) scrubs
whatever still mentions the token.
"""

from __future__ import annotations

import logging

from bots.common import LogRedactor

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


class TokenRedactor(LogRedactor):
    """Masks the bot token (and every other known secret) in log records.

    The shared :class:`bots.common.LogRedactor` (itself :class:`core.logs.SecretFilter`)
    installed on every logger that may see a Bot API URL and on the root handlers.
    """

    def __init__(self, token: str) -> None:
        super().__init__([token], loggers=_URL_LOGGERS)


def quiet_http_loggers() -> None:
    """httpx logs every request URL at INFO, and Bot API URLs contain the token."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
