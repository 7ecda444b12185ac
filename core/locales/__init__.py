"""The translation catalogue: one TOML file per language in this folder.

Each ``<code>.toml`` holds everything one language needs (``en.toml`` is the
source every other file mirrors):

``[language]``
    ``name`` (the language's own name), ``codes`` (platform language codes that
    mean it, matched on the primary subtag: ``pt`` covers ``pt-BR``), ``script``
    (the first word of the Unicode names of its letters: ``LATIN``, ``CJK``,
    ``CYRILLIC``), and, for languages sharing a script, ``words``, word
    ``suffixes`` and ``letters`` that are common in it, used to tell the language
    of a user's text when the platform gives none (:mod:`core.language`).
``[phrases]``
    intent name -> the phrases that are that command on their own (:mod:`core.router`).
``[fillers]``
    ``words`` that never change what a message asks for ("please"), and
    ``marks``, fillers removed even inside words, for languages written without
    spaces ("请").
every other table
    What the bot says. ``[messages]`` is the core's; ``[telegram]``,
    ``[discord]`` and ``[console]`` are the adapters' own words (button labels,
    command menus, the terminal's help).
    Keys are flattened with dots (``telegram.commands.start``) and values are
    :meth:`str.format` templates; every language has every key, with the same
    placeholders (``tests/test_i18n.py`` checks it).

Files are read once, at first use, with the standard library's :mod:`tomllib`
(no compile step: TOML is what translators edit, and Weblate reads it).
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SOURCE", "Locale", "load", "locales"]

SOURCE = "en"
"""The source language: its file defines the keys; others fall back to it."""

_NOT_MESSAGES = ("language", "phrases", "fillers")
_FOLDER = Path(__file__).resolve().parent  # installed as package data beside this module


@dataclass(frozen=True, slots=True)
class Locale:
    """One language's file, parsed."""

    code: str
    name: str
    codes: tuple[str, ...]
    script: str
    words: frozenset[str]
    suffixes: tuple[str, ...]
    letters: str
    phrases: Mapping[str, tuple[str, ...]]
    filler_words: tuple[str, ...]
    filler_marks: tuple[str, ...]
    messages: Mapping[str, str]


def _flatten(table: Mapping[str, Any], prefix: str, into: dict[str, str]) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, f"{name}.", into)
        elif isinstance(value, str):
            into[name] = value
        else:
            raise ValueError(f"{name}: a message must be a string, not {type(value).__name__}")


def parse(code: str, data: Mapping[str, Any]) -> Locale:
    """A :class:`Locale` from the parsed TOML of ``<code>.toml``."""
    meta = data.get("language", {})
    messages: dict[str, str] = {}
    for section, table in data.items():
        if section in _NOT_MESSAGES:
            continue
        if not isinstance(table, dict):
            raise ValueError(f"{code}.toml: {section} must be a table")
        _flatten(table, "" if section == "messages" else f"{section}.", messages)
    fillers = data.get("fillers", {})
    return Locale(
        code=code,
        name=str(meta.get("name", code)),
        codes=tuple(c.lower() for c in meta.get("codes", [code])),
        script=str(meta.get("script", "LATIN")).upper(),
        words=frozenset(w.lower() for w in meta.get("words", [])),
        suffixes=tuple(x.lower() for x in meta.get("suffixes", [])),
        letters=str(meta.get("letters", "")),
        phrases={k: tuple(v) for k, v in data.get("phrases", {}).items()},
        filler_words=tuple(fillers.get("words", [])),
        filler_marks=tuple(fillers.get("marks", [])),
        messages=messages,
    )


def load(code: str) -> Locale:
    """Read and parse ``<code>.toml`` from this package."""
    text = (_FOLDER / f"{code}.toml").read_text("utf-8")
    return parse(code, tomllib.loads(text))


@functools.cache
def locales() -> Mapping[str, Locale]:
    """Every language shipped, by code, the source language first (read once)."""
    codes = sorted(path.stem for path in _FOLDER.glob("*.toml"))
    codes.sort(key=lambda c: c != SOURCE)
    return {code: load(code) for code in codes}
