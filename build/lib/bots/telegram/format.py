"""Text shaping for Telegram: HTML escaping, the 4096/1024 limits, keyboards.

Telegram measures message length after entity parsing, in UTF-16 code units;
we count the *unescaped* text that way, which is what Telegram checks.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bots.telegram.texts import text as adapter_text
from core.types import Action

__all__ = [
    "CALLBACK_PREFIX",
    "CAPTION_LIMIT",
    "MESSAGE_LIMIT",
    "action_keyboard",
    "escape",
    "parse_callback",
    "split_text",
    "truncate",
    "utf16_len",
]

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_PREFIX = "a"
_CALLBACK_LIMIT = 64


def escape(text: str) -> str:
    """Escape text for ``parse_mode=HTML`` (only ``& < >`` matter outside attributes)."""
    return html.escape(text, quote=False)


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> int:
    """The largest index ``i`` such that ``text[:i]`` is at most ``limit`` UTF-16 units."""
    return len(text) if utf16_len(text) <= limit else _bisect(text, limit)


def _bisect(text: str, limit: int) -> int:
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if utf16_len(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` units, preferring line then word breaks.

    Lossless: ``"".join(split_text(t)) == t``.
    """
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = _fit(rest, limit)
        window = rest[:cut]
        for sep in ("\n", " "):
            at = window.rfind(sep, cut // 2)
            if at > 0:
                cut = at + 1
                break
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return pieces


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` units, ending in an ellipsis when it was cut."""
    if utf16_len(text) <= limit:
        return text
    return text[: _fit(text, limit - 1)].rstrip() + "…"


def action_keyboard(
    actions: Sequence[Action], owner_id: str, language: str | None
) -> InlineKeyboardMarkup | None:
    """Inline buttons for ``actions``; state lives in callback data, so they survive restarts."""
    buttons = []
    for action in actions:
        data = f"{CALLBACK_PREFIX}:{action.value}:{owner_id}"
        if len(data.encode()) > _CALLBACK_LIMIT:  # pragma: no cover - ids are short
            continue
        label = adapter_text(f"button_{action.value}", language)
        buttons.append(InlineKeyboardButton(label, callback_data=data))
    return InlineKeyboardMarkup([buttons]) if buttons else None


def parse_callback(data: str | None) -> tuple[Action, str] | None:
    """``(action, owner_user_id)`` from callback data, or None if it isn't ours."""
    if not data:
        return None
    parts = data.split(":", 2)
    if len(parts) != 3 or parts[0] != CALLBACK_PREFIX:
        return None
    try:
        action = Action(parts[1])
    except ValueError:
        return None
    return action, parts[2]
