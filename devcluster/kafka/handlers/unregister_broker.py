"""UnregisterBroker (key 64, v0, flexible), answered as the KRaft controller does (brokers forward it).

The controller removes the broker's registration (:meth:`~devcluster.kafka.model.KafkaClusterModel.
unregister_broker`: it leaves every ISR first, its partition assignments stay). A registered broker is
unregistered whatever its state -- fenced, stopped, or even still running, as Kafka 3.9 does (the running
process then stays out of the cluster until it restarts). An id without a registration is
BROKER_ID_NOT_REGISTERED. Like ``ControllerApis.handleUnregisterBroker`` the response carries only the error
code (``error_message`` null). Without a quorum leader a broker answers REQUEST_TIMED_OUT (its forwarded
request times out) and a controller NOT_CONTROLLER; an inactive controller answers NOT_CONTROLLER.
"""

from __future__ import annotations

from typing import Any

from devcluster.kafka.errors import KafkaError
from devcluster.kafka.handlers.context import error_of, require_active_controller, service
from devcluster.kafka.protocol import ApiSpec, RequestContext

UNREGISTER_BROKER_KEY = 64


async def handle(ctx: RequestContext, request: Any) -> Any:
    try:
        require_active_controller(ctx)
        service(ctx).model.unregister_broker(int(request.broker_id))
    except KafkaError as exc:
        code, _ = error_of(ctx, exc)
        return ctx.response(throttle_time=0, error_code=code, error_message=None)
    return ctx.response(throttle_time=0, error_code=0, error_message=None)


SPECS = [ApiSpec(UNREGISTER_BROKER_KEY, 0, 0, frozenset({"broker", "controller"}), handle)]
