"""Turning Discord's objects into the core's vocabulary: ids, attachments, message text."""

from __future__ import annotations

import re

import discord

from bots.common import accepted_formats
from core.files import ACCEPTED_EXTENSIONS
from core.types import Attachment

from .texts import text

__all__ = ["attachment_problem", "chat_ids", "strip_mentions", "to_core_attachment"]

_MB = 1024 * 1024


def chat_ids(channel: object, channel_id: int) -> tuple[str, str | None]:
    """``(chat_id, thread_id)``: a thread is its own chat, so both are the thread's id."""
    if isinstance(channel, discord.Thread):
        return str(channel.id), str(channel.id)
    return str(channel_id), None


def strip_mentions(content: str, bot_id: int) -> str:
    """The message text without mentions of the bot."""
    return re.sub(rf"<@!?{bot_id}>", " ", content).strip()


def extension_of(filename: str) -> str:
    """The lower-case extension of ``filename`` without the dot ("" if none)."""
    _, dot, ext = filename.rpartition(".")
    return ext.lower() if dot else ""


def attachment_problem(
    attachment: discord.Attachment, *, max_bytes: int, language: str | None
) -> str | None:
    """A friendly refusal if the file's format or size won't do, checked before any download."""
    if extension_of(attachment.filename) not in ACCEPTED_EXTENSIONS:
        return text("unsupported", language, name=attachment.filename, formats=accepted_formats())
    if attachment.size > max_bytes:
        return text(
            "too_large",
            language,
            name=attachment.filename,
            size=f"{attachment.size / _MB:.1f}",
            limit=f"{max_bytes / _MB:.0f}",
        )
    return None


def to_core_attachment(attachment: discord.Attachment) -> Attachment:
    """The core's view of a Discord attachment; ``read`` downloads it from the CDN."""
    return Attachment(
        filename=attachment.filename,
        size=attachment.size,
        read=attachment.read,
        mime_type=attachment.content_type,
    )
