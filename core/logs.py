"""Logging set-up: one line per event, and no secret ever reaches a log line.

:func:`setup_logging` installs a filter on the root handler that masks NemoVideo
tokens (``nmv_...``), Bearer values, JWTs, Telegram bot tokens (also inside
``/bot<token>/`` and ``/file/bot<token>/`` URLs), every configured secret, and
per-request tokens in ``/webhooks/<id>/<token>`` and ``/interactions/<id>/<token>``
paths and ``"token": "..."`` fields — in the message and in tracebacks. httpx logs
each request URL at INFO, so it is kept at WARNING.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

from core.errors import SECRET_PATTERN

__all__ = ["SecretFilter", "mask_id", "setup_logging"]

#: Per-request tokens inside URL paths (chat platforms' interaction and webhook tokens)
#: and in logged JSON fields: the path or key is kept, the token masked.
_REQUEST_TOKENS = re.compile(
    r"(?P<path>/(?:webhooks|interactions)/\d+/)[^/\s?#\"']+"
    r"|(?P<field>[\"']token[\"']\s*:\s*[\"'])[^\"']+"
)
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _keep_prefix(match: re.Match[str]) -> str:
    return (match.group("path") or match.group("field")) + "***"


class SecretFilter(logging.Filter):
    """Masks secrets in a record's message and traceback (put it on handlers)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s and len(s) >= 6)

    def scrub(self, text: str) -> str:
        """``text`` with every secret masked."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _REQUEST_TOKENS.sub(_keep_prefix, text)
        return SECRET_PATTERN.sub("***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        message = record.getMessage()
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            text = record.exc_text or "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = self.scrub(text).rstrip("\n")
            record.exc_info = None
        return True


def mask_id(user_id: str) -> str:
    """A user id shortened for logs: enough to correlate, not to identify."""
    return f"…{user_id[-4:]}" if len(user_id) > 4 else "…"


def _private_file_handler(path: Path) -> logging.Handler:
    """Appends to ``path`` (created 0600: log lines name users and chats)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    return logging.FileHandler(path, encoding="utf-8")


def setup_logging(
    level: str = "INFO", secrets: Iterable[str] = (), *, file: Path | None = None
) -> SecretFilter:
    """Log one line per event, through a :class:`SecretFilter`, to stderr or to ``file``.

    The terminal chat logs to a file so that log lines never land in the middle of
    the conversation. Raises ``OSError`` if ``file`` cannot be written.
    """
    handler = _private_file_handler(file) if file is not None else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    secret_filter = SecretFilter(secrets)
    handler.addFilter(secret_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    numeric = logging.getLevelName(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))
    return secret_filter
