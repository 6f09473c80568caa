"""The standard gRPC server metrics of gRFC A66, from grpcio-observability's
OpenTelemetryPlugin, exported to Prometheus.

The plugin is process-wide: gRPC allows one registered at a time, it traces every server
(and client channel) of the process, and a server only carries it when it was built while
the plugin was registered. So it is held by reference count: each server with a metrics
endpoint takes a hold before it is built and lets go once it has stopped; the last to let
go deregisters the plugin, without which gRPC's export thread keeps the process from
exiting. The figures are the whole process's: with several servers in one process (tests),
each endpoint shows them all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

_lock = threading.Lock()
_holds = 0
_plugin: _Plugin | None = None


class _Plugin:
    """The registered plugin, its meter provider, and the registry its metrics land in."""

    def __init__(self) -> None:
        # Imported here: only a server with --metrics-port loads OpenTelemetry.
        import grpc_observability
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.view import DropAggregation, View

        self.registry = CollectorRegistry(auto_describe=False)
        reader = PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=self.registry
        )
        self._provider = MeterProvider(
            metric_readers=[reader],
            # The client side's figures describe other servers, seen from this process.
            views=[View(instrument_name="grpc.client.*", aggregation=DropAggregation())],
            # Shut down here, when the last hold goes; not at exit, a second time.
            shutdown_on_exit=False,
        )
        self._plugin = grpc_observability.OpenTelemetryPlugin(meter_provider=self._provider)
        self._plugin.register_global()

    def close(self) -> None:
        # Waits for gRPC's last export batch (half a second) so no call's figures are lost.
        self._plugin.deregister_global()
        self._provider.shutdown()


def hold() -> None:
    """Register the plugin unless a hold has it already. Call it before building a server."""
    global _holds, _plugin
    with _lock:
        if _plugin is None:
            _plugin = _Plugin()
        _holds += 1


def release() -> None:
    """Let go of a hold; the last one deregisters the plugin. Call it after the server has
    stopped: calls still open then are not counted."""
    global _holds, _plugin
    with _lock:
        _holds -= 1
        if _holds == 0 and _plugin is not None:
            plugin, _plugin = _plugin, None
            plugin.close()


def registered() -> bool:
    """Whether the plugin is registered now."""
    with _lock:
        return _plugin is not None


class GrpcCollector:
    """A prometheus_client collector of the A66 metrics, while the plugin is registered."""

    def collect(self) -> Iterator[Metric]:
        plugin = _plugin
        if plugin is not None:
            yield from plugin.registry.collect()
