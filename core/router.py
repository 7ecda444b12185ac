"""The intent router: pure and table-driven.

The rule: **a message is a command only when the whole message is a command
phrase.** Punctuation, a leading ``/``, a ``@bot`` suffix, accents and polite
filler words ("please", "now", "por favor", "пожалуйста", "请", "吧" ...) are
ignored; anything else makes the message a creative prompt for the backend's
chat. So "export" and "Export the video please!" export, while "a video about the
export trade" and "show the status of a rocket launch" go to chat. An attachment
makes the message an upload (its text is the instruction that follows the
upload), unless an adapter forced an intent.

The phrases live with each language's texts, in the ``[phrases]`` table of
``core/locales/<lang>.toml`` (one key per intent, named after
:class:`~core.types.Intent`'s values); fillers in its ``[fillers]`` table. Every
phrase is a command whatever the user's language: one person may type "status"
and then "导出".

A message that starts with a ``/command`` that is none of ours is
:attr:`Intent.UNKNOWN` (the user is told the commands; the backend never sees
it), except ``/attach`` (the terminal's word for sending a file), which is an
upload with nothing attached when no file came with it.

``/stats`` and ``/broadcast TEXT`` are the admins' commands (slash forms only; the
service decides who may use them).

``open`` takes a project number ("open 2", "/open 2", "打开 2"): an open phrase
followed by a number is :attr:`Intent.OPEN` too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from core.locales import Locale, locales
from core.types import Intent

__all__ = ["INTENT_TABLE", "build", "normalize", "phrase_languages", "route"]

_MENTION = re.compile(r"^/?(\w+)@\w+")
_PUNCT = re.compile(r"[^\w\s?]+")
_SPACES = re.compile(r"\s+")
# Longer than any phrase in the table: certainly a prompt, skip the work.
_MAX_COMMAND_CHARS = 48
# "/foo", "/foo@some_bot", "/foo rest of the text" (but not a path such as "/tmp/x.mp4").
_SLASH = re.compile(r"^/([^\W\d]\w{0,31})(?:@\w+)?(?=\s|$)")
_UPLOAD_WORDS = frozenset({"attach", "upload", "file", "files"})
# The admins' commands: slash forms only, in no phrase table (nobody else learns them;
# the service answers anyone else as for any unknown command).
_ADMIN_COMMANDS = {"stats": Intent.STATS, "broadcast": Intent.BROADCAST}
# "open 2", "/open 2", "打开2": an open phrase followed by a project number.
_NUMBERED = re.compile(r"^(.*?)\s*\d{1,4}$")


def _fold(text: str) -> str:
    """Drop accents ("vídeo" -> "video", "créditos" -> "creditos"): people often skip them."""
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    )


def _filler_pattern(words: Iterable[str]) -> re.Pattern[str]:
    alternatives = sorted({_fold(w.lower()) for w in words if w}, key=len, reverse=True)
    body = "|".join(re.escape(w) for w in alternatives) or r"(?!)"
    return re.compile(rf"(?<!\S)(?:{body})(?!\S)")


_LOCALES = locales()
_FILLERS = _filler_pattern(w for loc in _LOCALES.values() for w in loc.filler_words)
_MARKS = tuple(m for loc in _LOCALES.values() for m in loc.filler_marks)


def normalize(text: str) -> str:
    """Lower-case, drop a leading slash and @bot suffix, accents, punctuation and fillers."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = _MENTION.sub(r"\1", text).removeprefix("/")
    text = _PUNCT.sub(" ", _fold(text))
    for mark in _MARKS:
        text = text.replace(mark, " ")
    joined = " ".join(_SPACES.split(text)).strip()
    joined = " ".join(_FILLERS.sub(" ", joined).split())
    if joined != "?":
        joined = joined.rstrip("? ").strip()
    return joined


def build(
    every: Iterable[Locale],
) -> tuple[dict[Intent, tuple[str, ...]], dict[str, Intent], dict[str, frozenset[str]]]:
    """(intent -> phrases, phrase -> intent, phrase -> languages) from the locales' phrases.

    Raises ValueError for a phrase that is only fillers or that two intents claim.
    """
    table: dict[Intent, list[str]] = {}
    phrases: dict[str, Intent] = {}
    languages: dict[str, set[str]] = {}
    for loc in every:
        for name, entries in loc.phrases.items():
            intent = Intent(name)  # a key that names no intent is a mistake in the file
            for phrase in entries:
                key = normalize(phrase)
                if not key:
                    raise ValueError(f"{loc.code}.toml: phrase {phrase!r} is only filler words")
                if phrases.setdefault(key, intent) is not intent:
                    raise ValueError(
                        f"{loc.code}.toml: {phrase!r} is both {phrases[key].value} and {name}"
                    )
                languages.setdefault(key, set()).add(loc.code)
                table.setdefault(intent, []).append(phrase)
    return (
        {intent: tuple(entries) for intent, entries in table.items()},
        phrases,
        {key: frozenset(codes) for key, codes in languages.items()},
    )


_TABLE, _PHRASES, _LANGUAGES = build(_LOCALES.values())

INTENT_TABLE: Mapping[Intent, tuple[str, ...]] = _TABLE
"""Every phrase that is a command on its own, by intent (all languages together)."""


def slash_command(text: str) -> str | None:
    """The ``/command`` a message starts with, as typed (``"/foo"``); None if it has none."""
    match = _SLASH.match(unicodedata.normalize("NFKC", text).strip())
    return "/" + match[1] if match else None


def _known_word(word: str) -> bool:
    word = normalize(word)
    return any(phrase.split(" ", 1)[0] == word for phrase in _PHRASES)


def route(text: str, *, has_attachments: bool = False) -> Intent:
    """The intent of one message (see the module docstring for the rule)."""
    if has_attachments:
        return Intent.UPLOAD
    stripped = text.strip()
    if not stripped:
        return Intent.CHAT
    intent = Intent.CHAT
    if len(stripped) <= _MAX_COMMAND_CHARS:
        key = normalize(stripped)
        intent = _PHRASES.get(key, Intent.CHAT)
        numbered = _NUMBERED.match(key)
        if intent is Intent.CHAT and numbered and _PHRASES.get(numbered[1]) is Intent.OPEN:
            intent = Intent.OPEN
    command = slash_command(stripped)
    if command is not None and command[1:].lower() in _ADMIN_COMMANDS:
        return _ADMIN_COMMANDS[command[1:].lower()]
    if intent is Intent.CHAT and command is not None:
        word = command[1:].lower()
        if word in _UPLOAD_WORDS:
            return Intent.UPLOAD
        if not _known_word(word):
            return Intent.UNKNOWN
    return intent


def phrase_languages(text: str) -> frozenset[str]:
    """The languages whose command phrase ``text`` is (empty if it is no command)."""
    stripped = text.strip()
    if not stripped or len(stripped) > _MAX_COMMAND_CHARS:
        return frozenset()
    return _LANGUAGES.get(normalize(stripped), frozenset())
