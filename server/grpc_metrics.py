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

#: The bucket boundaries gRFC A66 gives: the plugin leaves OpenTelemetry's defaults (0 to
#: 10,000), which put every call under 5 seconds in one bucket.
LATENCY_BUCKETS = (
    0.0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005,
    0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13,
    0.16, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0,
)  # fmt: skip
# Floats, so that the exposition writes le="1024.0", as Prometheus clients do.
SIZE_BUCKETS = (0.0,) + tuple(
    float(1 << shift) for shift in (10, 11, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32)
)

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
        from opentelemetry.sdk.metrics.view import (
            DropAggregation,
            ExplicitBucketHistogramAggregation,
            View,
        )

        self.registry = CollectorRegistry(auto_describe=False)
        reader = PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=self.registry
        )
        self._provider = MeterProvider(
            metric_readers=[reader],
            # The client side's figures describe other servers, seen from this process.
            views=[
                View(instrument_name="grpc.client.*", aggregation=DropAggregation()),
                View(
                    instrument_name="grpc.server.call.duration",
                    aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS),
                ),
                View(
                    instrument_name="grpc.server.call.*_compressed_message_size",
                    aggregation=ExplicitBucketHistogramAggregation(SIZE_BUCKETS),
                ),
            ],
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
