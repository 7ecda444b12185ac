"""The UPLOAD intent: check, download and hand the user's files to the backend.

Each file is judged by name and declared size before a byte is downloaded and by
its content after (:mod:`core.files`); a refused file is named to the user and the
others go on. The message's text, if any, then runs as a chat turn about them.
"""

from __future__ import annotations

import functools
import logging

from core.accounts import Identity
from core.calls import BackendCalls
from core.client import NemoClient
from core.config import Settings
from core.errors import FileTooLargeError, UnsupportedFileError
from core.files import (
    describe_upload,
    display_name,
    refuse_after_download,
    refuse_before_download,
    safe_filename,
)
from core.relay import ChatRelay
from core.replies import nudge
from core.request import Request
from core.types import Attachment
from core.wire import UploadResult

__all__ = ["Uploads"]

log = logging.getLogger("nemo.uploads")


class Uploads:
    """Adds the attachments of a message to the user's project."""

    def __init__(
        self, *, settings: Settings, client: NemoClient, calls: BackendCalls, relay: ChatRelay
    ) -> None:
        self._settings = settings
        self._client = client
        self._calls = calls
        self._relay = relay

    async def upload(self, req: Request) -> None:
        """The UPLOAD intent."""
        msg = req.msg
        if not msg.attachments:
            await req.say("upload_none")
            return
        nudge(req.replier.working("upload_video"))
        added: list[str] = []
        for att in msg.attachments:
            refusal, described = await self._upload_one(req, att)
            if refusal:
                limit_mb = self._settings.max_upload_mb
                await req.say(refusal, name=display_name(att.filename), limit=limit_mb)
            else:
                added.extend(described)
        if not added:
            return
        uploaded = req.words("uploaded", files=", ".join(added))
        if msg.text.strip():
            await req.replier.send_text(uploaded)
            await self._relay.chat(req, msg.text.strip())
        else:
            await self._relay.after_turn(req, note=uploaded)

    async def _upload_one(self, req: Request, att: Attachment) -> tuple[str | None, list[str]]:
        """Check, download and upload one file: (why not, or None; what was added)."""
        limit = self._settings.max_upload_bytes
        refusal = refuse_before_download(att.filename, att.size, limit)
        if refusal:
            return refusal, []
        try:
            data = await att.read()
        except Exception:
            log.warning("could not download an attachment from %s", req.msg.platform, exc_info=True)
            return "download_failed", []
        refusal = refuse_after_download(data, limit)
        if refusal:
            return refusal, []
        try:
            result = await self._calls.call(
                req, functools.partial(self._upload_bytes, name=att.filename, data=data)
            )
        except UnsupportedFileError:
            return "unsupported_file", []
        except FileTooLargeError:
            return "file_too_large", []
        return None, [describe_upload(f) for f in result.files] or [display_name(att.filename)]

    async def _upload_bytes(self, ident: Identity, *, name: str, data: bytes) -> UploadResult:
        return await self._client.upload(
            ident.token, ident.session.session_id, filename=safe_filename(name), data=data
        )
