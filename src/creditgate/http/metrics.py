"""Prometheus metrics: request latency by route template, gate outcomes, load refused.

Under several worker processes (`creditgate serve --workers N`) PROMETHEUS_MULTIPROC_DIR is
set before any worker starts, and /metrics adds up every process's figures.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

REQUEST_SECONDS = Histogram(
    "creditgate_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
IN_FLIGHT = Gauge(
    "creditgate_http_in_flight_requests",
    "Requests being served now",
    multiprocess_mode="livesum",
)
REFUSED = Counter(
    "creditgate_http_refused_total",
    "Requests refused at once because the server was at its in-flight limit",
)
AUTHORIZATIONS = Counter(
    "creditgate_authorizations_total",
    "Authorization answers, by outcome",
    ["outcome"],
)
CHARGES = Counter(
    "creditgate_charges_total",
    "Charges (single and batched), by outcome",
    ["outcome"],
)


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        combined = CollectorRegistry()
        MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        return combined
    from prometheus_client import REGISTRY

    return REGISTRY


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)
