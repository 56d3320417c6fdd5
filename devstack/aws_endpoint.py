"""The AWS endpoint the local stack uses: moto in server mode in this process, or one named by the environment.

moto runs as a real HTTP server (not ``mock_aws`` patching), so handlers, the CLI and other processes all
reach the same state over the network, just as they would reach AWS.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.server import ThreadedMotoServer

__all__ = ["AwsEndpoint", "credentials_environment"]

_DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class AwsEndpoint:
    """Either an embedded moto server (``embedded``) or an external endpoint URL."""

    def __init__(self, url: str, server: ThreadedMotoServer | None = None) -> None:
        self.url = url
        self._server = server

    @property
    def embedded(self) -> bool:
        return self._server is not None

    @classmethod
    def start(cls, endpoint_url: str | None = None, host: str = "127.0.0.1") -> AwsEndpoint:
        """Use *endpoint_url* (or ``AWS_ENDPOINT_URL``) if given, else start moto on a free port."""
        external = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        if external:
            return cls(external.rstrip("/"))
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
        _serialize_dynamodb_transactions()
        server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
        server.start()
        bound_host, port = server.get_host_and_port()
        return cls(f"http://{bound_host}:{port}", server)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def credentials_environment(embedded: bool, environ: Mapping[str, str]) -> dict[str, str]:
    """Credentials to add so boto3 can sign requests.

    The embedded moto always gets dummy ones, so a developer's real credentials or an expired SSO
    profile never matter locally; an external endpoint keeps whatever the environment provides.
    """
    if embedded or not ({"AWS_ACCESS_KEY_ID", "AWS_PROFILE"} & environ.keys()):
        return dict(_DUMMY_CREDENTIALS)
    return {}


_TRANSACTION_LOCK = threading.Lock()


def _serialize_dynamodb_transactions() -> None:
    """Make moto's TransactWriteItems atomic across its request threads, as DynamoDB's is.

    moto checks a transaction's conditions and then applies its writes with no lock, so two concurrent
    transactions on the same item can both pass ``attribute_not_exists``; DynamoDB would cancel one with a
    TransactionConflict. Exactly-once counting relies on that, and the emulator should not hide or fake it.
    """
    original: Callable[..., Any] = DynamoDBBackend.transact_write_items
    if getattr(original, "serialized", False):
        return

    @functools.wraps(original)
    def serialized(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with _TRANSACTION_LOCK:
            return original(self, *args, **kwargs)

    serialized.serialized = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = serialized  # type: ignore[method-assign]
