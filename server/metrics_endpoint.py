"""`--metrics-port`: Prometheus text at `/metrics`, served over HTTP on a thread of its own.

One registry per endpoint: the service's own metrics (server/metrics.py), the A66 gRPC
server metrics (server/grpc_metrics.py) and the process collector (`process_*`: resident
memory, CPU seconds, open files).
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from server import grpc_metrics
from server.metrics import ServiceCollector


class MetricsEndpoint:
    """A started HTTP server of the metrics, holding the gRPC metrics plugin (see
    server/grpc_metrics.py); `close()` stops it and lets go of the plugin."""

    def __init__(self, host: str, port: int, service: ServiceCollector) -> None:
        """Make it before the gRPC server it reports on: the plugin only traces servers
        built while registered. Raises OSError when `host:port` cannot be bound."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(service)
        registry.register(grpc_metrics.GrpcCollector())
        ProcessCollector(registry=registry)
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port: int = self._server.server_port
        try:
            grpc_metrics.hold()
        except BaseException:
            self._stop_serving()
            raise

    def close(self) -> None:
        """Once the server it reports on has stopped. Blocks for half a second."""
        self._stop_serving()
        grpc_metrics.release()

    def _stop_serving(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
