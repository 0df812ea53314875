"""An OpenTelemetry SpanExporter that appends each batch to a file as one
OTLP JSON `ExportTraceServiceRequest` per line: the layout the OpenTelemetry
Collector's file exporter writes and `lasthop ingest` reads. Ids are hex, as
OTLP JSON requires (protobuf's JSON mapping would write them in base64)."""

import base64
import json
import threading

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def _hex_ids(value):
    if isinstance(value, dict):
        return {
            k: (base64.b64decode(v).hex() if k in _ID_KEYS and isinstance(v, str) else _hex_ids(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    return value


class OtlpJsonFileExporter(SpanExporter):
    def __init__(self, path):
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans):
        request = _hex_ids(MessageToDict(encode_spans(spans), use_integers_for_enums=True))
        line = json.dumps(request, sort_keys=True)
        with self._lock, open(self._path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def tracer_provider(service, path):
    """A provider for `service` whose spans are written to `path` as each ends
    (a killed process keeps every span it finished, as a crash test needs)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileExporter(path)))
    return provider
