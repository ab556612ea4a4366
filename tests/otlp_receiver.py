"""A small OTLP/HTTP receiver for the tests: what the app, in its worker process, exports with
``TELEMETRY_EXPORTER=otlp`` arrives here as protobuf (decoded with opentelemetry-proto, the exporter's own types).

Spans are kept as :class:`Span` views with the fields the tests read; metrics as (attributes, value) points whose
values are cumulative, as the SDK exports them, so the newest point per attribute set is the total.
"""
from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (ExportMetricsServiceRequest,
                                                                           ExportMetricsServiceResponse)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                       ExportTraceServiceResponse)


def _value(any_value) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in any_value.array_value.values)
    return getattr(any_value, kind) if kind else None


def _attributes(pairs) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_time: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    json: str = field(repr=False)


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.metric_requests: list[ExportMetricsServiceRequest] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    receiver._add_spans(request)
                    answer = ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/metrics":
                    request = ExportMetricsServiceRequest.FromString(body)
                    with receiver._lock:
                        receiver.metric_requests.append(request)
                    answer = ExportMetricsServiceResponse().SerializeToString()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True).start()

    def _add_spans(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    found.append(Span(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex() or None,
                                      s.start_time_unix_nano, _attributes(s.attributes), s.status.code,
                                      s.status.message, MessageToJson(s)))
        with self._lock:
            self.spans.extend(found)

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()
            self.metric_requests.clear()

    def metric_points(self, name: str) -> list[tuple[dict, float]]:
        """(attributes, value) of the newest point of metric ``name`` per attribute set (sums' values, histograms'
        counts)."""
        newest: dict[tuple, tuple[int, dict, float]] = {}
        with self._lock:
            requests = list(self.metric_requests)
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name != name:
                            continue
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            attrs = _attributes(point.attributes)
                            value = point.count if kind in ("histogram", "exponential_histogram") else (
                                point.as_int if point.WhichOneof("value") == "as_int" else point.as_double)
                            key = tuple(sorted(attrs.items()))
                            if key not in newest or point.time_unix_nano >= newest[key][0]:
                                newest[key] = (point.time_unix_nano, attrs, value)
        return [(attrs, value) for _, attrs, value in newest.values()]

    def metrics_json(self) -> str:
        with self._lock:
            return "\n".join(MessageToJson(r) for r in self.metric_requests)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
