"""Translate the backend's GUI talk into what works in a chat.

The backend speaks as if its web editor were on screen ("click the Export
button", "open the timeline panel", "drag the clip"). In a chat those phrases
become things the user can say, and some are acted on: a mention of the
timeline shows the track summary, a mention of exporting offers the Export
action. Text is translated a sentence at a time (:class:`SentenceBuffer`), so a
phrase split across two streamed chunks is still caught.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["GuiHints", "SentenceBuffer", "translate"]


@dataclass(slots=True)
class GuiHints:
    """What the translated text asked for besides words."""

    show_timeline: bool = False
    offer_export: bool = False


_I = re.IGNORECASE
_RULES: list[tuple[re.Pattern[str], str, str | None]] = [
    (
        re.compile(r"\b(?:click|press|tap|hit)(?: on)? (?:the )?\[?export\]?(?: button)?", _I),
        "say “export”",
        "export",
    ),
    (re.compile(r"\b(?:the )?\[?export\]? button\b", _I), "“export” command", "export"),
    (
        re.compile(r"\bpreview (?:it )?(?:in|on) the timeline\b", _I),
        "check the timeline (below)",
        "timeline",
    ),
    (
        re.compile(r"\bopen (?:the )?\[?([\w -]{1,30}?)\]? (?:panel|tab|sidebar|menu)\b", _I),
        "see the \\1 (below)",
        "timeline",
    ),
    (
        re.compile(r"\bdrag(?: and drop)? (.{1,80}?)(?=[.!?\n]|$)", _I),
        "just tell me in a message how to move \\1",
        None,
    ),
    (
        re.compile(r"\b(?:click|press|tap)(?: on)? (?:the )?\[([^\]]{1,30})\](?: button)?", _I),
        "say “\\1”",
        None,
    ),
    (
        re.compile(r"\b(?:click|press|tap)(?: on)? (?:the )?([\w -]{1,30}?) button\b", _I),
        "say “\\1”",
        None,
    ),
]
_TEMP_ISSUE = re.compile(r"\s*I encountered a temporary issue[^.!?\n]*[.!?]?\s*$", _I)
_SENTENCE_END = re.compile(r"[.!?。！？\n]")


def _cased(match: re.Match[str], replacement: str) -> str:
    """The replacement, capitalised where the phrase began a sentence."""
    out = match.expand(replacement)
    before = match.string[: match.start()].rstrip(" ")
    if not before or before[-1] in ".!?\n":
        out = out[:1].upper() + out[1:]
    return out


def translate(text: str, hints: GuiHints | None = None) -> str:
    """Rewrite GUI phrases for a chat; record in ``hints`` what they asked for."""
    for pattern, replacement, hint in _RULES:
        if pattern.search(text):
            text = pattern.sub(lambda m, r=replacement: _cased(m, r), text)  # type: ignore[misc]
            if hints is not None and hint == "export":
                hints.offer_export = True
            elif hints is not None and hint == "timeline":
                hints.show_timeline = True
    return text


@dataclass(slots=True)
class SentenceBuffer:
    """Holds streamed text until a sentence ends, then hands it on translated.

    A sentence saying "I encountered a temporary issue" is held back: the backend
    tacks it onto replies that worked, so it is shown only if more text follows.
    """

    hints: GuiHints = field(default_factory=GuiHints)
    _pending: str = ""
    _held: str = ""

    def feed(self, delta: str) -> str:
        """Add a chunk; return the translated text of every sentence it completed."""
        self._pending += delta
        ends = [m.end() for m in _SENTENCE_END.finditer(self._pending)]
        if not ends:
            return ""
        done, self._pending = self._pending[: ends[-1]], self._pending[ends[-1] :]
        done, self._held = self._held + done, ""
        match = _TEMP_ISSUE.search(done)
        if match:
            done, self._held = done[: match.start()], done[match.start() :]
        return translate(done, self.hints)

    def flush(self) -> str:
        """The translated rest; a held 'temporary issue' sentence at the very end is dropped."""
        rest, self._pending = self._pending, ""
        if rest.strip():
            rest, self._held = self._held + rest, ""
        self._held = ""
        return translate(_TEMP_ISSUE.sub("", rest), self.hints)
