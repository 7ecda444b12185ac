"""Words the Discord adapter owns: command localisations, its own notices, text splitting.

The core writes every answer about videos, credits and help; the adapter only
speaks for itself (a file it cannot take, a button that belongs to someone else,
a failure before the core was reached) and for Discord's command picker. The
words themselves are in the ``[discord]`` tables of ``core/locales/<lang>.toml``.
"""

from __future__ import annotations

import discord
from discord import app_commands

from core.i18n import t
from core.language import DEFAULT, normalize

__all__ = [
    "MESSAGE_LIMIT",
    "NemoTranslator",
    "button_label",
    "command_text",
    "language_of",
    "progress_text",
    "split_once",
    "split_text",
    "text",
    "truncate",
]

MESSAGE_LIMIT = 2000
"""Discord's cap on one message's content."""


def language_of(locale: discord.Locale | str | None) -> str | None:
    """Our language for a Discord locale (``pt-BR`` -> ``pt``); ``None`` if we don't speak it."""
    if locale is None:
        return None
    return normalize(locale.value if isinstance(locale, discord.Locale) else str(locale))


def text(key: str, language: str | None = None, **fields: object) -> str:
    """One adapter notice in the user's language (English when unknown)."""
    return t(f"discord.{key}", language, **fields)


def truncate(content: str, limit: int) -> str:
    """``content`` cut to ``limit`` characters, ending in an ellipsis when it was cut."""
    if len(content) <= limit:
        return content
    return content[: max(0, limit - 1)].rstrip() + "…"


def split_once(content: str, limit: int = MESSAGE_LIMIT) -> tuple[str, str]:
    """Cut ``content`` once into a head of at most ``limit`` chars and the rest.

    Prefers a line break, then a space, in the second half of the window; the
    break itself is dropped.
    """
    if len(content) <= limit:
        return content, ""
    cut = content.rfind("\n", limit // 2, limit + 1)
    if cut <= 0:
        cut = content.rfind(" ", limit // 2, limit + 1)
    if cut <= 0:
        return content[:limit], content[limit:]
    return content[:cut], content[cut + 1 :]


def split_text(content: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split ``content`` into pieces of at most ``limit`` chars (see :func:`split_once`)."""
    pieces: list[str] = []
    rest = content
    while len(rest) > limit:
        head, rest = split_once(rest, limit)
        pieces.append(head)
    pieces.append(rest)
    return pieces


def progress_text(message: str, percent: int | None) -> str:
    """A progress line with a ten-step bar when ``percent`` is known."""
    if percent is None:
        return message[:MESSAGE_LIMIT]
    pct = max(0, min(100, int(percent)))
    filled = pct // 10
    bar = "█" * filled + "░" * (10 - filled)
    number = "" if f"{pct}%" in message else f" {pct}%"  # the core may have said it already
    return f"{message}\n`{bar}`{number}"[:MESSAGE_LIMIT]


class NemoTranslator(app_commands.Translator):
    """Gives the command picker descriptions in every language we speak (names stay English).

    Each description in commands.py is a ``locale_str`` whose ``key`` extra names
    its entry in the ``[discord.commands]`` table of the catalogue.
    """

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        """The description in ``locale``'s language; ``None`` (keep English) otherwise."""
        language = language_of(locale)  # pt-BR -> pt, es-419 and es-ES -> es, zh-TW -> zh
        key = string.extras.get("key")
        if language is None or language == DEFAULT or key is None:
            return None
        if context.location in (
            app_commands.TranslationContextLocation.command_name,
            app_commands.TranslationContextLocation.group_name,
            app_commands.TranslationContextLocation.parameter_name,
        ):
            return None
        return t(f"discord.commands.{key}", language)


def command_text(key: str) -> app_commands.locale_str:
    """The English description ``key`` of ``[discord.commands]``, marked for translation."""
    return app_commands.locale_str(t(f"discord.commands.{key}", DEFAULT), key=key)


def button_label(action: str, language: str | None) -> str:
    """The label of ``action``'s button in the user's language."""
    return t(f"discord.button_{action}", language)
