"""Upload checks before and after the download, and file names fit for a chat."""

from __future__ import annotations

from core.files import (
    describe_upload,
    display_name,
    refuse_after_download,
    refuse_before_download,
    safe_filename,
)
from core.wire import UploadedFile

MB = 1024 * 1024


def test_name_and_declared_size_are_judged_before_downloading() -> None:
    assert refuse_before_download("clip.MP4", 5 * MB, 10 * MB) is None
    assert refuse_before_download("photo.jpeg", None, 10 * MB) is None
    assert refuse_before_download("tool.exe", 1, 10 * MB) == "unsupported_file"
    assert refuse_before_download("no-extension", 1, 10 * MB) == "unsupported_file"
    assert refuse_before_download("song.ogg", 1, 10 * MB) == "unsupported_file"
    assert refuse_before_download("huge.mov", 11 * MB, 10 * MB) == "file_too_large"


def test_bytes_are_judged_after_downloading() -> None:
    assert refuse_after_download(b"\x89PNG\r\n\x1a\n...", 10 * MB) is None
    assert refuse_after_download(b"", 10 * MB) == "empty_file"
    assert refuse_after_download(b"MZ\x90\x00 a Windows program", 10 * MB) == "unsupported_file"
    assert refuse_after_download(b"\x7fELF...", 10 * MB) == "unsupported_file"
    assert refuse_after_download(b"x" * 11, 10) == "file_too_large"


def test_path_like_and_hostile_names_are_made_safe() -> None:
    assert safe_filename("../../etc/passwd.png") == "passwd.png"
    assert safe_filename("C:\\Users\\me\\clip.mp4") == "clip.mp4"
    assert safe_filename("bad\x00name\n.png") == "badname.png"
    assert safe_filename("   ") == "upload"
    assert len(safe_filename("a" * 500 + ".png")) == 120
    assert len(display_name("a" * 500 + ".png")) == 60


def test_uploads_are_described_with_what_is_known() -> None:
    assert describe_upload(UploadedFile(filename="a.png", width=1920, height=1080)) == (
        "a.png (1920×1080)"
    )
    clip = UploadedFile(filename="c.mp4", width=1280, height=720, duration=4.0)
    assert describe_upload(clip) == "c.mp4 (1280×720, 4.0s)"
    assert describe_upload(UploadedFile()) == "file"
