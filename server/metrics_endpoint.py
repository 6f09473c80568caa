"""`--metrics-port`: Prometheus text at `/metrics`, served over HTTP on a thread of its own.

One registry per endpoint: the service's own metrics (server/metrics.py), the A66 gRPC
server metrics (server/grpc_metrics.py) and the process collector (`process_*`: resident
memory, CPU seconds, open files).
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from server.grpc_metrics import GrpcCollector
from server.metrics import ServiceCollector


class MetricsEndpoint:
    """A started HTTP server of the metrics; `close()` stops it."""

    def __init__(self, host: str, port: int, service: ServiceCollector) -> None:
        """Raises OSError when `host:port` cannot be bound."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(service)
        registry.register(GrpcCollector())
        ProcessCollector(registry=registry)
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
