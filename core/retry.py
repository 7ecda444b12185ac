"""The NemoVideo client's one retry policy, and its one translation of aiohttp errors.

Translation (:func:`translated`): every aiohttp error (and time-out) becomes a
:class:`~core.errors.TransportError` (``raise ... from exc``) that records
whether the request may have reached the server (``maybe_sent``). Only a failure
to connect (``ClientConnectorError``), or a time-out connecting or waiting for a
pooled connection (``ConnectionTimeoutError``), proves nothing left the machine;
a hang-up after sending (``ServerDisconnectedError``, ``ClientPayloadError``, a
reset) or a time-out waiting for the reply leaves the outcome unknown. (The
httpx-aiohttp adapter got this wrong, calling every ``ClientConnectionError`` a
connect time-out: a hang-up after the request went out would have resent chat
messages and render submits; see :mod:`core.transport`.) A time-out while a chat
stream opens or reads is a :class:`~core.errors.StreamTimeoutError`. An exception
raised by a request body itself (an upload refusing to pass the size cap) reaches
the caller as itself, not as the connection error aiohttp wraps it in.

Retries (:meth:`RetryPolicy.run`), and why they are safe:

* HTTP 429 means "not processed": the call sleeps ``retry_after`` and tries once
  more (a wait longer than ``max_rate_limit_wait`` is passed up instead).
* Idempotent calls (credits, state, render status, cancel, download) retry 5xx
  replies and every transport failure with jittered exponential backoff.
* Calls that may have taken effect (chat, upload, render submit) are resent only
  when the error proves nothing was sent; resending a chat message
  mid-generation would duplicate work and charges.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from core.errors import RateLimitedError, ServerError, StreamTimeoutError, TransportError

__all__ = ["RetryPolicy", "translated"]

log = logging.getLogger("nemo.client")
T = TypeVar("T")

# Nothing reached the server: safe to resend even a non-idempotent call.
# (ConnectionTimeoutError covers both the connect and the wait for a pooled connection.)
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


@contextlib.contextmanager
def translated(what: str, *, stream: bool = False) -> Iterator[None]:
    """Turn aiohttp errors raised in the block into the client's error tree.

    ``what`` names the exchange in the message (never a URL or a token: aiohttp's
    own messages carry URLs, so they are not passed on); ``stream`` makes a
    time-out a :class:`StreamTimeoutError`.
    """
    try:
        yield
    except _NOT_SENT as exc:
        name = type(exc).__name__
        raise TransportError(f"cannot reach NemoVideo ({name})", maybe_sent=False) from exc
    except TimeoutError as exc:  # aiohttp's ServerTimeoutError/SocketTimeoutError, or total
        if stream:
            raise StreamTimeoutError(f"NemoVideo {what} timed out") from exc
        raise TransportError(f"NemoVideo {what} failed ({type(exc).__name__})") from exc
    except aiohttp.ClientError as exc:
        body_error = _raised_by_body(exc)
        if body_error is not None:
            raise body_error from None
        raise TransportError(f"NemoVideo {what} failed ({type(exc).__name__})") from exc


def _raised_by_body(exc: aiohttp.ClientError) -> Exception | None:
    """The request body's own exception, if aiohttp wrapped one as a connection error.

    aiohttp reports a body generator's exception as a bare ``ClientConnectionError``
    caused by it; an ``OSError`` there is a real socket failure and stays one.
    """
    cause = exc.__cause__
    if type(exc) is not aiohttp.ClientConnectionError or not isinstance(cause, Exception):
        return None
    return None if isinstance(cause, aiohttp.ClientError | OSError) else cause


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, and after how long, a failed call is tried again."""

    attempts: int = 3  # for idempotent calls, and for calls that never left
    backoff_base: float = 0.5  # seconds; doubled per attempt, jittered ±50 %
    max_rate_limit_wait: float = 120.0  # a longer Retry-After is passed up instead

    def backoff(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (1-based)."""
        return self.backoff_base * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)

    async def run(
        self,
        what: str,
        attempt: Callable[[], Awaitable[T]],
        *,
        sleep: Callable[[float], Awaitable[None]],
        idempotent: bool,
        resendable: Callable[[], bool] = lambda: True,
    ) -> T:
        """``await attempt()`` until it succeeds or the policy gives up (then it raises).

        ``attempt`` raises the client's errors (see :func:`translated`).
        ``resendable`` says whether the request body can be sent again (a consumed
        stream cannot).
        """
        tries = 0
        rate_limited = False
        while True:
            tries += 1
            try:
                return await attempt()
            except RateLimitedError as exc:
                if rate_limited or exc.retry_after > self.max_rate_limit_wait or not resendable():
                    raise
                rate_limited = True
                tries -= 1  # a 429 is not a failed attempt
                log.info("%s rate-limited; retrying in %.1f s", what, exc.retry_after)
                await sleep(exc.retry_after)
            except ServerError:
                if not idempotent or tries >= self.attempts:
                    raise
                await sleep(self.backoff(tries))
            except TransportError as exc:
                again = idempotent if exc.maybe_sent else resendable()
                if isinstance(exc, StreamTimeoutError) or not again or tries >= self.attempts:
                    raise
                log.debug("%s: %s (attempt %d)", what, exc, tries)
                await sleep(self.backoff(tries))
