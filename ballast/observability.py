"""Tracing, metrics and structured logs for every ballast process (operator, worker, watchers).

Tracing
    One OpenTelemetry ``TracerProvider`` (opentelemetry-sdk). Its exporter is chosen by the standard
    variables: ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console`` or ``none``) when set; otherwise OTLP when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, and no exporter at all
    when neither is. OTLP uses ``opentelemetry-exporter-otlp-proto-http`` (which reads its own ``OTEL_*``
    endpoint/header/timeout variables); ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` needs the gRPC exporter package
    and is refused with an error log if that is not installed. ``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_TRACES_SAMPLER`` are honoured by the SDK itself. A provider is
    installed even without an exporter, so spans still get real ids for logs and for the ``traceparent``
    the watchers put into signals.

    temporalio's ``TracingInterceptor`` (from :func:`tracing_interceptor`) goes on the client *and* the
    worker: a watcher's span is the parent of the ``SignalWithStartWorkflow`` client span, whose context
    the interceptor sends in the request headers; the workflow's ``RunWorkflow``/``HandleSignal`` spans and
    the activities it starts continue that trace. A signal to an already running workflow gets a
    ``HandleSignal`` span in the workflow's own trace with a *link* to the watcher's trace (that is how the
    SDK models it); a workflow that wants the activities of that reconcile inside the event's trace wraps
    them in :func:`attached_trace_context` with the signal's ``trace_context``.

Metrics
    Temporal SDK metrics come from the Core runtime's own Prometheus exporter (:func:`temporal_runtime`);
    the operator's metrics (below) from ``prometheus-client`` on a second port (:func:`start_metrics_server`):
    the Core exporter owns its listener, so the two cannot share one.

Logs
    :func:`configure_logging` installs a JSON formatter whose records carry ``cluster``, ``workflow_id``
    and the current ``trace_id``/``span_id``. ``workflow_id`` comes from :func:`log_context`, temporalio's
    workflow/activity logger extras, or -- for any other logger, e.g. kafka-python's inside an activity -- the
    running activity; ``cluster`` (``<namespace>/<name>``) from the workflow id when not set otherwise.
    kafka-python's loggers are held at WARNING (at INFO they log every connection).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import opentelemetry.context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter, Gauge, start_http_server
from temporalio import activity
from temporalio import workflow as temporal_workflow
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

log = logging.getLogger(__name__)

SERVICE_NAME = "ballast"

# -- settings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObservabilitySettings:
    """Where metrics are served and how logs look; read from the environment by :meth:`from_env`.

    ``metrics_address`` / ``temporal_metrics_address`` are ``host:port`` (``None`` = not served):
    ``BALLAST_METRICS_ADDRESS`` (operator metrics, prometheus-client) and ``BALLAST_TEMPORAL_METRICS_ADDRESS``
    (Temporal SDK metrics). ``BALLAST_LOG_FORMAT`` is ``json`` (default) or ``text``; ``BALLAST_LOG_LEVEL``
    a logging level name.
    """

    metrics_address: str | None = None
    temporal_metrics_address: str | None = None
    log_format: str = "json"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ObservabilitySettings:
        env = os.environ if env is None else env
        return cls(
            metrics_address=env.get("BALLAST_METRICS_ADDRESS") or None,
            temporal_metrics_address=env.get("BALLAST_TEMPORAL_METRICS_ADDRESS") or None,
            log_format=(env.get("BALLAST_LOG_FORMAT") or "json").lower(),
            log_level=(env.get("BALLAST_LOG_LEVEL") or "INFO").upper(),
        )


# -- tracing ----------------------------------------------------------------------------------------

_W3C = TraceContextTextMapPropagator()


def select_span_exporter(env: Mapping[str, str] | None = None) -> SpanExporter | None:
    """The exporter the standard ``OTEL_*`` variables ask for, or ``None`` for "export nothing"."""
    env = os.environ if env is None else env
    choice = (env.get("OTEL_TRACES_EXPORTER") or "").strip().lower()
    if not choice:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        choice = "otlp" if endpoint else "none"
    # OTEL_TRACES_EXPORTER may list several; the first one we can build wins (one is the norm).
    for name in (part.strip() for part in choice.split(",")):
        if name == "none":
            return None
        if name == "console":
            return ConsoleSpanExporter()
        if name == "otlp":
            return _otlp_exporter(env)
        log.error("OTEL_TRACES_EXPORTER=%s is not supported (use otlp, console or none); not exporting", name)
    return None


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter | None:
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").lower()
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            exporter: SpanExporter = GrpcExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
    except ImportError as err:
        log.error("OTLP/%s trace export requested but its exporter package is not installed (%s); "
                  "not exporting traces", protocol, err)
        return None
    return exporter


def configure_tracing(*, exporter: SpanExporter | None = None, use_env: bool = True,
                      set_global: bool = True) -> TracerProvider:
    """Create the process's tracer provider (service name from ``OTEL_SERVICE_NAME``, default ``ballast``).

    ``exporter`` is added in addition to the one the environment selects (``use_env``). With
    ``set_global`` the provider becomes OpenTelemetry's global one; OpenTelemetry allows that once per
    process, so tests build their own provider with ``set_global=False`` and pass it around instead.
    """
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({} if named else {"service.name": SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    exporters = [e for e in (select_span_exporter() if use_env else None, exporter) if e is not None]
    for exp in exporters:
        provider.add_span_processor(BatchSpanProcessor(exp))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def tracing_interceptor(tracer_provider: trace.TracerProvider | None = None) -> TracingInterceptor:
    """temporalio's tracing interceptor for ``Client.connect(interceptors=[...])`` (clients *and* workers
    built on that client get it) using ``tracer_provider`` (default: the global one)."""
    provider = tracer_provider or trace.get_tracer_provider()
    return TracingInterceptor(provider.get_tracer("temporalio"))


def inject_trace_context(context: Context | None = None) -> dict[str, str]:
    """The W3C ``traceparent`` (and ``tracestate``) of ``context`` (default: the current one); ``{}`` when
    there is no valid span. This is what watchers put into ``SpecChanged.trace_context``."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=context)
    return carrier


