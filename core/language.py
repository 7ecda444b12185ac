"""Which language to answer in: the one place that turns codes and texts into our languages.

:func:`normalize` maps a platform's language code (Telegram ``language_code``
``pt-br``, Discord locale ``zh-CN``, a stored ``"ru"``) to one of the shipped
languages (``core/locales/*.toml``), or ``None`` when we don't speak it.
:func:`detect` guesses the language of a user's own text, for the doors that give
no language (the terminal, a Telegram user without ``language_code``).
:func:`choose` is the rule: the platform's language, else the text's, else
``None`` (the caller then keeps what it knew, and finally uses English).

Detection is cheap and deterministic. A command phrase of only one language
("ayuda", "bantuan") names it. Letters' scripts settle Chinese and
Russian (the first word of a letter's Unicode name: ``CJK``, ``CYRILLIC``). The
Latin-script languages (English, Spanish, Portuguese, Indonesian) are told
apart by common words each language's file lists, letters only one of them uses
(ñ, ã), and word endings (Indonesian "-nya", "-kan"): a word listed by several
languages counts for each a fraction, an ending half a word.
Without clear evidence it abstains rather than guess. A statistical detector
was measured for this and not taken: lingua-language-detector is a 96 MB wheel
(its models for 75 languages ship whatever you restrict it to) and py3langid
needs numpy, ~130 MB of memory and a 1 s start; on short chat prompts both
still confused Spanish and Portuguese ("añade música de fondo").
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping

from core.locales import SOURCE, locales
from core.router import phrase_languages
from core.types import IncomingMessage, Intent

__all__ = ["DEFAULT", "SUPPORTED", "choose", "detect", "normalize", "resolve"]

DEFAULT = SOURCE
"""The language of last resort."""

SUPPORTED: tuple[str, ...] = tuple(locales())
"""Our languages' codes, English first."""

# Only the first letters are looked at: enough to decide, bounded work for a long text.
_SAMPLE_CHARS = 400
# A CJK character carries about a word; a Latin or Cyrillic letter a fifth of one.
_SCRIPT_WEIGHT = {"CJK": 4}
# Scripts of languages we don't speak that share letters with ours (Japanese kana
# beside kanji, Korean): their presence means "not ours", never Chinese.
_FOREIGN = frozenset({"HIRAGANA", "KATAKANA", "HANGUL"})
_WORD = re.compile(r"[^\W\d_]+")


def _primary(code: str) -> str:
    return re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]


@functools.cache
def _by_code() -> Mapping[str, str]:
    return {alias: loc.code for loc in locales().values() for alias in loc.codes}


def normalize(code: str | None) -> str | None:
    """Our language for a platform code (``"pt-BR"`` -> ``"pt"``), ``None`` if we lack it."""
    if not code:
        return None
    return _by_code().get(_primary(code))


@functools.cache
def _script(char: str) -> str:
    return unicodedata.name(char, "?").split(" ", 1)[0]


@functools.cache
def _scripts() -> Mapping[str, tuple[str, ...]]:
    table: dict[str, list[str]] = defaultdict(list)
    for loc in locales().values():
        table[loc.script].append(loc.code)
    return {script: tuple(codes) for script, codes in table.items()}


@functools.cache
def _word_weights() -> Mapping[str, Mapping[str, float]]:
    """word -> {language: weight}: a word several languages list counts for each a share."""
    owners: dict[str, list[str]] = defaultdict(list)
    for loc in locales().values():
        for word in loc.words:
            owners[_fold(word)].append(loc.code)
    return {word: {c: 1 / len(codes) for c in codes} for word, codes in owners.items()}


def _fold(word: str) -> str:
    return unicodedata.normalize("NFC", word.lower())


def _dominant_script(sample: str) -> str | None:
    if sample.isascii():  # the common case, decided without looking at each letter
        return "LATIN" if any(ch.isalpha() for ch in sample) else None
    weights: Counter[str] = Counter()
    for char, count in Counter(sample).items():
        if char.isalpha():
            script = _script(char)
            weights[script] += count * _SCRIPT_WEIGHT.get(script, 1)
    if not weights or _FOREIGN & weights.keys():
        return None
    (script, _), *_ = weights.most_common(1)
    return script


def _by_words(sample: str, candidates: tuple[str, ...]) -> str | None:
    weights = _word_weights()
    score: defaultdict[str, float] = defaultdict(float)
    every = locales()
    for word in _WORD.findall(sample):
        shares = weights.get(word)
        if shares is not None:
            for code, share in shares.items():
                score[code] += share
            continue
        for code in candidates:  # an unlisted word with a telling ending counts half
            if len(word) > 4 and word.endswith(every[code].suffixes):
                score[code] += 0.5
    for code in candidates:
        if letters := every[code].letters:
            score[code] += sum(1 for char in sample if char in letters)
    ranked = sorted(((score[c], c) for c in candidates), reverse=True)
    best, runner_up = ranked[0], ranked[1] if len(ranked) > 1 else (0.0, "")
    # At least one word of its own (or two shared ones), and clearly ahead.
    if best[0] >= 1 and best[0] > runner_up[0]:
        return best[1]
    return None


def detect(text: str) -> str | None:
    """The language ``text`` is written in, or ``None`` when unsure or not one of ours."""
    owners = phrase_languages(text)
    if len(owners) == 1:  # a command phrase of one language ("ayuda", "статус")
        return next(iter(owners))
    sample = unicodedata.normalize("NFC", text[:_SAMPLE_CHARS]).lower()
    script = _dominant_script(sample)
    if script is None:
        return None
    candidates = _scripts().get(script, ())
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        return None
    return _by_words(sample, candidates)


def choose(platform_code: str | None, text: str = "") -> str | None:
    """The platform's language if we speak it, else the text's, else ``None``."""
    return normalize(platform_code) or detect(text)


# Intents whose text is the user's own words. An adapter that forces another intent
# (a button, a slash command) may put a stand-in text there, such as "export".
_OWN_WORDS = (None, Intent.CHAT, Intent.UPLOAD)


def resolve(msg: IncomingMessage) -> IncomingMessage:
    """``msg`` with its language normalised, or taken from its text when the platform gave none.

    ``None`` stays ``None`` when neither tells (the service then uses the language
    stored for the user, and finally English).
    """
    text = msg.text if msg.intent in _OWN_WORDS else ""
    language = choose(msg.language, text)
    return msg if language == msg.language else dataclasses.replace(msg, language=language)
