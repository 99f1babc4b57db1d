"""An asyncio TCP server speaking the Kafka protocol for one listener of one simulated node.

Like a real broker's SocketServer, a connection is served one request at a time (the channel is muted
while a request is in flight), so pipelined requests are answered in the order they were sent; any
number of connections are served concurrently. Input a real server rejects by closing the connection
(see :mod:`devcluster.kafka.protocol`) closes only that connection; the server keeps running.

:meth:`KafkaServer.stop` is abrupt, like a killed process: the listening socket closes, every open
connection is reset and in-flight requests are abandoned (clients see a disconnect).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

from devcluster.kafka.protocol import (
    API_VERSIONS_KEY,
    MAX_REQUEST_BYTES,
    ApiRegistry,
    InvalidRequest,
    Listener,
    RequestContext,
    encode_response,
    parse_request,
    unsupported_api_versions_response,
)

log = logging.getLogger(__name__)

_LEN = struct.Struct(">i")


class KafkaServer:
    """Serves ``registry``'s APIs for ``listener`` on ``host:port`` (port 0: a free port, see :attr:`port`).

    ``state`` is handed to every handler as ``ctx.server`` (the node's view of the cluster model).
    """

    def __init__(
        self,
        state: Any,
        registry: ApiRegistry,
        *,
        listener: Listener = "broker",
        host: str = "127.0.0.1",
        port: int = 0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.state = state
        self.registry = registry
        self.listener: Listener = listener
        self.host = host
        self._requested_port = port
        self.max_request_bytes = max_request_bytes
        self._server: asyncio.base_events.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Bind and start accepting. The port stays the same across stop/start once chosen, like a
        restarted process on a fixed listener port."""
        if self._server is not None:
            return
        port = self._port if self._port is not None else self._requested_port
        self._server = await asyncio.start_server(self._accept, self.host, port, reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop abruptly: stop listening, reset all connections, abandon in-flight requests."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._server is None:  # accepted while stopping
            writer.transport.abort()
            return
        self._connections[task] = writer
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except Exception:
            log.exception("kafka %s listener %s: unexpected error on a connection", self.listener, self.port)
        finally:
            self._connections.pop(task, None)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        while True:
            try:
                head = await reader.readexactly(4)
            except asyncio.IncompleteReadError:
                return  # clean EOF between requests
            (size,) = _LEN.unpack(head)
            if size < 0 or size > self.max_request_bytes:
                # InvalidReceiveException: the size is checked before anything is buffered.
                log.info("closing connection from %s: invalid request size %d", peer, size)
                return
            payload = await reader.readexactly(size)
            try:
                request = parse_request(payload, self.registry, self.listener)
            except InvalidRequest as exc:
                log.info("closing connection from %s: %s", peer, exc)
                return
            header = request.header
            if request.spec is None:
                spec = self.registry.get(API_VERSIONS_KEY, self.listener)
                assert spec is not None
                response = unsupported_api_versions_response((spec.min_version, spec.max_version))
            else:
                ctx = RequestContext(
                    header=header, listener=self.listener, server=self.state, registry=self.registry
                )
                try:
                    response = await request.spec.handler(ctx, request.body)
                except InvalidRequest as exc:
                    log.info("closing connection from %s: %s", peer, exc)
                    return
            if response is None:
                continue  # e.g. a request that expects no response
            writer.write(encode_response(header.correlation_id, response))
            await writer.drain()
