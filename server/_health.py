"""grpc.health.v1 for chunkwise: the stock asyncio servicer, with watches that end on drain.

The stock `Watch` streams until the client hangs up. During a graceful stop the server waits
for every open call, so a load balancer's open watch would hold the drain for the whole grace
period. Here a watch ends (status OK) right after it has shown a status other than SERVING
once shutdown has begun.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _WatchOver(Exception):
    pass


class _WatchContext:
    """Passes everything through to the call's context; stops the watch after its last write."""

    def __init__(self, context: grpc.aio.ServicerContext, servicer: DrainingHealthServicer):
        self._context = context
        self._servicer = servicer

    async def write(self, response: health_pb2.HealthCheckResponse) -> None:
        await self._context.write(response)
        if self._servicer.draining and response.status != SERVING:
            raise _WatchOver

    def __getattr__(self, name: str):
        return getattr(self._context, name)


class DrainingHealthServicer(health.aio.HealthServicer):
    def __init__(self) -> None:
        super().__init__()
        self.draining = False

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> None:
        try:
            await super().Watch(request, _WatchContext(context, self))
        except _WatchOver:
            pass

    async def enter_graceful_shutdown(self) -> None:
        self.draining = True
        await super().enter_graceful_shutdown()
