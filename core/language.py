"""The one language rule: which of the bot's languages a platform's language code means.

The bot speaks English and Simplified Chinese. Any code starting with ``zh``
(``zh``, ``zh-CN``, ``zh-hans``, ``zh-TW``...) is Chinese; everything else is
English. The core, both adapters and their own texts all ask here.
"""

from __future__ import annotations

__all__ = ["LANGUAGES", "known_language", "language_of"]

#: The languages the bot speaks; the first is the fallback.
LANGUAGES = ("en", "zh")


def language_of(code: str | None) -> str:
    """Our language for a platform language code ("zh-hans", "zh-CN" -> "zh"; else "en")."""
    return "zh" if code and code.lower().startswith("zh") else "en"


def known_language(code: str | None) -> str | None:
    """Like :func:`language_of`, but an unknown code (``None`` or empty) stays ``None``."""
    return language_of(code) if code else None
