"""ApiVersions (key 18): the version ranges this listener serves.

An ApiVersions request with a version the server does not know never reaches this handler (the
protocol layer answers it with v0 + UNSUPPORTED_VERSION). A v3+ request whose client software name or
version is malformed gets INVALID_REQUEST, as ``ApiVersionsRequest.isValid`` decides.
"""

from __future__ import annotations

from typing import Any

from devcluster.kafka.protocol import (
    INVALID_REQUEST,
    ApiSpec,
    RequestContext,
    api_versions_request_is_valid,
)

API_KEY = 18


async def handle(ctx: RequestContext, request: Any) -> Any:
    if not api_versions_request_is_valid(request):
        # getErrorResponse(INVALID_REQUEST): error code only, no API list.
        return ctx.response(error_code=INVALID_REQUEST, api_keys=())
    return ctx.response(
        error_code=0,
        api_keys=[
            {"api_key": key, "min_version": low, "max_version": high}
            for key, low, high in ctx.registry.advertised(ctx.listener)
        ],
        throttle_time=0,
        # No feature flags: the model does not track metadata.version (finalized epoch -1 = unknown).
        finalized_features_epoch=-1,
    )


SPECS = [ApiSpec(API_KEY, 0, 4, frozenset({"broker", "controller"}), handle)]
