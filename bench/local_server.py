"""A threaded HTTP server on a free port of 127.0.0.1 for the figures that need an AWS-shaped peer of their own."""

import http.server
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def serving(
    handler: type[http.server.BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None = None, **state: Any
) -> Iterator[http.server.ThreadingHTTPServer]:
    """Answer with *handler* until the block ends; each of *state* becomes an attribute of the server, where the
    handler reads and updates it (``self.server``); with *tls*, over TLS."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    for name, value in state.items():
        setattr(server, name, value)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name=f"bench-{handler.__name__}", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
