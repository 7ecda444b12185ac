"""The intent router: pure and table-driven.

The rule: **a message is a command only when the whole message is a command
phrase.** Punctuation, a leading ``/``, a ``@bot`` suffix and polite filler words
("please", "now", "请", "吧" ...) are ignored; anything else makes the message a
creative prompt for the backend's chat. So "export" and "Export the video
please!" export, while "a video about the export trade" and "show the status of a
rocket launch" go to chat. An attachment makes the message an upload (its text is
the instruction that follows the upload), unless an adapter forced an intent.

A message that starts with a ``/command`` that is none of ours is
:attr:`Intent.UNKNOWN` (the user is told the commands; the backend never sees
it), except ``/attach`` (the terminal's word for sending a file), which is an
upload with nothing attached when no file came with it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from core.types import Intent

__all__ = ["INTENT_TABLE", "normalize", "route", "slash_command"]

#: Every phrase that is a command on its own, by intent (English and Chinese).
# fmt: off
INTENT_TABLE: Mapping[Intent, tuple[str, ...]] = {
    Intent.EXPORT: (
        "export", "export it", "export video", "export the video", "export my video",
        "download", "download it", "download video", "download the video", "download my video",
        "render", "render it", "render the video", "render video",
        "send me the video", "send the video", "send video", "send me my video",
        "give me the video", "get the video", "i want the video", "make the mp4",
        "导出", "导出视频", "下载", "下载视频", "渲染", "渲染视频", "发给我视频", "把视频发给我",
    ),
    Intent.CREDITS: (
        "credits", "credit", "my credits", "credit balance", "balance", "my balance",
        "how many credits", "how many credits do i have", "check credits", "show credits",
        "积分", "余额", "我的积分", "查看积分", "查询积分", "查看余额", "查询余额", "还有多少积分",
    ),
    Intent.STATUS: (
        "status", "state", "show status", "show state", "project status",
        "tracks", "show tracks", "show the tracks", "show me the tracks", "list tracks",
        "timeline", "show timeline", "show the timeline", "show me the timeline",
        "状态", "查看状态", "时间线", "查看时间线", "轨道", "查看轨道", "进度",
    ),
    Intent.UPLOAD: ("upload", "upload a file", "upload file", "上传", "上传文件"),
    Intent.HELP: ("help", "?", "？", "what can you do", "commands", "帮助", "怎么用", "你能做什么"),
    Intent.START: ("start", "开始"),
    Intent.NEW: (
        "new", "new project", "new video", "reset", "start over", "start again", "restart",
        "新项目", "新建项目", "重新开始", "重置", "新视频",
    ),
}
# fmt: on

#: Words that never change what a message asks for.
_FILLERS = frozenset(
    {"please", "pls", "plz", "now", "thanks", "thank you", "thx", "ok", "okay", "hey", "hi"}
)
_ZH_FILLERS = ("请", "吧", "一下", "谢谢", "麻烦")

_PHRASES: dict[str, Intent] = {
    phrase: intent for intent, phrases in INTENT_TABLE.items() for phrase in phrases
}
_MENTION = re.compile(r"^/?(\w+)@\w+")
_PUNCT = re.compile(r"[^\w\s?？]+")
_SPACES = re.compile(r"\s+")
# Longer than any phrase in the table: certainly a prompt, skip the work.
_MAX_COMMAND_CHARS = 48
# "/foo", "/foo@some_bot", "/foo rest of the text" (but not a path such as "/tmp/x.mp4").
_SLASH = re.compile(r"^/([^\W\d]\w{0,31})(?:@\w+)?(?=\s|$)")
_UPLOAD_WORDS = frozenset({"attach", "upload", "file", "files"})


def normalize(text: str) -> str:
    """Lower-case, drop a leading slash and @bot suffix, punctuation and filler words."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = _MENTION.sub(r"\1", text).removeprefix("/")
    text = _PUNCT.sub(" ", text)
    for filler in _ZH_FILLERS:
        text = text.replace(filler, " ")
    words = [w for w in _SPACES.split(text) if w and w not in _FILLERS]
    joined = " ".join(words)
    for filler in ("thank you",):
        joined = joined.replace(filler, "").strip()
    if joined not in ("?", "？"):
        joined = joined.rstrip("?？ ").strip()
    return joined


def slash_command(text: str) -> str | None:
    """The ``/command`` a message starts with, as typed (``"/foo"``); None if it has none."""
    match = _SLASH.match(unicodedata.normalize("NFKC", text).strip())
    return "/" + match[1] if match else None


def _known_word(word: str) -> bool:
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
        intent = _PHRASES.get(normalize(stripped), Intent.CHAT)
    command = slash_command(stripped)
    if intent is Intent.CHAT and command is not None:
        word = command[1:].lower()
        if word in _UPLOAD_WORDS:
            return Intent.UPLOAD
        if not _known_word(word):
            return Intent.UNKNOWN
    return intent
