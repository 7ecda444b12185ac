"""From Telegram messages to the pieces of an :class:`~core.types.IncomingMessage`.

Who a group message is for, which files it carries (checked for size and type
*before* anything is downloaded), and albums: Telegram delivers an album as one
message per item sharing a ``media_group_id``; :class:`AlbumCollector` waits for
a short quiet spell and hands them on together.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from telegram import Bot, Message, MessageEntity

from bots.telegram.audio import TRANSCODED_EXTENSIONS, to_m4a
from bots.telegram.texts import text as adapter_text
from core.files import ACCEPTED_EXTENSIONS
from core.types import Attachment

__all__ = [
    "AlbumCollector",
    "DownloadError",
    "FileInfo",
    "addressing",
    "files_of",
    "needs_transcoding",
    "refusal_for",
    "thread_of",
    "to_attachment",
    "transcoded_attachment",
]

_MIME_EXT = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "video/x-msvideo": "avi",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "aac",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
}
_DOWNLOAD_TIMEOUT = 300.0
_SPACES = re.compile(r"[ \t]{2,}")


class DownloadError(Exception):
    """A Telegram file could not be downloaded (the message never contains its URL)."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A file a message carries, as Telegram describes it (nothing downloaded yet)."""

    kind: str
    file_id: str
    filename: str
    size: int | None
    mime_type: str | None

    @property
    def extension(self) -> str:
        """Lower-case extension without the dot ("" if none)."""
        return PurePosixPath(self.filename).suffix.lower().lstrip(".")


def _name(given: str | None, kind: str, unique_id: str, mime: str | None, default: str) -> str:
    if given:
        return given
    return f"{kind}_{unique_id}.{_MIME_EXT.get((mime or '').lower(), default)}"


def files_of(message: Message) -> list[FileInfo]:
    """The files ``message`` carries: the largest photo size, or its one media item."""
    found: list[FileInfo] = []
    if message.photo:
        photo = message.photo[-1]  # sizes come smallest first
        found.append(
            FileInfo(
                "photo",
                photo.file_id,
                f"photo_{photo.file_unique_id}.jpg",
                photo.file_size,
                "image/jpeg",
            )
        )
    for kind, default in (
        ("video", "mp4"),
        ("animation", "mp4"),
        ("video_note", "mp4"),  # a round video: always MP4, with no name or MIME type
        ("audio", "mp3"),
        ("voice", "ogg"),
        ("document", "bin"),
    ):
        media = getattr(message, kind)
        if media is None:
            continue
        mime = getattr(media, "mime_type", None) or ("video/mp4" if kind == "video_note" else None)
        name = _name(getattr(media, "file_name", None), kind, media.file_unique_id, mime, default)
        found.append(FileInfo(kind, media.file_id, name, media.file_size, mime))
    return found


