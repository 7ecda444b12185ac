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
    │   └── ServerError               HTTP 5xx
    └── TransportError                connection refused, time-out, dropped stream
        └── StreamTimeoutError        only heartbeats for too long

Low-level httpx / httpx-sse errors are translated once, in ``core.client``, with
``raise ... from exc``. Messages never contain tokens.
"""

from __future__ import annotations

REGISTER_URL = "https://nemovideo.com/register"


class NemoError(Exception):
    """Base of everything the NemoVideo client raises."""


class ApiError(NemoError):
    """The backend answered, with a failure code."""

    def __init__(self, code: int, message: str = "", *, status: int | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status
        super().__init__(f"NemoVideo error {code}: {message}" if message else f"NemoVideo error {code}")


class TokenExpiredError(ApiError):
    """The token is expired or invalid (1001, 1010, 1011, HTTP 401)."""


class SessionNotFoundError(ApiError):
    """The session does not exist any more (1002)."""


class OutOfCreditsError(ApiError):
    """No credits left (2001)."""

    def __init__(
        self, code: int = 2001, message: str = "", *, status: int | None = None,
        user_id: str | None = None,
    ) -> None:
        super().__init__(code, message, status=status)
        self.user_id = user_id

    @property
    def bind_url(self) -> str | None:
        """Registration link for an anonymous user, or None for a registered one."""
        if self.user_id and self.user_id.startswith("anon_"):
            return f"{REGISTER_URL}?bind={self.user_id}"
        return None


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
        self, code: int = 429, message: str = "", *, status: int | None = None,
        retry_after: float = 30.0,
    ) -> None:
        super().__init__(code, message, status=status)
        self.retry_after = retry_after


class ServerError(ApiError):
    """HTTP 5xx from the backend."""


class TransportError(NemoError):
    """The backend could not be reached, or the connection dropped."""


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


def error_for(code: int, message: str = "", *, status: int | None = None) -> ApiError:
    """The ApiError subclass instance for a backend code (or HTTP status)."""
    if code >= 500 and code < 600:
        return ServerError(code, message, status=status)
    cls = _BY_CODE.get(code, ApiError)
    return cls(code, message, status=status)
