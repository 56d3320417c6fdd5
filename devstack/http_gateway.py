"""A local stand-in for the HTTP API: HTTP requests in, API Gateway v2.0 events to the real handlers, responses out.

It keeps the gateway behaviours a client can observe: the 10 MB body limit (refused before reading),
API Gateway's own 404 `{"message": "Not Found"}` for a request no route has (an unknown path, or a method no
route has, whatever the method), 502 when the integration fails, and the handler's status, headers, cookies
and (base64-decoded) body passed through.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from devstack.api_events import http_api_event
from devstack.routing import RouteMatch
from devstack.sigv4 import SignatureError, SigV4Verifier

__all__ = ["MAX_BODY_BYTES", "HttpGateway", "Integration"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024
"""API Gateway's payload limit."""


class Integration(Protocol):
    """What the gateway needs from a stack: route matching and function invocation."""

    def match_route(self, method: str, raw_path: str) -> RouteMatch | None: ...

    def invoke(self, logical_id: str, event: Any) -> Any: ...


class _BodyTooLargeError(Exception):
    pass


class HttpGateway:
    """Serves the template's routes on ``host:port`` (port 0 picks a free one) from a background thread."""

    def __init__(
        self,
        integration: Integration,
        host: str = "127.0.0.1",
        port: int = 3000,
        verifier: SigV4Verifier | None = None,
    ) -> None:
        """With a *verifier*, routes that require AWS_IAM answer 403 unless the request is SigV4-signed."""
        self._server = ThreadingHTTPServer((host, port), _RequestHandler)
        self._server.daemon_threads = True
        self._server.gateway = self  # type: ignore[attr-defined]
        self.integration = integration
        self.verifier = verifier
        self.port: int = self._server.server_address[1]
        self.domain_name = f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"  # noqa: S104
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.domain_name}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests and wait for the serving thread; in-flight requests finish on their own."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "adserve-local"

    def _gateway(self) -> HttpGateway:
        gateway: HttpGateway = self.server.gateway  # type: ignore[attr-defined]
        return gateway

    def _handle(self) -> None:
        started = time.perf_counter()
        self._route_key: str | None = None
        status = self._respond()
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.info("%s %d %.1fms", self._logged_target(), status, elapsed_ms)

    def _logged_target(self) -> str:
        """What the access log names: the route's key, as the template's API access log does (``$context.routeKey``).

        Never the path or the query's values: a path parameter is an id someone chose (a campaign's, an ad's), a
        beacon's ``t`` is a token. A request no route has is logged without its path for the same reason.
        """
        _, separator, query = self.path.partition("?")
        names = "&".join(f"{pair.partition('=')[0]}=..." for pair in query.split("&") if pair)
        route = self._route_key or f"{self.command} (no route)"
        return route + separator + names

    def __getattr__(self, name: str) -> Callable[[], None]:
        """``do_<METHOD>`` for every method, so each is routed: without one, the server answers a method with
        an HTML 501 page, where API Gateway answers a method no route has with its JSON 404.
        """
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _respond(self) -> int:
        raw_path, _, raw_query = self.path.partition("?")
        gateway = self._gateway()
        try:
            body = self._read_body()
        except _BodyTooLargeError:
            self.close_connection = True
            message = f"request body is over API Gateway's limit of {MAX_BODY_BYTES} bytes"
            return self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _error("payload_too_large", message))
        except ValueError:
            self.close_connection = True
            return self._send_json(HTTPStatus.BAD_REQUEST, _error("bad_request", "malformed request framing"))
        match = gateway.integration.match_route(self.command, raw_path)
        if match is None:
            return self._send_json(HTTPStatus.NOT_FOUND, {"message": "Not Found"})
        self._route_key = match.route.route_key
        event = http_api_event(
            method=self.command,
            raw_path=raw_path,
            route_key=match.route.route_key,
            raw_query_string=raw_query,
            headers=self._joined_headers(),
            path_parameters=match.path_parameters,
            body=body,
            domain_name=gateway.domain_name,
            source_ip=self.client_address[0],
        )
        if match.route.requires_iam and gateway.verifier is not None:
            try:
                caller = gateway.verifier.verify(self.command, raw_path, raw_query, self._joined_headers(), body)
            except SignatureError as refusal:
                logger.info("%s refused by the AWS_IAM authorizer: %s", self._route_key, refusal)
                return self._send_json(HTTPStatus.FORBIDDEN, {"message": "Forbidden"})
            event["requestContext"]["authorizer"] = caller.authorizer_context()
        try:
            result = gateway.integration.invoke(match.route.function_id, event)
        except Exception:
            logger.exception("%s raised; answering 502 as API Gateway does", match.route.function_id)
            return self._send_json(HTTPStatus.BAD_GATEWAY, {"message": "Internal Server Error"})
        return self._send_result(result)

    def _joined_headers(self) -> dict[str, str]:
        """Repeated headers joined with commas, as payload format 2.0 does."""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            separator = "; " if key == "cookie" else ","
            headers[key] = f"{headers[key]}{separator}{value}" if key in headers else value
        return headers

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            raise _BodyTooLargeError
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyTooLargeError
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send_result(self, result: Any) -> int:
        if not (isinstance(result, Mapping) and "statusCode" in result):
            # Payload format 2.0 reads a response without statusCode as a 200 JSON body.
            body = result if isinstance(result, str) else json.dumps(result)
            return self._send(HTTPStatus.OK, {"content-type": "application/json"}, [], body.encode())
        raw_body = result.get("body") or ""
        payload = base64.b64decode(raw_body) if result.get("isBase64Encoded") else str(raw_body).encode()
        headers = {str(name): str(value) for name, value in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[str(name)] = ",".join(str(value) for value in values)
        return self._send(int(result["statusCode"]), headers, list(result.get("cookies") or []), payload)

    def _send_json(self, status: int, document: Mapping[str, Any]) -> int:
        return self._send(status, {"content-type": "application/json"}, [], json.dumps(document).encode())

    def _send(self, status: int, headers: Mapping[str, str], cookies: list[str], payload: bytes) -> int:
        self.send_response_only(status)
        self.send_header("date", self.date_time_string())
        skip = {"content-length", "connection", "transfer-encoding", "date"}
        for name, value in headers.items():
            if name.lower() not in skip:
                self.send_header(name, value)
        for cookie in cookies:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(payload)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        return status

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
