"""Verify AWS Signature Version 4 on requests to the local HTTP API, as API Gateway's AWS_IAM authorizer does.

Only what a local stack can know is checked: the signature itself (canonical request, string to sign, signing
key derived from the secret of the access key the request names), the credential scope (today's date, the
stack's region, service ``execute-api``) and the request time (``X-Amz-Date`` within five minutes). There are no
IAM policies locally: any caller holding a known access key is allowed, the way a deployed stack allows a
caller whose policy grants ``execute-api:Invoke``.

Signatures in the ``Authorization`` header are supported; presigned URLs (the signature in the query string)
are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

from adserve.dal.sigv4 import ALGORITHM, canonical_request, signing_key, string_to_sign

__all__ = [
    "ALGORITHM",
    "MAX_CLOCK_SKEW",
    "SERVICE",
    "Caller",
    "SigV4Verifier",
    "SignatureError",
]

SERVICE = "execute-api"
MAX_CLOCK_SKEW = timedelta(minutes=5)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+"
    r"Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed_headers>[^,\s]+)\s*,\s*"
    r"Signature=(?P<signature>[0-9a-fA-F]{64})\s*$"
)


class SignatureError(Exception):
    """The request is not signed, or not signed correctly; the message says why (it never holds a secret)."""


@dataclass(frozen=True)
class Caller:
    """Who signed a request: what API Gateway puts in ``requestContext.authorizer.iam``."""

    access_key: str
    account_id: str
    user_name: str = "local-developer"

    def authorizer_context(self) -> dict[str, Any]:
        user_id = f"AIDALOCAL{hashlib.sha256(self.access_key.encode()).hexdigest()[:12].upper()}"
        return {
            "iam": {
                "accessKey": self.access_key,
                "accountId": self.account_id,
                "callerId": user_id,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{self.account_id}:user/{self.user_name}",
                "userId": user_id,
            }
        }


class SigV4Verifier:
    """Accepts requests signed with one of *credentials* (access key id -> secret access key)."""

    def __init__(
        self,
        credentials: Mapping[str, str],
        *,
        region: str,
        account_id: str,
        service: str = SERVICE,
        max_clock_skew: timedelta = MAX_CLOCK_SKEW,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._credentials = dict(credentials)
        self._region = region
        self._account_id = account_id
        self._service = service
        self._max_clock_skew = max_clock_skew
        self._clock = clock

    def verify(self, method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], body: bytes) -> Caller:
        """The caller, or SignatureError. *raw_path* and *raw_query* are as sent (still percent-encoded)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        if "x-amz-signature" in {unquote_plus(pair.partition("=")[0]).lower() for pair in raw_query.split("&")}:
            raise SignatureError("presigned URLs are not supported locally; sign the Authorization header")
        authorization = lowered.get("authorization")
        if not authorization:
            raise SignatureError("no Authorization header")
        parsed = _AUTHORIZATION.match(authorization.strip())
        if parsed is None:
            raise SignatureError(
                "the Authorization header is not AWS4-HMAC-SHA256 with Credential, SignedHeaders, Signature"
            )
        access_key, scope = self._check_credential(parsed["credential"])
        request_time = self._check_time(lowered, scope_date=scope.split("/")[0])
        signed_headers = parsed["signed_headers"].split(";")
        if "host" not in signed_headers:
            raise SignatureError("the host header must be signed")
        if signed_headers != sorted(set(signed_headers)) or any(name not in lowered for name in signed_headers):
            raise SignatureError("SignedHeaders must be sorted, unique and present in the request")
        request = canonical_request(
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=lowered,
            signed_headers=signed_headers,
            body=body,
        )
        key = signing_key(self._credentials[access_key], scope)
        expected = hmac.new(key, string_to_sign(request_time, scope, request).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parsed["signature"].lower()):
            raise SignatureError("the signature does not match the request")
        return Caller(access_key=access_key, account_id=self._account_id)

    def _check_credential(self, credential: str) -> tuple[str, str]:
        """The access key and the credential scope ``date/region/service/aws4_request``."""
        access_key, _, scope = credential.partition("/")
        parts = scope.split("/")
        if len(parts) != 4 or parts[3] != "aws4_request":
            raise SignatureError("the credential scope is not <date>/<region>/<service>/aws4_request")
        if parts[1] != self._region:
            raise SignatureError(f"the credential scope names region {parts[1]!r}, not {self._region!r}")
        if parts[2] != self._service:
            raise SignatureError(f"the credential scope names service {parts[2]!r}, not {self._service!r}")
        if access_key not in self._credentials:
            raise SignatureError("unknown access key")
        return access_key, scope

    def _check_time(self, headers: Mapping[str, str], scope_date: str) -> str:
        amz_date = headers.get("x-amz-date", "")
        try:
            moment = datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise SignatureError("no valid X-Amz-Date header (YYYYMMDDTHHMMSSZ)") from None
        if abs(self._clock() - moment) > self._max_clock_skew:
            raise SignatureError("X-Amz-Date is more than 5 minutes away from the server's time")
        if amz_date[:8] != scope_date:
            raise SignatureError("the credential scope's date is not X-Amz-Date's")
        return amz_date
