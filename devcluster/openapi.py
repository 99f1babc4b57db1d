"""Minimal ``/openapi/v2`` and ``/openapi/v3`` documents (kubectl downloads them before ``apply``)."""

from __future__ import annotations

from aiohttp import web

from devcluster.registry import Registry


def serve(request: web.Request, registry: Registry) -> web.Response:
    raise web.HTTPNotFound()
