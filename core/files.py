"""The upload policy: which files the bot accepts, how big, and what they may contain. Pure.

This is the one place the rules live; the client (:meth:`core.client.NemoClient.upload`),
the service (:mod:`core.uploads`), both adapters and the help texts all read them
from here. Checks return ``None`` (fine) or the key of the text that tells the user
why not (see :mod:`core.i18n`): type and size are known before a byte is
downloaded, emptiness and a program's signature only after.
"""

from __future__ import annotations

from pathlib import PurePath

from core.errors import FileTooLargeError, UnsupportedFileError
from core.wire import UploadedFile

__all__ = [
    "ACCEPTED_EXTENSIONS",
    "accepted_formats",
    "check_upload",
    "describe_upload",
    "display_name",
    "extension_of",
    "refuse_after_download",
    "refuse_before_download",
    "safe_filename",
]

#: The file types the backend takes (NEMO_API.md, "Upload"), in the order people
#: are shown them: video, then images, then audio.
# fmt: off
_FORMATS_SHOWN = (
    "mp4", "mov", "avi", "webm", "mkv",
    "jpg", "jpeg", "png", "gif", "webp",
    "mp3", "wav", "m4a", "aac",
)
# fmt: on
ACCEPTED_EXTENSIONS: frozenset[str] = frozenset(_FORMATS_SHOWN)

#: Leading bytes of programs and archives. No accepted media format starts like this
#: (JPEG FF D8, PNG 89 50, GIF, RIFF, ftyp boxes, EBML 1A 45, ID3 / MPEG frames).
_NOT_MEDIA = (b"MZ", b"\x7fELF", b"#!", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe", b"PK\x03\x04")


def extension_of(filename: str) -> str:
    """The lower-case extension of ``filename`` without the dot ("" if none); paths are fine."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    _, dot, ext = name.rpartition(".")
    return ext.lower() if dot else ""


def accepted_formats(*, upper: bool = False) -> str:
    """The accepted extensions, comma-separated, for help texts and refusals."""
    return ", ".join(name.upper() if upper else name for name in _FORMATS_SHOWN)


def refuse_before_download(filename: str, size: int | None, limit: int) -> str | None:
    """Why a file can't be used, judged by its name and declared size; None if it can."""
    if extension_of(filename) not in ACCEPTED_EXTENSIONS:
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


def check_upload(filename: str, size: int | None, limit: int) -> None:
    """Raise :class:`UnsupportedFileError` / :class:`FileTooLargeError` if it can't be sent."""
    refusal = refuse_before_download(filename, size, limit)
    if refusal == "unsupported_file":
        extension = extension_of(filename)
        shown = f".{extension} files" if extension else "files without an extension"
        raise UnsupportedFileError(
            4001, f"{shown} are not accepted (accepted: {accepted_formats()})"
        )
    if refusal == "file_too_large":
        assert size is not None
        raise FileTooLargeError(
            4002, f"file is {size / 2**20:.1f} MB; the limit is {limit // 2**20} MB"
        )


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
