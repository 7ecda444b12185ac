"""Prometheus metrics of one running bot.

Each :class:`Metrics` has its own registry (no process-wide global state), so
several services can live in one process — in tests, say — without clashing.
The health server (:mod:`core.health`) exposes it at ``/metrics``, with the
replica's name (``NEMO_REPLICA_NAME``) as a constant ``replica`` label on every
sample: with several replicas behind one scrape job, each series says where it
came from, and ``sum without (replica) (...)`` adds them up.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

#: Buckets for the export delivery delay: render completed -> link shown.
_DELAY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120)


class Metrics:
    """Counters, gauges and the delivery-delay histogram of one service."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "nemo_requests",
            "Chat requests handled, by platform and intent.",
            ["platform", "intent"],
            registry=self.registry,
        )
        self.errors = Counter(
            "nemo_errors",
            "Backend and transport errors, by NemoVideo code (or kind).",
            ["code"],
            registry=self.registry,
        )
        self.cancels = Counter(
            "nemo_cancels",
            "What users cancelled: a running chat request, waiting requests, an export.",
            ["what"],
            registry=self.registry,
        )
        self.limited = Counter(
            "nemo_limited",
            "Requests refused by the operator's limits (NEMO_LIMIT_*), by limit.",
            ["limit"],
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "nemo_active_streams", "Chat streams open right now.", registry=self.registry
        )
        self.renders_in_flight = Gauge(
            "nemo_renders_in_flight", "Exports being followed right now.", registry=self.registry
        )
        self.renders_delivered = Counter(
            "nemo_renders_delivered",
            "Exports delivered, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.delivery_delay = Histogram(
            "nemo_export_delivery_delay_seconds",
            "Time from a render completing on the backend to its link shown in the chat.",
            buckets=_DELAY_BUCKETS,
            registry=self.registry,
        )

    def error(self, code: int | str) -> None:
        """Count one error."""
        self.errors.labels(code=str(code)).inc()

    def render(self, *, labels: Mapping[str, str] | None = None) -> bytes:
        """The metrics in the Prometheus text format, ``labels`` added to every sample."""
        if not labels:
            return generate_latest(self.registry)
        # prometheus_client has no constant labels; relabel a snapshot at exposition time.
        relabelled = CollectorRegistry(auto_describe=False)
        relabelled.register(_ConstantLabels(self.registry, dict(labels)))
        return generate_latest(relabelled)


class _ConstantLabels(Collector):
    """The samples of ``registry``, each with ``labels`` added."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self._registry = registry
        self._labels = labels

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            family = copy.copy(family)
            family.samples = [
                sample._replace(labels={**sample.labels, **self._labels})
                for sample in family.samples
            ]
            yield family
