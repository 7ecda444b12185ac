"""The composition root: every collaborator of the core is built here and passed in.

:func:`build_service` wires a :class:`~core.service.ConversationService` from
a store and a NemoVideo client; :func:`open_core` also opens those two (the store
``NEMO_BOT_DB`` names, and HTTP) for the lifetime of the bot. Nothing else in
the core builds another core object, so replacing one (a store-backed
:class:`~core.gate.SessionGate`, say) is a change here only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from core.accounts import Accounts, RenderOwners
from core.admin import Admin
from core.calls import BackendCalls
from core.cancel import Canceller
from core.client import NemoClient
from core.config import Settings
from core.dispatch import Dispatcher
from core.explain import Explainer
from core.exports import Exports
from core.gate import LocalSessionGate, SessionGate
from core.history import History
from core.lease_gate import StoreSessionGate
from core.limits import Limits
from core.metrics import Metrics
from core.polling import PollPolicy
from core.project import Project
from core.relay import ChatRelay
from core.renders import RenderTracker
from core.service import ConversationService
from core.turns import Turns
from core.uploads import Uploads
from core.wire import RenderState
from storage.base import RenderRecord, Store
from storage.factory import make_store
from storage.postgres import PostgresStore

__all__ = ["build_service", "open_core"]


def build_service(
    *,
    settings: Settings,
    store: Store,
    client: NemoClient,
    poll_policy: PollPolicy | None = None,
    max_queued: int = 3,
    gate: SessionGate | None = None,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    shared: bool = False,
) -> ConversationService:
    """A conversation service over ``store`` and ``client``.

    ``max_queued`` is how many requests may wait per session with the default
    in-process gate; pass ``gate`` to share turns between processes instead.
    ``shared``: other replicas use the same store (renders are claimed while
    followed and taken over when their replica dies).
    ``wall_clock`` is the accounts' time (token expiry, the pause after a refused
    token): a test moves it on instead of waiting out a real Retry-After.
    """
    metrics = metrics or Metrics()
    operator = settings.nemo_token.get_secret_value() if settings.nemo_token else None
    accounts = Accounts(store=store, client=client, operator_token=operator, clock=wall_clock)

    def delivered(render: RenderRecord, delay: float) -> None:
        metrics.renders_delivered.labels(outcome=render.status).inc()
        if render.status == RenderState.COMPLETED:
            metrics.delivery_delay.observe(delay)

    renders = RenderTracker(
        store=store,
        client=client,
        owners=RenderOwners(accounts, store),
        policy=poll_policy,
        on_delivered=delivered,
        shared=shared,
    )
    metrics.renders_in_flight.set_function(lambda: renders.in_flight)
    calls = BackendCalls(accounts=accounts, client=client)
    project = Project(accounts=accounts, client=client, store=store, calls=calls)
    relay = ChatRelay(settings=settings, calls=calls, project=project, metrics=metrics, clock=clock)
    # Places in line are counted only where this process sees the whole line.
    turns = Turns(exact=gate is None or isinstance(gate, LocalSessionGate))
    canceller = Canceller(
        turns=turns,
        store=store,
        client=client,
        calls=calls,
        project=project,
        renders=renders,
        metrics=metrics,
    )
    dispatch = Dispatcher(
        accounts=accounts,
        explainer=Explainer(settings=settings, store=store),
        project=project,
        relay=relay,
        uploads=Uploads(settings=settings, client=client, calls=calls, relay=relay),
        exports=Exports(client=client, store=store, calls=calls, project=project, renders=renders),
        history=History(store=store, client=client, calls=calls),
        canceller=canceller,
        metrics=metrics,
    )
    return ConversationService(
        settings=settings,
        store=store,
        accounts=accounts,
        gate=gate or LocalSessionGate(max_waiting=max_queued),
        dispatch=dispatch,
        renders=renders,
        metrics=metrics,
        admin=Admin(settings=settings, store=store, client=client),
        turns=turns,
        limits=Limits(settings=settings, store=store, metrics=metrics, shared=not turns.exact),
    )


def _secret(settings: Settings) -> str | None:
    key = settings.nemo_secret_key
    return None if key is None else key.get_secret_value()


@asynccontextmanager
async def open_core(
    settings: Settings, *, poll_policy: PollPolicy | None = None
) -> AsyncIterator[ConversationService]:
    """Open the store (SQLite, or PostgreSQL for a URL) and the client; yield a ready service.

    On PostgreSQL the session gate is the store-backed one (replicas share each
    session's turn through its lease); on SQLite it is the in-process one.
    Register adapters on the service, then call ``await service.start()`` to
    resume renders that were not delivered before the last stop.
    """
    async with (
        make_store(settings.db_target, secret_key=_secret(settings)) as store,
        NemoClient.from_settings(settings) as client,
    ):
        shared = isinstance(store, PostgresStore)
        lease = settings.replica_lease
        gate = (
            StoreSessionGate(store, ttl=lease, queue_limit=settings.limit_queue) if shared else None
        )
        if shared:  # a dead replica's render is taken over after NEMO_REPLICA_LEASE
            poll_policy = dataclasses.replace(poll_policy or PollPolicy(), delivery_lease=lease)
        service = build_service(
            settings=settings,
            store=store,
            client=client,
            poll_policy=poll_policy,
            gate=gate,
            shared=shared,
        )
        try:
            yield service
        finally:
            await service.aclose()
