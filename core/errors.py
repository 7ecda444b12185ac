"""The one error tree of the NemoVideo client.

::

    NemoError                         anything the client raises
    ├── ApiError(code, message)       the backend answered with a failure
    │   ├── TokenExpiredError         1001 / 1010 / 1011 / HTTP 401
    │   ├── SessionNotFoundError      1002
    │   ├── OutOfCreditsError         2001 (carries the registration ``bind_url``)
    │   ├── UnsupportedFileError      4001 (also raised locally before any upload)
    │   ├── FileTooLargeError         4002 (also raised locally before any upload)
    │   ├── ClientIdMissingError      HTTP 400 "missing X-Client-Id"
    │   ├── ExportBlockedError        HTTP 402 (free plan export blocked)
    │   ├── RateLimitedError          429 (``retry_after`` seconds)
    │   │   └── TokenRefusedError     429 on minting an anonymous token (per-IP limit)
    │   └── ServerError               HTTP 5xx
    └── TransportError                connection refused, time-out, dropped stream
        └── StreamTimeoutError        only heartbeats for too long

Low-level aiohttp errors (and time-outs) are translated once, in
:func:`core.retry.translated`, with ``raise ... from exc``. Messages never contain tokens.
"""

from __future__ import annotations

import re

REGISTER_URL = "https://nemovideo.com/register"

#: Anything that looks like a credential: NemoVideo tokens (``nmv_...``), bearer
#: values, JWT-shaped strings and Telegram bot tokens. The one pattern: applied to
#: every message the error tree builds (a backend that echoes a header back cannot
#: leak it into chat replies) and by the log filter (:mod:`core.logs`).
SECRET_PATTERN = re.compile(
    r"nmv_[A-Za-z0-9_\-.]+"
    r"|(?<=Bearer )[^\s\"',;]+"
    r"|eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
    r"|\b\d{5,}:[A-Za-z0-9_\-]{20,}",  # Telegram bot tokens
    re.IGNORECASE,
)
MAX_MESSAGE_CHARS = 500


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with token-like strings (and every string in ``secrets``) masked, shortened."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = SECRET_PATTERN.sub("***", text)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text


def bind_url(user_id: str | None) -> str | None:
    """The registration link that keeps an anonymous user's work; None for anyone else."""
    if user_id and user_id.startswith("anon_"):
        return f"{REGISTER_URL}?bind={user_id}"
    return None


class NemoError(Exception):
    """Base of everything the NemoVideo client raises."""


class ApiError(NemoError):
    """The backend answered, with a failure code."""

    def __init__(self, code: int, message: str = "", *, status: int | None = None) -> None:
        message = redact(message)
        self.code = code
        self.message = message
        self.status = status
        super().__init__(
            f"NemoVideo error {code}: {message}" if message else f"NemoVideo error {code}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class TokenExpiredError(ApiError):
    """The token is expired or invalid (1001, 1010, 1011, HTTP 401)."""


class SessionNotFoundError(ApiError):
    """The session does not exist any more (1002)."""


class OutOfCreditsError(ApiError):
    """No credits left (2001)."""

    def __init__(
        self,
        code: int = 2001,
        message: str = "",
        *,
        status: int | None = None,
        user_id: str | None = None,
    ) -> None:
        super().__init__(code, message, status=status)
        self.user_id = user_id

    @property
    def bind_url(self) -> str | None:
        """Registration link for an anonymous user, or None for a registered one."""
        return bind_url(self.user_id)


class UnsupportedFileError(ApiError):
    """The file type is not accepted (4001)."""


class FileTooLargeError(ApiError):
    """The file is over the size cap (4002)."""


class ClientIdMissingError(ApiError):
    """HTTP 400: the X-Client-Id header was missing."""


class ExportBlockedError(ApiError):
    """HTTP 402: the free plan cannot export (not a credit issue)."""


class RateLimitedError(ApiError):
    """429: too many requests; wait ``retry_after`` seconds."""

    def __init__(
        self,
        code: int = 429,
        message: str = "",
        *,
        status: int | None = None,
        retry_after: float = 30.0,
    ) -> None:
        super().__init__(code, message, status=status)
        self.retry_after = retry_after


class TokenRefusedError(RateLimitedError):
    """The backend refused to create an anonymous token (it limits them per IP address)."""


class ServerError(ApiError):
    """HTTP 5xx from the backend."""


class TransportError(NemoError):
    """The backend could not be reached, or the connection dropped.

    ``maybe_sent`` records whether the request may have reached the backend: False
    only when nothing left the machine (a failure to connect), so a call that
    takes effect (a render submit) may be sent again; True when the outcome is
    unknown (a hang-up or time-out after sending).
    """

    def __init__(self, message: str = "", *, maybe_sent: bool = True) -> None:
        super().__init__(redact(message))
        self.maybe_sent = maybe_sent


class StreamTimeoutError(TransportError):
    """A chat stream sent only heartbeats for longer than the limit."""


TOKEN_CODES = frozenset({1001, 1010, 1011, 401})

_BY_CODE: dict[int, type[ApiError]] = {
    1001: TokenExpiredError,
    1010: TokenExpiredError,
    1011: TokenExpiredError,
    401: TokenExpiredError,
    1002: SessionNotFoundError,
    2001: OutOfCreditsError,
    4001: UnsupportedFileError,
    4002: FileTooLargeError,
    400: ClientIdMissingError,
    402: ExportBlockedError,
    429: RateLimitedError,
}


def error_for(
    code: int,
    message: str = "",
    *,
    status: int | None = None,
    retry_after: float | None = None,
    user_id: str | None = None,
) -> ApiError:
    """The ApiError subclass instance for a backend code (or HTTP status).

    ``retry_after`` feeds :class:`RateLimitedError`, ``user_id`` feeds
    :class:`OutOfCreditsError`. A 400 whose message names something other than the
    client id (a bad request body, say) stays a plain :class:`ApiError`.
    """
    if 500 <= code < 600:
        return ServerError(code, message, status=status)
    if code == 429:
        return RateLimitedError(
            code, message, status=status, retry_after=30.0 if retry_after is None else retry_after
        )
    if code == 2001:
        return OutOfCreditsError(code, message, status=status, user_id=user_id)
    if code == 400 and message and "client" not in message.lower():
        return ApiError(code, message, status=status)
    cls = _BY_CODE.get(code, ApiError)
    return cls(code, message, status=status)
