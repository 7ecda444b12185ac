"""Prometheus metrics of one running bot.

Each :class:`Metrics` has its own registry (no process-wide global state), so
several services can live in one process — in tests, say — without clashing.
The health server (:mod:`core.health`) exposes it at ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
