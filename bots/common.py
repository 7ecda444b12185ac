"""What the Telegram and Discord adapters share: button meanings, file formats, log redaction.

* :data:`ACTION_INTENTS`: what pressing an action button asks the core for.
* :func:`accepted_formats`: the upload formats (:mod:`core.files`, the one upload policy).
* :class:`LogRedactor`: :class:`core.logs.SecretFilter` (NemoVideo tokens, bot
  tokens, interaction and webhook tokens, configured secrets), installable on the
  loggers that print URLs and on the root handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from core.files import accepted_formats
from core.logs import SecretFilter
from core.types import Action, Intent

__all__ = ["ACTION_INTENTS", "LogRedactor", "accepted_formats", "with_link", "without_link"]

#: What a button press means for the router: (intent, the text a user would type).
ACTION_INTENTS: dict[Action, tuple[Intent, str]] = {
    Action.EXPORT: (Intent.EXPORT, "export"),
    Action.TIMELINE: (Intent.STATUS, "timeline"),
    Action.CREDITS: (Intent.CREDITS, "credits"),
    Action.CANCEL: (Intent.CANCEL, "cancel"),
}


#: The least of a body worth keeping next to a link; below that the link gets a message
#: of its own (signed CDN links can be very long).
_MIN_BODY = 24


def without_link(body: str, url: str) -> str:
    """``body`` with ``url`` (and the colon that introduced it) taken out."""
    return body.replace(url, "").strip().rstrip(":：").rstrip()


def with_link(
    body: str,
    url: str,
    limit: int,
    *,
    measure: Callable[[str], int] = len,
    cut: Callable[[str, int], str],
) -> str | None:
    """``body`` showing ``url`` exactly once within ``limit``, never cutting the link.

    A body that already quotes the link and fits is kept; otherwise the body is
    shortened (``cut``) and the link goes on its own line at the end. None when the
    link leaves no room for the body, or alone exceeds ``limit``: then the caller
    shows the body alone and sends the link separately. ``measure`` is the
    platform's idea of length (Telegram counts UTF-16 units).
    """
    body = body.strip()
    if url in body:
        if measure(body) <= limit:
            return body
        body = without_link(body, url)
    if not body:
        return url if measure(url) <= limit else None
    room = limit - measure(url) - 1
    if room < min(_MIN_BODY, measure(body)):
        return None
    return cut(body, room) + "\n" + url


class LogRedactor(SecretFilter):
    """A :class:`~core.logs.SecretFilter` installed where adapter libraries log URLs.

    Logger filters only see records created by their own logger, so
    :meth:`install` puts it on each of ``loggers`` (those that may log a URL with
    a secret in it) and on the root logger's handlers; :meth:`uninstall` undoes it.
    """

    def __init__(self, secrets: Iterable[str] = (), *, loggers: Sequence[str] = ()) -> None:
        super().__init__(secrets)
        self._loggers = tuple(loggers)
        self._handlers: list[logging.Handler] = []

    def install(self) -> None:
        """Filter ``loggers`` and whatever handlers the root logger has now (idempotent)."""
        for name in self._loggers:
            logging.getLogger(name).addFilter(self)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self)
            if handler not in self._handlers:
                self._handlers.append(handler)

    def uninstall(self) -> None:
        """Undo :meth:`install`."""
        for name in self._loggers:
            logging.getLogger(name).removeFilter(self)
        for handler in self._handlers:
            handler.removeFilter(self)
        self._handlers.clear()
