"""One file as a streamed ``multipart/form-data`` body (the upload endpoint's ``files`` field).

Hand-written rather than httpx's ``files=``: httpx reads a file object in the
event loop and cannot cap an async stream of unknown size, while this body reads
a file in a worker thread, chunk by chunk, and stops a stream that passes the cap
with :class:`~core.errors.FileTooLargeError` before the excess leaves the machine.
"""

from __future__ import annotations

import asyncio
import mimetypes
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from core.errors import FileTooLargeError

__all__ = ["MultipartFile"]

CHUNK = 256 * 1024


def _quote_filename(filename: str) -> str:
    """A filename safe inside a quoted multipart header (HTML5 form encoding)."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return name.replace("\r", " ").replace("\n", " ").replace('"', "%22")


class MultipartFile:
    """The body and headers for uploading one file from ``path``, ``data`` or ``stream``."""

    def __init__(
        self,
        filename: str,
        *,
        path: Path | None,
        data: bytes | None,
        stream: AsyncIterable[bytes] | None,
        size: int | None,
        limit: int,
    ) -> None:
        boundary = secrets.token_hex(16)
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        self._head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{_quote_filename(filename)}"'
            f"\r\nContent-Type: {mime}\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self.headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if size is not None:
            self.headers["Content-Length"] = str(len(self._head) + size + len(self._tail))
        self._path, self._data, self._stream = path, data, stream
        self._size, self._limit = size, limit
        self._started = False

    def resendable(self) -> bool:
        """Whether the body can be sent again: a file or bytes can, a consumed stream cannot."""
        return self._stream is None or not self._started

    async def body(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk; raises past the size cap or on a short stream."""
        self._started = True
        yield self._head
        sent = 0
        async for chunk in self._chunks():
            sent += len(chunk)
            if sent > self._limit:
                raise FileTooLargeError(4002, f"file is larger than {self._limit // 2**20} MB")
            yield chunk
        if self._size is not None and sent != self._size:
            raise ValueError(f"upload stream gave {sent} bytes, expected {self._size}")
        yield self._tail

    async def _chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes; a file is read in a worker thread, never whole."""
        if self._data is not None:
            for offset in range(0, len(self._data), CHUNK):
                yield self._data[offset : offset + CHUNK]
        elif self._path is not None:
            handle = await asyncio.to_thread(self._path.open, "rb")
            try:
                while chunk := await asyncio.to_thread(handle.read, CHUNK):
                    yield chunk
            finally:
                await asyncio.to_thread(handle.close)
        elif self._stream is not None:
            async for chunk in self._stream:
                if chunk:
                    yield bytes(chunk)
