"""What the bot accepts as an upload, decided before and after the download. Pure.

Each check returns ``None`` (fine) or the key of the text that tells the user why
not (see :mod:`core.i18n`): size and type are known before a byte is downloaded,
emptiness and a program's signature only after.
"""

from __future__ import annotations

from pathlib import PurePath

from core.client import ACCEPTED_EXTENSIONS
from core.wire import UploadedFile

__all__ = [
    "describe_upload",
    "display_name",
    "refuse_after_download",
    "refuse_before_download",
    "safe_filename",
]

#: Leading bytes of programs and archives. No accepted media format starts like this
#: (JPEG FF D8, PNG 89 50, GIF, RIFF, ftyp boxes, EBML 1A 45, ID3 / MPEG frames).
_NOT_MEDIA = (b"MZ", b"\x7fELF", b"#!", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe", b"PK\x03\x04")


def refuse_before_download(filename: str, size: int | None, limit: int) -> str | None:
    """Why a file can't be used, judged by its name and declared size; None if it can."""
    if PurePath(filename).suffix.lower().lstrip(".") not in ACCEPTED_EXTENSIONS:
        return "unsupported_file"
    if size is not None and size > limit:
        return "file_too_large"
    return None


def refuse_after_download(data: bytes, limit: int) -> str | None:
    """Why downloaded bytes can't be used; None if they can."""
    if not data:
        return "empty_file"
    if data.startswith(_NOT_MEDIA):  # a program named like a photo or a clip
        return "unsupported_file"
    if len(data) > limit:
        return "file_too_large"
    return None


def safe_filename(filename: str) -> str:
    """Only the last path component, without control characters (names can be path-like)."""
    name = PurePath(filename.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "upload"
    return name[:120]


def display_name(filename: str) -> str:
    """A file name fit to show in a chat."""
    return safe_filename(filename)[:60]


def describe_upload(file: UploadedFile) -> str:
    """'photo.png (1920×1080)' or 'clip.mp4 (1920×1080, 4.0s)'."""
    parts = []
    if file.width and file.height:
        parts.append(f"{file.width}×{file.height}")
    if file.duration:
        parts.append(f"{float(file.duration):.1f}s")
    name = file.filename or "file"
    return f"{name} ({', '.join(parts)})" if parts else name
