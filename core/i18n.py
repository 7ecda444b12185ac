"""What the bot says, in every language of ``core/locales`` (see :mod:`core.locales`).

``t(key, lang, **values)`` gives the text ``key`` in the user's language (any
platform code is fine: :func:`core.language.normalize` maps it; a language we
don't speak falls back to English), formatted with ``values``. ``{formats}`` is
filled in with the accepted file formats unless given. :func:`key_of` goes the
other way: which text a message is, in whatever language it was said.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable

from core.files import accepted_formats
from core.language import DEFAULT, normalize
from core.locales import locales
from core.types import Intent

__all__ = ["FORMATS", "command_word", "key_of", "t"]

#: The upload formats for the help texts, from the one upload policy (:mod:`core.files`).
FORMATS = accepted_formats(upper=True)


def t(key: str, lang: str | None = None, **values: object) -> str:
    """The text ``key`` in ``lang`` (a platform code is fine), formatted with ``values``."""
    every = locales()
    template = every[normalize(lang) or DEFAULT].messages.get(key)
    if template is None:  # a key missing in one language (tests/test_i18n.py forbids it)
        template = every[DEFAULT].messages[key]
    values.setdefault("formats", FORMATS)
    return template.format(**values)


def command_word(intent: Intent, lang: str | None = None) -> str:
    """The first phrase for ``intent`` in ``lang`` (a word to suggest typing; English if none)."""
    every = locales()
    phrases = every[normalize(lang) or DEFAULT].phrases.get(intent.value)
    return (phrases or every[DEFAULT].phrases[intent.value])[0]


@functools.cache
def _pattern(key: str) -> re.Pattern[str]:
    """Matches the text ``key`` in any language, whatever values fill its fields."""
    options = []
    for loc in locales().values():
        template = loc.messages.get(key)
        if template is None:
            continue
        parts = []
        for literal, field, _spec, _conv in string.Formatter().parse(template):
            parts.append(re.escape(literal))
            if field is not None:
                parts.append(".*?")
        options.append("".join(parts))
    return re.compile("|".join(f"(?:{option})" for option in options), re.DOTALL)


def key_of(text: str, keys: Iterable[str]) -> str | None:
    """Which of ``keys`` the message ``text`` is (in any language), or None.

    Lets an adapter react to what the user was told (the terminal chat's exit status).
    """
    for key in keys:
        if _pattern(key).fullmatch(text):
            return key
    return None
