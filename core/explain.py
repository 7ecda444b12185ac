"""Turning a backend failure into words the user understands.

Every :class:`~core.errors.ApiError` maps to one text of :mod:`core.i18n`, in
the user's language; nothing the backend said is shown raw. Transport failures are
always "can't reach the video service"; see :meth:`Explainer.explain`.
"""

from __future__ import annotations

import logging
import math

from core.config import Settings
from core.errors import (
    ApiError,
    ExportBlockedError,
    FileTooLargeError,
    OutOfCreditsError,
    RateLimitedError,
    ServerError,
    SessionNotFoundError,
    TokenExpiredError,
    TokenRefusedError,
    UnsupportedFileError,
    bind_url,
)
from core.request import Request
from core.types import Intent
from storage.base import Store

__all__ = ["Explainer"]

log = logging.getLogger("nemo.explain")

# Failures that need no context: the key says it all.
_PLAIN: tuple[tuple[type[ApiError], str], ...] = (
    (ExportBlockedError, "export_blocked"),
    (RateLimitedError, "rate_limited"),
    (TokenExpiredError, "auth_failed"),
)


class Explainer:
    """Knows which words fit which backend failure."""

    def __init__(self, *, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store

    async def explain(self, req: Request, intent: Intent, exc: ApiError) -> str:
        """What ``exc`` means for the user who sent ``req``, in their language."""
        if isinstance(exc, OutOfCreditsError):
            bind = exc.bind_url
            if bind is None and not self._settings.nemo_token:  # the reply may not say who
                user = await self._store.get_user(req.msg.platform, req.msg.user_id)
                bind = bind_url(user.backend_user_id if user else None)
            if bind:
                return req.words("out_of_credits_anon", url=bind)
            return req.words("out_of_credits")
        if isinstance(exc, TokenRefusedError):  # before RateLimitedError, its parent
            return req.words("token_refused", minutes=max(1, math.ceil(exc.retry_after / 60)))
        for kind, key in _PLAIN:
            if isinstance(exc, kind):
                return req.words(key)
        if isinstance(exc, UnsupportedFileError):
            return req.words("unsupported_file", name=req.words("that_file"))
        if isinstance(exc, FileTooLargeError):
            limit = self._settings.max_upload_mb
            name = req.words("that_file").capitalize()  # it starts the sentence
            return req.words("file_too_large", name=name, limit=limit)
        log.warning("backend error %s on %s", exc.code, intent.value)
        if isinstance(exc, ServerError | SessionNotFoundError):
            # 5xx on a call that is not resent blindly, or a session lost twice in a row.
            return req.words("service_error")
        return req.words("unexpected")
