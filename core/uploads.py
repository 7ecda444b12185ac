"""The UPLOAD intent: check, download and hand the user's files to the backend.

Each file is judged by name and declared size before a byte is downloaded and by
its content after (:mod:`core.files`); a refused file is named to the user and the
others go on. The message's text, if any, then runs as a chat turn about them.

A webhook replica records each file's hash on the stored update just before the
file goes out (:meth:`core.inbox.Ticket.mark_sent`). If the replica dies there,
the one taking the update over does not send the files again (the backend may
have them already: a second copy on the timeline): it reads the session's state
and tells the user, file by file, what it shows — arrived, or not to be seen, in
which case the file may not have arrived and the user is asked to send it again
(when the state cannot be read, the user is told it could not be checked instead).
Files the dead replica had not started are uploaded as usual.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence

from core import inbox
from core.accounts import Identity
from core.calls import BackendCalls
from core.client import NemoClient
from core.config import Settings
from core.errors import ApiError, FileTooLargeError, TransportError, UnsupportedFileError
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
from core.wire import UploadedFile, UploadResult

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
        ticket = inbox.current()
        if ticket is not None and ticket.resumed:
            # A replica died while the message's text ran as a chat turn: the files were
            # added and the user told; the relay reports what the turn did.
            await self._relay.chat(req, msg.text.strip())
            return
        cut = _parse_sent(ticket.earlier(inbox.UPLOAD)) if ticket is not None else None
        nudge(req.replier.working("upload_video"))
        added: list[str] = []
        sent: dict[int, str] = dict(cut or {})
        arrived: list[str] = []
        lost = False
        if cut:
            arrived, missing, checked = await self._look_for(req, msg.attachments, cut)
            for name in missing:
                lost = True
                # Only a state that was read may be said not to show the file.
                await req.say(
                    "upload_cut_unknown" if checked else "upload_cut_unchecked", name=name
                )
        for index, att in enumerate(msg.attachments):
            if cut is not None and index <= max(cut, default=-1):
                # Handled by a replica that died (sent: looked for above; else refused
                # then, and the user was told): never send it twice.
                continue
            refusal, described = await self._upload_one(req, att, index, sent)
            if refusal:
                limit_mb = self._settings.max_upload_mb
                await req.say(refusal, name=display_name(att.filename), limit=limit_mb)
            else:
                added.extend(described)
        if not added and not arrived:
            return
        notes = [req.words("upload_cut_arrived", files=", ".join(arrived))] if arrived else []
        if added:
            notes.append(req.words("uploaded", files=", ".join(added)))
        uploaded = "\n".join(notes)
        if msg.text.strip() and not lost:
            await req.replier.send_text(uploaded)
            await self._relay.chat(req, msg.text.strip())
        else:
            await self._relay.after_turn(req, note=uploaded)

    async def _upload_one(
        self, req: Request, att: Attachment, index: int, sent: dict[int, str]
    ) -> tuple[str | None, list[str]]:
        """Check, download and upload one file: (why not, or None; what was added).

        ``sent`` maps the message's files sent so far to their hashes; this one is
        added and recorded on the stored update (if any) before it goes out.
        """
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
        ticket = inbox.current()
        if ticket is not None:
            sent[index] = hashlib.sha256(data).hexdigest()
            await ticket.mark_sent(inbox.UPLOAD, _format_sent(sent))
        try:
            result = await self._calls.call(
                req, functools.partial(self._upload_bytes, name=att.filename, data=data)
            )
        except UnsupportedFileError:
            return "unsupported_file", []
        except FileTooLargeError:
            return "file_too_large", []
        return None, [describe_upload(f) for f in result.files] or [display_name(att.filename)]

    async def _look_for(
        self, req: Request, attachments: Sequence[Attachment], cut: dict[int, str]
    ) -> tuple[list[str], list[str], bool]:
        """Which of the files a dead replica was sending the session's state shows:
        (those it shows, described; the names of the others; whether the state was read
        at all: if not, none is known to be there or not)."""
        shown: dict[str, UploadedFile] = {}
        checked = False
        try:
            state = await self._calls.call(
                req, lambda i: self._client.state(i.token, i.session.session_id)
            )
        except (ApiError, TransportError) as exc:  # unknown: nothing is claimed
            log.warning("could not read the session state (%s)", type(exc).__name__)
        else:
            checked = True
            for item in state.video_infos:
                info = UploadedFile.from_data(item)
                if info.hash:
                    shown.setdefault(info.hash.lower(), info)
        arrived, missing = [], []
        for index, digest in sorted(cut.items()):
            if digest in shown:
                arrived.append(describe_upload(shown[digest]))
            elif index < len(attachments):
                missing.append(display_name(attachments[index].filename))
        log.info(
            "an upload cut by a lost replica: %d arrived, %d not seen%s",
            len(arrived),
            len(missing),
            "" if checked else " (the state could not be read)",
        )
        return arrived, missing, checked

    async def _upload_bytes(self, ident: Identity, *, name: str, data: bytes) -> UploadResult:
        return await self._client.upload(
            ident.token, ident.session.session_id, filename=safe_filename(name), data=data
        )


def _format_sent(sent: dict[int, str]) -> str:
    """The stage detail of the files sent so far: ``index=sha256`` pairs."""
    return ",".join(f"{index}={digest}" for index, digest in sorted(sent.items()))


def _parse_sent(detail: str | None) -> dict[int, str] | None:
    """Read :func:`_format_sent`'s detail back (None: no upload was cut)."""
    if detail is None:
        return None
    sent: dict[int, str] = {}
    for pair in filter(None, detail.split(",")):
        index, _, digest = pair.partition("=")
        if index.isdigit() and digest:
            sent[int(index)] = digest.lower()
    return sent
