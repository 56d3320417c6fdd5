"""AWS Signature Version 4: the canonical request and signing key, one implementation for both sides.

The lean clients (``aws_http``) sign their requests with it, keeping the day's signing key (botocore derives it
again, four more HMACs, for every request); the local stack's gateway (``devstack.sigv4``) verifies callers'
signatures with the same functions. ``tests/unit/test_json_signing.py`` checks the signatures against botocore's
own signer.
"""

import hashlib
import hmac
import re
import threading
from collections.abc import Mapping, Sequence
from typing import NamedTuple
from urllib.parse import quote, unquote_plus

ALGORITHM = "AWS4-HMAC-SHA256"
_WHITESPACE = re.compile(r"\s+")


class Credentials(NamedTuple):
    """What a signature needs of the caller's credentials (botocore's ReadOnlyCredentials has the same fields)."""

    access_key: str
    secret_key: str
    token: str | None


def canonical_request(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    """The SigV4 canonical request; *headers* have lower-case names, *signed_headers* are sorted."""
    return _canonical(
        method,
        canonical_uri(raw_path),
        query=canonical_query_string(raw_query),
        headers=headers,
        signed_headers=signed_headers,
        payload_hash=hashlib.sha256(body).hexdigest(),
    )


def _canonical(
    method: str,
    path: str,
    *,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    canonical_headers = "".join(f"{name}:{_WHITESPACE.sub(' ', headers[name].strip())}\n" for name in signed_headers)
    return "\n".join([method.upper(), path, query, canonical_headers, ";".join(signed_headers), payload_hash])


def canonical_uri(raw_path: str) -> str:
    """The path as sent, dot segments removed, then encoded once more (every service but S3 double-encodes)."""
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and segments:
        path += "/"
    return quote(path, safe="/~")


def canonical_query_string(raw_query: str) -> str:
    """Each name and value decoded, then encoded with only unreserved characters left bare; sorted by name, value."""
    pairs = []
    for pair in raw_query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        pairs.append((_encode(unquote_plus(name)), _encode(unquote_plus(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    """What the signature is the HMAC of: the time, the credential scope and the canonical request's hash."""
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])


def signing_key(secret_access_key: str, scope: str) -> bytes:
    """kSigning = HMAC chain over the scope's date, region, service and ``aws4_request``."""
    key = f"AWS4{secret_access_key}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class SigningKeys:
    """``signing_key`` of each (secret, scope), kept: one derivation per day and service instead of per request."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def key(self, secret_access_key: str, scope: str) -> bytes:
        key = self._keys.get((secret_access_key, scope))
        if key is None:
            key = signing_key(secret_access_key, scope)
            with self._lock:
                if len(self._keys) > 8:  # yesterday's keys, or a rotated secret's
                    self._keys.clear()
                self._keys[secret_access_key, scope] = key
        return key


def authorization(
    keys: SigningKeys,
    credentials: Credentials,
    *,
    region: str,
    service: str,
    amz_date: str,
    headers: Mapping[str, str],
    body: bytes,
    method: str = "POST",
    path: str = "/",
    query: str = "",
    payload_hash: str | None = None,
) -> str:
    """The Authorization header of a request with ``headers``, all signed: by default a POST to ``/`` (the JSON
    protocol's one path).

    ``headers`` holds lower-case names and must include ``host`` and ``x-amz-date`` (``amz_date``, as
    ``YYYYMMDDTHHMMSSZ``), and ``x-amz-security-token`` when the credentials have a token. ``path`` is the
    canonical URI itself (S3's: the path as sent, encoded once), ``query`` the request's query string;
    ``payload_hash`` is ``body``'s SHA-256 in hex (S3 sends it as ``x-amz-content-sha256``; computed if None).
    """
    signed = sorted(headers)
    request = _canonical(
        method,
        path,
        query=canonical_query_string(query),
        headers=headers,
        signed_headers=signed,
        payload_hash=payload_hash if payload_hash is not None else hashlib.sha256(body).hexdigest(),
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    key = keys.key(credentials.secret_key, scope)
    signature = hmac.new(key, string_to_sign(amz_date, scope, request).encode(), hashlib.sha256).hexdigest()
    credential = f"{credentials.access_key}/{scope}"
    return f"{ALGORITHM} Credential={credential}, SignedHeaders={';'.join(signed)}, Signature={signature}"