def extract_trace_context(carrier: Mapping[str, str]) -> Context:
    """The OpenTelemetry context a ``trace_context`` dict describes (an empty context if it describes none)."""
    return _W3C.extract(dict(carrier))


@contextlib.contextmanager
def attached_trace_context(carrier: Mapping[str, str]) -> Iterator[None]:
    """Make the span in ``carrier`` the current parent for the block (no-op for an empty carrier).

    Safe inside a workflow: it reads only the signal's payload and touches no clock or I/O, so replays
    behave the same. The tracing interceptor then parents ``StartActivity`` spans on the watcher's span.
    """
    if not carrier or "traceparent" not in carrier:
        yield
        return
    # Extract onto the current context: values other than the span (e.g. the workflow tracing
    # interceptor that temporalio keeps there) stay visible inside the block.
    token = opentelemetry.context.attach(_W3C.extract(dict(carrier), context=opentelemetry.context.get_current()))
    try:
        yield
    finally:
        # A workflow coroutine can be finalised in another contextvars.Context (eviction); the token is
        # then not ours to reset and there is nothing to detach.
        with contextlib.suppress(ValueError):
            token.var.reset(token)


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in hex of the current span, or ``None`` without a valid one."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


# -- metrics ----------------------------------------------------------------------------------------
# Module-level so every component shares them (prometheus-client registers them once, globally).

WATCH_EVENTS = Counter("ballast_watch_events", "Kubernetes watch events the watchers handled",
                       ["resource", "type"])
SIGNALS = Counter("ballast_signals", "Signals the watchers sent to cluster workflows",
                  ["signal", "result"])
WATCH_RESTARTS = Counter("ballast_watch_restarts", "Watch streams (re)opened after the previous one ended",
                         ["resource", "reason"])
RECONCILE_OUTCOMES = Counter("ballast_reconcile_outcomes", "Reconciles finished, by outcome",
                             ["outcome"])
LEADER = Gauge("ballast_watchers_leader", "1 while this process holds the watcher Lease, else 0")


def record_reconcile_outcome(outcome: str) -> None:
    """Count a finished reconcile (``ready``, ``invalid``, ``failed``, ``deleted``, ...); called by activities,
    never by workflow code (metrics are a side effect)."""
    RECONCILE_OUTCOMES.labels(outcome=outcome).inc()


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"metrics address {address!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def start_metrics_server(address: str) -> Any:
    """Serve the operator's metrics (prometheus-client's default registry) at ``http://address/metrics``.

    Returns the server object (``.shutdown()`` stops it); it runs in a daemon thread.
    """
    host, port = _split_address(address)
    server, _thread = start_http_server(port, addr=host)
    return server


