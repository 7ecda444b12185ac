"""The few texts the Telegram adapter says itself, in English and Simplified Chinese.

Everything else (welcome, help, refusals, progress) is the core's to say; these
are only the answers the adapter gives *before* a message reaches the core:
a file that is too big or of the wrong kind, a button pressed by someone who
doesn't own the project, and the last-resort apology of the error handler.
"""

from __future__ import annotations

from core.files import accepted_formats
from core.language import language_of

__all__ = ["COMMANDS", "FORMATS", "text"]

FORMATS = accepted_formats(upper=True)

_TEXTS: dict[str, dict[str, str]] = {
    "too_large": {
        "en": (
            "⚠️ {name} is too large for me to download from Telegram (max {limit} MB). "
            "Please compress or trim it and send it again.\nSupported formats: {formats}."
        ),
        "zh": (
            "⚠️ {name} 太大了，我无法从 Telegram 下载（最大 {limit} MB）。"
            "请压缩或裁剪后重新发送。\n支持的格式：{formats}。"
        ),
    },
    "unsupported": {
        "en": "⚠️ I can't use {name}. Supported formats: {formats}.",
        "zh": "⚠️ 无法使用 {name}。支持的格式：{formats}。",
    },
    "voice_failed": {
        "en": (
            "⚠️ I couldn't convert your voice message into a format the video editor takes. "
            "Please send it again, or as an MP3 or M4A file."
        ),
        "zh": "⚠️ 无法转换你的语音消息格式。请重新发送，或改用 MP3 或 M4A 文件。",
    },
    "audio_failed": {
        "en": (
            "⚠️ I couldn't convert {name} into a format the video editor takes. "
            "Please send it as an MP3 or M4A file."
        ),
        "zh": "⚠️ 无法转换 {name} 的音频格式。请改用 MP3 或 M4A 文件发送。",
    },
    "not_owner": {
        "en": "This project belongs to someone else. Mention me to start your own!",
        "zh": "这个项目属于其他人。@我 即可开始你自己的项目！",
    },
    "not_media": {
        "en": (
            "🙂 I can't use that kind of message. I can use photos, clips and audio "
            "(formats: {formats}), or just tell me what video to make."
        ),
        "zh": (
            "🙂 我无法使用这类消息。我可以使用图片、视频片段和音频（格式：{formats}），"
            "或者直接告诉我你想做什么视频。"
        ),
    },
    "post_as_yourself": {
        "en": (
            "These buttons belong to a channel or an anonymous admin, and I can't tell who "
            "pressed them. Post as yourself to use buttons, or mention me with a request."
        ),
        "zh": (
            "这些按钮属于频道或匿名管理员，我无法确认按下按钮的人。"
            "请以个人身份发言后再使用按钮，或直接 @我 发送请求。"
        ),
    },
    "error": {
        "en": "😵 Something went wrong on my side. Please try again in a moment.",
        "zh": "😵 我这边出了点问题，请稍后再试。",
    },
    "stopping": {
        "en": "I'm restarting and had to stop working on that. Please send it again in a minute.",
        "zh": "机器人正在重启，刚才的请求已中断。请稍后重新发送。",
    },
    "done": {"en": "✅ Done.", "zh": "✅ 完成。"},
    "button_export": {"en": "🎬 Export", "zh": "🎬 导出"},
    "button_timeline": {"en": "🧾 Timeline", "zh": "🧾 时间线"},
    "button_credits": {"en": "💳 Credits", "zh": "💳 积分"},
}

#: Bot menu commands, set with setMyCommands at start-up (default + "zh").
COMMANDS: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("start", "Start and see what I can do"),
        ("help", "How to use the bot"),
        ("new", "Start a new video project"),
        ("status", "Show the project timeline"),
        ("credits", "Show your credit balance"),
        ("export", "Render and send the 1080p MP4"),
    ],
    "zh": [
        ("start", "开始，看看我能做什么"),
        ("help", "使用帮助"),
        ("new", "开始一个新的视频项目"),
        ("status", "查看项目时间线"),
        ("credits", "查看积分余额"),
        ("export", "渲染并发送 1080p MP4"),
    ],
}


def text(key: str, language: str | None, **values: object) -> str:
    """The adapter text ``key`` in the user's language, with ``values`` filled in."""
    return _TEXTS[key][language_of(language)].format(formats=FORMATS, **values)
