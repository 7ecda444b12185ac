"""What the bot says, in English and Simplified Chinese.

``t(key, lang, **values)`` picks the user's language (anything starting with
``zh`` is Chinese; everything else falls back to English).
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable

from core.files import accepted_formats
from core.language import language_of

__all__ = ["FORMATS", "key_of", "language_of", "t"]

#: The upload formats for the help texts, from the one upload policy (:mod:`core.files`).
FORMATS = accepted_formats(upper=True)

_TEXTS: dict[str, dict[str, str]] = {
    "welcome": {
        "en": (
            "👋 Hi! I make AI videos right here in the chat.\n\n"
            "Try:\n"
            "• generate a 10-second clip of a futuristic city at night\n"
            "• add lo-fi background music\n"
            '• add a title "Urban Dreams"\n'
            "Send photos or clips to use them. Say status to see the timeline, "
            "credits for your balance, and export to get the 1080p MP4."
        ),
        "zh": (
            "👋 你好！我可以直接在聊天里为你制作 AI 视频。\n\n"
            "试试：\n"
            "• 生成一段 10 秒的夜晚未来城市短片\n"
            "• 添加 lo-fi 背景音乐\n"
            "• 添加标题“城市之梦”\n"
            "发送照片或视频即可使用它们。发送“状态”查看时间线，“积分”查看余额，"
            "“导出”获取 1080p MP4。"
        ),
    },
    "help": {
        "en": (
            "Describe the video you want, or the change to make, in your own words.\n"
            "Commands: status (timeline) · credits (balance) · export (MP4) · "
            "new project (start over) · help.\n"
            "Send photos, clips or audio ({formats}) to add them."
        ),
        "zh": (
            "用自己的话描述你想要的视频或修改即可。\n"
            "命令：状态（时间线）· 积分（余额）· 导出（MP4）· 新项目（重新开始）· 帮助。\n"
            "发送照片、视频或音频（{formats}）即可添加。"
        ),
    },
    "empty_message": {
        "en": "Tell me what video to make — for example: a 10-second clip of a city at night.",
        "zh": "告诉我想做什么视频，例如：一段 10 秒的夜晚城市短片。",
    },
    "not_allowed": {
        "en": "Sorry, this bot is private and isn't available to you here.",
        "zh": "抱歉，这个机器人是私有的，你在这里无法使用。",
    },
    "queued": {
        "en": "⏳ Still working on your last request — I'll do this right after.",
        "zh": "⏳ 还在处理你上一个请求，完成后马上处理这个。",
    },
    "busy": {
        "en": "⏳ I'm still working on your earlier requests. Please wait a moment and try again.",
        "zh": "⏳ 我还在处理你之前的请求，请稍后再试。",
    },
    "still_working": {"en": "⏳ Still working...", "zh": "⏳ 仍在处理中..."},
    "stream_timeout": {
        "en": (
            "⌛ The video service has been working for a long time without news. "
            "It may still finish: say status in a minute to check the timeline."
        ),
        "zh": "⌛ 视频服务很久没有回应。它可能仍会完成：稍后发送“状态”查看时间线。",
    },
    "stream_dropped": {
        "en": "⚠️ The connection to the video service dropped before it finished.\n{outcome}",
        "zh": "⚠️ 与视频服务的连接在完成前中断了。\n{outcome}",
    },
    "stream_error": {
        "en": "⚠️ The video service reported a problem with that request: {detail}\n{outcome}",
        "zh": "⚠️ 视频服务报告该请求出了问题：{detail}\n{outcome}",
    },
    "changes": {"en": "✅ Done. {changes}", "zh": "✅ 完成。{changes}"},
    "no_changes": {
        "en": "🤷 Nothing changed in the timeline. {suggestion}",
        "zh": "🤷 时间线没有任何变化。{suggestion}",
    },
    "no_answer": {
        "en": "🤷 The video service ended without an answer, and the timeline didn't change. "
        "{suggestion}",
        "zh": "🤷 视频服务没有给出任何回答就结束了，时间线也没有变化。{suggestion}",
    },
    "changes_hidden": {
        "en": (
            "✅ The video service changed details of your project that the timeline summary "
            "doesn't show (the tracks and their lengths are the same). Say status to see it."
        ),
        "zh": "✅ 视频服务修改了项目中时间线摘要不显示的细节（轨道和时长都没变）。发送“状态”查看。",
    },
    "claimed_no_change": {
        "en": "ℹ️ The timeline didn't change, though. Say status to see it.",
        "zh": "ℹ️ 不过时间线并没有变化。发送“状态”查看。",
    },
    "timeline_now": {
        "en": "Here is the timeline now: {summary}",
        "zh": "时间线现在是：{summary}",
    },
    "outcome_changed": {
        "en": "The timeline did change: {changes}",
        "zh": "时间线确实有变化：{changes}",
    },
    "outcome_unchanged": {
        "en": "The timeline didn't change. Please try again in a moment.",
        "zh": "时间线没有变化。请稍后再试。",
    },
    "outcome_pending": {
        "en": (
            "So far the timeline hasn't changed; the service may still be working on it. "
            "Say status in a minute to check before sending it again."
        ),
        "zh": "目前时间线还没有变化，服务可能仍在处理。请一分钟后发送“状态”查看，再决定是否重发。",
    },
    "outcome_unknown": {
        "en": "I couldn't read the timeline to check what changed. Say status in a minute.",
        "zh": "我无法读取时间线来确认变化。请稍后发送“状态”查看。",
    },
    "suggest_first": {
        "en": "Try describing the video, for example: make a 10-second clip of a city at night.",
        "zh": "试着描述你想要的视频，例如：生成一段 10 秒的夜晚城市短片。",
    },
    "suggest_edit": {
        "en": (
            "Try saying it another way, for example: add lo-fi music · "
            'add a title "Hello" · make it 8 seconds long. Say status to see the timeline.'
        ),
        "zh": (
            "换个说法试试，例如：添加 lo-fi 音乐 · 添加标题“你好” · 改成 8 秒。"
            "发送“状态”查看时间线。"
        ),
    },
    "unknown_command": {
        "en": (
            "🤔 {command} isn't a command I know. My commands: /status (timeline) · "
            "/credits (balance) · /export (MP4) · /new (start over) · /help. "
            "To make or change a video, just write what you want, without a slash."
        ),
        "zh": (
            "🤔 {command} 不是我认识的命令。我的命令：/status（时间线）· /credits（积分）· "
            "/export（导出 MP4）· /new（重新开始）· /help（帮助）。"
            "想制作或修改视频，直接用文字描述即可，不用加斜杠。"
        ),
    },
    "message_too_long": {
        "en": (
            "✂️ That message is too long: {length} characters, and the limit is {limit}, "
            "so I didn't pass it on to the video service. Please shorten it, or split it "
            "into several messages, and send it again."
        ),
        "zh": (
            "✂️ 这条消息太长了：{length} 个字符，上限是 {limit}，所以我没有把它转给视频服务。"
            "请缩短或拆成几条消息后重新发送。"
        ),
    },
    "credits": {
        "en": "💳 Credits: {available} available · {frozen} reserved · {total} total",
        "zh": "💳 积分：可用 {available} · 冻结 {frozen} · 总计 {total}",
    },
    "empty_timeline": {
        "en": "The timeline is empty. Describe a video to get started.",
        "zh": "时间线是空的。描述一个视频开始吧。",
    },
    "nothing_to_export": {
        "en": "There's nothing to export yet — describe a video first, then say export.",
        "zh": "还没有可导出的内容——先描述一个视频，然后发送“导出”。",
    },
    "export_started": {
        "en": "🎬 Rendering your video... {percent}%",
        "zh": "🎬 正在渲染视频... {percent}%",
    },
    "export_already": {
        "en": "🎬 Your video is already rendering — I'll send it as soon as it's ready.",
        "zh": "🎬 视频已在渲染中——完成后马上发给你。",
    },
    "export_done": {
        "en": "🎉 Your video is ready (1080p MP4): {url}",
        "zh": "🎉 视频已完成（1080p MP4）：{url}",
    },
    "export_link_only": {
        "en": "⚠️ I couldn't send the video file itself, but your video is ready: {url}",
        "zh": "⚠️ 视频文件本身发送失败，但视频已完成：{url}",
    },
    "export_failed": {
        "en": "❌ The export failed: {reason}. Say export to try again.",
        "zh": "❌ 导出失败：{reason}。发送“导出”重试。",
    },
    "upload_none": {
        "en": "Send a photo, clip or audio file ({formats}) and I'll add it to your project.",
        "zh": "发送照片、视频或音频文件（{formats}），我会把它加入你的项目。",
    },
    "uploaded": {"en": "📎 Added {files}.", "zh": "📎 已添加 {files}。"},
    "unsupported_file": {
        "en": "⚠️ I can't use {name}. Supported formats: {formats}.",
        "zh": "⚠️ 无法使用 {name}。支持的格式：{formats}。",
    },
    "file_too_large": {
        "en": "⚠️ {name} is too large (max {limit} MB). Try compressing or trimming it.",
        "zh": "⚠️ {name} 太大了（最大 {limit} MB）。请压缩或裁剪后再试。",
    },
    "empty_file": {
        "en": "⚠️ {name} is empty. Please send the file again.",
        "zh": "⚠️ {name} 是空文件，请重新发送。",
    },
    "download_failed": {
        "en": "⚠️ I couldn't download {name} from the chat. Please send it again.",
        "zh": "⚠️ 无法从聊天中下载 {name}，请重新发送。",
    },
    "new_project": {
        "en": "🆕 New project started. Describe your next video!",
        "zh": "🆕 已开始新项目。描述你的下一个视频吧！",
    },
    "session_fresh": {
        "en": "ℹ️ Your previous project expired on the video service, so the timeline starts fresh.",
        "zh": "ℹ️ 之前的项目在视频服务上已过期，时间线将重新开始。",
    },
    "out_of_credits_anon": {
        "en": "💳 You're out of credits. Register to keep going (your work is kept): {url}",
        "zh": "💳 积分已用完。注册即可继续（你的作品会保留）：{url}",
    },
    "out_of_credits": {
        "en": "💳 You're out of credits. Top up your NemoVideo account to keep going.",
        "zh": "💳 积分已用完。请为 NemoVideo 账户充值后继续。",
    },
    "export_blocked": {
        "en": (
            "🔒 Exporting isn't included in the current free plan (this isn't about credits). "
            "Upgrade the NemoVideo subscription to export."
        ),
        "zh": "🔒 当前免费套餐不支持导出（与积分无关）。升级 NemoVideo 订阅后即可导出。",
    },
    "rate_limited": {
        "en": "🚦 The video service is busy right now. Please try again in a minute.",
        "zh": "🚦 视频服务当前繁忙，请一分钟后再试。",
    },
    "auth_failed": {
        "en": "⚠️ I couldn't sign in to the video service. Please try again in a few minutes.",
        "zh": "⚠️ 无法登录视频服务，请几分钟后再试。",
    },
    "network": {
        "en": "⚠️ I can't reach the video service right now. Nothing was lost — please try again.",
        "zh": "⚠️ 暂时无法连接视频服务。没有丢失任何内容——请重试。",
    },
    "service_error": {
        "en": (
            "⚠️ The video service had a problem with that request. "
            "Nothing was lost — please try again in a moment."
        ),
        "zh": "⚠️ 视频服务处理该请求时出了问题。没有丢失任何内容——请稍后重试。",
    },
    "unexpected": {
        "en": "⚠️ Something went wrong on my side. Nothing was lost — please try again.",
        "zh": "⚠️ 我这边出了点问题。没有丢失任何内容——请重试。",
    },
}


def t(key: str, lang: str | None = None, **values: object) -> str:
    """The text ``key`` in ``lang`` (a platform code is fine), formatted with ``values``."""
    texts = _TEXTS[key]
    text = texts.get(language_of(lang), texts["en"])
    values.setdefault("formats", FORMATS)
    return text.format(**values)


@functools.cache
def _pattern(key: str) -> re.Pattern[str]:
    """Matches the text ``key`` in any language, whatever values fill its fields."""
    options = []
    for template in _TEXTS[key].values():
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