def temporal_runtime(metrics_address: str | None) -> Runtime:
    """A Temporal Core runtime whose SDK metrics (``temporal_*``) are served on ``metrics_address``; the
    default runtime when ``None``. Pass it to ``Client.connect(runtime=...)``."""
    if metrics_address is None:
        return Runtime.default()
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics_address)))


# -- logs -------------------------------------------------------------------------------------------

_LOG_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("ballast_log_context",
                                                                                    default=None)


@contextlib.contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Add fields (``cluster="ns/name"``, ``workflow_id=...``) to every log record emitted in the block."""
    token = _LOG_CONTEXT.set({**(_LOG_CONTEXT.get() or {}), **fields})
    try:
        yield
    finally:
        _LOG_CONTEXT.reset(token)


# The workflow id prefixes of the workflows that belong to one KafkaCluster (see ballast.messages).
_CLUSTER_WORKFLOW_KINDS = ("kafkacluster", "roll", "rebalance")


def cluster_of_workflow(workflow_id: str) -> str:
    """``<namespace>/<name>`` of the KafkaCluster a ballast workflow id belongs to (``kafkacluster/<ns>/<name>``,
    ``roll/<ns>/<name>/<n>``, ``rebalance/<ns>/<name>/<n>``); "" for any other id."""
    parts = workflow_id.split("/")
    if len(parts) >= 3 and parts[0] in _CLUSTER_WORKFLOW_KINDS and parts[1] and parts[2]:
        return f"{parts[1]}/{parts[2]}"
    return ""


def _temporal_workflow_id(record: logging.LogRecord) -> str:
    """The workflow id temporalio's loggers attach (``temporal_workflow`` / ``temporal_activity`` extras), else
    that of the activity running in this thread or task (records of other loggers, e.g. kafka-python's)."""
    for extra in ("temporal_workflow", "temporal_activity"):
        info = getattr(record, extra, None)
        if isinstance(info, dict) and info.get("workflow_id"):
            return str(info["workflow_id"])
    if activity.in_activity():
        return activity.info().workflow_id or ""
    return ""


class ContextFilter(logging.Filter):
    """Stamp records with ``cluster``, ``workflow_id``, ``trace_id`` and ``span_id`` (empty when unknown).

    Fields set by :func:`log_context` win; otherwise ``workflow_id`` comes from temporalio (see
    :func:`_temporal_workflow_id`) and ``cluster`` from the workflow id (:func:`cluster_of_workflow`), so
    activities need no logging code of their own.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _LOG_CONTEXT.get() or {}
        for key, value in fields.items():
            if not getattr(record, key, None):
                setattr(record, key, value)
        workflow_id = str(getattr(record, "workflow_id", "") or "") or _temporal_workflow_id(record)
        if workflow_id:
            record.workflow_id = workflow_id
            if not getattr(record, "cluster", None) and cluster_of_workflow(workflow_id):
                record.cluster = cluster_of_workflow(workflow_id)
        ids = current_trace_ids()
        if ids is not None and not getattr(record, "trace_id", None):
            record.trace_id, record.span_id = ids
        for key in ("cluster", "workflow_id", "trace_id", "span_id"):
            if not hasattr(record, key):
                setattr(record, key, "")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg`` and the context fields that are set
    (plus ``exc`` with the traceback when there is one)."""

    CONTEXT_FIELDS = ("cluster", "workflow_id", "trace_id", "span_id")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in self.CONTEXT_FIELDS:
            value = getattr(record, key, "")
            if value:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Route the root logger to ``stream`` (default stderr) with :class:`JsonFormatter` (or a plain text
    format). kafka-python's loggers are held at WARNING or above (``level`` if that is higher)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        # The JSON fields carry the workflow/activity ids: not appended to every message as well.
        temporal_workflow.logger.workflow_info_on_message = False
        activity.logger.activity_info_on_message = False
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(cluster)s %(trace_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))


@dataclass
class Observability:
    """What :func:`setup` started: keep it for the process lifetime, :meth:`shutdown` on exit."""

    tracer_provider: TracerProvider
    runtime: Runtime
    metrics_server: Any = None

    def shutdown(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        self.tracer_provider.shutdown()


def setup(settings: ObservabilitySettings | None = None) -> Observability:
    """Configure logs, tracing (global provider) and metrics for a ballast process."""
    settings = settings or ObservabilitySettings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    provider = configure_tracing()
    server = start_metrics_server(settings.metrics_address) if settings.metrics_address else None
    return Observability(provider, temporal_runtime(settings.temporal_metrics_address), server)