def refusal_for(info: FileInfo, cap: int, language: str | None) -> str | None:
    """Why ``info`` can't be used (in the user's language), or None if it can."""
    if info.extension not in ACCEPTED_EXTENSIONS and not needs_transcoding(info):
        return adapter_text("unsupported", language, name=info.filename)
    if info.size is not None and info.size > cap:
        return adapter_text("too_large", language, name=info.filename, limit=cap // (1024 * 1024))
    return None


def to_attachment(bot: Bot, info: FileInfo) -> Attachment:
    """An attachment whose ``read`` downloads through PTB; the file URL never leaves here.

    The URL of a Telegram file contains the bot token, so only the bytes go to the core.
    """

    async def read() -> bytes:
        try:
            file = await bot.get_file(info.file_id)
            return bytes(await file.download_as_bytearray(read_timeout=_DOWNLOAD_TIMEOUT))
        except Exception as exc:
            # A fresh error without the chain: nothing that might quote the URL travels on.
            reason = f"{type(exc).__name__}: {exc}".replace(bot.token, "<bot-token>")
            raise DownloadError(f"could not download {info.filename} ({reason})") from None

    return Attachment(filename=info.filename, size=info.size, read=read, mime_type=info.mime_type)


def needs_transcoding(info: FileInfo) -> bool:
    """Whether ``info`` is audio the backend refuses but we convert (OGG/Opus voice notes)."""
    return info.extension in TRANSCODED_EXTENSIONS


async def transcoded_attachment(bot: Bot, info: FileInfo) -> Attachment:
    """Download ``info`` now and convert it to M4A; the attachment carries the result.

    Raises :class:`DownloadError` or :class:`~bots.telegram.audio.TranscodeError`.
    """
    m4a = await to_m4a(await to_attachment(bot, info).read())

    async def read() -> bytes:
        return m4a

    name = PurePosixPath(info.filename).with_suffix(".m4a").name
    return Attachment(filename=name, size=len(m4a), read=read, mime_type="audio/mp4")


def thread_of(message: Message) -> int | None:
    """The forum topic of ``message``, or None outside forum topics."""
    if message.is_topic_message and message.message_thread_id is not None:
        return message.message_thread_id
    return None


def _is_reply_to_bot(message: Message, bot_id: int) -> bool:
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != bot_id:
        return False
    # In a forum topic every message "replies" to the topic's first message.
    return not (message.is_topic_message and replied.message_id == message.message_thread_id)


def addressing(message: Message, bot_username: str, bot_id: int) -> tuple[bool, str]:
    """``(addressed_to_bot, text without the @mention)`` for a text or caption."""
    text = message.text or message.caption or ""
    entities = message.parse_entities() if message.text else message.parse_caption_entities()
    mention = f"@{bot_username}".lower()
    mentioned = False
    for entity, value in entities.items():
        if entity.type == MessageEntity.MENTION and value.lower() == mention:
            mentioned = True
        elif entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot_id:
            mentioned = True
            text = text.replace(value, " ", 1)
        elif entity.type == MessageEntity.BOT_COMMAND and value.lower().endswith(mention):
            mentioned = True
    if mentioned:
        text = re.sub(rf"(?<![\w/])@{re.escape(bot_username)}\b", " ", text, flags=re.I)
        text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines()).strip()
    return mentioned or _is_reply_to_bot(message, bot_id), text


@dataclass(slots=True)
class _Album:
    messages: list[Message]
    timer: asyncio.Task[None] | None = None


class AlbumCollector:
    """Gathers the messages of one album and hands them on once none came for ``delay`` s.

    ``on_ready`` is called synchronously with the album's messages; it is expected
    to start the work in a task of its own (the handlers' guarded, tracked spawn),
    so a failure there is logged and a shutdown waits for it.
    """

    def __init__(self, delay: float, on_ready: Callable[[Sequence[Message]], None]) -> None:
        self._delay = delay
        self._on_ready = on_ready
        self._albums: dict[tuple[int, str], _Album] = {}

    def add(self, message: Message) -> None:
        """Add one album item (``message.media_group_id`` must be set)."""
        assert message.media_group_id is not None
        key = (message.chat_id, message.media_group_id)
        album = self._albums.setdefault(key, _Album([]))
        album.messages.append(message)
        if album.timer is not None:
            album.timer.cancel()
        album.timer = asyncio.create_task(self._fire(key), name=f"telegram-album-{key[1]}")

    async def _fire(self, key: tuple[int, str]) -> None:
        await asyncio.sleep(self._delay)
        album = self._albums.pop(key)
        album.messages.sort(key=lambda m: m.message_id)
        self._on_ready(album.messages)

    async def flush(self) -> None:
        """Hand on every album still being collected now, without waiting (shutting down)."""
        albums = list(self._albums.values())
        self._albums.clear()
        timers = [album.timer for album in albums if album.timer]
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        for album in albums:
            album.messages.sort(key=lambda m: m.message_id)
            self._on_ready(album.messages)
