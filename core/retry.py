"""The NemoVideo client's one retry policy, and its one translation of httpx errors.

Translation (:func:`translated`): every httpx error becomes a
:class:`~core.errors.TransportError` (``raise ... from exc``) that records
whether the request may have reached the server (``maybe_sent``). Only a failure
to connect, or a wait for a pooled connection, proves nothing left the machine;
a hang-up or time-out after sending leaves the outcome unknown. A time-out while
a chat stream opens or reads is a :class:`~core.errors.StreamTimeoutError`.

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

import httpx

from core.errors import RateLimitedError, ServerError, StreamTimeoutError, TransportError

__all__ = ["RetryPolicy", "translated"]

log = logging.getLogger("nemo.client")
T = TypeVar("T")

# Nothing reached the server: safe to resend even a non-idempotent call.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@contextlib.contextmanager
def translated(what: str, *, stream: bool = False) -> Iterator[None]:
    """Turn httpx errors raised in the block into the client's error tree.

    ``what`` names the exchange in the message (never a URL or a token);
    ``stream`` makes a time-out a :class:`StreamTimeoutError`.
    """
    try:
        yield
    except _NOT_SENT as exc:
        name = type(exc).__name__
        raise TransportError(f"cannot reach NemoVideo ({name})", maybe_sent=False) from exc
    except httpx.TimeoutException as exc:
        if stream:
            raise StreamTimeoutError(f"NemoVideo {what} timed out") from exc
        raise TransportError(f"NemoVideo {what} failed ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise TransportError(f"NemoVideo {what} failed ({type(exc).__name__})") from exc


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
