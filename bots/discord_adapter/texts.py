"""Words the Discord adapter owns: command localisations, its own notices, text splitting.

The core writes every answer about videos, credits and help; the adapter only
speaks for itself (a file it cannot take, a button that belongs to someone else,
a failure before the core was reached) and for Discord's command picker.
"""

from __future__ import annotations

import discord
from discord import app_commands

from core.language import known_language

__all__ = [
    "MESSAGE_LIMIT",
    "NemoTranslator",
    "language_of",
    "progress_text",
    "split_once",
    "split_text",
    "text",
    "truncate",
]

MESSAGE_LIMIT = 2000
"""Discord's cap on one message's content."""

# Simplified Chinese for every English string the command picker shows. Keys are
# the English source strings given to ``locale_str`` in commands.py.
ZH_CN: dict[str, str] = {
    "Generate a video, or edit the current one": "生成视频，或修改当前视频",
    "What to make or change": "想生成或修改的内容",
    "An image to use": "要使用的图片",
    "A video clip to use": "要使用的视频片段",
    "Upload a photo, clip or sound for your video": "上传图片、视频片段或音频用于视频",
    "The file to upload": "要上传的文件",
    "A note about the file": "关于该文件的说明",
    "Export the current video as an MP4": "将当前视频导出为 MP4",
    "Show what you are working on": "查看当前进度",
    "Show your remaining credits": "查看剩余积分",
    "Start a new video project": "开始新的视频项目",
    "How to use the video bot": "视频机器人使用说明",
    "Export": "导出",
    "Timeline": "时间线",
    "Credits": "积分",
}

_TEXTS: dict[str, dict[str, str]] = {
    "unsupported": {
        "en": "Sorry, I can't use “{name}”. Send one of these formats: {formats}.",
        "zh": "抱歉，无法使用“{name}”。请发送以下格式之一：{formats}。",
    },
    "too_large": {
        "en": "“{name}” is {size} MB; I can take files up to {limit} MB.",
        "zh": "“{name}”大小为 {size} MB，最大支持 {limit} MB。",
    },
    "not_owner": {
        "en": "These buttons belong to the person who made this video. "
        "Use /video to start your own.",
        "zh": "这些按钮属于视频的创建者。使用 /video 开始你自己的视频。",
    },
    "error": {
        "en": "Something went wrong on my side. Please try again in a moment.",
        "zh": "出了点问题，请稍后再试。",
    },
    "stopping": {
        "en": "I'm restarting and had to stop working on that. Please send it again in a minute.",
        "zh": "机器人正在重启，刚才的请求已中断。请稍后重新发送。",
    },
    "read_failed": {
        "en": "I couldn't download “{name}” from Discord. Please send it again.",
        "zh": "无法从 Discord 下载“{name}”，请重新发送。",
    },
}


def language_of(locale: discord.Locale | str | None) -> str | None:
    """The bot's language for a Discord locale (:mod:`core.language`); ``None`` stays ``None``."""
    value = locale.value if isinstance(locale, discord.Locale) else locale
    return known_language(value)


def text(key: str, language: str | None = None, **fields: object) -> str:
    """One adapter notice in the user's language (English when unknown)."""
    variants = _TEXTS[key]
    template = variants.get(language or "en", variants["en"])
    return template.format(**fields)


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
    """Gives the command picker Simplified Chinese descriptions (names stay English)."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        """Return the zh-CN text for descriptions; ``None`` (keep English) otherwise."""
        if locale is not discord.Locale.chinese:
            return None
        if context.location in (
            app_commands.TranslationContextLocation.command_name,
            app_commands.TranslationContextLocation.group_name,
            app_commands.TranslationContextLocation.parameter_name,
        ):
            return None
        return ZH_CN.get(string.message)
