"""OpenTelemetry set-up and trace-context propagation through NATS headers.

``configure()`` is called once from a service's ``__main__``. Library code only uses
:func:`inject` / :func:`extract` and the global tracer, so trace context travels across every hop
(``traceparent`` / ``tracestate`` headers) whether or not an exporter is configured.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


def configure(service: str, otlp_endpoint: str | None = None) -> TracerProvider:
    """Install a tracer provider named ``zapflow-<service>``; export over OTLP/HTTP if asked."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"zapflow-{service}"}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    return provider


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context to ``headers`` (in place) and return them."""
    propagate.inject(headers)
    return headers


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context carried by incoming NATS headers (empty context if none)."""
    return propagate.extract(dict(headers or {}))


tracer = trace.get_tracer("zapflow")
